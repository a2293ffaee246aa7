# Alembic env for the "computers" plugin; the logic is shared by every plugin.
from shopapp.plugins.alembic_template import run_plugin_migrations

PLUGIN_NAME = "computers"
run_plugin_migrations(PLUGIN_NAME)
