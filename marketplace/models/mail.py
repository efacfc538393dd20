"""The email outbox: a message is queued in the transaction that causes it (an order paid, a
password reset asked for) and sent by the worker, so a failed mail server loses nothing and a
rolled-back transaction sends nothing. One table, shared by both modes (users are)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, DateTime, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.schema import Base, BigId, one_of, utcnow

MAIL_STATES = ("queued", "sent", "failed")


class OutboxEmail(Base):
    __tablename__ = "mail_outbox"
    __table_args__ = (
        CheckConstraint(one_of("status", MAIL_STATES), name="status"),
        Index("ix_mail_outbox_due", "next_attempt_at", postgresql_where=text("status = 'queued'"),
              sqlite_where=text("status = 'queued'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(30))
    attachments: Mapped[str] = mapped_column(Text, default="[]")
    """What to attach, rendered when sent: a JSON list like
    ``[{"certificate": 23, "mode": "live"}]``."""
    status: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
