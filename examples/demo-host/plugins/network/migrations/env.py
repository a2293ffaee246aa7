# Alembic env for the "network" plugin; the logic is shared by every plugin.
from shopapp.plugins.alembic_template import run_plugin_migrations

PLUGIN_NAME = "network"
run_plugin_migrations(PLUGIN_NAME)
