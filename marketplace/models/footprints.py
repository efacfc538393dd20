"""Saved footprints and monthly offset subscriptions (issue: individuals).

A saved footprint is never edited: saving again adds a row, so the rows of a person are the
history of their footprint and the newest is the current one. A subscription offsets a
twelfth of the footprint it was started from each month; each paid invoice is stored once,
by the payment provider's invoice id, with what it retired and what it carried to the next
month, so a repeated invoice does nothing and every month's arithmetic stays visible.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ledger.schema import Base, BigId, utcnow

from .listings import Listing

SUBSCRIPTION_STATES = ("pending", "active", "cancelled")
_LIVE = "status IN ('pending', 'active')"


class SavedFootprint(Base):
    """A footprint as computed when it was saved: the inputs, every line, the total."""

    __tablename__ = "saved_footprints"
    __table_args__ = (CheckConstraint("total_grams >= 0", name="total_not_negative"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    country: Mapped[str] = mapped_column(String(2))
    inputs: Mapped[str] = mapped_column(Text)
    """The calculator's query parameters, as canonical JSON."""
    lines: Mapped[str] = mapped_column(Text)
    """Every line as computed at the time (JSON), so history shows what was shown then."""
    total_grams: Mapped[int] = mapped_column(BigInteger)
    factor_versions: Mapped[str] = mapped_column(String(400))


class FootprintProfile(Base):
    """A person's public page: off until they opt in, at an unguessable address."""

    __tablename__ = "footprint_profiles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                    onupdate=utcnow)


class OffsetSubscription(Base):
    """Offset a twelfth of a saved footprint every month, in whole tonnes, from one project."""

    __tablename__ = "offset_subscriptions"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'active', 'cancelled')", name="status"),
        CheckConstraint("annual_grams > 0 AND monthly_grams > 0", name="grams_positive"),
        CheckConstraint("price_minor > 0", name="price_positive"),
        CheckConstraint("carried_grams >= 0 AND retired_tonnes >= 0 AND months_paid >= 0",
                        name="counters_not_negative"),
        Index("uq_offset_subscriptions_live_user", "user_id", unique=True,
              sqlite_where=text(_LIVE), postgresql_where=text(_LIVE)),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(24), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    footprint_id: Mapped[int] = mapped_column(BigId, ForeignKey("saved_footprints.id"))
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"))
    annual_grams: Mapped[int] = mapped_column(BigInteger)
    monthly_grams: Mapped[int] = mapped_column(BigInteger)
    price_minor: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    beneficiary: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    gateway: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    checkout_url: Mapped[str | None] = mapped_column(Text)
    provider_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    months_paid: Mapped[int] = mapped_column(default=0)
    retired_tonnes: Mapped[int] = mapped_column(BigInteger, default=0)
    retired_grams: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    """Everything retired so far, in grams."""
    carried_grams: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    activated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    listing: Mapped[Listing] = relationship()
    invoices: Mapped[list[OffsetInvoice]] = relationship(
        back_populates="subscription", order_by="OffsetInvoice.month")


class OffsetInvoice(Base):
    """One paid monthly invoice and what it did: due = carried in + a twelfth; whole tonnes
    retired; the rest carried to the next month."""

    __tablename__ = "offset_invoices"
    __table_args__ = (
        UniqueConstraint("subscription_id", "month", name="uq_offset_invoices_month"),
        CheckConstraint("due_grams = carried_in_grams + monthly_grams", name="due"),
        CheckConstraint("carried_out_grams = due_grams - retired_grams", name="carried"),
        CheckConstraint("retired_grams >= 0", name="retired_grams"),
        CheckConstraint("carried_out_grams >= 0 AND retired_tonnes >= 0", name="not_negative"),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    """The payment provider's invoice id: each invoice is fulfilled once."""
    subscription_id: Mapped[int] = mapped_column(BigId, ForeignKey("offset_subscriptions.id"),
                                                 index=True)
    month: Mapped[int] = mapped_column()
    amount_minor: Mapped[int] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    carried_in_grams: Mapped[int] = mapped_column(BigInteger)
    monthly_grams: Mapped[int] = mapped_column(BigInteger)
    due_grams: Mapped[int] = mapped_column(BigInteger)
    retired_tonnes: Mapped[int] = mapped_column(BigInteger)
    """Whole tonnes retired as serials (months paid before exact kilograms)."""
    retired_grams: Mapped[int] = mapped_column(BigInteger, default=0,
                                               server_default=text("0"))
    """Everything the month retired, in grams (from the project's kilogram pool)."""
    carried_out_grams: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("orders.id"))
    note: Mapped[str] = mapped_column(String(300), default="")

    subscription: Mapped[OffsetSubscription] = relationship(back_populates="invoices")
