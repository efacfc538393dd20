"""The story of one batch, told as a test: issued with a buffer share, sold in parts, split,
retired, cancelled. Every total adds up, and verify agrees at each step."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ledger import audit, operations, queries

from .helpers import issue_verra, make_world, retire_args, tx


def test_the_story_of_one_batch(session: Session) -> None:
    world = make_world(session)

    # 20,745 t mirrored from Verra issuance 9660, 10 % to the buffer pool (the top serials).
    issued = issue_verra(session, world, first=115_597_313, quantity=20_745, buffer=2_075)
    assert issued.seq == 1 and issued.batch_id == 1
    inventory_block, buffer_block = issued.created
    assert (inventory_block.first, inventory_block.last) == (115_597_313, 115_615_982)
    assert (buffer_block.first, buffer_block.last) == (115_615_983, 115_618_057)
    assert queries.available(session, world.inventory) == 18_670
    assert queries.available(session, world.buffer) == 2_075

    # Alice buys 100 t: the inventory block splits, Alice gets the lowest serials.
    with tx(session):
        sale = operations.transfer(session, from_account=world.inventory,
                                   to_account=world.alice, quantity=100)
    to_alice, remainder = sale.created
    assert (to_alice.account, to_alice.first, to_alice.last) == (world.alice, 115_597_313, 115_597_412)
    assert (remainder.account, remainder.first) == (world.inventory, 115_597_413)

    # Bob buys 250 t; then Alice retires 40 t for her café, keeping 60 t.
    with tx(session):
        operations.transfer(session, from_account=world.inventory, to_account=world.bob,
                            quantity=250)
        retirement = operations.retire(session, account_id=world.alice, quantity=40,
                                       **retire_args(beneficiary="Café Alice"))
    retired = [b for b in retirement.created if b.state == "retired"]
    assert [(b.first, b.last) for b in retired] == [(115_597_313, 115_597_352)]
    [holding] = queries.holdings(session, world.alice)
    assert holding.quantity == 60
    assert holding.blocks[0].serial == (
        "9660-115597353-115597412-VCS-VCU-261-VER-PE-14-944-01012019-31122019-0"
    )

    # An issuance error: the registry cancels 5 t of Bob's.
    with tx(session):
        operations.cancel(session, account_id=world.bob, quantity=5, reason="Issuance correction")

    totals = queries.batch_totals(session)[1]
    assert totals.issued == 20_745
    assert totals.retired == 40
    assert totals.cancelled == 5
    assert totals.buffer == 2_075
    assert totals.tradable == 20_745 - 40 - 5 - 2_075
    assert totals.issued == totals.tradable + totals.retired + totals.cancelled + totals.buffer

    # The history of Alice's first serial: issued, transferred, retired.
    [line] = queries.timeline(session, 115_597_313)
    assert [s.kind for s in line.steps] == ["issue", "transfer", "retire"]
    assert line.current.state == "retired" and line.current.spent_by is None

    report = audit.verify(session)
    assert report.entries == 5
    project = report.totals["VCS-944"]
    assert (project.issued, project.retired, project.cancelled, project.buffer) == (20_745, 40, 5, 2_075)
