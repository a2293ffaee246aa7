"""The computers plugin. Its tables are computers; its migrations live in migrations/."""
