"""Host settings for the plugin-migration runtime, rendered from .copier-answers.host.yml.

Change them with `copier update --trust -a .copier-answers.host.yml -d key=value`,
not by hand: the regeneration check compares this file with the template.
"""

# module:attr of the declarative base (or Flask-SQLAlchemy db.Model) whose
# .metadata holds every table, core and plugin.
MODEL_BASE = "shopapp.models:db.Model"

# Folder of plugins at the repository root; plugin NAME's models are imported
# as PLUGINS_DIR.NAME.models (with "/" read as ".").
PLUGINS_DIR = "plugins"
