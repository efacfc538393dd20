"""Appending to the journal: lock the chain head, write one entry, move the head.

Every operation goes through :func:`locked_head` then :func:`append`, inside the caller's
transaction. The head row is the single serialisation point (invariant 8): the next seq and
the previous hash are read from it under its lock, never derived from ``max()`` or ``count()``,
because auto-increment order is not commit order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from . import canonical
from .errors import ChainError
from .merkle import Frontier, leaf_hash
from .rules import RECORD_VERSION, ZERO_HASH, format_time
from .schema import ChainHead, Entry, MerkleNode, table_of, utcnow


@dataclass(frozen=True)
class Head:
    """The chain head as read under its lock: what the next append builds on."""

    seq: int
    hash: str
    blocks: int
    batches: int
    frontier: bytes = b""

    @property
    def next_seq(self) -> int:
        return self.seq + 1

    @property
    def next_block(self) -> int:
        return self.blocks + 1

    @property
    def next_batch(self) -> int:
        return self.batches + 1


def locked_head(session: Session) -> Head:
    """Lock the chain head for the rest of the caller's transaction and read it.

    PostgreSQL: ``SELECT ... FOR UPDATE`` on the one row. SQLite: the engine begins every
    transaction with ``BEGIN IMMEDIATE`` (see ``ledger.db``), so the write lock is already held.
    """
    table = table_of(ChainHead)
    stmt = select(
        table.c.seq, table.c.hash, table.c.blocks, table.c.batches, table.c.frontier
    ).where(table.c.id == 1)
    if session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    row = session.execute(stmt).one_or_none()
    if row is None:
        raise ChainError("the ledger has no chain head: apply the migrations first")
    return Head(seq=row.seq, hash=row.hash, blocks=row.blocks, batches=row.batches,
                frontier=bytes(row.frontier))


@dataclass(frozen=True)
class Appended:
    seq: int
    hash: str
    record: bytes


def build_record(head: Head, kind: str, data: dict[str, Any], at: dt.datetime) -> bytes:
    """The canonical bytes of the next entry's record."""
    return canonical.dumps(
        {
            "v": RECORD_VERSION,
            "seq": head.next_seq,
            "kind": kind,
            "time": format_time(at),
            "prev": head.hash,
            "data": data,
        }
    )


def append(
    session: Session,
    head: Head,
    kind: str,
    data: dict[str, Any],
    *,
    new_blocks: int = 0,
    new_batches: int = 0,
    at: dt.datetime | None = None,
) -> Appended:
    """Write the next entry, store the Merkle subtrees it completes, and advance the head
    (seq, hash, id counters, frontier)."""
    at = at or utcnow()
    record = build_record(head, kind, data, at)
    digest = hashlib.sha256(record).hexdigest()
    session.execute(
        insert(table_of(Entry)).values(
            seq=head.next_seq, kind=kind, created_at=at, record=record, hash=digest
        )
    )
    frontier = Frontier.from_bytes(head.seq, head.frontier)
    session.execute(
        insert(table_of(MerkleNode)),
        [{"level": level, "idx": idx, "hash": value}
         for level, idx, value in frontier.append(leaf_hash(record))],
    )
    table = table_of(ChainHead)
    result = session.execute(
        update(table)
        .where(table.c.id == 1, table.c.seq == head.seq)
        .values(
            seq=head.next_seq,
            hash=digest,
            blocks=head.blocks + new_blocks,
            batches=head.batches + new_batches,
            frontier=frontier.to_bytes(),
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ChainError("the chain head moved during the append: the lock was not held")
    return Appended(seq=head.next_seq, hash=digest, record=record)


def genesis_values() -> dict[str, Any]:
    """The chain head's first row: no entries, previous hash all zeros."""
    return {"id": 1, "seq": 0, "hash": ZERO_HASH, "blocks": 0, "batches": 0}
