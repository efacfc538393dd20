"""Certificates benchmark: a certificate PDF's second request against its first, side by side.

The first ``GET /registry/certificates/<seq>.pdf`` of a certificate renders it (WeasyPrint) and
stores it in ``certificate_pdfs``; every later request, while the certificate is unchanged,
builds the certificate document (its digest says whether the stored PDF is still its PDF) and
answers the stored bytes. Each round takes turns: the first request of a new certificate, then
a repeat request of one already rendered (A B A B ...). The figure is the median of per-round
ratios of repeat requests per second to first requests per second. Target >= 20.

Requests go through the app's test client in this process (the PDF work is all in the app), on
a fresh database with the demo data and one retirement per timed first request. The checks
after the timing: every PDF served twice was byte-identical, and each was rendered once.

Run with ``python -m benchmarks certificates`` (``--quick``, ``--backend``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from collections.abc import Iterator
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
    interleave,
    resolve_backends,
    round_ratios,
)

FIGURE = "certificate PDF: repeat vs first request"
TARGET = 20.0


def prepare(url: str, tmp: Path, count: int) -> tuple[Any, list[int]]:
    """An app on ``url`` with the demo data, ``count`` fresh retirements and a signed checkpoint
    covering them. Returns (app, their seqs)."""
    from ledger import operations
    from ledger.checkpoint import write_keypair
    from marketplace import create_app, demo, signing
    from marketplace.checkout import inventory_account
    from marketplace.database import db

    keys = tmp / f"keys_{uuid.uuid4().hex[:8]}"
    keys.mkdir()
    signer, _ = write_keypair(keys, "selva.example/ledger")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "PAYMENT_GATEWAY": "demo",
                      "CHECKPOINT_KEY": str(signer), "RATELIMIT_ENABLED": False})
    seqs: list[int] = []
    with app.app_context():
        with db.session.begin():
            demo.load(db.session)
        with db.session.begin():
            holder = operations.open_account(db.session, "bench-certificates", "customer")
            operations.transfer(db.session, from_account=inventory_account(db.session).id,
                                to_account=holder.id, quantity=count)
            for n in range(count):
                seqs.append(operations.retire(
                    db.session, account_id=holder.id, quantity=1,
                    beneficiary=f"Bench Beneficiary {n}", purpose="voluntary", country="GB",
                    period_start=dt.date(2025, 1, 1), period_end=dt.date(2025, 12, 31)).seq)
        with db.session.begin():
            signing.current_checkpoint(db.session)
    return app, seqs


def bench(report: Report, backend: str, url: str, tmp: Path, rounds: int,
          iterations: int) -> None:
    from marketplace import registry

    app, seqs = prepare(url, tmp, rounds * iterations + 1)
    renders: list[int] = []
    real = registry.pdf_from_html

    def counting(html: str) -> bytes:
        renders.append(1)
        return real(html)

    registry.pdf_from_html = counting  # type: ignore[assignment]
    client = app.test_client()
    fresh: Iterator[int] = iter(seqs[1:])
    served: dict[int, bytes] = {}
    last = [seqs[0]]

    def fetch(seq: int) -> bytes:
        response = client.get(f"/registry/certificates/{seq}.pdf")
        if response.status_code != 200 or not response.data.startswith(b"%PDF-"):
            raise BenchmarkError(f"GET /registry/certificates/{seq}.pdf answered "
                                 f"{response.status_code}: {response.data[:200]!r}")
        return bytes(response.data)

    def first() -> None:
        seq = next(fresh)
        served[seq] = fetch(seq)
        last[0] = seq

    def repeat() -> None:
        seq = last[0]
        if fetch(seq) != served[seq]:
            raise BenchmarkError(f"certificate {seq}'s PDF changed between two requests")

    try:
        served[seqs[0]] = fetch(seqs[0])  # warm up: fonts, templates, the first render
        report.progress(f"{backend}: {rounds} rounds x {iterations} first / repeat requests, "
                        "turn about")
        timing = interleave({"repeat": repeat, "first": first}, rounds=rounds,
                            iterations=iterations)
    finally:
        registry.pdf_from_html = real  # type: ignore[assignment]
        engine = app.extensions.get("selva_engine")
        if engine is not None:
            engine.dispose()
    if len(renders) != len(served):
        raise BenchmarkError(f"{len(served)} certificates were rendered {len(renders)} times")
    again, once = timing["repeat"], timing["first"]
    result = report.add(Result(
        FIGURE, backend, again.median_rate, once.median_rate, "req/s", at_least(TARGET),
        measured_label="GET .../<seq>.pdf of a certificate already rendered (stored PDF)",
        baseline_label="GET .../<seq>.pdf of a new certificate (rendered, then stored)",
        round_ratios=round_ratios(again, once),
    ))
    result.notes.append(
        f"median per request: repeat {again.median_call * 1e3:.1f} ms, first "
        f"{once.median_call * 1e3:.0f} ms; {len(served)} PDFs, each rendered once "
        f"({sum(map(len, served.values())) / len(served) / 1024:.0f} KiB on average)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks certificates",
                                     description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    rounds, iterations = (3, 3) if args.quick else (5, 8)
    backends = resolve_backends(args.backend, args.postgres_url)
    report = Report("certificates")
    for note in backends.notes:
        report.note(note)
    with bench_tmpdir() as tmp:
        for backend in backends.run:
            with report.guard(FIGURE, backend):
                with fresh_database(backend, tmp, admin_url=args.postgres_url) as url:
                    bench(report, backend, url, tmp, rounds, iterations)
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
