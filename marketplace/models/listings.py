"""A listing puts a ledger project on sale: its price, its story and facts as the project
tells them, and whether it is on sale. Available tonnes are read from the ledger, never
stored here."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ledger.schema import Base, Project, utcnow

CURRENCIES = ("USD", "EUR", "GBP", "PEN")


class Listing(Base):
    __tablename__ = "listings"
    __table_args__ = (
        CheckConstraint("price_minor > 0", name="price_positive"),
        CheckConstraint("currency IN ('USD', 'EUR', 'GBP', 'PEN')", name="currency"),
        CheckConstraint("status IN ('listed', 'unlisted')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("ledger_projects.id"), unique=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    status: Mapped[str] = mapped_column(String(10), default="unlisted")
    price_minor: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    headline: Mapped[str] = mapped_column(String(200), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    story: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    developer: Mapped[str] = mapped_column(String(200), default="")
    project_type: Mapped[str] = mapped_column(String(60), default="")
    area_hectares: Mapped[int | None] = mapped_column()
    annual_reduction_t: Mapped[int | None] = mapped_column()
    total_reduction_t: Mapped[int | None] = mapped_column()
    validator: Mapped[str] = mapped_column(String(200), default="")
    co_benefits: Mapped[str] = mapped_column(Text, default="")
    sdgs: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    project: Mapped[Project] = relationship()

    @property
    def sdg_numbers(self) -> list[int]:
        return [int(x) for x in self.sdgs.split(",") if x.strip().isdigit()]

    @property
    def co_benefit_list(self) -> list[str]:
        return [line.strip() for line in self.co_benefits.splitlines() if line.strip()]
