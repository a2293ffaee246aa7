"""The equipment plugin. Its tables are equipment_types, equipment; its migrations live in migrations/."""
