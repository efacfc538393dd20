"""The database's own guards (invariants 1-6 where SQL can hold them): whatever the code does,
and whoever holds a psql prompt, the journal, the batches and the blocks refuse to be rewritten.

Every refused statement runs inside a SAVEPOINT, so the test's transaction survives it; after
each refusal nothing has changed and ``verify`` still passes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Executable, Update, delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ledger import audit, operations
from ledger.schema import Batch, Beneficiary, Block, ChainHead, Entry

from .helpers import World, issue_verra, make_world, retire_args, tx

BLOCKS = Block.__table__
BATCHES = Batch.__table__
ENTRIES = Entry.__table__

FIRST, QUANTITY, BUFFER = 1_000_001, 1_000, 100
LAST = FIRST + QUANTITY - 1


@dataclass
class Ledger:
    """A small ledger of six entries, and the blocks the guards are tried on."""

    world: World
    spent: int  # a tradable block already spent (by seq 2)
    tradable: int  # an unspent tradable block
    retired: int  # an unspent retired block
    cancelled: int  # an unspent cancelled block
    next_block: int
    next_batch: int


def build_ledger(session: Session) -> Ledger:
    """issue (with a buffer share), two sales, a retirement, a cancellation, a resale."""
    world = make_world(session)
    issued = issue_verra(session, world, first=FIRST, quantity=QUANTITY, buffer=BUFFER)  # seq 1
    with tx(session):
        operations.transfer(session, from_account=world.inventory, to_account=world.alice,
                            quantity=100)  # seq 2
    with tx(session):
        operations.transfer(session, from_account=world.inventory, to_account=world.bob,
                            quantity=250)  # seq 3
    with tx(session):
        retirement = operations.retire(session, account_id=world.alice, quantity=40,
                                       **retire_args())  # seq 4
    with tx(session):
        cancellation = operations.cancel(session, account_id=world.bob, quantity=5,
                                         reason="Issuance correction")  # seq 5
    with tx(session):
        last = operations.transfer(session, from_account=world.alice, to_account=world.bob,
                                   quantity=10)  # seq 6
    assert last.seq == 6
    [retired] = [b.id for b in retirement.created if b.state == "retired"]
    [cancelled] = [b.id for b in cancellation.created if b.state == "cancelled"]
    [bob_rest] = [b.id for b in cancellation.created if b.state == "tradable"]
    audit.verify(session)
    return Ledger(world=world, spent=issued.created[0].id, tradable=bob_rest, retired=retired,
                  cancelled=cancelled, next_block=max(b.id for b in last.created) + 1,
                  next_batch=2)


def snapshot(session: Session) -> tuple[Any, ...]:
    """Everything a refused statement must leave exactly as it was."""
    return (
        tuple(session.execute(select(ENTRIES.c.seq, ENTRIES.c.hash, ENTRIES.c.record)
                              .order_by(ENTRIES.c.seq)).all()),
        tuple(session.execute(select(BLOCKS).order_by(BLOCKS.c.id)).all()),
        tuple(session.execute(select(BATCHES).order_by(BATCHES.c.id)).all()),
        tuple(session.execute(select(ChainHead.__table__)).all()),
        session.scalar(select(func.count()).select_from(Beneficiary)),
    )


def assert_refused(session: Session, *statements: Executable | str, reason: str) -> None:
    """The last statement is refused by the database (a DBAPIError whose message matches
    ``reason``); the earlier ones, if any, set the scene inside the same SAVEPOINT. Afterwards
    nothing has changed and verify passes."""
    before = snapshot(session)
    with pytest.raises(DBAPIError) as refused:
        with session.begin_nested():
            for statement in statements:
                session.execute(text(statement) if isinstance(statement, str) else statement)
    message = str(refused.value.orig)
    assert re.search(reason, message, re.IGNORECASE), message
    assert snapshot(session) == before
    audit.verify(session)


def accepted(session: Session, statement: Executable) -> None:
    """A control: the guards let this statement through (it is rolled back at once)."""
    nested = session.begin_nested()
    result = session.execute(statement)
    if isinstance(statement, Update):
        assert result.rowcount == 1  # type: ignore[attr-defined]
    nested.rollback()
    audit.verify(session)


def block_row(ledger: Ledger, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(id=ledger.next_block, batch_id=1, account_id=ledger.world.alice,
                               first_serial=FIRST, last_serial=FIRST, state="tradable",
                               created_by=6, spent_by=None)
    row.update(values)
    return row


def batch_row(ledger: Ledger, first: int, last: int, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        id=ledger.next_batch, project_id=ledger.world.project, vintage_start=dt.date(2020, 1, 1),
        vintage_end=dt.date(2020, 12, 31), issued_on=dt.date(2021, 3, 1), first_serial=first,
        last_serial=last, origin=f"VCS:test:{first}", scheme="verra", verra_issuance=9999,
        verra_code=261, verra_scope=14, verra_flag=0, buffer_quantity=0, issued_by=1,
    )
    row.update(values)
    return row


@pytest.fixture
def ledger(session: Session) -> Ledger:
    built = build_ledger(session)
    session.commit()  # end the autobegun read transaction (a SAVEPOINT): the data stays
    return built


# -- entries: append-only ---------------------------------------------------------------------


@pytest.mark.parametrize("values", [
    {"record": b"{}"},
    {"hash": "0" * 64},
    {"kind": "cancel"},
    {"created_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)},
], ids=["record", "hash", "kind", "created_at"])
def test_entries_refuse_update(session: Session, ledger: Ledger, values: dict[str, Any]) -> None:
    assert_refused(session, update(ENTRIES).where(ENTRIES.c.seq == 3).values(**values),
                   reason="append-only: UPDATE refused")


@pytest.mark.parametrize("where", ["seq = 6", "seq = 3", "seq >= 1"], ids=["last", "middle", "all"])
def test_entries_refuse_delete(session: Session, ledger: Ledger, where: str) -> None:
    # Blocks and batches reference entries, so the foreign keys would refuse these too; the
    # message shows it is the append-only trigger that does, before any key is checked.
    assert_refused(session, f"DELETE FROM ledger_entries WHERE {where}",
                   reason="append-only: DELETE refused")


@pytest.mark.parametrize("table", ["ledger_entries", "ledger_batches", "ledger_blocks"])
def test_truncate_refused_on_postgres(session: Session, ledger: Ledger, table: str) -> None:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    # CASCADE gets past the foreign keys, so the refusal is the trigger's own.
    assert_refused(session, f"TRUNCATE {table} CASCADE", reason="append-only: TRUNCATE refused")
    assert_refused(session, f"TRUNCATE {table}",
                   reason="TRUNCATE refused|truncate a table referenced")


def test_the_chain_head_is_never_deleted(session: Session, ledger: Ledger) -> None:
    assert_refused(session, "DELETE FROM ledger_chain_head", reason="never deleted|DELETE refused")


# -- batches: immutable ---------------------------------------------------------------------


@pytest.mark.parametrize("values", [
    {"last_serial": LAST + 1},
    {"origin": "VCS:forged"},
    {"verra_issuance": 1},
    {"buffer_quantity": 0},
], ids=["last_serial", "origin", "verra_issuance", "buffer_quantity"])
def test_batches_refuse_update(session: Session, ledger: Ledger, values: dict[str, Any]) -> None:
    assert_refused(session, update(BATCHES).where(BATCHES.c.id == 1).values(**values),
                   reason="UPDATE refused")


def test_batches_refuse_delete(session: Session, ledger: Ledger) -> None:
    # Blocks reference the batch, but the trigger refuses before any foreign key is checked.
    assert_refused(session, delete(BATCHES).where(BATCHES.c.id == 1), reason="DELETE refused")


def test_a_batch_may_not_overlap_another_of_its_scheme(session: Session, ledger: Ledger) -> None:
    for first, last in [(LAST, LAST + 10), (FIRST - 10, FIRST), (FIRST + 10, FIRST + 20),
                        (FIRST - 10, LAST + 10)]:
        assert_refused(session, insert(BATCHES).values(batch_row(ledger, first, last)),
                       reason="may not overlap|ex_ledger_batches_overlap")
    # Control: the same serial numbers in the other scheme are another space altogether.
    accepted(session, insert(BATCHES).values(
        batch_row(ledger, FIRST, LAST, scheme="native", verra_issuance=None, verra_code=None,
                  verra_scope=None, verra_flag=None)))


def test_a_batch_runs_forwards(session: Session, ledger: Ledger) -> None:
    # first > last breaks the range CHECK, and the buffer CHECK (share < a negative size) too.
    assert_refused(session, insert(BATCHES).values(batch_row(ledger, 5_000_010, 5_000_001)),
                   reason="ck_ledger_batches_(range|buffer)")
    assert_refused(session, insert(BATCHES).values(batch_row(ledger, 0, 10)),
                   reason="ck_ledger_batches_range")


# -- blocks: never deleted, updated only once, to mark them spent ----------------------------


@pytest.mark.parametrize("which", ["spent", "tradable", "retired"])
def test_blocks_refuse_delete(session: Session, ledger: Ledger, which: str) -> None:
    block_id = getattr(ledger, which)
    assert_refused(session, delete(BLOCKS).where(BLOCKS.c.id == block_id),
                   reason="never deleted|DELETE refused")


def test_spending_an_unspent_block_once_is_allowed(session: Session, ledger: Ledger) -> None:
    accepted(session, update(BLOCKS).where(BLOCKS.c.id == ledger.tradable).values(spent_by=6))


@pytest.mark.parametrize("values", [
    {"account_id": "alice"},
    {"state": "retired"},
    {"state": "cancelled"},
    {"first_serial": "+1"},
    {"last_serial": "-1"},
    {"batch_id": 2},
    {"created_by": 4},
    {"spent_by": 6, "account_id": "alice"},  # a spend may not smuggle in another change
    {"spent_by": 6, "state": "retired"},
], ids=["account", "state-retired", "state-cancelled", "first", "last", "batch", "created_by",
        "spend-and-move", "spend-and-retire"])
def test_an_unspent_block_refuses_every_other_update(session: Session, ledger: Ledger,
                                                     values: dict[str, Any]) -> None:
    row = session.execute(select(BLOCKS).where(BLOCKS.c.id == ledger.tradable)).one()
    resolved = dict(values)
    if resolved.get("account_id") == "alice":
        resolved["account_id"] = ledger.world.alice
    if resolved.get("first_serial") == "+1":
        resolved["first_serial"] = row.first_serial + 1
    if resolved.get("last_serial") == "-1":
        resolved["last_serial"] = row.last_serial - 1
    setup = []
    if resolved.get("batch_id") == 2:  # a second batch to move the block into
        setup.append(insert(BATCHES).values(batch_row(ledger, FIRST, LAST, scheme="native",
                                                      verra_issuance=None, verra_code=None,
                                                      verra_scope=None, verra_flag=None)))
    assert_refused(session, *setup,
                   update(BLOCKS).where(BLOCKS.c.id == ledger.tradable).values(**resolved),
                   reason="only updated once, to mark it spent")


@pytest.mark.parametrize("spent_by", [None, 3, 6], ids=["unspend", "respend", "respend-later"])
def test_a_spent_block_is_never_updated_again(session: Session, ledger: Ledger,
                                              spent_by: int | None) -> None:
    assert session.scalar(select(BLOCKS.c.spent_by).where(BLOCKS.c.id == ledger.spent)) == 2
    assert_refused(session, update(BLOCKS).where(BLOCKS.c.id == ledger.spent)
                   .values(spent_by=spent_by), reason="only updated once, to mark it spent")


def test_an_unspent_block_may_not_overlap_another(session: Session, ledger: Ledger) -> None:
    # Every serial of a batch is held by one unspent block, so any new one overlaps.
    for first, last in [(FIRST, FIRST), (FIRST, LAST), (LAST, LAST), (FIRST + 100, FIRST + 500)]:
        assert_refused(session, insert(BLOCKS).values(block_row(ledger, first_serial=first,
                                                                last_serial=last)),
                       reason="may not overlap|ex_ledger_blocks_unspent_overlap")


def test_a_block_lies_inside_its_batch(session: Session, ledger: Ledger) -> None:
    # Beyond either end of batch 1, where no block of it lies.
    for first, last in [(LAST + 1, LAST + 10), (FIRST - 1, FIRST - 1), (1, 1)]:
        assert_refused(session, insert(BLOCKS).values(block_row(ledger, first_serial=first,
                                                                last_serial=last)),
                       reason="must lie inside its batch")
    # Straddling an end of a fresh, empty batch (so no overlap can be blamed instead).
    batch, _ = _in_empty_batch(ledger)
    for first, last in [(5_000_008, 5_000_012), (5_000_000, 5_000_003), (5_000_000, 5_000_011)]:
        assert_refused(session, batch, insert(BLOCKS).values(
            block_row(ledger, batch_id=ledger.next_batch, first_serial=first, last_serial=last)),
            reason="must lie inside its batch")
    # Inside another batch's range is outside its own.
    assert_refused(session, batch, insert(BLOCKS).values(
        block_row(ledger, batch_id=1, first_serial=5_000_001, last_serial=5_000_010)),
        reason="must lie inside its batch")


# -- CHECK constraints: tried where no trigger stands in front of them ------------------------
# A fresh, empty batch gives a place where a new block neither overlaps nor lies outside, so
# the refusal can only come from the CHECK named.


def _in_empty_batch(ledger: Ledger, **block: Any) -> list[Executable]:
    return [insert(BATCHES).values(batch_row(ledger, 5_000_001, 5_000_010)),
            insert(BLOCKS).values(block_row(ledger, batch_id=ledger.next_batch,
                                            first_serial=5_000_001, last_serial=5_000_010,
                                            **block))]


@pytest.mark.parametrize("state", ["melted", "TRADABLE", "", "spent"])
def test_a_block_state_comes_from_the_list(session: Session, ledger: Ledger, state: str) -> None:
    assert_refused(session, *_in_empty_batch(ledger, state=state), reason="ck_ledger_blocks_state")


def test_a_block_in_an_empty_batch_is_otherwise_accepted(session: Session, ledger: Ledger) -> None:
    """Control for the CHECK tests above: the same rows with nothing wrong go in."""
    nested = session.begin_nested()
    for statement in _in_empty_batch(ledger):
        session.execute(statement)
    nested.rollback()
    audit.verify(session)


def test_a_block_runs_forwards(session: Session, ledger: Ledger) -> None:
    batch, _ = _in_empty_batch(ledger)
    assert_refused(session, batch, insert(BLOCKS).values(
        block_row(ledger, batch_id=ledger.next_batch, first_serial=5_000_005,
                  last_serial=5_000_002)), reason="ck_ledger_blocks_range")


@pytest.mark.parametrize("spent_by", [5, 4], ids=["same-entry", "earlier-entry"])
def test_a_block_is_spent_after_it_was_created(session: Session, ledger: Ledger,
                                               spent_by: int) -> None:
    assert session.scalar(select(BLOCKS.c.created_by).where(BLOCKS.c.id == ledger.tradable)) == 5
    # The spend-once trigger lets this through (NULL to a seq, nothing else changed)...
    assert_refused(session, update(BLOCKS).where(BLOCKS.c.id == ledger.tradable)
                   .values(spent_by=spent_by), reason="ck_ledger_blocks_spent_after")
    # ... and it refuses a new block born spent by an earlier entry just the same.
    assert_refused(session, *_in_empty_batch(ledger, created_by=5, spent_by=spent_by),
                   reason="ck_ledger_blocks_spent_after")


@pytest.mark.parametrize("which", ["retired", "cancelled"])
def test_a_final_block_is_never_spent(session: Session, ledger: Ledger, which: str) -> None:
    block_id = getattr(ledger, which)
    # Exactly the update a spend makes (NULL to a later seq): only the CHECK stops it.
    assert_refused(session, update(BLOCKS).where(BLOCKS.c.id == block_id,
                                                 BLOCKS.c.spent_by.is_(None)).values(spent_by=6),
                   reason="ck_ledger_blocks_final_states")
    assert_refused(session, *_in_empty_batch(ledger, state=which, created_by=1, spent_by=6),
                   reason="ck_ledger_blocks_final_states")
