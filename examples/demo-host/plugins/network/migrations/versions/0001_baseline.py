"""network plugin: baseline schema

Creates every table owned by the network plugin per
shopapp.plugins.alembic_template.PLUGIN_TABLE_OWNERS. The table
definitions are derived from the SQLAlchemy models at migration time, so this
stays in lockstep with the model layer without duplication.

Revision ID: 0001_baseline_network
Revises:
Create Date: written by copier-plugin-migrations

"""
from shopapp.plugins.alembic_template import create_plugin_tables, drop_plugin_tables


revision = "0001_baseline_network"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    create_plugin_tables("network")


def downgrade():
    drop_plugin_tables("network")
