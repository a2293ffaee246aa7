# Alembic env for the "usb" plugin; the logic is shared by every plugin.
from shopapp.plugins.alembic_template import run_plugin_migrations

PLUGIN_NAME = "usb"
run_plugin_migrations(PLUGIN_NAME)
