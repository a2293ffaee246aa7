import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import db


class Printer(db.Model):
    __tablename__ = "printers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    device_id: Mapped[int] = mapped_column(sa.ForeignKey("network_devices.id"))


class PrintQueue(db.Model):
    __tablename__ = "print_queues"

    id: Mapped[int] = mapped_column(primary_key=True)
    printer_id: Mapped[int] = mapped_column(sa.ForeignKey("printers.id", ondelete="CASCADE"))
    paused: Mapped[bool] = mapped_column(default=False)
