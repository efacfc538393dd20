"""Kilogram pools, per listing: the tonnes retired into each pool, what each pool retirement
still has to give, and every kilogram allocation from the moment it is reserved to the moment
it is written into the ledger (sealed).

All of a pool's rows change only under its pool's row lock (``KgPool``); a refill, which
retires tonnes, also takes the listing's lock (the lock a checkout takes), always after the
pool's. So kilogram sales never wait on tonne checkouts, and refills never race them. The
database checks that no pool retirement gives more grams than it holds.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.schema import Base, BigId, one_of, utcnow

ALLOCATION_STATES = ("reserved", "allocated", "sealed", "released")
"""reserved: grams held for an order not yet paid; allocated: paid, waiting to be written into
the ledger; sealed: in an ``allocate`` entry (``seq``, ``idx``); released: the order lapsed or
failed, its grams go back to the pool."""


class KgPool(Base):
    """One row per listing with a kilogram pool: the lock every change to the pool takes
    (``SELECT ... FOR UPDATE``), before the listing's own lock when a refill needs tonnes."""

    __tablename__ = "kg_pools"

    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"), primary_key=True,
                                            autoincrement=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PoolRetirementStock(Base):
    """One pool retirement (a ``pool`` entry) of a listing's pool: the grams it holds and how
    many of them are taken (reserved, allocated or sealed)."""

    __tablename__ = "kg_pool_stock"
    __table_args__ = (
        CheckConstraint("taken >= 0 AND taken <= grams", name="within"),
        Index("ix_kg_pool_stock_listing", "listing_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(ForeignKey("ledger_entries.seq"), primary_key=True,
                                     autoincrement=False)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"))
    grams: Mapped[int] = mapped_column(BigInteger)
    taken: Mapped[int] = mapped_column(BigInteger, default=0)

    @property
    def free(self) -> int:
        return self.grams - self.taken


class KgAllocation(Base):
    """Grams of a listing's pool for one order line, with the pool retirements they come from
    (``draws``: ``seq:grams`` pairs, ascending seq)."""

    __tablename__ = "kg_allocations"
    __table_args__ = (
        CheckConstraint("grams > 0", name="grams_positive"),
        CheckConstraint(one_of("state", ALLOCATION_STATES), name="state"),
        Index("ix_kg_allocations_waiting", "state", "id",
              postgresql_where=text("state = 'allocated'"),
              sqlite_where=text("state = 'allocated'")),
        Index("ix_kg_allocations_listing", "listing_id", "state"),
        Index("ix_kg_allocations_sealed", "seq", "idx"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(24), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id", ondelete="CASCADE"))
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"))
    grams: Mapped[int] = mapped_column(BigInteger)
    draws: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default="reserved")
    returned: Mapped[bool] = mapped_column(default=False)
    """A released allocation's grams were given back to its pool retirements."""
    seq: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.seq"))
    idx: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    allocated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    sealed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def draw_pairs(self) -> list[tuple[int, int]]:
        return parse_draws(self.draws)


def format_draws(pairs: list[tuple[int, int]]) -> str:
    return ",".join(f"{seq}:{grams}" for seq, grams in pairs)


def parse_draws(text_: str) -> list[tuple[int, int]]:
    pairs = []
    for item in text_.split(","):
        seq, grams = item.split(":")
        pairs.append((int(seq), int(grams)))
    return pairs
