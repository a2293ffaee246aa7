"""The printers plugin. Its tables are printers, print_queues; its migrations live in migrations/."""
