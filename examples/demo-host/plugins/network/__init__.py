"""The network plugin. Its tables are subnets, network_devices; its migrations live in migrations/."""
