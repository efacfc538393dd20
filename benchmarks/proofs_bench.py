"""Proof benchmarks (DESIGN.md, "Speed"), each a ratio measured side by side in one run:

1. offline verification: ``ledger.verify.verify_export`` entries per second over a journal
   export of 1,000,000 entries (``--quick``: 100,000), against SHA-256 alone over the same
   record bytes, in memory, in the same run, each verify run against the SHA-256 runs either
   side of it. Target >= 0.05 (issue 14; DESIGN's long-run aim is 0.2).
2. inclusion proof: ``ledger.tree.inclusion`` time per proof from a database whose
   ``ledger_merkle_nodes`` holds a tree of 1,000,000 leaves (``--quick``: 100,000), against
   the same from a database holding a tree of 1,000 leaves, proofs for random leaves, turn
   about, medians. Target <= 3. On PostgreSQL and on SQLite.

The export for 1 is generated in memory with the ledger's own building blocks
(``journal.build_record``, ``replay.issue_blocks``, ``rules.plan_spend``,
``rules.beneficiary_commitment``, ``bundle.journal_line``), written as ``ledger.export`` and
``marketplace.signing.export_bundle`` write one (journal, signed checkpoint, key, manifest),
and checked with ``verify_export`` once before anything is timed: an export the verifier
refuses is a benchmark error, never a figure. Building 1,000,000 entries through the
operations would take hours (several milliseconds each, see the ledger benchmarks).

The trees for 2 are synthetic (leaf hashes of 8-byte counters), their nodes produced by
``merkle.Frontier.append`` exactly as ``journal.append`` stores them, bulk-loaded into fresh
databases migrated to head, with the chain head's seq set to the tree size (the only thing
``tree.inclusion`` reads besides the nodes). Every proof is checked against the tree head
with ``merkle.verify_inclusion`` after the timing.

Run with ``python -m benchmarks.proofs_bench`` (``--quick``, ``--backend``, ``--only``,
``--profile``).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import hashlib
import io
import json
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import (
    BenchmarkError,
    Report,
    Result,
    time_ratios,
    add_common_arguments,
    at_least,
    at_most,
    bench_tmpdir,
    fresh_database,
    interleave,
    resolve_backends,
    stopwatch,
)

ORIGIN = "selva.example/ledger"
VERIFY_RATE = "offline verify entries / s"
VERIFY_TARGET = 0.05
PROOF_TIME = "inclusion proof, big / small tree"


@dataclass(frozen=True)
class Sizes:
    verify_entries: int
    customers: int
    verify_runs: int
    sha_rounds: int
    tree_big: int
    tree_small: int
    proof_rounds: int
    proof_iterations: int
    proof_budget: float
    """Seconds the timed proofs may take in all (per backend), which caps the iterations."""


FULL = Sizes(verify_entries=1_000_000, customers=2_000, verify_runs=3, sha_rounds=12,
             tree_big=1_000_000, tree_small=1_000, proof_rounds=5, proof_iterations=400,
             proof_budget=90.0)
QUICK = Sizes(verify_entries=100_000, customers=500, verify_runs=3, sha_rounds=8,
              tree_big=100_000, tree_small=1_000, proof_rounds=3, proof_iterations=150,
              proof_budget=20.0)


# -- 1. a synthetic journal export, built with the ledger's own building blocks --------------


@dataclass
class Export:
    directory: Path
    key: str
    entries: int
    records: list[bytes] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    journal_bytes: int = 0
    seconds: float = 0.0


PERIOD = ("2025-01-01", "2025-12-31")
BIG_BATCH = 64_688_764
ISSUE_EVERY = 200_000
"""A new batch (with a buffer share) every this many entries, so issues recur in the journal."""


def build_export(directory: Path, n_entries: int, n_customers: int, *, seed: int = 944) -> Export:
    """Write an export of ``n_entries`` entries into ``directory``.

    The journal: an issue of a 64,688,764 t Verra batch (12 % to the buffer pool) to the
    inventory, then, customer by customer in turn, a transfer of 2 t from the inventory and a
    retirement of 1 t by the customer (every tenth time 3 t and 2 t, which spends two of the
    customer's blocks), a cancellation of 1 t every 97th time, and a new batch every
    200,000 entries. Block choice follows ``operations._inputs``: oldest first, only what
    is needed.
    """
    from ledger import bundle, journal
    from ledger.checkpoint import Checkpoint, generate_key, sign
    from ledger.merkle import Frontier, leaf_hash
    from ledger.records import Cancel, Issue, IssuedProject, Retire, Transfer
    from ledger.replay import issue_blocks
    from ledger.rules import BlockRange, beneficiary_commitment, plan_spend

    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    out = Export(directory, "", n_entries)
    inventory, buffer_account = 1, 2
    customers = list(range(3, 3 + n_customers))
    holdings: dict[int, list[BlockRange]] = {a: [] for a in (inventory, *customers)}
    t0 = dt.datetime(2026, 1, 5, 9, 0, 0, tzinfo=dt.UTC)
    head = journal.Head(seq=0, hash="0" * 64, blocks=0, batches=0)
    frontier = Frontier()
    journal_sha = hashlib.sha256()
    sha256 = hashlib.sha256
    records = out.records
    kinds = out.kinds
    line_of = bundle.journal_line
    next_serial = 115_597_313

    with stopwatch() as elapsed, (directory / bundle.JOURNAL).open("wb") as handle:

        def append(kind: str, data: dict[str, Any], created: list[BlockRange],
                   new_batches: int = 0) -> None:
            nonlocal head
            record = journal.build_record(head, kind, data,
                                          t0 + dt.timedelta(seconds=head.next_seq))
            digest = sha256(record).hexdigest()
            line = line_of(head.next_seq, kind, record, digest)
            handle.write(line)
            journal_sha.update(line)
            out.journal_bytes += len(line)
            frontier.append(leaf_hash(record))
            records.append(record)
            kinds[kind] = kinds.get(kind, 0) + 1
            head = journal.Head(seq=head.next_seq, hash=digest,
                                blocks=head.blocks + len(created),
                                batches=head.batches + new_batches)

        def take(holder: int, quantity: int) -> list[BlockRange]:
            held, chosen, got = holdings[holder], [], 0
            while got < quantity:
                block = held.pop(0)
                chosen.append(block)
                got += block.quantity
            return chosen

        def issue() -> None:
            nonlocal next_serial
            batch_id = head.batches + 1
            first, last = next_serial, next_serial + BIG_BATCH - 1
            next_serial = last + 1_000
            buffer_q = BIG_BATCH * 12 // 100
            created = issue_blocks(batch=batch_id, first=first, last=last, account=inventory,
                                   buffer_account=buffer_account, buffer_quantity=buffer_q,
                                   next_id=head.next_block)
            issuance = 9660 + batch_id
            vintage = 2014 + batch_id
            record = Issue(
                batch=batch_id,
                project=IssuedProject(id=1, registry="VCS", registry_id="868",
                                      name="Madre de Dios Amazon Forest Protection",
                                      country="PE"),
                vintage_start=dt.date(vintage, 1, 1), vintage_end=dt.date(vintage, 12, 31),
                issued=dt.date(vintage + 2, 3, 8), first=first, last=last,
                origin=f"VCS:868:{issuance}",
                serial={"scheme": "verra", "issuance": issuance, "code": 263, "scope": 14,
                        "flag": 1},
                account=inventory, buffer_account=buffer_account, buffer_quantity=buffer_q,
                created=tuple(created))
            append(record.KIND, record.to_data(), created, new_batches=1)
            holdings[inventory].append(created[0])  # the newest vintage goes last

        def spend(kind: str, holder: int, quantity: int, to_account: int, to_state: str,
                  extra: dict[str, Any]) -> None:
            inputs = take(holder, quantity)
            created = plan_spend(inputs, quantity, holder=holder, to_account=to_account,
                                 to_state=to_state, next_id=head.next_block)
            made: Any = {"transfer": Transfer, "retire": Retire, "cancel": Cancel}[kind]
            record = made(quantity=quantity, spent=tuple(b.id for b in inputs),
                          created=tuple(created), **extra)
            append(record.KIND, record.to_data(), created)
            if len(created) > len(inputs):
                # The last input was split: the remainder, the holder's lowest serials now,
                # is the first the holder spends next (as operations._inputs would choose).
                holdings[holder].insert(0, created.pop())
            if to_state == "tradable":
                holdings[to_account].extend(created)

        issue()
        next_issue = ISSUE_EVERY
        turn = 0
        while head.seq < n_entries:
            if head.seq >= next_issue:
                issue()
                next_issue += ISSUE_EVERY
                continue
            customer = customers[turn % len(customers)]
            big = turn % 10 == 9
            spend("transfer", inventory, 3 if big else 2, customer, "tradable",
                  {"sender": inventory, "receiver": customer})
            if head.seq >= n_entries:
                break
            name = f"Customer {customer} Ltd"
            salt = "%032x" % rng.getrandbits(128)
            spend("retire", customer, 2 if big else 1, customer, "retired", {
                "account": customer, "beneficiary": beneficiary_commitment(salt, name),
                "purpose": "voluntary", "note": "", "country": "GB",
                "period_start": dt.date.fromisoformat(PERIOD[0]),
                "period_end": dt.date.fromisoformat(PERIOD[1]),
                "date": (t0 + dt.timedelta(seconds=head.next_seq)).date()})
            if turn % 97 == 96 and head.seq < n_entries:
                spend("cancel", customer, 1, customer, "cancelled",
                      {"account": customer, "reason": "Issuance correction"})
            turn += 1
        handle.flush()
        os.fsync(handle.fileno())

        signer, verifier = generate_key(ORIGIN)
        note = sign(Checkpoint(origin=ORIGIN, size=head.seq, root=frontier.root()), signer)
        key_file = (verifier + "\n").encode()
        (directory / bundle.CHECKPOINT).write_bytes(note)
        (directory / bundle.KEY).write_bytes(key_file)
        manifest = {
            "format": bundle.FORMAT, "entries": head.seq, "head": head.hash,
            "exported_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "files": {bundle.JOURNAL: journal_sha.hexdigest(),
                      bundle.CHECKPOINT: hashlib.sha256(note).hexdigest(),
                      bundle.KEY: hashlib.sha256(key_file).hexdigest()},
        }
        (directory / bundle.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True)
                                                 + "\n")
    out.key = verifier
    out.entries = head.seq
    out.seconds = elapsed()
    if out.entries != n_entries or len(records) != n_entries:
        raise BenchmarkError(f"built {out.entries} entries, expected {n_entries}")
    return out


def bench_verify(report: Report, sizes: Sizes, tmp: Path, profile: bool) -> None:
    from ledger.verify import Invalid, verify_export

    n = sizes.verify_entries
    report.progress(f"building a {n:,}-entry export with the ledger's record builders")
    export = build_export(tmp / "export", n, sizes.customers)
    records = export.records
    total_bytes = sum(map(len, records))
    sha256 = hashlib.sha256

    def sha_all() -> float:
        with stopwatch() as took:
            for record in records:
                sha256(record).digest()
        return took()

    def verify_once() -> float:
        gc.collect()
        with stopwatch() as took:
            summary = verify_export(export.directory, export.key)
        if summary.entries != n:
            raise BenchmarkError(f"verify_export saw {summary.entries} entries, expected {n}")
        return took()

    report.progress(f"checking the export with verify_export ({export.journal_bytes / 1e6:,.0f} MB "
                    f"journal, built in {export.seconds:.0f} s)")
    try:
        check_s = verify_once()
    except Invalid as exc:
        raise BenchmarkError(f"the generated export does not verify: {exc} (the record format "
                             "moved on: update build_export)") from exc

    report.progress(f"timing verify_export x{sizes.verify_runs} and SHA-256 x{sizes.sha_rounds}, "
                    "alternating")
    sha_times: list[float] = []
    verify_times: list[float] = []
    gaps: list[list[float]] = []
    per_gap = max(1, sizes.sha_rounds // (sizes.verify_runs + 1))
    for run in range(sizes.verify_runs + 1):
        gaps.append([sha_all() for _ in range(per_gap)])
        sha_times.extend(gaps[-1])
        if run < sizes.verify_runs:
            verify_times.append(verify_once())
    sha_s = statistics.median(sha_times)
    verify_s = statistics.median(verify_times)
    # Each verify run against the SHA-256 runs on either side of it (A B A B ...).
    ratios = [statistics.median(gaps[i] + gaps[i + 1]) / took
              for i, took in enumerate(verify_times)]
    result = report.add(Result(
        VERIFY_RATE, "files", n / verify_s, n / sha_s, "entries/s", at_least(VERIFY_TARGET),
        round_ratios=ratios,
        measured_label=f"ledger.verify.verify_export over an export of {n:,} entries "
                       f"(median of {len(verify_times)} runs: "
                       f"{', '.join(f'{t:.1f}' for t in verify_times)} s)",
        baseline_label=f"hashlib.sha256 over the same {n:,} record bytes in memory "
                       f"({total_bytes / n:,.0f} B each; median of {len(sha_times)} rounds: "
                       f"{sha_s * 1e3:,.0f} ms)",
    ))
    mix = ", ".join(f"{count:,} {kind}" for kind, count in sorted(export.kinds.items()))
    result.notes.append(
        f"export: {mix}; {export.journal_bytes / 1e6:,.0f} MB journal; generated in "
        f"{export.seconds:.0f} s and verified once untimed ({check_s:.1f} s) before the "
        f"timed runs; per entry: verify {verify_s / n * 1e6:.1f} µs, SHA-256 "
        f"{sha_s / n * 1e6:.2f} µs")
    records.clear()
    if profile:
        _profile_verify(report, result, tmp / "profiled", min(n, 20_000), sizes.customers)


def _profile_verify(report: Report, result: Result, directory: Path, n: int,
                    customers: int) -> None:
    """cProfile verify_export over a smaller export; keep the top functions in the notes."""
    from ledger.verify import verify_export

    export = build_export(directory, n, customers)
    export.records.clear()
    profiler = cProfile.Profile()
    profiler.enable()
    verify_export(export.directory, export.key)
    profiler.disable()
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("tottime").print_stats(20)
    result.notes.append(f"cProfile of verify_export over {n:,} entries (by own time, top 20; "
                        "profiling slows every call down, the shares are what matter):")
    result.notes.extend("  " + line for line in buffer.getvalue().splitlines()
                        if line.strip() and not line.startswith("   Ordered"))


# -- 2. inclusion proofs from the stored tree: 1,000,000 leaves against 1,000 ---------------


def _tree_rows(size: int) -> Any:
    """(level, idx, hash) of every node ``journal.append`` would store for ``size`` leaves
    (the leaf hashes of 8-byte counters); returns (rows iterator, finished frontier)."""
    from ledger.merkle import Frontier, leaf_hash

    frontier = Frontier()

    def rows() -> Any:
        for i in range(size):
            yield from frontier.append(leaf_hash(i.to_bytes(8, "big")))

    return rows(), frontier


def load_tree(url: str, size: int) -> tuple[bytes, float]:
    """Store a synthetic tree of ``size`` leaves in a migrated database and move the chain
    head to ``size``; return (root, seconds)."""
    import sqlalchemy as sa

    from ledger.db import make_engine

    rows, frontier = _tree_rows(size)
    engine = make_engine(url)
    try:
        with stopwatch() as took:
            if engine.dialect.name == "postgresql":
                raw = engine.raw_connection()
                try:
                    with raw.cursor() as cur:  # type: ignore[attr-defined]
                        sql = "COPY ledger_merkle_nodes (level, idx, hash) FROM STDIN"
                        with cur.copy(sql) as copy:
                            for row in rows:
                                copy.write_row(row)
                    raw.commit()
                finally:
                    raw.close()
            else:
                with engine.begin() as conn:
                    conn.exec_driver_sql(
                        "INSERT INTO ledger_merkle_nodes (level, idx, hash) VALUES (?, ?, ?)",
                        list(rows))
            with engine.begin() as conn:
                conn.execute(sa.text(
                    "UPDATE ledger_chain_head SET seq = :seq, frontier = :frontier WHERE id = 1"),
                    {"seq": size, "frontier": frontier.to_bytes()})
                stored = conn.execute(
                    sa.text("SELECT count(*) FROM ledger_merkle_nodes")).scalar_one()
                conn.exec_driver_sql("ANALYZE")
        expected = 2 * size - bin(size).count("1")  # one node per complete perfect subtree
        if stored != expected:
            raise BenchmarkError(f"stored {stored} tree nodes for {size} leaves, "
                                 f"expected {expected}")
    finally:
        engine.dispose()
    return frontier.root(), took()


def bench_proofs(report: Report, backend: str, tmp: Path, sizes: Sizes, admin_url: str) -> None:
    from sqlalchemy.orm import Session

    from ledger import tree
    from ledger.db import make_engine
    from ledger.merkle import leaf_hash, verify_inclusion

    big_n, small_n = sizes.tree_big, sizes.tree_small
    with fresh_database(backend, tmp, admin_url=admin_url, label="tree_big") as big_url, \
            fresh_database(backend, tmp, admin_url=admin_url, label="tree_small") as small_url:
        report.progress(f"{backend}: storing trees of {big_n:,} and {small_n:,} leaves")
        big_root, big_load = load_tree(big_url, big_n)
        small_root, small_load = load_tree(small_url, small_n)
        engines = {"big": make_engine(big_url), "small": make_engine(small_url)}
        try:
            rng = random.Random(9162)
            trees = {"big": (big_n, big_root), "small": (small_n, small_root)}
            proofs: dict[str, list[tuple[int, list[bytes]]]] = {"big": [], "small": []}

            def task(name: str) -> Callable[[], None]:
                engine = engines[name]
                size = trees[name][0]
                out = proofs[name]

                def run() -> None:
                    seq = rng.randint(1, size)
                    with Session(engine) as session:
                        out.append((seq, tree.inclusion(session, seq, size)))
                return run

            tasks: dict[str, Callable[[], object]] = {"big": task("big"),
                                                      "small": task("small")}
            # A pilot sizes the rounds so that a slow case (a table scan per proof) stays
            # within the time budget: at least 10 proofs per tree and round.
            pilot = interleave(tasks, rounds=1, iterations=5, warmup=5)
            per_pair = pilot["big"].median_call + pilot["small"].median_call
            iterations = max(10, min(sizes.proof_iterations,
                                     int(sizes.proof_budget / (sizes.proof_rounds * per_pair))))
            for out in proofs.values():
                out.clear()
            report.progress(f"{backend}: {sizes.proof_rounds} rounds x {iterations} proofs per "
                            f"tree, turn about (pilot: {pilot['big'].median_call * 1e3:.1f} / "
                            f"{pilot['small'].median_call * 1e3:.1f} ms per proof)")
            timing = interleave(tasks, rounds=sizes.proof_rounds, iterations=iterations,
                                warmup=0)
            for name, (size, root) in trees.items():
                for seq, proof in proofs[name]:
                    verify_inclusion(seq - 1, size, leaf_hash((seq - 1).to_bytes(8, "big")),
                                     proof, root)
            plan = _node_query_plan(engines["big"], big_n)
        finally:
            for engine in engines.values():
                engine.dispose()
    big, small = timing["big"], timing["small"]
    result = report.add(Result(
        PROOF_TIME, backend, big.median_call * 1e3, small.median_call * 1e3, "ms/proof",
        at_most(3),
        measured_label=f"ledger.tree.inclusion for a random leaf of a {big_n:,}-leaf tree "
                       f"({2 * big_n - bin(big_n).count('1'):,} stored nodes), own Session "
                       "per proof",
        baseline_label=f"the same in a database holding a {small_n:,}-leaf tree",
        round_ratios=time_ratios(big, small),
    ))
    result.notes.append(
        f"{big.rounds} rounds x {big.iterations} proofs per tree, turn about, "
        f"median of all calls; per-round means big "
        f"{[round(s / big.iterations * 1e3, 3) for s in big.round_seconds]} ms, small "
        f"{[round(s / small.iterations * 1e3, 3) for s in small.round_seconds]} ms; "
        f"every proof ({len(proofs['big']) + len(proofs['small']):,}) checked with "
        f"merkle.verify_inclusion against the tree head; trees stored in {big_load:.1f} s and "
        f"{small_load:.1f} s")
    result.notes.append(f"plan of the node query on the big tree: {plan}")


def _node_query_plan(engine: Any, size: int) -> str:
    """The database's plan for the nodes query ``tree.inclusion`` sends (captured from one
    proof and explained with the same parameters), on one line."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from ledger import tree

    captured: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
             executemany: bool) -> None:
        if "ledger_merkle_nodes" in statement:
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        with Session(engine) as session:
            tree.inclusion(session, size // 3 + 1, size)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    if not captured:
        return "(no query on ledger_merkle_nodes seen)"
    statement, parameters = captured[-1]
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + statement, parameters).all()
    if engine.dialect.name == "sqlite":
        return "; ".join(str(row[-1]) for row in rows)
    steps = [" ".join(str(row[0]).split()) for row in rows]
    steps = [step.split(" (cost=")[0] for step in steps if "Cond:" not in step]
    return "; ".join(steps[:3]) + (f"; ... ({len(steps)} steps)" if len(steps) > 3 else "")


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks proofs",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser)
    parser.add_argument("--only", choices=("verify", "proofs"), action="append",
                        help="run only these benchmarks (repeatable)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile verify_export over a 20,000-entry export")
    parser.add_argument("--entries", type=int, default=None,
                        help="entries in the export for the verify benchmark (default "
                             f"{FULL.verify_entries:,}; --quick {QUICK.verify_entries:,})")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.entries:
        sizes = Sizes(**{**sizes.__dict__, "verify_entries": args.entries})
    only = set(args.only or ("verify", "proofs"))
    report = Report(f"Proof benchmarks ({'quick' if args.quick else 'full'} run): ratios "
                    "measured side by side in this run", order=(VERIFY_RATE, PROOF_TIME))
    try:
        backends = resolve_backends(args.backend, args.postgres_url)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in backends.notes:
        report.note(note)
    with stopwatch() as total, bench_tmpdir() as tmp:
        if "verify" in only:
            with report.guard(VERIFY_RATE, "files"):
                bench_verify(report, sizes, tmp, args.profile)
            gc.collect()
        if "proofs" in only:
            for backend in backends.run:
                with report.guard(PROOF_TIME, backend):
                    bench_proofs(report, backend, tmp, sizes, args.postgres_url)
    report.note(f"total time {total():.0f} s")
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
