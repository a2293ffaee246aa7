"""The demo host: a small Flask + Flask-SQLAlchemy app whose plugins own their tables."""

import os

from flask import Flask

from .extensions import db


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("SHOPAPP_DATABASE_URI", "sqlite:///shopdb.sqlite3")
    db.init_app(app)

    from . import models  # noqa: F401  (core models)
    from .plugins import init_app

    init_app(app)  # adds `flask plugin ...`
    return app
