import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import db


class Subnet(db.Model):
    __tablename__ = "subnets"

    id: Mapped[int] = mapped_column(primary_key=True)
    cidr: Mapped[str] = mapped_column(sa.String(43), unique=True)
    vlan: Mapped[int | None]


class NetworkDevice(db.Model):
    __tablename__ = "network_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    hostname: Mapped[str] = mapped_column(sa.String(255), index=True)
    subnet_id: Mapped[int] = mapped_column(sa.ForeignKey("subnets.id"))
