"""Kilogram benchmark: kilogram retirements per second through the API, on PostgreSQL with 16
concurrent clients, against whole-tonne retirements through the same API in the same run.

Two figures, each over HTTP to a real gunicorn server (``wsgi:app``, configured by ``CARBON_*``
variables like a deployment), from an organisation's live key:

1. **20 retirements a request** (the target, >= 5: batching must pay). Both sides send
   ``POST /api/v1/orders`` with 20 lines, ``action: retire``, paid with the saved payment
   method (the demo gateway's signed webhook): 20 lines of 1 t each (each line becomes its own
   transfer and retirement entries, written under the chain head's lock), against 20 lines of
   2.5 kg each (each line becomes its own allocation, taken from the project's kilogram pool
   under the pool's lock, and sealed with others into one ``allocate`` entry by whichever
   request is free to seal; the pool refills itself with whole tonnes as it runs low). This is
   how a shipping platform or a booking flow calls: a batch of parcels or tickets a call.
2. **one retirement a request** (reported, no target): ``POST /api/v1/retirements`` of 1 t
   the organisation holds (one ``retire`` entry), against 2.5 kg of the pool billed on the
   monthly statement. On a small machine both are bound by the cost of an HTTP request
   through Flask, which the ledger's batching cannot remove.

Each round runs both sides of a figure, alternating which goes first, for the same number of
seconds with 16 client threads (one keep-alive connection each). A figure is the median of
the per-round ratios (kilograms / tonnes per second), printed with their spread. Every answer
must be a 201 (fulfilled); after the run every allocation is sealed, the ledger verifies, and
the grams allocated in it equal the grams sold.

Run with ``python -m benchmarks kilograms`` (``--quick``; ``--clients``, ``--workers``).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import threading
import time
import uuid
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
from .web_bench import Client, gunicorn

FIGURE = "kg vs t retirements / s, 20 a request (16 clients)"
SINGLE = "kg vs t retirements / s, 1 a request (16 clients)"
GRAMS = 2_500
LINES = 20
DETAILS = {"beneficiary": "Bench Parcels Ltd", "purpose": "voluntary", "country": "GB",
           "period_start": "2026-01-01", "period_end": "2026-12-31"}


@dataclass(frozen=True)
class Sizes:
    rounds: int
    seconds: float
    warmup: float


FULL = Sizes(rounds=5, seconds=4.0, warmup=1.0)
QUICK = Sizes(rounds=3, seconds=2.0, warmup=0.5)


def prepare(url: str, tmp: Path, tonnes_held: int) -> tuple[str, int]:
    """Demo data, an organisation with a live key holding ``tonnes_held`` t of Alto Mayo, and
    the project id. Returns (secret, project id)."""
    from sqlalchemy import select

    from ledger import operations
    from ledger.schema import Project
    from marketplace import create_app, demo
    from marketplace.accounts import account_of
    from marketplace.api import keys
    from marketplace.auth import create_user
    from marketplace.checkout import inventory_account
    from marketplace.database import db
    from marketplace.orgs import create_organisation

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "PAYMENT_GATEWAY": "demo"})
    with app.app_context():
        with db.session.begin():
            demo.load(db.session)
        with db.session.begin():
            user = create_user("Bench Admin", f"bench-{uuid.uuid4().hex[:8]}@example.org",
                               "bench password 123")
            org = create_organisation("Bench Parcels Ltd", user)
            _, secret = keys.create_key(db.session, organisation=org, user=user, name="bench",
                                        livemode=True)
            project = db.session.scalar(select(Project.id).where(Project.registry_id == "944"))
            assert project is not None
            operations.transfer(db.session, from_account=inventory_account(db.session).id,
                                to_account=account_of(db.session, org).id,
                                quantity=tonnes_held, project_id=project)
    return secret, int(project)


def _request(port: int, secret: str, body: dict[str, Any],
             path: str = "/api/v1/retirements") -> bytes:
    payload = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n")
    return head.encode() + payload


def run_phase(port: int, request: bytes, clients: int, seconds: float
              ) -> tuple[int, float, list[str]]:
    """``clients`` threads send ``request`` until ``seconds`` pass; (201s, the seconds until
    the last answer came back, other answers). Requests sent before the deadline are waited
    for and counted, over the time they really took. An order must come back fulfilled."""
    order = request.startswith(b"POST /api/v1/orders ")
    done = [0] * clients
    errors: list[str] = []
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def work(i: int) -> None:
        with Client(port) as client:
            start.wait()
            while time.perf_counter() < stop_at[0]:
                status, body = client.raw(request)
                if status == 201 and (not order or b'"status": "fulfilled"' in body):
                    done[i] += 1
                else:
                    errors.append(f"{status}: {body[:200]!r}")
                    return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + seconds
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return sum(done), elapsed, errors


def bench(report: Report, backend: str, url: str, tmp: Path, sizes: Sizes, clients: int,
          workers: int, threads: int) -> None:
    import os

    os.environ.setdefault("CARBON_API_RATE_LIMIT", "100000000 per minute")
    os.environ.setdefault("CARBON_POOL_REFILL_TONNES", "20")
    secret, project = prepare(url, tmp, tonnes_held=200_000)
    retire = {"action": "retire", **DETAILS}
    with gunicorn(url, tmp, workers=workers, threads=threads, secret=secrets.token_hex(8),
                  app_spec="benchmarks.kilograms_bench:bench_app()") as server:
        port = server.port
        figures = {
            FIGURE: {
                "tonnes": (_request(port, secret, {
                    "lines": [{"project": project, "quantity": 1}] * LINES, **retire},
                    "/api/v1/orders"), LINES),
                "kilograms": (_request(port, secret, {
                    "lines": [{"project": project, "mass": {"amount": GRAMS, "unit": "g"}}]
                    * LINES, **retire}, "/api/v1/orders"), LINES),
            },
            SINGLE: {
                "tonnes": (_request(port, secret, {"quantity": 1, "project": project,
                                                   **DETAILS}), 1),
                "kilograms": (_request(port, secret, {
                    "project": project, "mass": {"amount": GRAMS, "unit": "g"}, **DETAILS}), 1),
            },
        }
        for figure, phases in figures.items():
            for name, (request, _) in phases.items():
                _, _, errors = run_phase(port, request, clients, sizes.warmup)
                if errors:
                    raise BenchmarkError(f"{name}: {errors[0]}\n{server.log_tail()}")
            rates: dict[str, list[float]] = {"tonnes": [], "kilograms": []}
            for r in range(sizes.rounds):
                order = list(phases) if r % 2 == 0 else list(reversed(phases))
                for name in order:
                    request, per_request = phases[name]
                    count, elapsed, errors = run_phase(port, request, clients, sizes.seconds)
                    if errors:
                        raise BenchmarkError(f"{name}: {errors[0]}\n{server.log_tail()}")
                    rates[name].append(count * per_request / elapsed)
                report.progress(f"{figure}, round {r + 1}: {rates['tonnes'][-1]:.0f} tonne and "
                                f"{rates['kilograms'][-1]:.0f} kilogram retirements/s")
            ratios = [k / t for k, t in zip(rates["kilograms"], rates["tonnes"], strict=True)]
            ratio = statistics.median(ratios)
            result = Result(figure, backend, measured=ratio, baseline=1.0, unit="x",
                            target=at_least(5.0) if figure == FIGURE else None,
                            measured_label=f"{statistics.median(rates['kilograms']):,.0f} "
                                           "kg retirements/s",
                            baseline_label=f"{statistics.median(rates['tonnes']):,.0f} "
                                           "t retirements/s",
                            round_ratios=ratios)
            result.notes.append(f"{clients} clients, gunicorn {workers} workers x {threads} "
                                "threads")
            report.add(result)
    report.note(check(url))


def check(url: str) -> str:
    """Verify the ledger after the run and say how the allocations were batched."""
    from sqlalchemy import func, select

    from ledger import audit
    from ledger.schema import AllocationDraw, Entry
    from marketplace import create_app
    from marketplace.database import db
    from marketplace.models.pools import KgAllocation

    from marketplace import kilograms

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    with app.app_context():
        # What the server's sealer threads had not sealed when it stopped (at most a second's
        # worth), as 'flask pool seal' would.
        late = kilograms.seal_due(db.session, force=True)
    with app.app_context(), db.session.begin():
        audit.verify(db.session)
        waiting = db.session.scalar(select(func.count()).select_from(KgAllocation)
                                    .where(KgAllocation.state != "sealed"))
        if waiting:
            raise BenchmarkError(f"{waiting} kilogram allocations were left unsealed")
        sold = db.session.scalar(select(func.coalesce(func.sum(KgAllocation.grams), 0)))
        allocated = db.session.scalar(select(func.coalesce(func.sum(AllocationDraw.grams), 0)))
        if sold != allocated:
            raise BenchmarkError(f"{sold} g sold but {allocated} g allocated in the ledger")
        batches = db.session.scalar(select(func.count()).select_from(Entry)
                                    .where(Entry.kind == "allocate"))
        count = db.session.scalar(select(func.count()).select_from(KgAllocation))
        pools = db.session.scalar(select(func.count()).select_from(Entry)
                                  .where(Entry.kind == "pool"))
    return (f"ledger verified: {count:,} kg allocations in {batches:,} allocate entries "
            f"({count / max(1, batches):.1f} a batch), {pools} pool refills; {late} sealed "
            "after the server stopped")


def bench_app() -> Any:
    """``gunicorn 'benchmarks.kilograms_bench:bench_app()'``: the deployment's app with a bare
    route for the server's readiness check."""
    from .web_bench import bench_app as web_app

    return web_app()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks kilograms",
                                     description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    backends = resolve_backends("postgres" if args.backend == "both" else args.backend,
                                args.postgres_url)
    report = Report("kilograms")
    with bench_tmpdir() as tmp:
        for backend in backends.run:
            with report.guard(FIGURE, backend):
                with fresh_database(backend, tmp, admin_url=args.postgres_url) as url:
                    bench(report, backend, url, tmp, sizes, args.clients, args.workers,
                          args.threads)
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
