"""Footprint calculator benchmarks (issue 6), each a ratio measured side by side in one run:

1. the calculator's result page: ``GET /footprint/result?...`` for a footprint of one
   long-haul return flight, a year of driving, home electricity and gas, trains and a diet
   (every line computed, the SVG chart drawn, and the projects on sale read from the ledger
   for "offset this"), requests per second against a bare Flask route returning a short
   text, on the same server. Target >= 0.3.
2. the airport search: ``GET /footprint/airports?q=...`` (the autocomplete's JSON), cycling
   through a few typical queries, against the same bare route. Target >= 0.3.

The server is the real app (demo data loaded, the calculator registered) on a fresh database
of each backend, migrated to all heads, served by werkzeug's threaded server on 127.0.0.1 in
this process; requests are sent one at a time over HTTP by ``http.client``, the tasks taking
turns call by call (``common.interleave``: A B A B ...), and each ratio is the median of
per-round ratios. The bare route is
registered on the same app, so both sides pay the same server, the same Flask dispatch and
the same HTTP round trip; the ratio is what the calculator's work costs on top.

Run with ``python -m benchmarks.footprint_bench`` (``--quick``, ``--backend``).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

from .common import (
    BenchmarkError,
    Report,
    Result,
    round_ratios,
    add_common_arguments,
    interleave,
    at_least,
    bench_tmpdir,
    fresh_database,
    resolve_backends,
)

RESULT_PAGE = "calculator result page"
AIRPORT_SEARCH = "airport search"
TARGET = 0.3
FOOTPRINT = {
    "country": "GB", "rf": "with", "f0_from": "LHR", "f0_to": "LIM", "f0_trip": "return",
    "f0_cabin": "economy", "f0_trips": "1", "f1_from": "LHR", "f1_to": "CDG",
    "f1_trip": "return", "f1_cabin": "economy", "f1_trips": "2", "car_km": "12000",
    "car_fuel": "petrol", "car_size": "medium", "electricity_kwh": "2700",
    "gas_kwh": "11500", "rail_km": "1500", "diet": "medium_meat",
}
QUERIES = ("lim", "london", "par", "LHR", "frankfurt", "cus", "new york", "zur")


def _app(url: str) -> Any:
    from flask import Flask

    from marketplace import create_app, demo, footprint
    from marketplace.database import db
    from marketplace.listings_demo import load_listings

    app: Flask = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench",
                             "STRIPE_WEBHOOK_SECRET": "whsec_bench", "RATELIMIT_ENABLED": False,
                             "PAYMENT_GATEWAY": "demo"})
    if "footprint" not in app.blueprints:
        footprint.register(app)
    app.add_url_rule("/__bench/bare", "bench_bare", lambda: "ok")
    with app.app_context(), db.session.begin():
        demo.load(db.session)
        load_listings(db.session)
    return app


@contextmanager
def _served(app: Any) -> Iterator[int]:
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _getter(port: int, paths: Callable[[], str], expect: bytes) -> Callable[[], None]:
    def get() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("GET", paths())
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 200 or expect not in body:
            raise BenchmarkError(f"GET {paths()} answered {response.status}: {body[:200]!r}")
    return get


def run(backend: str, url: str, report: Report, *, rounds: int, iterations: int) -> None:
    app = _app(url)
    try:
        with _served(app) as port:
            result_path = "/footprint/result?" + urlencode(FOOTPRINT)
            queries = itertools.cycle(QUERIES)
            tasks = {
                "result": _getter(port, lambda: result_path, b"fp-total"),
                "airports": _getter(port, lambda: "/footprint/airports?q="
                                    + next(queries).replace(" ", "+"), b'"results"'),
                "bare": _getter(port, lambda: "/__bench/bare", b"ok"),
            }
            timing = interleave(tasks, rounds=rounds, iterations=iterations, warmup=5)
    finally:
        app.extensions["selva_engine"].dispose()
    bare = timing["bare"]
    for name, key, label in (
            (RESULT_PAGE, "result", "GET /footprint/result (2 flights, car, home, rail, diet; "
                                    "chart; projects on sale)"),
            (AIRPORT_SEARCH, "airports", f"GET /footprint/airports?q= cycling {len(QUERIES)} "
                                         "queries")):
        measured = timing[key]
        result = report.add(Result(
            name, backend, measured.median_rate, bare.median_rate, "req/s", at_least(TARGET),
            measured_label=label,
            baseline_label="GET /__bench/bare (a route returning 'ok') on the same server",
            round_ratios=round_ratios(measured, bare),
        ))
        result.notes.append(
            f"{rounds} rounds x {iterations} requests, one at a time over HTTP/1.0 to werkzeug's "
            f"threaded server in this process; median per-call {measured.median_call * 1000:.2f} "
            f"ms vs {bare.median_call * 1000:.2f} ms bare")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.footprint_bench",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    rounds, iterations = (3, 20) if args.quick else (5, 100)
    report = Report("footprint calculator", order=(RESULT_PAGE, AIRPORT_SEARCH))
    try:
        backends = resolve_backends(args.backend, args.postgres_url)
    except BenchmarkError as exc:
        print(f"error: {exc}")
        return 1
    for note in backends.notes:
        report.note(note)
    with bench_tmpdir() as tmp:
        for backend in backends.run:
            with report.guard(RESULT_PAGE, backend):
                with fresh_database(backend, tmp, revision="heads", admin_url=args.postgres_url,
                                    label="footprint") as url:
                    report.progress(f"{backend}: serving the calculator")
                    run(backend, url, report, rounds=rounds, iterations=iterations)
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
