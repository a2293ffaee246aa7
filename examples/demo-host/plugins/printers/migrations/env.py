# Alembic env for the "printers" plugin; the logic is shared by every plugin.
from shopapp.plugins.alembic_template import run_plugin_migrations

PLUGIN_NAME = "printers"
run_plugin_migrations(PLUGIN_NAME)
