"""Appending to the journal: lock the chain head, write one entry, move the head.

Every operation goes through :func:`locked_head` then :func:`append`, inside the caller's
transaction. The head row is the single serialisation point (invariant 8): the next seq and
the previous hash are read from it under its lock, never derived from ``max()`` or ``count()``,
because auto-increment order is not commit order.

The lock is held until the caller's transaction commits, so as little as possible runs under
it: operations read and check what they can before :func:`locked_head` (which can confirm, in
the same round trip, that the blocks they chose are still unspent), and :func:`append` sends
every write of the entry (the entry, its Merkle nodes, the head, the blocks it spends and
creates, rows such as the beneficiary's) together. On PostgreSQL that is one round trip
(psycopg's pipeline mode); on SQLite, where a writing transaction holds the whole database,
they are executed one after the other.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from . import canonical
from .errors import ChainError, DoubleSpendError
from .merkle import Frontier, leaf_hash
from .rules import RECORD_VERSION, ZERO_HASH, format_time
from .schema import Block, ChainHead, Entry, MerkleNode, table_of, utcnow


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


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _driver(session: Session) -> Any:
    """The psycopg connection under the session's transaction."""
    return session.connection().connection.driver_connection


def locked_head(session: Session) -> Head:
    """Lock the chain head for the rest of the caller's transaction and read it.

    PostgreSQL: ``SELECT ... FOR UPDATE`` on the one row. SQLite: the engine begins every
    transaction with ``BEGIN IMMEDIATE`` (see ``ledger.db``), so the write lock is already held.
    """
    head, _ = locked_head_checking(session, ())
    return head


_HEAD_SQL = ("SELECT seq, hash, blocks, batches, frontier FROM ledger_chain_head "
             "WHERE id = 1 FOR UPDATE")
_UNSPENT_SQL = "SELECT count(*) FROM ledger_blocks WHERE id = ANY(%s) AND spent_by IS NULL"


def locked_head_checking(session: Session, blocks: Sequence[int]) -> tuple[Head, bool]:
    """:func:`locked_head`, and whether ``blocks`` (chosen before the lock) are all still
    unspent now that it is held. On PostgreSQL both go in one round trip: the count runs after
    the lock is granted, so it sees every commit that came before."""
    if _postgres(session):
        conn = _driver(session)
        try:
            with conn.pipeline():
                head_cursor = conn.execute(_HEAD_SQL)
                count_cursor = conn.execute(_UNSPENT_SQL, (list(blocks),)) if blocks else None
            row = head_cursor.fetchone()
            unspent = int(count_cursor.fetchone()[0]) if count_cursor is not None else 0
        except Exception as exc:
            raise _wrapped(exc, _HEAD_SQL) from exc
    else:
        table = table_of(ChainHead)
        row = session.execute(
            select(table.c.seq, table.c.hash, table.c.blocks, table.c.batches,
                   table.c.frontier).where(table.c.id == 1)).one_or_none()
        unspent = 0
        if blocks:
            block_table = table_of(Block)
            unspent = int(session.execute(
                select(func.count()).select_from(block_table)
                .where(block_table.c.id.in_(list(blocks)), block_table.c.spent_by.is_(None))
            ).scalar_one())
    if row is None:
        raise ChainError("the ledger has no chain head: apply the migrations first")
    head = Head(seq=row[0], hash=row[1], blocks=row[2], batches=row[3], frontier=bytes(row[4]))
    return head, unspent == len(set(blocks))


def _wrapped(exc: Exception, statement: str) -> Exception:
    """A psycopg error as SQLAlchemy would have raised it (IntegrityError, ...)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return exc
    if isinstance(exc, psycopg.Error):
        return DBAPIError.instance(statement, None, exc, psycopg.Error)
    return exc


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


Rows = Sequence[Mapping[str, Any]]


def append(
    session: Session,
    head: Head,
    kind: str,
    data: dict[str, Any],
    *,
    new_blocks: int = 0,
    new_batches: int = 0,
    at: dt.datetime | None = None,
    spends: Sequence[int] = (),
    rows: Sequence[tuple[Table, Rows | Callable[[int], Rows]]] = (),
) -> Appended:
    """Write the next entry, store the Merkle subtrees it completes, advance the head (seq,
    hash, id counters, frontier), mark the blocks it ``spends`` as spent by it, and insert
    ``rows`` (table, rows; or a function of the new seq giving them), in that order, all sent
    together. Raises ``DoubleSpendError`` if a block in ``spends`` was spent already."""
    at = at or utcnow()
    record = build_record(head, kind, data, at)
    digest = hashlib.sha256(record).hexdigest()
    seq = head.next_seq
    frontier = Frontier.from_bytes(head.seq, head.frontier)
    nodes = [{"level": level, "idx": idx, "hash": value}
             for level, idx, value in frontier.append(leaf_hash(record))]
    moved = {"seq": seq, "hash": digest, "blocks": head.blocks + new_blocks,
             "batches": head.batches + new_batches, "frontier": frontier.to_bytes(),
             "old": head.seq}
    inserts = [(table, found(seq) if callable(found) else found) for table, found in rows]
    entry = {"seq": seq, "kind": kind, "created_at": at, "record": record, "hash": digest}
    if _postgres(session):
        head_moved, spent = _write_pipelined(session, entry, nodes, moved, spends, inserts)
    else:
        head_moved, spent = _write_each(session, entry, nodes, moved, spends, inserts)
    if head_moved != 1:
        raise ChainError("the chain head moved during the append: the lock was not held")
    if spent != len(spends):
        raise DoubleSpendError("a block was spent twice: the operation is refused")
    return Appended(seq=seq, hash=digest, record=record)


_ENTRY_SQL = ("INSERT INTO ledger_entries (seq, kind, created_at, record, hash) "
              "VALUES (%(seq)s, %(kind)s, %(created_at)s, %(record)s, %(hash)s)")
_NODE_SQL = ("INSERT INTO ledger_merkle_nodes (level, idx, hash) "
             "VALUES (%(level)s, %(idx)s, %(hash)s)")
_MOVE_SQL = ("UPDATE ledger_chain_head SET seq = %(seq)s, hash = %(hash)s, blocks = %(blocks)s, "
             "batches = %(batches)s, frontier = %(frontier)s WHERE id = 1 AND seq = %(old)s")
_SPEND_SQL = ("UPDATE ledger_blocks SET spent_by = %s WHERE id = ANY(%s) AND spent_by IS NULL")


@functools.lru_cache(maxsize=64)
def _insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    """The INSERT for ``columns`` of ``table`` (made once per shape: it runs under the lock)."""
    names = ", ".join(table.c[name].name for name in columns)
    values = ", ".join(f"%({name})s" for name in columns)
    return f"INSERT INTO {table.name} ({names}) VALUES ({values})"


def _write_pipelined(session: Session, entry: Mapping[str, Any], nodes: Rows,
                     moved: Mapping[str, Any], spends: Sequence[int],
                     inserts: Sequence[tuple[Table, Rows]]) -> tuple[int, int]:
    """PostgreSQL: every write in one pipeline, one round trip. Returns the rows the head
    update and the spend update touched."""
    conn = _driver(session)
    statement = _ENTRY_SQL
    try:
        with conn.pipeline():
            conn.execute(_ENTRY_SQL, entry)
            cursor = conn.cursor()
            if nodes:
                statement = _NODE_SQL
                cursor.executemany(_NODE_SQL, nodes)
            statement = _MOVE_SQL
            head_cursor = conn.execute(_MOVE_SQL, moved)
            spend_cursor = None
            if spends:
                statement = _SPEND_SQL
                spend_cursor = conn.execute(_SPEND_SQL, (entry["seq"], list(spends)))
            for table, found in inserts:
                if found:
                    statement = _insert_sql(table, tuple(found[0]))
                    conn.cursor().executemany(statement, found)
        return head_cursor.rowcount, spend_cursor.rowcount if spend_cursor is not None else 0
    except Exception as exc:
        raise _wrapped(exc, statement) from exc


def _write_each(session: Session, entry: Mapping[str, Any], nodes: Rows,
                moved: Mapping[str, Any], spends: Sequence[int],
                inserts: Sequence[tuple[Table, Rows]]) -> tuple[int, int]:
    """SQLite: the same writes, one statement after the other."""
    session.execute(insert(table_of(Entry)).values(**entry))
    if nodes:
        session.execute(insert(table_of(MerkleNode)), list(nodes))
    table = table_of(ChainHead)
    head_moved = session.execute(
        update(table).where(table.c.id == 1, table.c.seq == moved["old"])
        .values(**{k: v for k, v in moved.items() if k != "old"})
    ).rowcount  # type: ignore[attr-defined]
    spent = 0
    if spends:
        blocks = table_of(Block)
        spent = session.execute(
            update(blocks).where(blocks.c.id.in_(list(spends)), blocks.c.spent_by.is_(None))
            .values(spent_by=entry["seq"])
        ).rowcount  # type: ignore[attr-defined]
    for found_table, found in inserts:
        if found:
            session.execute(insert(found_table), list(found))
    return int(head_moved), int(spent)


def genesis_values() -> dict[str, Any]:
    """The chain head's first row: no entries, previous hash all zeros."""
    return {"id": 1, "seq": 0, "hash": ZERO_HASH, "blocks": 0, "batches": 0}
