"""API benchmark: a company's order-and-retire round trip through ``/api/v1``, per second,
against a bare JSON route on the same app, measured side by side in one run.

One round trip is what an expense tool or a booking flow does for each purchase:

1. ``POST /api/v1/quotes``  {"project": Alto Mayo, "quantity": 2}: priced, 2 t reserved;
2. ``POST /api/v1/orders``  {"quote": ..., "action": "hold"} with an Idempotency-Key: paid
   through the demo gateway's signed webhook (the same fulfilment path as Stripe's), the
   tonnes transferred to the organisation in the ledger;
3. ``POST /api/v1/retirements`` 2 t for a beneficiary, with an Idempotency-Key: retired in
   the ledger, with its certificate links.

Each step is checked (201). The baseline is ``GET`` of a route returning ``{"ok": true}``
registered on the same app, through the same in-process WSGI client (so neither side pays for
a network or an HTTP server). The API key check, the rate-limit bookkeeping (limiter enabled,
limit high enough never to trip) and the webhook outbox run as in production.

Run with ``python -m benchmarks.api_bench`` (``--quick`` for a smoke run); DESIGN asks for the
PostgreSQL figure, SQLite is measured too when asked (``--backend both``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

from .common import (
    BenchmarkError,
    Report,
    Result,
    round_ratios,
    add_common_arguments,
    alternate,
    bench_tmpdir,
    fresh_database,
    resolve_backends,
    stopwatch,
)

ROUND_TRIP = "API order-and-retire round trip"
QUICK = {"rounds": 3, "iterations": 10, "warmup": 2}
FULL = {"rounds": 5, "iterations": 60, "warmup": 5}


def build_app(url: str, tmp: Path) -> tuple[Any, str, int]:
    """The app on a migrated database with the demo data, an organisation and a live key."""
    from flask import jsonify

    from ledger.checkpoint import write_keypair
    from marketplace import create_app, demo
    from marketplace.api import keys, register
    from marketplace.auth import create_user
    from marketplace.database import db
    from marketplace.orgs import create_organisation

    signer, _ = write_keypair(tmp, f"bench-{uuid.uuid4().hex[:6]}")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "PAYMENT_GATEWAY": "demo",
                      "STRIPE_WEBHOOK_SECRET": "whsec_bench", "CHECKPOINT_KEY": str(signer),
                      "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://",
                      "API_RATE_LIMIT": "1000000 per minute", "WTF_CSRF_ENABLED": False})
    if "api" not in app.blueprints:
        register(app)
    app.add_url_rule("/bench/bare", "bench_bare", lambda: jsonify(ok=True))
    with app.app_context(), db.session.begin():
        demo.load(db.session)
        user = create_user("Bench Admin", f"bench-{uuid.uuid4().hex[:8]}@example.org",
                           "bench password 123")
        org = create_organisation("Bench Travel Ltd", user)
        _, secret = keys.create_key(db.session, organisation=org, user=user, name="bench",
                                    livemode=True)
        from ledger.schema import Project
        from sqlalchemy import select

        project = db.session.scalar(select(Project.id).where(Project.registry_id == "944"))
    assert project is not None
    return app, secret, int(project)


def _expect(response: Any, status: int, step: str) -> dict[str, Any]:
    if response.status_code != status:
        raise BenchmarkError(f"{step} answered {response.status_code}: "
                             f"{response.get_data(as_text=True)[:300]}")
    body: dict[str, Any] = response.get_json()
    return body


def bench_round_trip(report: Report, backend: str, url: str, tmp: Path,
                     sizes: dict[str, int]) -> None:
    import time

    from marketplace.database import db

    app, secret, project = build_app(url, tmp)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    steps: dict[str, list[float]] = {"quote": [], "order": [], "retire": []}
    retirement = {"quantity": 2, "beneficiary": "Bench Traveller", "purpose": "travel",
                  "country": "GB", "period_start": "2025-01-01", "period_end": "2025-12-31"}

    def round_trip() -> None:
        t0 = time.perf_counter()
        quote = _expect(client.post("/api/v1/quotes", json={"project": project, "quantity": 2},
                                    headers=headers), 201, "quote")
        t1 = time.perf_counter()
        order = _expect(client.post("/api/v1/orders", json={"quote": quote["id"],
                                                            "action": "hold"},
                                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex}),
                        201, "order")
        if order["status"] != "fulfilled":
            raise BenchmarkError(f"the order was not fulfilled: {order['status']}")
        t2 = time.perf_counter()
        _expect(client.post("/api/v1/retirements", json=retirement,
                            headers={**headers, "Idempotency-Key": uuid.uuid4().hex}),
                201, "retire")
        t3 = time.perf_counter()
        steps["quote"].append(t1 - t0)
        steps["order"].append(t2 - t1)
        steps["retire"].append(t3 - t2)

    def bare() -> None:
        _expect(client.get("/bench/bare"), 200, "bare route")

    try:
        report.progress(f"{backend}: {sizes['rounds']} rounds x {sizes['iterations']} round "
                        "trips / bare requests")
        timing = alternate({"trip": round_trip, "bare": bare}, rounds=sizes["rounds"],
                           iterations=sizes["iterations"], warmup=sizes["warmup"])
        trip, base = timing["trip"], timing["bare"]
        with app.app_context():
            from ledger import audit

            with db.session.begin():
                verified = audit.verify(db.session)
        result = report.add(Result(
            ROUND_TRIP, backend, trip.median_rate, base.median_rate, "/s", None,
            measured_label="quote -> order (hold, paid by the demo gateway's signed webhook) "
                           "-> retire 2 t, three POSTs with an API key",
            baseline_label="GET of a bare JSON route on the same app and client",
            round_ratios=round_ratios(trip, base),
        ))
        result.notes.append(
            f"{sizes['rounds']} rounds x {sizes['iterations']}, medians; round trips/s per "
            f"round {', '.join(f'{r:.1f}' for r in trip.round_rates)}; bare requests/s "
            f"{', '.join(f'{r:.0f}' for r in base.round_rates)}")
        result.notes.append(
            "median ms per step: " + ", ".join(
                f"{name} {statistics.median(times) * 1e3:.1f}" for name, times in steps.items())
            + f"; per API request {trip.median_seconds_per_call * 1e3 / 3:.1f} ms vs bare "
              f"{base.median_call * 1e3:.2f} ms")
        result.notes.append(f"ledger verified OK afterwards: {verified.summary()}"
                            if hasattr(verified, "summary") else "ledger verified OK afterwards")
    finally:
        engine = app.extensions.get("selva_engine")
        if engine is not None:
            engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api_bench",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser)
    parser.set_defaults(backend="postgres")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    report = Report(f"API benchmark ({'quick' if args.quick else 'full'} run): ratios measured "
                    "side by side in this run", order=(ROUND_TRIP,))
    try:
        backends = resolve_backends(args.backend, args.postgres_url)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    for text in backends.notes:
        report.note(text)
    with stopwatch() as total, bench_tmpdir() as tmp:
        for backend in backends.run:
            with report.guard(ROUND_TRIP, backend):
                with fresh_database(backend, tmp, admin_url=args.postgres_url,
                                    label="api") as url:
                    bench_round_trip(report, backend, url, tmp, sizes)
    report.note(f"total time {total():.0f} s")
    status = report.finish()
    if status:
        raise SystemExit(status)
    return 0


if __name__ == "__main__":
    main()
