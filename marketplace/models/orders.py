"""Orders, their lines, the inventory they reserve, and the payment events that move them.

An order's status changes only through ``marketplace.order_states.transition`` (its one
transition table); the guard on ``Order.status`` refuses any other write. Payment events are
stored once by their id, so a repeated webhook does nothing.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ledger.schema import Base, BigId, utcnow, one_of

from .. import order_states
from ..order_states import STATES as ORDER_STATES

ACTIONS = ("retire", "hold")


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(one_of("status", ORDER_STATES), name="status"),
        CheckConstraint(one_of("action", ACTIONS), name="action"),
        CheckConstraint("total_minor > 0", name="total_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(24), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    ledger_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    action: Mapped[str] = mapped_column(String(10), default="retire")
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column()
    beneficiary: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(20), default="voluntary")
    note: Mapped[str] = mapped_column(String(500), default="")
    country: Mapped[str] = mapped_column(String(2))
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    gateway: Mapped[str] = mapped_column(String(10))
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    checkout_url: Mapped[str | None] = mapped_column(Text)
    payment_reference: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    paid_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    fulfilled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    refunded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    failure: Mapped[str | None] = mapped_column(String(300))

    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", order_by="OrderLine.id",
                                                  cascade="all, delete-orphan")
    reservations: Mapped[list[Reservation]] = relationship(back_populates="order",
                                                           order_by="Reservation.id",
                                                           cascade="all, delete-orphan")

    @property
    def quantity(self) -> int:
        """Whole tonnes ordered (lines in grams count none)."""
        return sum(line.quantity for line in self.lines)

    @property
    def grams(self) -> int:
        """Grams ordered from kilogram pools."""
        return sum(line.grams or 0 for line in self.lines)


order_states.install(Order)


class OrderLine(Base):
    """Whole tonnes of a listing (``quantity``), or grams of its kilogram pool (``grams``, with
    ``quantity`` 0). ``unit_price_minor`` is always per tonne; a line in grams costs it per
    gram, rounded half up to the minor unit."""

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("(grams IS NULL AND quantity > 0) OR (grams > 0 AND quantity = 0)",
                        name="quantity_positive"),
        CheckConstraint("unit_price_minor > 0", name="price_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_batches.id"))
    quantity: Mapped[int] = mapped_column()
    grams: Mapped[int | None] = mapped_column(BigInteger)
    unit_price_minor: Mapped[int] = mapped_column()
    amount_minor: Mapped[int] = mapped_column()

    order: Mapped[Order] = relationship(back_populates="lines")


class Reservation(Base):
    """Tonnes of one batch held back from sale for one order until it is paid or lapses."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("state IN ('active', 'consumed', 'released')", name="state"),
        Index("ix_reservations_active", "batch_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id", ondelete="CASCADE"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("ledger_batches.id"))
    quantity: Mapped[int] = mapped_column()
    state: Mapped[str] = mapped_column(String(10), default="active")
    transfer_seq: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.seq"))
    retire_seq: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.seq"))
    refund_seq: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.seq"))

    order: Mapped[Order] = relationship(back_populates="reservations")


class PaymentEvent(Base):
    """A payment provider's event, stored once by its id (webhooks are delivered at least
    once, sometimes out of order)."""

    __tablename__ = "payment_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(80))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    created: Mapped[int] = mapped_column()
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    outcome: Mapped[str] = mapped_column(Text, default="")
