"""API keys, quotes, idempotency records, saved payment methods, and outbound webhook
endpoints with their events, deliveries and attempts.

Keys are stored only as a SHA-256 hash of the whole key (a key is 256 bits of randomness, so a
fast hash is enough: there is nothing to brute-force), with a visible prefix to tell them apart.

Keys, saved payment methods and webhook endpoints are shared by both modes (a key and an
endpoint say which mode they are for); quotes, API orders, idempotency records and webhook
events, deliveries and attempts exist once per mode (``marketplace.modes``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ledger.schema import Base, BigId, utcnow, one_of

SCOPES = ("write", "read")
DELIVERY_STATES = ("pending", "succeeded", "failed")
EVENT_TYPES = ("order.fulfilled", "retirement.created", "retirement.covered_at_origin")




class ApiKey(Base):
    """An organisation's secret key. Only its hash is stored; ``prefix`` is shown to tell keys
    apart. A key acts for the organisation on behalf of the member who created it, and stops
    working when it is revoked or that member leaves the organisation."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(one_of("scope", SCOPES), name="scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    livemode: Mapped[bool] = mapped_column(Boolean)
    scope: Mapped[str] = mapped_column(String(10), default="write")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class ApiQuote(Base):
    """Tonnes priced and held for a short time: the reservations of a pending order
    (``order_id``), as a checkout's. Ordering from the quote fills in that order."""

    __tablename__ = "api_quotes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ordered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ApiOrder(Base):
    """Which key placed a live order through the API, and how it is paid (``saved``: the
    organisation's saved payment method; ``invoice``: an invoice, paid later)."""

    __tablename__ = "api_orders"
    __table_args__ = (CheckConstraint("payment_method IN ('saved', 'invoice', 'account')",
                                      name="payment_method"),)

    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id", ondelete="CASCADE"),
                                          primary_key=True, autoincrement=False)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    payment_method: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IdempotencyRecord(Base):
    """One ``Idempotency-Key`` of one POST endpoint (orders, retirements...): the same key and
    body give the same result; the same key with another body is refused
    (``marketplace.idempotency``). Each mode keeps its own."""

    __tablename__ = "api_idempotency_keys"
    __table_args__ = (
        UniqueConstraint("organisation_id", "endpoint", "key", name="uq_api_idempotency_keys_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SavedPaymentMethod(Base):
    """The Stripe customer and payment method an organisation's API orders are charged to
    (off-session). Not needed with the demo gateway, whose payments always succeed."""

    __tablename__ = "api_saved_payment_methods"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), unique=True)
    customer: Mapped[str] = mapped_column(String(255))
    payment_method: Mapped[str] = mapped_column(String(255))
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- outbound webhooks ----------------------------------------------------------------------


class WebhookEndpoint(Base):
    """A URL an organisation asked us to POST events to, signed with its own secret. The secret
    is kept (we must sign with it) and shown to the organisation's admins only when created."""

    __tablename__ = "api_webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(100))
    livemode: Mapped[bool] = mapped_column(Boolean)
    events: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def event_types(self) -> list[str]:
        return [e for e in self.events.split(",") if e]


class WebhookEvent(Base):
    """One event, stored once with the exact bytes every endpoint receives."""

    __tablename__ = "api_webhook_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    livemode: Mapped[bool] = mapped_column(Boolean)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDelivery(Base):
    """One event to one endpoint: retried with backoff until it succeeds or we give up."""

    __tablename__ = "api_webhook_deliveries"
    __table_args__ = (
        CheckConstraint(one_of("status", DELIVERY_STATES), name="status"),
        UniqueConstraint("event_id", "endpoint_id", name="uq_api_webhook_deliveries_endpoint"),
        Index("ix_api_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("api_webhook_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("api_webhook_endpoints.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(300))
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    event: Mapped[WebhookEvent] = relationship()
    endpoint: Mapped[WebhookEndpoint] = relationship()


class WebhookAttempt(Base):
    """The log of every attempt to deliver: when, how long, what the receiver answered."""

    __tablename__ = "api_webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("api_webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int] = mapped_column(default=0)
    status_code: Mapped[int | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(String(300))
    response_excerpt: Mapped[str] = mapped_column(String(500), default="")
