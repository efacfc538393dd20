"""Concurrent appends on PostgreSQL: many sessions, many threads, one chain.

Invariant 8 says appends are serialised by locking the chain-head row. These tests commit from
many threads at once and check what that lock must guarantee: no credit is spent twice, the
seqs run 1..N with no gap, each entry links to the one before it (no fork), tonnes are
conserved, and ``verify`` agrees. They only mean something on PostgreSQL (SQLite serialises
whole transactions).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ledger import audit, canonical, operations, queries
from ledger.db import make_engine
from ledger.errors import InsufficientCreditsError
from ledger.rules import ZERO_HASH
from ledger.schema import Batch, Block, ChainHead, Entry

from .helpers import World, issue_verra, make_world, retire_args, tx

pytestmark = pytest.mark.postgres

THREADS = 20
T = TypeVar("T")


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine with a connection for every thread, on a fresh database that may commit."""
    engine = make_engine(pg_url, pool_size=THREADS + 2, max_overflow=0, pool_timeout=10)
    yield engine
    engine.dispose()


def run_threads(count: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``work(i)`` for i in 0..count-1, one thread each; return results or exceptions."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(work, i) for i in range(count)]
        results: list[T | BaseException] = []
        for future in futures:
            error = future.exception(timeout=60)
            results.append(error if error is not None else future.result())
    return results


def journal_is_one_chain(session: Session) -> int:
    """Seqs 1..N with no gap, each record naming its seq and its predecessor's hash, each hash
    the SHA-256 of its record, and the chain head on the last one. Returns N."""
    rows = session.execute(select(Entry.seq, Entry.record, Entry.hash).order_by(Entry.seq)).all()
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    prev = ZERO_HASH
    for seq, record, digest in rows:
        parsed = canonical.loads(bytes(record))
        assert parsed["seq"] == seq and parsed["prev"] == prev, f"fork or gap at seq {seq}"
        assert hashlib.sha256(bytes(record)).hexdigest() == digest
        prev = digest
    head = session.execute(select(ChainHead.seq, ChainHead.hash)).one()
    assert tuple(head) == (len(rows), prev)
    return len(rows)


def unspent_per_batch(session: Session) -> dict[int, int]:
    quantity = func.sum(Block.last_serial - Block.first_serial + 1)
    rows = session.execute(
        select(Block.batch_id, quantity).where(Block.spent_by.is_(None)).group_by(Block.batch_id)
    ).all()
    return {batch: int(total) for batch, total in rows}


def test_twenty_retirements_race_for_the_same_ten_tonnes(pg_engine: Engine) -> None:
    with Session(pg_engine, expire_on_commit=False) as session:
        world = make_world(session)
        issue_verra(session, world, quantity=10)
        with tx(session):
            operations.transfer(session, from_account=world.inventory, to_account=world.alice,
                                quantity=10)
    barrier = threading.Barrier(THREADS)

    def retire(i: int) -> operations.Receipt:
        with Session(pg_engine) as session, session.begin():
            session.execute(text("SELECT 1"))  # connected and in a transaction: ready to race
            barrier.wait(timeout=20)
            return operations.retire(session, account_id=world.alice, quantity=10,
                                     **retire_args(beneficiary=f"Racer {i}"))

    results = run_threads(THREADS, retire)

    won = [r for r in results if isinstance(r, operations.Receipt)]
    lost = [r for r in results if isinstance(r, InsufficientCreditsError)]
    others = [r for r in results if r not in won and r not in lost]
    assert not others, others
    assert len(won) == 1 and len(lost) == THREADS - 1
    for error in lost:
        assert str(error) == "not enough tradable credits: 10 t asked, 0 t held"
    assert won[0].seq == 3 and won[0].quantity_to(world.alice, "retired") == 10

    with Session(pg_engine) as session:
        assert queries.available(session, world.alice) == 0
        assert [h.quantity for h in queries.holdings(session, world.alice, "retired")] == [10]
        totals = queries.batch_totals(session)[1]
        assert (totals.issued, totals.tradable, totals.retired) == (10, 0, 10)
        assert journal_is_one_chain(session) == 3
        assert audit.verify(session).entries == 3


def test_twenty_threads_trading_keep_one_unforked_chain(pg_engine: Engine) -> None:
    rounds = 15
    with Session(pg_engine, expire_on_commit=False) as session:
        world = make_world(session)
        with tx(session):
            carol = operations.open_account(session, "carol", "customer").id
        issue_verra(session, world, quantity=1_000, buffer=100, vintage=2019)
        issue_verra(session, world, first=5_000_001, quantity=2_000, vintage=2020, issuance=9700)
        traders = [world.issuer, world.inventory, world.alice, world.bob, carol]
        with tx(session):
            for trader in traders[2:]:
                operations.transfer(session, from_account=world.inventory, to_account=trader,
                                    quantity=600)
        setup = journal_is_one_chain(session)
        issued = {batch.id: batch.quantity for batch in session.scalars(select(Batch))}
    barrier = threading.Barrier(THREADS)

    def trade(i: int) -> tuple[int, int]:
        rng = random.Random(i)
        done = refused = 0
        with Session(pg_engine) as session:
            barrier.wait(timeout=20)
            for _ in range(rounds):
                sender, receiver = rng.sample(traders, 2)
                try:
                    with session.begin():
                        if rng.random() < 0.1:
                            operations.retire(session, account_id=sender,
                                              quantity=rng.randint(1, 20), **retire_args())
                        else:
                            operations.transfer(session, from_account=sender,
                                                to_account=receiver, quantity=rng.randint(1, 120),
                                                batch_id=rng.choice([None, None, 1, 2]))
                    done += 1
                except InsufficientCreditsError:
                    refused += 1
        return done, refused

    results = run_threads(THREADS, trade)

    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    outcomes = [r for r in results if isinstance(r, tuple)]
    done = sum(d for d, _ in outcomes)
    assert done + sum(r for _, r in outcomes) == THREADS * rounds
    assert done > THREADS * rounds // 2, "most trades should have gone through"

    with Session(pg_engine) as session:
        assert journal_is_one_chain(session) == setup + done
        assert unspent_per_batch(session) == issued  # every tonne is somewhere, once
        totals = queries.batch_totals(session)
        for batch, quantity in issued.items():
            t = totals[batch]
            assert t.tradable + t.retired + t.cancelled + t.buffer == quantity
        held = sum(queries.available(session, trader) for trader in traders)
        retired = sum(t.retired for t in totals.values())
        assert held + retired == sum(issued.values()) - 100  # all but the buffer share
        assert audit.verify(session).entries == setup + done


def _open_transfer(engine: Engine, world: World, to: int, quantity: int,
                   ) -> tuple[Session, operations.Receipt]:
    """A transfer appended in a transaction left open (so the head lock stays held)."""
    session = Session(engine)
    session.begin()
    return session, operations.transfer(session, from_account=world.inventory, to_account=to,
                                        quantity=quantity)


def test_the_chain_head_lock_serialises_appends(pg_engine: Engine) -> None:
    with Session(pg_engine, expire_on_commit=False) as session:
        world = make_world(session)
        issue_verra(session, world, quantity=100)

    first, first_receipt = _open_transfer(pg_engine, world, world.alice, 5)
    try:
        assert first_receipt.seq == 2

        # While the first transaction holds the head, another append cannot even start.
        with Session(pg_engine) as impatient:
            with pytest.raises(OperationalError, match="lock timeout"):
                with impatient.begin():
                    impatient.execute(text("SET LOCAL lock_timeout = '200ms'"))
                    operations.transfer(impatient, from_account=world.inventory,
                                        to_account=world.bob, quantity=7)

        # A patient one waits on the lock, and only that, until the first commits.
        ready = threading.Event()
        backend: list[int] = []

        def second() -> operations.Receipt:
            with Session(pg_engine) as session, session.begin():
                backend.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
                ready.set()
                return operations.transfer(session, from_account=world.inventory,
                                           to_account=world.bob, quantity=7)

        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(second)
            assert ready.wait(10)
            with Session(pg_engine) as watcher:
                waiting = None
                for _ in range(100):
                    waiting = watcher.execute(
                        text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                        {"pid": backend[0]},
                    ).scalar_one()
                    if waiting == "Lock":
                        break
                    time.sleep(0.05)
                    watcher.rollback()
            assert waiting == "Lock", "the second append should be waiting on the head lock"
            time.sleep(0.3)
            assert not future.done(), "the second append finished while the head was locked"

            first.commit()
            second_receipt = future.result(timeout=10)
    finally:
        first.close()

    assert second_receipt.seq == first_receipt.seq + 1 == 3
    with Session(pg_engine) as session:
        record = session.execute(select(Entry.record).where(Entry.seq == 3)).scalar_one()
        assert canonical.loads(bytes(record))["prev"] == first_receipt.hash
        # The second built on the first's state: 100 - 5 - 7 left, split from its remainder.
        assert queries.available(session, world.inventory) == 88
        assert second_receipt.spent == tuple(b.id for b in first_receipt.created[1:])
        assert journal_is_one_chain(session) == 3
        assert audit.verify(session).entries == 3


def test_a_refused_append_under_contention_writes_nothing(pg_engine: Engine) -> None:
    """An operation refused after waiting for the lock leaves no trace, and the chain goes on."""
    with Session(pg_engine, expire_on_commit=False) as session:
        world = make_world(session)
        issue_verra(session, world, quantity=10)

    first, first_receipt = _open_transfer(pg_engine, world, world.alice, 10)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            def second() -> operations.Receipt:
                with Session(pg_engine) as session, session.begin():
                    return operations.transfer(session, from_account=world.inventory,
                                               to_account=world.bob, quantity=1)

            future = pool.submit(second)
            time.sleep(0.3)
            first.commit()
            with pytest.raises(InsufficientCreditsError, match="1 t asked, 0 t held"):
                future.result(timeout=10)
    finally:
        first.close()

    with Session(pg_engine) as session:
        assert journal_is_one_chain(session) == first_receipt.seq == 2
        assert queries.available(session, world.bob) == 0
        assert audit.verify(session).entries == 2


def _retire_while_held(engine: Engine, account: int, holding: Session) -> operations.Receipt:
    """Retire 3 t from ``account`` in another thread while ``holding`` (a transaction that
    appended, so holds the head lock) is open; check that the retirement waits for it, commit
    it, and return the retirement's receipt."""
    try:
        def retire() -> operations.Receipt:
            with Session(engine) as session, session.begin():
                return operations.retire(session, account_id=account, quantity=3,
                                         **retire_args())

        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(retire)
            time.sleep(0.5)
            assert not future.done(), "the retirement should wait for the head lock"
            holding.commit()
            return future.result(timeout=10)
    finally:
        holding.close()


def test_credits_arriving_while_a_spend_waits_for_the_lock_are_spent(pg_engine: Engine) -> None:
    """A spend reads its blocks before the head lock. Alice holds nothing when her retirement
    starts; the transfer that gives her 5 t holds the lock and commits while she waits. Her
    retirement must see them (as it did when everything was read under the lock), not fail."""
    with Session(pg_engine, expire_on_commit=False) as session:
        world = make_world(session)
        issue_verra(session, world, quantity=100)

    first, receipt = _open_transfer(pg_engine, world, world.alice, 5)
    retired = _retire_while_held(pg_engine, world.alice, first)
    assert retired.seq == receipt.seq + 1
    assert retired.spent == (receipt.created[0].id,)
    with Session(pg_engine) as session:
        assert queries.available(session, world.alice) == 2
        assert audit.verify(session).entries == 3


def test_blocks_spent_while_a_spend_waits_are_chosen_again(pg_engine: Engine) -> None:
    """Alice's retirement chose her block before the lock; a transfer of that very block
    commits first. Under the lock her blocks are chosen again: no double spend, no failure."""
    with Session(pg_engine, expire_on_commit=False) as session:
        world = make_world(session)
        issue_verra(session, world, quantity=100)
    with Session(pg_engine) as session, session.begin():
        operations.transfer(session, from_account=world.inventory, to_account=world.alice,
                            quantity=10)
    holder = Session(pg_engine)
    holder.begin()
    moved = operations.transfer(holder, from_account=world.alice, to_account=world.bob,
                                quantity=4)
    retired = _retire_while_held(pg_engine, world.alice, holder)
    assert set(retired.spent).isdisjoint(moved.spent)
    with Session(pg_engine) as session:
        assert queries.available(session, world.alice) == 3
        assert queries.available(session, world.bob) == 4
        assert audit.verify(session).entries == 4
