"""Kilogram pools in the ledger, on both databases: pool retirements, batched allocations, the
replay rules (Σ allocated ≤ 1,000,000 g × tonnes, draws only from pool retirements, whole
grams), and ``verify`` agreeing with the tables.

The story: 1,000 t of VCS-944 are mirrored here and held by the inventory. Whole tonnes are
retired into the VCS-944 pool; grams of them are allocated to beneficiaries in batches.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger import audit, canonical, guards, operations
from ledger.errors import (
    InsufficientCreditsError,
    InvalidQuantityError,
    OverAllocationError,
    PoolError,
    RetirementDetailsError,
)
from ledger.operations import AllocationRequest
from ledger.records import GRAMS_PER_TONNE, Allocate, Allocation
from ledger.replay import Replay, VerificationError, replay_all
from ledger.schema import Allocation as AllocationRow
from ledger.schema import Entry, PoolRetirement

from .helpers import PERIOD, World, counts, issue_verra, make_world, tx


def ask(grams: int, draws: list[tuple[int, int]], name: str = "Parcel 1") -> AllocationRequest:
    return AllocationRequest(grams=grams, draws=tuple(draws), beneficiary=name,
                             purpose="voluntary", country="PE", period_start=PERIOD[0],
                             period_end=PERIOD[1])


def journal(session: Session) -> list[tuple[int, bytes, str]]:
    return [(seq, bytes(record), digest) for seq, record, digest in
            session.execute(select(Entry.seq, Entry.record, Entry.hash).order_by(Entry.seq))]


@pytest.fixture
def world(session: Session) -> World:
    w = make_world(session)
    issue_verra(session, w, quantity=1000)
    return w


def pool(session: Session, world: World, tonnes: int) -> int:
    with tx(session):
        return operations.pool_retire(session, account_id=world.inventory,
                                      project_id=world.project, quantity=tonnes).seq


def test_pool_retirement_and_a_batch_of_allocations(session: Session, world: World) -> None:
    first = pool(session, world, 2)
    with tx(session):
        receipt = operations.allocate(session, [
            ask(2_500, [(first, 2_500)], "Parcel 1"),
            ask(1_997_000, [(first, 1_997_000)], "Flight LIM-CUZ"),
        ])
    assert receipt.kind == "allocate" and receipt.extra == {"allocations": 2,
                                                            "grams": 1_999_500}
    row = session.get(AllocationRow, (receipt.seq, 1))
    assert row is not None and row.grams == 1_997_000 and row.name == "Flight LIM-CUZ"
    record = canonical.loads(bytes(session.get(Entry, receipt.seq).record))  # type: ignore[union-attr]
    assert record["kind"] == "allocate"
    assert "Parcel 1" not in str(record)  # only the salted commitment is in the journal
    state = replay_all(journal(session))
    totals = state.pool_totals()["VCS-944"]
    assert (totals.tonnes, totals.allocated, totals.free, totals.allocations) == \
        (2, 1_999_500, 500, 2)
    assert audit.verify(session).totals["VCS-944"].retired == 2


def test_over_allocation_is_refused_and_writes_nothing(session: Session, world: World) -> None:
    first = pool(session, world, 1)
    with tx(session):
        operations.allocate(session, [ask(600_000, [(first, 600_000)])])
    before = counts(session)
    with pytest.raises(OverAllocationError, match=f"seq {first}"):
        with tx(session):
            operations.allocate(session, [ask(300_000, [(first, 300_000)]),
                                          ask(100_001, [(first, 100_001)])])
    assert counts(session) == before
    with tx(session):  # exactly what is left is fine
        operations.allocate(session, [ask(400_000, [(first, 400_000)])])
    assert replay_all(journal(session)).pool_totals()["VCS-944"].free == 0


def test_allocations_draw_only_from_pool_retirements(session: Session, world: World) -> None:
    with tx(session):
        retired = operations.retire(session, account_id=world.inventory, quantity=1,
                                    beneficiary="Someone", purpose="voluntary", country="PE",
                                    period_start=PERIOD[0], period_end=PERIOD[1]).seq
    with pytest.raises(PoolError, match=f"seq {retired} is not a pool retirement"):
        with tx(session):
            operations.allocate(session, [ask(1_000, [(retired, 1_000)])])


@pytest.mark.parametrize("grams, draws, error", [
    (0, [(1, 0)], InvalidQuantityError),
    (2.5, [(1, 2.5)], InvalidQuantityError),
    (True, [(1, True)], InvalidQuantityError),
    (1_000, [(1, 600)], OverAllocationError),
    (1_000, [], PoolError),
    (1_000, [(2, 500), (1, 500)], PoolError),
])
def test_bad_allocations_are_refused(session: Session, world: World, grams: object,
                                     draws: list[tuple[int, object]], error: type) -> None:
    pool(session, world, 1)
    before = counts(session)
    with pytest.raises(error):
        with tx(session):
            operations.allocate(session, [ask(grams, draws)])  # type: ignore[arg-type]
    assert counts(session) == before


def test_a_pool_takes_whole_tonnes_it_holds(session: Session, world: World) -> None:
    with pytest.raises(InsufficientCreditsError):
        pool(session, world, 1001)
    with pytest.raises(InvalidQuantityError):
        pool(session, world, 0)
    with pytest.raises(RetirementDetailsError):
        with tx(session):
            first = operations.pool_retire(session, account_id=world.inventory,
                                           project_id=world.project, quantity=1).seq
            operations.allocate(session, [AllocationRequest(
                grams=5, draws=((first, 5),), beneficiary="x", purpose="nope", country="PE",
                period_start=PERIOD[0], period_end=PERIOD[1])])


def test_an_allocation_spans_two_pool_retirements(session: Session, world: World) -> None:
    first = pool(session, world, 1)
    second = pool(session, world, 1)
    with tx(session):
        operations.allocate(session, [ask(1_500_000, [(first, 1_000_000), (second, 500_000)])])
    state = replay_all(journal(session))
    assert state.pools[first].free == 0 and state.pools[second].free == 500_000
    audit.verify(session)


def test_verify_catches_a_tampered_allocation_row(session: Session, world: World) -> None:
    first = pool(session, world, 1)
    with tx(session):
        seq = operations.allocate(session, [ask(1_000, [(first, 1_000)])]).seq
    with tx(session):
        guards.drop(session.connection(), ("pools",))  # what the database would refuse
        session.get(AllocationRow, (seq, 0)).grams = 2_000  # type: ignore[union-attr]
    with pytest.raises(VerificationError, match=f"allocation {seq}.0 differs"):
        audit.verify(session)


def test_verify_catches_a_missing_pool_row(session: Session, world: World) -> None:
    first = pool(session, world, 1)
    with tx(session):
        guards.drop(session.connection(), ("pools",))
        session.delete(session.get(PoolRetirement, first))
    with pytest.raises(VerificationError, match="pool retirement row"):
        audit.verify(session)


def _record(seq: int, prev: str, kind: str, data: dict) -> tuple[bytes, str]:
    import hashlib

    record = canonical.dumps({"v": 1, "seq": seq, "kind": kind, "time": "2026-01-01T00:00:00Z",
                              "prev": prev, "data": data})
    return record, hashlib.sha256(record).hexdigest()


def test_replay_refuses_a_forged_over_allocation(session: Session, world: World) -> None:
    """A forger re-chains an allocate entry that takes more than its pool retirement holds:
    replay names the entry."""
    first = pool(session, world, 1)
    entries = journal(session)
    state = Replay()
    for seq, record, digest in entries:
        state.apply(seq, record, digest)
    commitment = "a" * 64
    allocation = Allocation(grams=GRAMS_PER_TONNE + 1, draws=((first, GRAMS_PER_TONNE + 1),),
                            beneficiary=commitment, purpose="voluntary", note="", country="PE",
                            period_start=PERIOD[0], period_end=PERIOD[1])
    data = Allocate(allocations=(allocation,), date=dt.date(2026, 1, 1)).to_data()
    record, digest = _record(state.seq + 1, state.head, "allocate", data)
    with pytest.raises(OverAllocationError, match=f"pool retirement seq {first}"):
        state.apply(state.seq + 1, record, digest)
    with pytest.raises(VerificationError, match=f"seq {state.seq + 1}"):
        replay_all([*entries, (state.seq + 1, record, digest)])


def test_replay_refuses_a_pool_of_another_project(session: Session, world: World) -> None:
    first = pool(session, world, 1)
    entries = journal(session)
    seq, record, _ = entries[-1]
    parsed = canonical.loads(record)
    parsed["data"]["pool"] = "VCS-868"
    forged, digest = _record(seq, parsed["prev"], "pool", parsed["data"])
    with pytest.raises(VerificationError, match="not of VCS-868"):
        replay_all([*entries[:-1], (seq, forged, digest)])
    assert first == seq


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(st.one_of(
    st.tuples(st.just("pool"), st.integers(1, 3)),
    st.tuples(st.just("kg"), st.integers(1, 2_500_000)),
    st.tuples(st.just("retire"), st.integers(1, 5))), min_size=1, max_size=25))
def test_any_interleaving_never_over_allocates(session: Session, world: World,
                                               steps: list[tuple[str, int]]) -> None:
    """Pool refills, allocations (drawn oldest pool retirement first, refused when short) and
    tonne retirements in any order: the ledger never allocates more than it retired into the
    pool, replay agrees with the tables, and every refusal leaves nothing behind."""
    if session.in_transaction():
        session.rollback()
    with session.begin_nested():
        for kind, amount in steps:
            before = counts(session)
            try:
                with session.begin_nested():
                    if kind == "pool":
                        operations.pool_retire(session, account_id=world.inventory,
                                               project_id=world.project, quantity=amount)
                    elif kind == "retire":
                        operations.retire(session, account_id=world.inventory, quantity=amount,
                                          beneficiary="T", purpose="voluntary", country="PE",
                                          period_start=PERIOD[0], period_end=PERIOD[1])
                    else:
                        free = _free(session)
                        draws, left = [], amount
                        for seq, grams in free:
                            take = min(left, grams)
                            if take:
                                draws.append((seq, take))
                                left -= take
                        if left:  # a naive seller would over-sell: the ledger refuses
                            draws = draws or [(free[0][0], amount)] if free else []
                            if not draws:
                                continue
                            draws[-1] = (draws[-1][0], draws[-1][1] + left)
                        operations.allocate(session, [ask(amount, draws)])
            except (OverAllocationError, InsufficientCreditsError, PoolError):
                assert counts(session) == before
        state = replay_all(journal(session))
        retired = session.scalar(select(func.coalesce(func.sum(PoolRetirement.quantity), 0)))
        allocated = sum(d.allocated for d in state.pools.values())
        assert allocated <= int(retired) * GRAMS_PER_TONNE
        assert all(d.allocated <= d.grams for d in state.pools.values())
        assert sum(d.quantity for d in state.pools.values()) == retired
        audit.verify(session)
        session.rollback()


def _free(session: Session) -> list[tuple[int, int]]:
    """Each pool retirement's free grams, oldest first, from the tables."""
    from ledger.schema import AllocationDraw

    used = dict(session.execute(select(AllocationDraw.pool_seq, func.sum(AllocationDraw.grams))
                                .group_by(AllocationDraw.pool_seq)).all())
    return [(row.seq, row.quantity * GRAMS_PER_TONNE - int(used.get(row.seq) or 0))
            for row in session.scalars(select(PoolRetirement).order_by(PoolRetirement.seq))]


def test_verify_catches_a_pool_row_moved_to_another_project_or_account(
        session: Session, world: World) -> None:
    first = pool(session, world, 1)
    other = make_world(session, registry_id="868")
    with tx(session):
        guards.drop(session.connection(), ("pools",))
        session.get(PoolRetirement, first).project_id = other.project  # type: ignore[union-attr]
    with pytest.raises(VerificationError, match="pool retirement row differs"):
        audit.verify(session)
    with tx(session):
        row = session.get(PoolRetirement, first)
        assert row is not None
        row.project_id, row.account_id = world.project, world.alice
    with pytest.raises(VerificationError, match="pool retirement row differs"):
        audit.verify(session)


def test_verify_catches_a_stray_draw(session: Session, world: World) -> None:
    from ledger.schema import AllocationDraw

    first = pool(session, world, 1)
    with tx(session):
        seq = operations.allocate(session, [ask(1_000, [(first, 1_000)])]).seq
        guards.drop(session.connection(), ("pools",))
        session.add(AllocationDraw(seq=seq, idx=7, pool_seq=first, grams=5))
    with pytest.raises(VerificationError, match=f"allocation {seq}.7"):
        audit.verify(session)


def test_the_offline_verifier_prints_each_pool_and_names_an_over_allocation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's kilogram pool through the CLI, exported and checked offline: the pool's
    tonnes, kg allocated and kg free; then a forged over-allocation, re-chained and re-signed
    with the operator's own key, is refused naming its seq."""
    import hashlib as _hashlib

    from ledger import bundle
    from ledger.checkpoint import Checkpoint, load_signer, sign, write_keypair
    from ledger.merkle import Frontier, leaf_hash
    from ledger.verify import main
    from marketplace import create_app
    from marketplace.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'pools.db'}"
    upgrade(url)
    signer, verifier = write_keypair(tmp_path, "selva.example/ledger")
    app = create_app({"DATABASE_URL": url, "CHECKPOINT_KEY": str(signer), "SECRET_KEY": "t",
                      "STRIPE_WEBHOOK_SECRET": "whsec_t", "TESTING": True})
    export = tmp_path / "export"
    with app.app_context():
        runner = app.test_cli_runner()
        for args in (["demo", "load"], ["demo", "kilograms"],
                     ["ledger", "export", str(export)]):
            result = runner.invoke(args=args)
            assert result.exit_code == 0, (args, result.output)
    from marketplace.database import db

    db.dispose_all()
    assert main([str(export), "--key", str(verifier)]) == 0
    printed = capsys.readouterr().out
    [line] = [x for x in printed.splitlines() if x.startswith("VCS-944") and "." in x]
    assert line.split() == ["VCS-944", "7", "5,297.750", "1,702.250", "5"]

    # Forge one more allocate entry that overdraws the pool retirement, re-chain and re-sign.
    lines = (export / bundle.JOURNAL).read_bytes().splitlines()
    last = canonical.loads(lines[-1])
    head = last["hash"]
    seq = int(last["seq"]) + 1
    pool_seq = next(int(canonical.loads(x)["seq"]) for x in lines
                    if canonical.loads(x)["kind"] == "pool")
    forged = Allocation(grams=1_702_251, draws=((pool_seq, 1_702_251),),
                        beneficiary="b" * 64, purpose="voluntary", note="", country="PE",
                        period_start=PERIOD[0], period_end=PERIOD[1])
    record = canonical.dumps({"v": 1, "seq": seq, "kind": "allocate",
                              "time": "2026-12-06T00:00:00Z", "prev": head,
                              "data": Allocate(allocations=(forged,),
                                               date=dt.date(2026, 12, 6)).to_data()})
    digest = _hashlib.sha256(record).hexdigest()
    lines.append(bundle.journal_line(seq, "allocate", record, digest).rstrip(b"\n"))
    (export / bundle.JOURNAL).write_bytes(b"\n".join(lines) + b"\n")
    frontier = Frontier()
    for raw in lines:
        frontier.append(leaf_hash(canonical.loads(raw)["record"].encode("utf-8")))
    note = sign(Checkpoint("selva.example/ledger", seq, frontier.root()), load_signer(signer))
    (export / bundle.CHECKPOINT).write_bytes(note)
    import json

    manifest = json.loads((export / bundle.MANIFEST).read_text(encoding="utf-8"))
    manifest["entries"], manifest["head"] = seq, digest
    for name in manifest["files"]:
        manifest["files"][name] = _hashlib.sha256((export / name).read_bytes()).hexdigest()
    (export / bundle.MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    assert main([str(export), "--key", str(verifier)]) == 1
    error = capsys.readouterr().err
    assert f"seq {seq}" in error and f"pool retirement seq {pool_seq}" in error


@pytest.mark.parametrize("change", ["overdraw", "edit draw", "delete pool", "edit allocation",
                                    "delete allocation"])
def test_the_database_guards_the_pools_itself(session: Session, world: World,
                                              change: str) -> None:
    """What the operations and the replay refuse, the database refuses too, whatever wrote
    it: no draw past a pool retirement's grams, no edit or delete of pools, draws and
    allocations (only the erasure of a beneficiary's name)."""
    from sqlalchemy import delete, insert, update
    from sqlalchemy.exc import DBAPIError

    from ledger.schema import AllocationDraw, table_of

    first = pool(session, world, 1)
    with tx(session):
        seq = operations.allocate(session, [ask(999_000, [(first, 999_000)])]).seq
    with tx(session):
        assert operations.erase_allocation_beneficiary(session, seq, 0)  # erasing is allowed
    draws, rows = table_of(AllocationDraw), table_of(AllocationRow)
    statement = {
        "overdraw": insert(draws).values(seq=seq, idx=1, pool_seq=first, grams=1_001),
        "edit draw": update(draws).values(grams=1),
        "delete pool": delete(table_of(PoolRetirement)),
        "edit allocation": update(rows).values(grams=1),
        "delete allocation": delete(rows),
    }[change]
    with pytest.raises(DBAPIError):
        with tx(session):
            session.execute(statement)
    with tx(session):  # exactly what is left is fine
        session.execute(insert(draws).values(seq=seq, idx=1, pool_seq=first, grams=1_000))
