"""The ledger's tables, as typed SQLAlchemy 2.x models.

One ``MetaData`` with a naming convention is shared by the ledger and the marketplace so that
Alembic has a single target and constraint names are stable across SQLite and PostgreSQL.
Blocks and batches take their ids from counters on the chain head, under its lock, so that the
ids are gapless and a replay of the journal rebuilds them exactly (invariant 7).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ACCOUNT_KINDS = ("issuer", "inventory", "customer", "organisation", "buffer")
BLOCK_STATES = ("tradable", "retired", "cancelled", "frozen")
"""``frozen``: retired or cancelled at the origin registry under another name; final, like
retired and cancelled, so those serials are never sold or retired here."""
ENTRY_KINDS = ("issue", "transfer", "retire", "cancel", "origin", "label", "pool", "allocate")
SERIAL_SCHEMES = ("verra", "native")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {int: Integer, str: String}


def one_of(column: str, values: tuple[str, ...]) -> str:
    """SQL for a CHECK that a column holds one of a fixed list of strings."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Account(Base):
    """A holder of credits: an issuer, the marketplace inventory, a customer, an organisation
    or the buffer pool. Accounts are not journal entries; records name them by id only, so the
    public journal carries no personal data."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (CheckConstraint(one_of("kind", ACCOUNT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Project(Base):
    """Registry facts about a project: which registry lists it (``registry_name``, e.g. VCS),
    under which id, and where."""

    __tablename__ = "ledger_projects"
    __table_args__ = (
        UniqueConstraint("registry_name", "registry_id", name="uq_ledger_projects_registry_id"),
        CheckConstraint("length(country) = 2", name="country"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    registry_name: Mapped[str] = mapped_column(String(10))
    registry_id: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    standards: Mapped[str] = mapped_column(String(200), default="")
    methodology: Mapped[str] = mapped_column(String(200), default="")
    sector: Mapped[str] = mapped_column(String(100), default="")

    batches: Mapped[list[Batch]] = relationship(back_populates="project", order_by="Batch.id")

    @property
    def ref(self) -> str:
        """The project's public reference, e.g. ``VCS-944``."""
        return f"{self.registry_name}-{self.registry_id}"


class Entry(Base):
    """The journal: one row per operation, seq 1, 2, 3... with no gaps.

    ``record`` holds the canonical JSON bytes exactly as hashed; ``hash`` is the hex SHA-256
    of those bytes. The record holds the previous entry's hash, so each entry commits to the
    whole chain before it. Database triggers refuse UPDATE, DELETE and TRUNCATE.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("seq >= 1", name="seq_positive"),
        CheckConstraint(one_of("kind", ENTRY_KINDS), name="kind"),
        CheckConstraint("length(hash) = 64", name="hash_length"),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    record: Mapped[bytes] = mapped_column(LargeBinary)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class ChainHead(Base):
    """The single row every append locks (invariant 8).

    It holds the last seq and hash, the counters from which batch and block ids are drawn,
    and the Merkle frontier. Appends are serialised on this row, never on ``max(seq)`` or ``count(*)``.
    """

    __tablename__ = "ledger_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    blocks: Mapped[int] = mapped_column(BigInteger, default=0)
    batches: Mapped[int] = mapped_column(BigInteger, default=0)
    frontier: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    """The Merkle tree's right edge (see ``merkle.Frontier``): appends need no other read."""


class Batch(Base):
    """One issuance of one project vintage, with its serial range [first, last].

    ``origin`` names what the batch mirrors (e.g. a Verra issuance) and is unique, so nothing
    is imported twice. Batches are immutable once written.
    """

    __tablename__ = "ledger_batches"
    __table_args__ = (
        CheckConstraint("first_serial >= 1 AND first_serial <= last_serial", name="range"),
        CheckConstraint("vintage_start <= vintage_end", name="vintage"),
        CheckConstraint(one_of("scheme", SERIAL_SCHEMES), name="scheme"),
        CheckConstraint(
            "buffer_quantity >= 0 AND buffer_quantity < last_serial - first_serial + 1",
            name="buffer",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    project_id: Mapped[int] = mapped_column(ForeignKey("ledger_projects.id"), index=True)
    vintage_start: Mapped[dt.date] = mapped_column(Date)
    vintage_end: Mapped[dt.date] = mapped_column(Date)
    issued_on: Mapped[dt.date] = mapped_column(Date)
    first_serial: Mapped[int] = mapped_column(BigInteger)
    last_serial: Mapped[int] = mapped_column(BigInteger)
    origin: Mapped[str | None] = mapped_column(String(200), unique=True)
    scheme: Mapped[str] = mapped_column(String(10))
    verra_issuance: Mapped[int | None] = mapped_column(BigInteger)
    verra_code: Mapped[int | None] = mapped_column(Integer)
    verra_scope: Mapped[int | None] = mapped_column(Integer)
    verra_flag: Mapped[int | None] = mapped_column(Integer)
    buffer_quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    issued_by: Mapped[int] = mapped_column(ForeignKey("ledger_entries.seq"))

    project: Mapped[Project] = relationship(back_populates="batches")

    @property
    def quantity(self) -> int:
        return self.last_serial - self.first_serial + 1


class Block(Base):
    """A contiguous serial range of one batch, held by one account, in one state.

    A block is never edited except once, to record the entry that spent it; every operation
    spends whole blocks and creates new ones (the UTXO model). Triggers refuse DELETE and
    every other UPDATE; on PostgreSQL an exclusion constraint refuses two unspent blocks of a
    batch that overlap.
    """

    __tablename__ = "ledger_blocks"
    __table_args__ = (
        CheckConstraint("first_serial >= 1 AND first_serial <= last_serial", name="range"),
        CheckConstraint(one_of("state", BLOCK_STATES), name="state"),
        CheckConstraint("spent_by IS NULL OR spent_by > created_by", name="spent_after"),
        CheckConstraint("spent_by IS NULL OR state = 'tradable'", name="final_states"),
        # Partial indexes: a holder's spendable blocks and a batch's unspent blocks, however
        # long the history of spent blocks grows.
        Index("ix_ledger_blocks_spendable", "account_id", "batch_id", "first_serial",
              postgresql_where=text("spent_by IS NULL AND state = 'tradable'"),
              sqlite_where=text("spent_by IS NULL AND state = 'tradable'")),
        Index("ix_ledger_blocks_batch_unspent", "batch_id", "first_serial",
              postgresql_where=text("spent_by IS NULL"), sqlite_where=text("spent_by IS NULL")),
        Index("ix_ledger_blocks_batch_range", "batch_id", "first_serial"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    batch_id: Mapped[int] = mapped_column(ForeignKey("ledger_batches.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    first_serial: Mapped[int] = mapped_column(BigInteger)
    last_serial: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(10))
    created_by: Mapped[int] = mapped_column(ForeignKey("ledger_entries.seq"), index=True)
    spent_by: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.seq"), index=True)

    batch: Mapped[Batch] = relationship()
    account: Mapped[Account] = relationship()

    @property
    def quantity(self) -> int:
        return self.last_serial - self.first_serial + 1


class Beneficiary(Base):
    """The erasable side of a retirement: the beneficiary's name and the salt of its commitment.

    The journal holds only SHA-256 over salt and name. Erasing this row (on the holder's
    request) leaves the chain verifiable; the certificate then says the name was withheld.
    """

    __tablename__ = "ledger_beneficiaries"

    seq: Mapped[int] = mapped_column(ForeignKey("ledger_entries.seq"), primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    salt: Mapped[str | None] = mapped_column(String(64))
    erased_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class MerkleNode(Base):
    """A complete perfect subtree of the journal's Merkle tree (RFC 9162): level 0 holds the
    leaf hashes, level L the hash of leaves [index * 2**L, (index + 1) * 2**L). Stored as the
    tree grows, so any proof costs O(log n) reads. Append-only."""

    __tablename__ = "ledger_merkle_nodes"
    __table_args__ = (CheckConstraint("level >= 0 AND level < 64 AND idx >= 0", name="position"),)

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class SignedCheckpoint(Base):
    """A checkpoint the operator signed: a tree size, its root, and the signed note as served.

    Each one is consistent with the one before (the app checks a consistency proof before it
    signs). Append-only."""

    __tablename__ = "ledger_checkpoints"
    __table_args__ = (CheckConstraint("size >= 1", name="size_positive"),)

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OriginRecord(Base):
    """What an origin registry did with serials of a mirrored batch: one row per ``origin``
    entry, exactly as its record says (``verify`` compares them). ``ours`` rows name this
    marketplace at the origin and cover its retirements; any other row is a retirement
    elsewhere. Rows of one batch never overlap (an exclusion constraint on PostgreSQL, a
    trigger on SQLite). Append-only."""

    __tablename__ = "ledger_origin_records"
    __table_args__ = (
        CheckConstraint("first_serial >= 1 AND first_serial <= last_serial", name="range"),
        CheckConstraint(one_of("action", ("retired", "cancelled")), name="action"),
        Index("ix_ledger_origin_records_batch_range", "batch_id", "first_serial"),
    )

    seq: Mapped[int] = mapped_column(ForeignKey("ledger_entries.seq"), primary_key=True,
                                     autoincrement=False)
    batch_id: Mapped[int] = mapped_column(ForeignKey("ledger_batches.id"))
    registry_name: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(10))
    first_serial: Mapped[int] = mapped_column(BigInteger)
    last_serial: Mapped[int] = mapped_column(BigInteger)
    origin_date: Mapped[dt.date] = mapped_column(Date)
    beneficiary: Mapped[str] = mapped_column(String(500))
    account: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500))
    reference: Mapped[str] = mapped_column(String(500))
    ours: Mapped[bool] = mapped_column(Boolean)

    batch: Mapped[Batch] = relationship()

    @property
    def quantity(self) -> int:
        return self.last_serial - self.first_serial + 1


class BatchLabel(Base):
    """One change of a batch's quality labels (a ``label`` entry): the whole set in force
    from then on. The labels at any moment are the batch's latest row before it. Append-only."""

    __tablename__ = "ledger_batch_labels"
    __table_args__ = (Index("ix_ledger_batch_labels_batch", "batch_id", "seq"),)

    seq: Mapped[int] = mapped_column(ForeignKey("ledger_entries.seq"), primary_key=True,
                                     autoincrement=False)
    batch_id: Mapped[int] = mapped_column(ForeignKey("ledger_batches.id"))
    effective: Mapped[dt.date] = mapped_column(Date)
    ccp: Mapped[bool] = mapped_column(Boolean)
    ccp_since: Mapped[dt.date | None] = mapped_column(Date)
    article6_authorized: Mapped[bool] = mapped_column(Boolean)
    ca_declaration: Mapped[str] = mapped_column(String(20))
    ca_status: Mapped[str] = mapped_column(String(20))
    corsia: Mapped[str | None] = mapped_column(String(20))
    mitigation: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(String(500))


class PoolRetirement(Base):
    """A ``pool`` entry: whole tonnes of one project retired into its kilogram pool. Each
    tonne backs 1,000,000 g of allocations. Append-only."""

    __tablename__ = "ledger_pool_retirements"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),
                      Index("ix_ledger_pool_retirements_project", "project_id", "seq"))

    seq: Mapped[int] = mapped_column(ForeignKey("ledger_entries.seq"), primary_key=True,
                                     autoincrement=False)
    project_id: Mapped[int] = mapped_column(ForeignKey("ledger_projects.id"))
    pool: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    quantity: Mapped[int] = mapped_column(BigInteger)

    @property
    def grams(self) -> int:
        return self.quantity * 1_000_000


class Allocation(Base):
    """One kilogram allocation: position ``idx`` of the ``allocate`` entry at ``seq``.

    The journal holds the beneficiary's salted commitment; the name and salt live here and
    can be erased on request, as for a retirement (``ledger_beneficiaries``)."""

    __tablename__ = "ledger_allocations"
    __table_args__ = (CheckConstraint("grams > 0", name="grams_positive"),
                      CheckConstraint("idx >= 0", name="idx"))

    seq: Mapped[int] = mapped_column(ForeignKey("ledger_entries.seq"), primary_key=True,
                                     autoincrement=False)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    grams: Mapped[int] = mapped_column(BigInteger)
    commitment: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(Text)
    salt: Mapped[str | None] = mapped_column(String(64))
    erased_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    purpose: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(String(500))
    country: Mapped[str] = mapped_column(String(2))
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)


class AllocationDraw(Base):
    """Which pool retirement gives how many grams to one allocation. Append-only."""

    __tablename__ = "ledger_allocation_draws"
    __table_args__ = (CheckConstraint("grams > 0", name="grams_positive"),
                      Index("ix_ledger_allocation_draws_pool", "pool_seq"))

    seq: Mapped[int] = mapped_column(ForeignKey("ledger_entries.seq"), primary_key=True,
                                     autoincrement=False)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    pool_seq: Mapped[int] = mapped_column(ForeignKey("ledger_pool_retirements.seq"),
                                          primary_key=True, autoincrement=False)
    grams: Mapped[int] = mapped_column(BigInteger)


def spendable(block: Any) -> Any:
    """The condition for an unspent tradable block, with the state as a literal so the
    partial index ``ix_ledger_blocks_spendable`` matches even in a prepared statement."""
    from sqlalchemy import and_, literal_column

    return and_(block.spent_by.is_(None), block.state == literal_column("'tradable'"))



def table_of(model: type[Base]) -> Table:
    """A model's Core table, typed as one (the ledger's hot paths use Core statements)."""
    return cast(Table, model.__table__)
