"""Shared machinery for the benchmark suite: fresh databases, side-by-side timing, the results
table and the PASS/MISS verdicts.

The suite's rules (DESIGN.md, "Speed"): every figure is a *ratio* against a baseline measured
in the same process and the same run, never an absolute time compared with a constant. The
measured figure and its baseline take turns within each round (A B A B ...), the ratio is
computed per round, and the figure is the median of those per-round ratios, so that machine
noise (other processes, CPU frequency, the disk) hits both sides of each ratio alike. The
spread of the per-round ratios ((max - min) / median) is printed beside it; a ratio whose
rounds disagree by more than ``UNSTABLE_SPREAD`` (30%) is reported as UNSTABLE, not PASS or
MISS: it is not yet a measurement. A run is a report: a missed target still exits 0; a
benchmark that cannot run exits non-zero.

Typical use in a benchmark module::

    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    backends = resolve_backends(args.backend, args.postgres_url)
    report = Report("ledger")
    with bench_tmpdir() as tmp:
        for backend in backends.run:
            with report.guard("retire vs plain insert", backend):
                with fresh_database(backend, tmp, admin_url=args.postgres_url) as url:
                    ...
                    timing = alternate({"retire": one_retire, "plain": one_insert},
                                       rounds=5, iterations=200)
                    report.add(Result.rate(..., timing["retire"], timing["plain"], at_least(0.5)))
    return report.finish()
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

DEFAULT_POSTGRES_URL = os.environ.get(
    "SELVA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
"""The admin database used to create and drop each run's scratch databases."""

DB_PREFIX = "selva_bench_"
"""Every PostgreSQL database a benchmark creates starts with this, and is dropped after."""

BACKENDS = ("sqlite", "postgres")


class BenchmarkError(Exception):
    """A benchmark cannot run (as opposed to running and missing its target)."""


# -- command line ---------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark accepts: --quick, --backend, --postgres-url."""
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: a smoke run that checks the benchmarks work")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both",
                        help="database(s) to measure on (default both; if PostgreSQL is "
                             "unreachable, 'both' runs SQLite only and says so)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="an existing PostgreSQL database to connect to in order to create "
                             f"and drop scratch databases named {DB_PREFIX}* "
                             "(default %(default)s, or $SELVA_BENCH_POSTGRES_URL)")


@dataclass(frozen=True)
class Backends:
    run: tuple[str, ...]
    notes: tuple[str, ...] = ()


def resolve_backends(choice: str, admin_url: str = DEFAULT_POSTGRES_URL) -> Backends:
    """The backends to run for ``--backend``. 'both' falls back to SQLite alone, with a note,
    when PostgreSQL does not answer; an explicit 'postgres' that does not answer cannot run."""
    if choice == "sqlite":
        return Backends(("sqlite",))
    problem = postgres_problem(admin_url)
    if choice == "postgres":
        if problem:
            raise BenchmarkError(f"PostgreSQL is unreachable at {_redact(admin_url)}: {problem}")
        return Backends(("postgres",))
    if problem:
        return Backends(("sqlite",), (f"PostgreSQL is unreachable at {_redact(admin_url)} "
                                      f"({problem}): running on SQLite only.",))
    return Backends(("postgres", "sqlite"))


# -- fresh databases ------------------------------------------------------------------------


def postgres_problem(admin_url: str = DEFAULT_POSTGRES_URL) -> str | None:
    """None if the PostgreSQL server answers, else a one-line reason."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is a dependency
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(_libpq_url(admin_url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    return None


@contextmanager
def bench_tmpdir() -> Iterator[Path]:
    """A temporary directory for the run's SQLite files, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=DB_PREFIX) as name:
        yield Path(name)


@contextmanager
def fresh_database(backend: str, tmpdir: Path, *, revision: str | None = "head",
                   admin_url: str = DEFAULT_POSTGRES_URL, label: str = "db") -> Iterator[str]:
    """A new, empty database for this run, migrated with ``marketplace.migrate.upgrade`` to
    ``revision`` (None: not migrated). Yields its SQLAlchemy URL; dropped (PostgreSQL) or
    deleted (SQLite) on exit. Dispose of your engines before leaving the block."""
    if backend == "sqlite":
        with fresh_sqlite(tmpdir, revision=revision, label=label) as url:
            yield url
    elif backend == "postgres":
        with fresh_postgres(admin_url, revision=revision, label=label) as url:
            yield url
    else:
        raise BenchmarkError(f"unknown backend {backend!r}")


@contextmanager
def fresh_sqlite(tmpdir: Path, *, revision: str | None = "head", label: str = "db") -> Iterator[str]:
    path = Path(tmpdir) / f"{label}_{uuid.uuid4().hex[:8]}.sqlite3"
    url = f"sqlite:///{path}"
    try:
        if revision is not None:
            migrate(url, revision)
        yield url
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def fresh_postgres(admin_url: str = DEFAULT_POSTGRES_URL, *, revision: str | None = "head",
                   label: str = "db") -> Iterator[str]:
    import psycopg

    name = f"{DB_PREFIX}{_safe(label)}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(_libpq_url(admin_url), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise BenchmarkError(f"cannot create PostgreSQL database {name}: {exc}") from exc
    url = _sqlalchemy_url(admin_url, name)
    try:
        if revision is not None:
            migrate(url, revision)
        yield url
    finally:
        try:
            with psycopg.connect(_libpq_url(admin_url), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error as exc:
            print(f"warning: could not drop scratch database {name}: {exc}", file=sys.stderr)


def migrate(url: str, revision: str = "head") -> None:
    """Migrate with the project's Alembic migrations: the only way any schema is created."""
    from marketplace.migrate import upgrade

    try:
        try:
            upgrade(url, revision)
        except Exception as exc:
            if revision != "head" or "Multiple head revisions" not in str(exc):
                raise
            # Two branches of migrations not merged yet: migrate them all, and say so.
            print(f"warning: the migrations have several heads ({exc}); migrating to 'heads'",
                  file=sys.stderr)
            upgrade(url, "heads")
    except Exception as exc:
        raise BenchmarkError(f"migrating {_redact(url)} to {revision} failed: "
                             f"{type(exc).__name__}: {exc}") from exc


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in label.lower())[:20]


def _libpq_url(url: str) -> str:
    """psycopg takes postgresql://, not SQLAlchemy's postgresql+psycopg://."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgres") else url


def _sqlalchemy_url(admin_url: str, database: str) -> str:
    base, _, tail = _libpq_url(admin_url).rpartition("/")
    query = tail.partition("?")[2]
    return f"{base}/{database}" + (f"?{query}" if query else "")


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")
        if ":" in creds:
            return f"{scheme}://{creds.partition(':')[0]}:***@{host}"
    return url


# -- timing ---------------------------------------------------------------------------------


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed: ...``; ``elapsed()`` gives seconds, frozen at exit."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


@dataclass
class Measurement:
    """The timings of one task in an alternating run: per round, the seconds of the whole
    round and of each call."""

    name: str
    iterations: int
    round_seconds: list[float] = field(default_factory=list)
    call_seconds: list[list[float]] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return len(self.round_seconds)

    @property
    def round_rates(self) -> list[float]:
        """Operations per second in each round."""
        return [self.iterations / s if s > 0 else math.inf for s in self.round_seconds]

    @property
    def median_rate(self) -> float:
        """Median over the rounds of operations per second."""
        return statistics.median(self.round_rates)

    @property
    def median_seconds_per_call(self) -> float:
        """Median over the rounds of each round's mean time per call."""
        return statistics.median(s / self.iterations for s in self.round_seconds)

    @property
    def median_call(self) -> float:
        """Median over every single call (robust to a few slow calls)."""
        return statistics.median(c for calls in self.call_seconds for c in calls)

    @property
    def spread(self) -> float:
        """(max - min) / median of the round rates: how noisy the rounds were."""
        rates = self.round_rates
        mid = statistics.median(rates)
        return (max(rates) - min(rates)) / mid if mid else math.inf


def round_ratios(measured: Measurement, baseline: Measurement) -> list[float]:
    """Per round, ``measured``'s operations per second over ``baseline``'s (for rates)."""
    return [a / b if b > 0 else math.inf
            for a, b in zip(measured.round_rates, baseline.round_rates, strict=True)]


def time_ratios(measured: Measurement, baseline: Measurement) -> list[float]:
    """Per round, ``measured``'s mean time per call over ``baseline``'s (for ms/op figures)."""
    return [(a / measured.iterations) / (b / baseline.iterations) if b > 0 else math.inf
            for a, b in zip(measured.round_seconds, baseline.round_seconds, strict=True)]


def alternate(tasks: dict[str, Callable[[], object]], *, rounds: int, iterations: int,
              warmup: int = 0, per_call: bool = True,
              resets: dict[str, Callable[[], object]] | None = None) -> dict[str, Measurement]:
    """Time ``tasks`` side by side: in each of ``rounds`` rounds, run each task ``iterations``
    times in a row. The order of the tasks rotates from round to round so that neither always
    goes first. ``warmup`` untimed calls of each task come before round 1. ``resets[name]``
    (untimed) runs after every call of that task, e.g. to restore the state it consumed."""
    names = list(tasks)
    resets = resets or {}
    results = {name: Measurement(name, iterations) for name in names}
    for name in names:
        for _ in range(warmup):
            tasks[name]()
            _reset(resets, name)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            task = tasks[name]
            calls: list[float] = []
            total = 0.0
            for _ in range(iterations):
                start = time.perf_counter()
                task()
                took = time.perf_counter() - start
                total += took
                if per_call:
                    calls.append(took)
                _reset(resets, name)
            results[name].round_seconds.append(total)
            results[name].call_seconds.append(calls)
    return results


def _reset(resets: dict[str, Callable[[], object]], name: str) -> None:
    reset = resets.get(name)
    if reset is not None:
        reset()


def interleave(tasks: dict[str, Callable[[], object]], *, rounds: int, iterations: int,
               warmup: int = 0,
               resets: dict[str, Callable[[], object]] | None = None) -> dict[str, Measurement]:
    """Like :func:`alternate`, but the tasks take turns call by call (A B A B ...; the order
    swaps every round). Best when each call is slow and the state drifts as calls accumulate:
    both sides then see the same drift."""
    names = list(tasks)
    resets = resets or {}
    results = {name: Measurement(name, iterations) for name in names}
    for name in names:
        for _ in range(warmup):
            tasks[name]()
            _reset(resets, name)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        calls: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(iterations):
            for name in order:
                start = time.perf_counter()
                tasks[name]()
                calls[name].append(time.perf_counter() - start)
                _reset(resets, name)
        for name in names:
            results[name].round_seconds.append(sum(calls[name]))
            results[name].call_seconds.append(calls[name])
    return results


# -- targets and results --------------------------------------------------------------------

UNSTABLE_SPREAD = 0.30
"""Per-round ratios further apart than this (relative to their median) make a figure UNSTABLE."""


@dataclass(frozen=True)
class Target:
    """What the ratio must be: ``>= value`` or ``<= value``."""

    op: str
    value: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.value if self.op == ">=" else ratio <= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


def at_least(value: float) -> Target:
    return Target(">=", value)


def at_most(value: float) -> Target:
    return Target("<=", value)


@dataclass
class Result:
    """One line of the report: a measured figure, its baseline, their ratio, the verdict."""

    benchmark: str
    backend: str
    measured: float
    baseline: float
    unit: str
    target: Target | None = None
    measured_label: str = ""
    baseline_label: str = ""
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    flag: str | None = None
    """Shown instead of PASS/MISS/INFO when the figure is only a bound (e.g. "TIMEOUT")."""
    round_ratios: list[float] = field(default_factory=list)
    """measured / baseline in each round; when given, the ratio is their median."""

    @property
    def ratio(self) -> float:
        if self.error is not None:
            return math.nan
        if self.round_ratios:
            return statistics.median(self.round_ratios)
        if self.baseline == 0:
            return math.nan
        return self.measured / self.baseline

    @property
    def spread(self) -> float:
        """(max - min) / median of the per-round ratios; NaN with fewer than two rounds."""
        if len(self.round_ratios) < 2:
            return math.nan
        middle = statistics.median(self.round_ratios)
        if not middle or any(math.isinf(r) for r in self.round_ratios):
            return math.inf
        return (max(self.round_ratios) - min(self.round_ratios)) / middle

    @property
    def unstable(self) -> bool:
        spread = self.spread
        return not math.isnan(spread) and spread > UNSTABLE_SPREAD

    @property
    def status(self) -> str:
        if self.error is not None:
            return "ERROR"
        if self.flag is not None:
            return self.flag
        if self.target is None:
            return "INFO"
        if self.unstable:
            return "UNSTABLE"
        return "PASS" if self.target.met(self.ratio) else "MISS"

    @classmethod
    def failed(cls, benchmark: str, backend: str, error: str) -> Result:
        return cls(benchmark, backend, math.nan, math.nan, "", error=error)


def format_number(value: float, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit.startswith("ms") or unit.startswith("µs"):
        text = f"{value:,.3f}" if value < 10 else f"{value:,.2f}"
    elif abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.3g}"
    return f"{text} {unit}".strip()


def print_table(results: Sequence[Result], *, title: str = "", out: TextIO = sys.stdout,
                order: Sequence[str] = ()) -> None:
    """A plain-text table: benchmark, backend, measured, baseline, ratio, target, verdict; then
    each result's notes (what exactly was measured against what). Rows of one benchmark are
    grouped (e.g. PostgreSQL then SQLite): benchmarks named in ``order`` first, in that order,
    then the others in the order they ran."""
    header = ("benchmark", "backend", "measured", "baseline", "ratio", "spread", "target",
              "result")
    first_seen: dict[str, int] = {name: i for i, name in enumerate(order)}
    for r in results:
        first_seen.setdefault(r.benchmark, len(first_seen))
    results = sorted(results, key=lambda r: first_seen[r.benchmark])
    rows = []
    for r in results:
        rows.append((
            r.benchmark, r.backend,
            format_number(r.measured, r.unit), format_number(r.baseline, r.unit),
            "-" if math.isnan(r.ratio) else f"{r.ratio:.3f}",
            "-" if math.isnan(r.spread) else "inf" if math.isinf(r.spread) else f"{r.spread:.0%}",
            str(r.target) if r.target else "(report)",
            r.status,
        ))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 4, 5}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    if title:
        print(f"\n{title}", file=out)
    rule = "-" * len(line(header))
    print(rule, file=out)
    print(line(header), file=out)
    print(rule, file=out)
    for row in rows:
        print(line(row), file=out)
    print(rule, file=out)
    for number, r in enumerate(results, 1):
        details = []
        if r.measured_label or r.baseline_label:
            details.append(f"measured: {r.measured_label}; baseline: {r.baseline_label}")
        if r.round_ratios:
            details.append("per-round ratios " + ", ".join(f"{x:.3g}" for x in r.round_ratios)
                           + (f" (spread {r.spread:.0%} > {UNSTABLE_SPREAD:.0%}: UNSTABLE)"
                              if r.unstable else ""))
        if r.error:
            details.append(f"ERROR: {r.error}")
        details.extend(r.notes)
        if details:
            print(f"[{number}] {r.benchmark} ({r.backend})", file=out)
            for d in details:
                print(f"    {d}", file=out)


class Report:
    """Collects results (and failures) across a run and prints the final table."""

    def __init__(self, title: str, *, out: TextIO = sys.stdout, order: Sequence[str] = ()) -> None:
        self.title = title
        self.out = out
        self.order = tuple(order)
        self.results: list[Result] = []
        self.notes: list[str] = []

    def add(self, result: Result) -> Result:
        self.results.append(result)
        return result

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"note: {text}", file=self.out, flush=True)

    def progress(self, text: str) -> None:
        print(f"  .. {text}", file=self.out, flush=True)

    @contextmanager
    def guard(self, benchmark: str, backend: str) -> Iterator[None]:
        """Run one benchmark; if it raises, record it as an ERROR row and carry on."""
        try:
            yield
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            lines = str(exc).strip().splitlines() or [""]
            detail = f"{type(exc).__name__}: {lines[0][:300]}"
            traceback.print_exc(file=sys.stderr)
            self.add(Result.failed(benchmark, backend, detail))

    @property
    def failed(self) -> bool:
        return any(r.status == "ERROR" for r in self.results) or not self.results

    def finish(self) -> int:
        """Print the table and the summary; 0 if every benchmark ran (PASS or MISS), else 1."""
        print_table(self.results, title=self.title, out=self.out, order=self.order)
        for text in self.notes:
            print(f"note: {text}", file=self.out)
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no results", file=self.out)
        if self.failed:
            print("some benchmarks could not run: exit status 1", file=self.out)
            return 1
        return 0
