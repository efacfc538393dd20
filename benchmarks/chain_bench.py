"""Chain-head benchmark: ledger retirements per second on PostgreSQL with 16 concurrent clients,
against 1 client, in the same run; and how long each retirement holds the chain head's lock.

Every append is serialised on the chain head's row (DESIGN, invariant 8), so the figure
measures how little of an operation runs under that lock: the reads and the record building
happen before it, the writes go in one pipeline, and the lock is held from the head's
``SELECT ... FOR UPDATE`` to the end of the commit. Target >= 2.

Clients are processes (as gunicorn workers are), each with its own engine and its own holder
account, so that they contend on the chain head and nothing else. Each round runs the single
client, then the sixteen (A B, the order swapped every round), for ``--seconds`` each; the
figure is the median of per-round ratios. The lock hold time is measured in each client, from
the moment ``journal.locked_head_checking`` returns to the end of the commit, and reported as the
median per phase. The ledger is verified (``ledger.audit.verify``) after the run.

Run with ``python -m benchmarks chain`` (``--quick``, ``--clients``, ``--seconds``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    BenchmarkError,
    Report,
    Result,
    add_common_arguments,
    at_least,
    bench_tmpdir,
    fresh_database,
    resolve_backends,
)

FIGURE = "retirements / s: 16 clients vs 1"
TARGET = 2.0
RETIRE_ARGS: dict[str, Any] = dict(
    beneficiary="Acme Coffee Ltd", purpose="voluntary", country="GB",
    period_start=dt.date(2025, 1, 1), period_end=dt.date(2025, 12, 31))


@dataclass(frozen=True)
class Sizes:
    rounds: int
    seconds: float


FULL = Sizes(rounds=5, seconds=4.0)
QUICK = Sizes(rounds=3, seconds=1.5)


def prepare(url: str, clients: int) -> list[int]:
    """A project, a batch of 10,000,000 t and ``clients + 1`` holders with 100,000 t each."""
    from sqlalchemy.orm import Session

    from ledger import operations
    from ledger.db import make_engine

    engine = make_engine(url)
    try:
        with Session(engine) as s, s.begin():
            issuer = operations.open_account(s, "bench-issuer", "inventory").id
            project = operations.register_project(
                s, registry="VCS", registry_id="944", name="Alto Mayo Protected Forest",
                country="PE").id
            operations.issue(s, project_id=project, account_id=issuer,
                             vintage_start=dt.date(2016, 1, 1), vintage_end=dt.date(2016, 12, 31),
                             quantity=10_000_000, origin="VCS:bench")
            holders = []
            for n in range(clients + 1):
                holder = operations.open_account(s, f"bench-holder-{n}", "customer").id
                operations.transfer(s, from_account=issuer, to_account=holder, quantity=100_000)
                holders.append(holder)
        return holders
    finally:
        engine.dispose()


def _backend_cpu(pid: int | None) -> float | None:
    """CPU seconds a local PostgreSQL backend has used so far (from /proc), if it can be read."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _client(url: str, holder: int, start: Any, stop_at: Any, out: Any) -> None:
    """One client process: retire 1 t per transaction until ``stop_at``; report the count,
    the lock hold times, and the CPU seconds it and its server backend used meanwhile."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from ledger import journal, operations
    from ledger.db import make_engine

    engine = make_engine(url, pool_size=1)
    locked: list[float] = []
    holds: list[float] = []
    real = journal.locked_head_checking

    def timed_lock(session: Any, blocks: Any) -> Any:
        found = real(session, blocks)
        locked.append(time.perf_counter())
        return found

    journal.locked_head_checking = timed_lock  # type: ignore[assignment]
    try:
        with Session(engine) as s, s.begin():  # connect and warm up, untimed
            operations.retire(s, account_id=holder, quantity=1, **RETIRE_ARGS)
            backend = s.execute(text("SELECT pg_backend_pid()")).scalar()
        locked.clear()
        start.wait()
        while not stop_at.value:  # the parent sets the deadline once everyone is ready
            time.sleep(0.0005)
        count = 0
        deadline = stop_at.value
        cpu, server = time.process_time(), _backend_cpu(backend)
        while time.time() < deadline:
            with Session(engine) as s:
                with s.begin():
                    operations.retire(s, account_id=holder, quantity=1, **RETIRE_ARGS)
                holds.append(time.perf_counter() - locked[-1])
            count += 1
        server_after = _backend_cpu(backend)
        used = (time.process_time() - cpu,
                None if server is None or server_after is None else server_after - server)
        out.put((count, time.time(), holds, used, None))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        out.put((0, time.time(), [], (0.0, None), f"{type(exc).__name__}: {exc}"))
    finally:
        journal.locked_head_checking = real  # type: ignore[assignment]
        engine.dispose()


@dataclass(frozen=True)
class Phase:
    rate: float
    holds: list[float]
    ops: int
    client_cpu: float
    """CPU seconds the clients used, all together."""
    server_cpu: float | None
    """CPU seconds their PostgreSQL backends used (None when /proc could not tell)."""


def phase(url: str, holders: list[int], seconds: float) -> Phase:
    """Run ``len(holders)`` client processes at once for ``seconds``."""
    ctx = mp.get_context("fork")
    start = ctx.Barrier(len(holders) + 1)
    stop_at = ctx.Value("d", 0.0)
    out = ctx.Queue()
    procs = [ctx.Process(target=_client, args=(url, h, start, stop_at, out), daemon=True)
             for h in holders]
    for p in procs:
        p.start()
    try:  # every client connected and warmed up

        start.wait(timeout=120)
    except Exception as exc:  # noqa: BLE001
        raise BenchmarkError(f"the clients did not start: {exc}") from exc
    began = time.time()
    stop_at.value = began + seconds
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    errors = [error for *_, error in results if error]
    if errors:
        raise BenchmarkError(f"a client failed: {errors[0]}")
    ops = sum(count for count, *_ in results)
    ended = max(finished for _, finished, *_ in results)
    holds = [h for _, _, hs, _, _ in results for h in hs]
    servers = [used[1] for *_, used, _ in results]
    return Phase(ops / (ended - began), holds, ops, sum(used[0] for *_, used, _ in results),
                 None if None in servers else sum(s for s in servers if s is not None))


def bench(report: Report, url: str, sizes: Sizes, clients: int) -> None:
    from sqlalchemy.orm import Session

    from ledger import audit
    from ledger.db import make_engine

    holders = prepare(url, clients)
    single, many = holders[:1], holders[1:]
    phases: dict[str, list[Phase]] = {"one": [], "many": []}
    for r in range(sizes.rounds):
        order = ["one", "many"] if r % 2 == 0 else ["many", "one"]
        for name in order:
            phases[name].append(phase(url, single if name == "one" else many, sizes.seconds))
        report.progress(f"round {r + 1}: 1 client {phases['one'][-1].rate:,.0f}/s, {clients} "
                        f"clients {phases['many'][-1].rate:,.0f}/s")
    rates = {name: [p.rate for p in done] for name, done in phases.items()}
    holds = {name: [h for p in done for h in p.holds] for name, done in phases.items()}
    total = sum(p.ops for done in phases.values() for p in done)
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            verified = audit.verify(s)
    finally:
        engine.dispose()
    ratios = [m / o for m, o in zip(rates["many"], rates["one"], strict=True)]
    result = report.add(Result(
        FIGURE.replace("16", str(clients)), "postgres", statistics.median(rates["many"]),
        statistics.median(rates["one"]), "ops/s", at_least(TARGET) if clients == 16 else None,
        measured_label=f"{clients} client processes, each retiring 1 t per transaction from "
                       "its own holder",
        baseline_label="1 client process doing the same",
        round_ratios=ratios))
    one, many_holds = (statistics.median(holds[k]) * 1e3 for k in ("one", "many"))
    result.notes.append(
        f"chain-head lock held per retirement (median, from the locked read to the end of the "
        f"commit): {one:.2f} ms with 1 client, {many_holds:.2f} ms with {clients}; a ceiling of "
        f"{1000 / many_holds:,.0f} retirements/s at that hold time")
    ceiling = cpu_ceiling(phases["one"], statistics.median(rates["one"]))
    if ceiling:
        result.notes.append(ceiling)
    result.notes.append(f"{total:,} timed retirements; the ledger verified afterwards "
                        f"({verified.entries:,} entries)")


def cpu_ceiling(single: list[Phase], rate: float) -> str | None:
    """What this machine's CPUs allow at best: the CPU one retirement costs (client and server
    backend, from the single-client phases) against the CPUs there are. No number of clients
    can retire faster than that, however short the lock is held."""
    ops = sum(p.ops for p in single)
    if not ops or any(p.server_cpu is None for p in single):
        return None
    client = sum(p.client_cpu for p in single) / ops
    server = sum(p.server_cpu or 0.0 for p in single) / ops
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    best = (cpus or 1) / (client + server)
    return (f"CPU per retirement with 1 client: {client * 1e3:.2f} ms in the client and "
            f"{server * 1e3:.2f} ms in its PostgreSQL backend; on this machine's {cpus} CPUs "
            f"no number of clients can retire more than {best:,.0f}/s, "
            f"{best / rate:.2f}x the single client")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks chain",
                                     description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds per phase (default 4, --quick 1.5)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.seconds:
        sizes = Sizes(sizes.rounds, args.seconds)
    report = Report("chain head")
    if args.backend == "sqlite":
        report.note("the chain-head benchmark is for PostgreSQL (SQLite serialises every "
                    "writing transaction): nothing to run")
        return report.finish() if report.results else 0
    backends = resolve_backends("postgres", args.postgres_url)
    with bench_tmpdir() as tmp:
        for backend in backends.run:
            with report.guard(FIGURE, backend):
                with fresh_database(backend, tmp, admin_url=args.postgres_url,
                                    label="chain") as url:
                    bench(report, url, sizes, args.clients)
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
