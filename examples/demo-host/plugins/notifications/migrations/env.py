# Alembic env for the "notifications" plugin; the logic is shared by every plugin.
from shopapp.plugins.alembic_template import run_plugin_migrations

PLUGIN_NAME = "notifications"
run_plugin_migrations(PLUGIN_NAME)
