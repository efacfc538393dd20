"""The checks and totals a replay gives after its last entry (``Replay.totals`` and the rest)
walk the unspent blocks, which the state works out once and keeps until blocks move again:
asked between entries, they must always answer for the state as it is then."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import operations
from ledger.replay import Replay
from ledger.schema import Entry

from .helpers import issue_verra, make_world, retire_args, tx


def results(state: Replay) -> tuple[object, ...]:
    state.check_coverage()
    return (state.totals(), state.origin_totals(), state.pending_retirements(),
            [tuple(block) for block in state.unspent()])


def test_results_asked_between_entries_follow_every_entry(session: Session) -> None:
    world = make_world(session)
    issue_verra(session, world, quantity=1000, buffer=100)
    with tx(session):
        operations.transfer(session, from_account=world.inventory, to_account=world.alice,
                            quantity=300)
    with tx(session):
        operations.retire(session, account_id=world.alice, quantity=40, **retire_args())
    with tx(session):
        operations.cancel(session, account_id=world.inventory, quantity=25,
                          reason="a reversal at the project")
    with tx(session):
        operations.retire(session, account_id=world.alice, quantity=60, **retire_args())
    entries = [(seq, bytes(record), digest) for seq, record, digest in session.execute(
        select(Entry.seq, Entry.record, Entry.hash).order_by(Entry.seq))]

    kept = Replay()
    seen = []
    for seq, record, digest in entries:
        kept.apply(seq, record, digest)
        fresh = Replay()
        for entry in entries[:seq]:
            fresh.apply(*entry)
        assert results(kept) == results(fresh)
        seen.append(results(kept))
    # Each entry moved blocks, so no two answers in a row are the same.
    assert all(before != after for before, after in zip(seen, seen[1:]))
    retired = seen[-1][0]
    assert [(t.retired, t.cancelled, t.buffer) for t in retired.values()] == [(100, 25, 100)]
