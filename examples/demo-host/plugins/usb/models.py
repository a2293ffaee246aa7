import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import db


class UsbDevice(db.Model):
    __tablename__ = "usb_devices"
    __table_args__ = (sa.UniqueConstraint("vendor_id", "product_id", "serial"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vendor_id: Mapped[str] = mapped_column(sa.String(4))
    product_id: Mapped[str] = mapped_column(sa.String(4))
    serial: Mapped[str] = mapped_column(sa.String(64))
    computer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("computers.id"), index=True)
