# Alembic env for the "equipment" plugin; the logic is shared by every plugin.
from shopapp.plugins.alembic_template import run_plugin_migrations

PLUGIN_NAME = "equipment"
run_plugin_migrations(PLUGIN_NAME)
