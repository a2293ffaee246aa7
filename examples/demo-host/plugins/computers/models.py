import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import db


class Computer(db.Model):
    """A computer is a piece of equipment on a subnet: foreign keys into two other plugins."""

    __tablename__ = "computers"

    id: Mapped[int] = mapped_column(primary_key=True)
    hostname: Mapped[str] = mapped_column(sa.String(255), unique=True)
    equipment_id: Mapped[int] = mapped_column(sa.ForeignKey("equipment.id"))
    subnet_id: Mapped[int | None] = mapped_column(sa.ForeignKey("subnets.id"))
