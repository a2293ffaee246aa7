import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shopapp.models import db


class EquipmentType(db.Model):
    __tablename__ = "equipment_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)


class Equipment(db.Model):
    __tablename__ = "equipment"

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_tag: Mapped[str] = mapped_column(sa.String(32), unique=True)
    type_id: Mapped[int] = mapped_column(sa.ForeignKey("equipment_types.id"))
    in_service: Mapped[bool] = mapped_column(server_default=sa.true())
