"""Origin registry evidence and quality labels, on both databases.

The story: 1,000 Verra serials [1,000,001 .. 1,001,000] are mirrored here. Alice buys 100 and
retires 40 (serials 1,000,001-1,000,040). The origin registry then shows retirements:
some into our name (covering Alice's retirement, in part or whole), some into another name
(a conflict: those serials were counted elsewhere, and any still tradable here freeze at once).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from ledger import audit, operations, origin, queries
from ledger.errors import (
    FinalStateError,
    InsufficientCreditsError,
    LabelError,
    OriginRangeError,
    OriginRecordError,
    UnknownBatchError,
)
from ledger.records import UNLABELLED, Labels, names_match
from ledger.rules import classify
from ledger.schema import BatchLabel, Block, OriginRecord

from .helpers import World, counts, issue_verra, make_world, retire_args, tx

FIRST = 1_000_001


def evidence(world_batch: int, first: int, last: int, *, ours: bool,
             beneficiary: str | None = None, **overrides: object) -> dict[str, object]:
    args: dict[str, object] = dict(
        batch_id=world_batch, registry="verra", action="retired", first=first, last=last,
        date=dt.date(2025, 6, 1), beneficiary=beneficiary or ("Selva customers" if ours
                                                              else "Other Offsets GmbH"),
        reason="Environmental Benefit", reference="https://registry.verra.org/app/search/VCS",
        ours=ours,
    )
    args.update(overrides)
    return args


@pytest.fixture
def story(session: Session) -> tuple[World, int, int]:
    """Issued 1,000 t (batch), Alice holds 60 t and has retired 40 t (seq of the retirement)."""
    world = make_world(session)
    issued = issue_verra(session, world, first=FIRST, quantity=1000)
    with tx(session):
        operations.transfer(session, from_account=world.inventory, to_account=world.alice,
                            quantity=100)
    with tx(session):
        retirement = operations.retire(session, account_id=world.alice, quantity=40,
                                       **retire_args())
    assert issued.batch_id is not None
    return world, issued.batch_id, retirement.seq


def record(session: Session, **args: object) -> operations.Receipt:
    with tx(session):
        return origin.record_origin(session, **args)  # type: ignore[arg-type]


def test_pending_until_the_origin_shows_it(session: Session, story: tuple[World, int, int]) -> None:
    _, _, seq = story
    status = origin.retirement_origin(session, seq)
    assert (status.status, status.coverage.pending, status.coverage.covered) == ("pending", 40, 0)


def test_covered_by_an_origin_record_that_is_ours(session: Session,
                                                  story: tuple[World, int, int]) -> None:
    world, batch, seq = story
    record(session, **evidence(batch, FIRST, FIRST + 99, ours=True))
    status = origin.retirement_origin(session, seq)
    assert status.status == "covered"
    assert status.coverage.covered == 40 and status.coverage.covered_ranges == [(FIRST, FIRST + 39)]
    assert [r.first_serial for r in status.records] == [FIRST]
    # Pre-retired at origin into our name, still tradable here: stays on sale.
    assert queries.available(session, world.alice) == 60
    assert audit.verify(session).entries == 4


def test_partly_covered_is_still_pending(session: Session, story: tuple[World, int, int]) -> None:
    _, batch, seq = story
    record(session, **evidence(batch, FIRST + 10, FIRST + 19, ours=True))
    status = origin.retirement_origin(session, seq)
    assert status.status == "pending"
    assert (status.coverage.covered, status.coverage.pending) == (10, 30)
    assert status.coverage.pending_ranges == [(FIRST, FIRST + 9), (FIRST + 20, FIRST + 39)]


def test_conflict_and_freeze_of_exactly_the_overlap(session: Session,
                                                    story: tuple[World, int, int]) -> None:
    """Another name retired [FIRST+30, FIRST+69] at origin: 10 t of Alice's retirement are a
    conflict, and the 30 t she still holds of that range freeze, nothing else."""
    world, batch, seq = story
    before = queries.available(session, world.alice)
    receipt = record(session, **evidence(batch, FIRST + 30, FIRST + 69, ours=False))
    assert receipt.extra["frozen"] == 30
    assert queries.available(session, world.alice) == before - 30
    frozen = session.execute(select(Block.first_serial, Block.last_serial, Block.account_id)
                             .where(Block.state == "frozen")).all()
    assert [tuple(r) for r in frozen] == [(FIRST + 40, FIRST + 69, world.alice)]
    status = origin.retirement_origin(session, seq)
    assert status.status == "conflict"
    assert (status.coverage.conflict, status.coverage.pending) == (10, 30)
    # The frozen serials can never move again.
    with pytest.raises(FinalStateError), tx(session):
        operations.transfer(session, from_account=world.alice, to_account=world.bob, quantity=1,
                            block_ids=[session.scalar(select(Block.id).where(Block.state == "frozen"))])
    report = origin.reconcile(session)
    assert [(r.retired_here, r.coverage.conflict, r.frozen, r.conflicts) for r in report] == [
        (40, 10, 30, 40)]
    totals = queries.batch_totals(session)[batch]
    assert (totals.frozen, totals.tradable + totals.frozen + totals.retired) == (30, 1000)
    assert audit.verify(session).totals["VCS-944"].frozen == 30


def test_freeze_splits_a_block_in_the_middle_and_spans_holders(session: Session,
                                                               story: tuple[World, int, int]) -> None:
    world, batch, _ = story
    # Alice holds [FIRST+40, FIRST+99]; the inventory [FIRST+100, FIRST+999].
    record(session, **evidence(batch, FIRST + 90, FIRST + 109, ours=False))
    rows = session.execute(
        select(Block.account_id, Block.first_serial, Block.last_serial, Block.state)
        .where(Block.spent_by.is_(None), Block.state != "retired").order_by(Block.first_serial)
    ).all()
    assert [tuple(r) for r in rows] == [
        (world.alice, FIRST + 40, FIRST + 89, "tradable"),
        (world.alice, FIRST + 90, FIRST + 99, "frozen"),
        (world.inventory, FIRST + 100, FIRST + 109, "frozen"),
        (world.inventory, FIRST + 110, FIRST + 999, "tradable"),
    ]
    assert audit.verify(session).entries == 4
    # What remains tradable still trades, lowest serials first, around the frozen hole.
    with tx(session):
        operations.transfer(session, from_account=world.inventory, to_account=world.bob,
                            quantity=5)
    assert queries.holdings(session, world.bob)[0].blocks[0].first == FIRST + 110


def test_an_origin_record_of_ours_freezes_nothing(session: Session,
                                                  story: tuple[World, int, int]) -> None:
    world, batch, _ = story
    receipt = record(session, **evidence(batch, FIRST + 40, FIRST + 99, ours=True))
    assert receipt.extra["frozen"] == 0 and receipt.spent == ()
    assert queries.available(session, world.alice) == 60


@pytest.mark.parametrize("first, last, error", [
    (FIRST - 1, FIRST + 5, OriginRangeError),        # starts below the batch
    (FIRST + 995, FIRST + 1000, OriginRangeError),   # ends above it
    (FIRST + 5, FIRST + 4, Exception),               # inverted
])
def test_ranges_outside_the_batch_are_refused(session: Session, story: tuple[World, int, int],
                                              first: int, last: int, error: type[Exception]) -> None:
    _, batch, _ = story
    before = counts(session)
    with pytest.raises(error), tx(session):
        origin.record_origin(session, **evidence(batch, first, last, ours=False))  # type: ignore[arg-type]
    assert counts(session) == before


def test_origin_records_never_overlap(session: Session, story: tuple[World, int, int]) -> None:
    _, batch, _ = story
    record(session, **evidence(batch, FIRST, FIRST + 9, ours=True))
    before = counts(session)
    with pytest.raises(OriginRangeError, match="overlap the origin record at seq 4"), tx(session):
        origin.record_origin(session, **evidence(batch, FIRST + 9, FIRST + 20, ours=False))  # type: ignore[arg-type]
    assert counts(session) == before


@pytest.mark.parametrize("field, value, error", [
    ("action", "unretired", OriginRecordError),
    ("registry", "Verra Registry", OriginRecordError),
    ("registry", "gold_standard", OriginRangeError),  # the batch mirrors Verra
    ("reference", "  ", OriginRecordError),
    ("beneficiary", "x" * 501, OriginRecordError),
    ("beneficiary", "two\nlines", OriginRecordError),
    ("beneficiary", "nul\x00byte", OriginRecordError),
    ("ours", "yes", OriginRecordError),
    ("date", "2025-02-30", OriginRecordError),
    ("batch_id", 99, UnknownBatchError),
    ("batch_id", 2**63, UnknownBatchError),
])
def test_bad_origin_evidence_is_refused(session: Session, story: tuple[World, int, int],
                                        field: str, value: object, error: type[Exception]) -> None:
    _, batch, _ = story
    before = counts(session)
    with pytest.raises(error), tx(session):
        args = evidence(batch, FIRST, FIRST, ours=False)
        args[field] = value
        origin.record_origin(session, **args)  # type: ignore[arg-type]
    assert counts(session) == before


def test_a_native_batch_has_no_origin(session: Session) -> None:
    world = make_world(session)
    with tx(session):
        native = operations.issue(session, project_id=world.project, account_id=world.inventory,
                                  vintage_start=dt.date(2020, 1, 1),
                                  vintage_end=dt.date(2020, 12, 31), quantity=10)
    assert native.batch_id is not None
    with pytest.raises(OriginRangeError, match="registry of record"), tx(session):
        origin.record_origin(session, **evidence(native.batch_id, 1, 5, ours=True))  # type: ignore[arg-type]


def test_the_database_refuses_overlapping_origin_records_itself(
        session: Session, story: tuple[World, int, int]) -> None:
    """With the ledger's check bypassed, the exclusion constraint (PostgreSQL) or trigger
    (SQLite) still refuses a second record over the same serials, and rows never change."""
    _, batch, _ = story
    receipt = record(session, **evidence(batch, FIRST, FIRST + 9, ours=True))
    row = session.get(OriginRecord, receipt.seq)
    assert row is not None
    values = {column.name: getattr(row, column.name) for column in OriginRecord.__table__.columns}
    # Another entry's seq, so that only the overlap is wrong: the same row beside the first
    # one is accepted, over it refused.
    nested = session.begin_nested()
    session.execute(OriginRecord.__table__.insert().values(
        {**values, "seq": 1, "first_serial": FIRST + 50, "last_serial": FIRST + 60}))
    nested.rollback()
    with pytest.raises((IntegrityError, DBAPIError)), session.begin_nested():
        session.execute(OriginRecord.__table__.insert().values(
            {**values, "seq": 1, "first_serial": FIRST + 5, "last_serial": FIRST + 20}))
    with pytest.raises(DBAPIError), session.begin_nested():
        session.execute(OriginRecord.__table__.update().values(ours=False))
    with pytest.raises(DBAPIError), session.begin_nested():
        session.execute(OriginRecord.__table__.delete())


def test_classify_partial_and_adjacent_ranges() -> None:
    result = classify([(1, 10), (20, 29)], [(5, 7, True), (8, 22, False), (25, 40, True)])
    assert (result.covered, result.conflict, result.pending) == (3 + 5, 3 + 3, 4 + 2)
    assert result.pending_ranges == [(1, 4), (23, 24)]
    assert result.conflict_ranges == [(8, 10), (20, 22)]
    assert result.status == "conflict"
    assert classify([(1, 3)], []).status == "pending"
    assert classify([(1, 3)], [(1, 3, True)]).status == "covered"


def test_classify_with_nothing_at_origin_keeps_every_range_pending_in_order() -> None:
    result = classify([(20, 29), (1, 10), (11, 11)], [])
    assert (result.covered, result.conflict, result.pending) == (0, 0, 21)
    assert result.pending_ranges == [(1, 10), (11, 11), (20, 29)]
    assert result.covered_ranges == result.conflict_ranges == []
    # The same answer as with a record that touches none of them.
    far = classify([(20, 29), (1, 10), (11, 11)], [(100, 200, True)])
    assert (far.pending, far.pending_ranges) == (result.pending, result.pending_ranges)
    # An empty or inverted range holds no serial, with or without records at origin.
    for origin in ([], [(100, 200, True)]):
        odd = classify([(5, 1), (3, 4)], origin)
        assert (odd.pending, odd.pending_ranges) == (2, [(3, 4)])


def test_names_match_whole_words_only() -> None:
    names = ("Selva", "Selva Marketplace")
    assert names_match(names, "Selva customers, see selva.example/registry")
    assert names_match(names, "", "selva")
    assert not names_match(names, "Selvatica Ltd")
    assert not names_match(names, "Other Offsets GmbH", "")


def test_worklist_groups_pending_serials_oldest_first(session: Session,
                                                      story: tuple[World, int, int]) -> None:
    world, batch, seq = story
    with tx(session):
        later = operations.retire(session, account_id=world.alice, quantity=10, **retire_args())
    record(session, **evidence(batch, FIRST + 5, FIRST + 9, ours=True))
    work = origin.worklist(session)
    assert len(work) == 1
    assert work[0].ranges == [(FIRST, FIRST + 4), (FIRST + 10, FIRST + 49)]
    assert work[0].quantity == 45 and work[0].retirements == [seq, later.seq]


# -- labels -----------------------------------------------------------------------------------


def test_label_history_and_labels_at_a_retirement(session: Session,
                                                  story: tuple[World, int, int]) -> None:
    world, batch, first_retirement = story
    assert origin.labels_at(session, [batch])[batch] == UNLABELLED
    ccp = Labels(ccp=True, ccp_since=dt.date(2025, 3, 1), mitigation="avoidance",
                 corsia="first_phase")
    with tx(session):
        change = origin.set_labels(session, batch_id=batch, labels=ccp,
                                   effective=dt.date(2025, 3, 1), note="ICVCM approval")
    with tx(session):
        second = operations.retire(session, account_id=world.alice, quantity=5, **retire_args())
    adjusted = Labels(ccp=True, ccp_since=dt.date(2025, 3, 1), mitigation="avoidance",
                      corsia="first_phase", article6_authorized=True, ca_declaration="Committed",
                      ca_status="Pending")
    with tx(session):
        origin.set_labels(session, batch_id=batch, labels=adjusted, effective=dt.date(2025, 7, 1))
    assert origin.labels_at(session, [batch], before=first_retirement)[batch] == UNLABELLED
    assert origin.labels_at(session, [batch], before=second.seq)[batch] == ccp
    assert origin.labels_at(session, [batch])[batch] == adjusted
    assert [row.seq for row in origin.label_history(session, batch)] == [change.seq,
                                                                         second.seq + 1]
    report = audit.verify(session)
    assert report.entries == second.seq + 1


@pytest.mark.parametrize("kwargs", [
    dict(ccp=True),                                   # no date
    dict(ccp=False, ccp_since=dt.date(2025, 1, 1)),   # a date with no label
    dict(ca_declaration="Maybe"),
    dict(ca_status="Completed"),                      # never committed
    dict(corsia="third_phase"),
    dict(mitigation="offset"),
    dict(ccp="yes"),
])
def test_bad_labels_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(LabelError):
        Labels(**kwargs)  # type: ignore[arg-type]


def test_labels_for_an_unknown_batch_write_nothing(session: Session) -> None:
    make_world(session)
    before = counts(session)
    with pytest.raises(UnknownBatchError), tx(session):
        origin.set_labels(session, batch_id=42, labels=UNLABELLED, effective=dt.date(2025, 1, 1))
    assert counts(session) == before
    assert session.scalar(select(func.count()).select_from(BatchLabel)) == 0


def test_insufficient_after_freeze_is_a_clear_error(session: Session,
                                                    story: tuple[World, int, int]) -> None:
    world, batch, _ = story
    record(session, **evidence(batch, FIRST + 40, FIRST + 99, ours=False))
    with pytest.raises(InsufficientCreditsError), tx(session):
        operations.retire(session, account_id=world.alice, quantity=1, **retire_args())
