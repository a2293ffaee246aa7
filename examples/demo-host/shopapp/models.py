"""Core models: owned by the application itself, never by a plugin."""

from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db


class Site(db.Model):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(db.String(80), unique=True)
