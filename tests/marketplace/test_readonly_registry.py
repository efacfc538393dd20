"""Registry reads are read-only (``CHECKPOINT_SIGNING`` ``worker``, the default): they serve the
newest signed checkpoint, say "retry shortly" for what no checkpoint covers yet, and write
nothing; the worker's next pass makes the certificate whole. On both databases."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from ledger import operations
from ledger.schema import SignedCheckpoint
from marketplace import checkout
from marketplace.worker import Worker

from .shop import load_demo, transaction
from .test_api_helpers import api_app_for, keypair  # noqa: F401


@pytest.fixture
def app(databases: Any, backend: str, keypair: tuple[Path, Path]) -> Iterator[Flask]:
    found = api_app_for(databases.fresh(backend), keypair[0], CHECKPOINT_SIGNING="worker")
    load_demo(found)
    yield found
    engine = found.extensions.get("selva_engine")
    if engine is not None:
        engine.dispose()


def _retire(app: Flask, quantity: int = 2) -> int:
    with transaction(app) as session:
        holder = operations.open_account(session, f"readonly-{quantity}", "customer")
        operations.transfer(session, from_account=checkout.inventory_account(session).id,
                            to_account=holder.id, quantity=quantity)
        return operations.retire(session, account_id=holder.id, quantity=quantity,
                                 beneficiary="Read Only Ltd", purpose="voluntary",
                                 country="GB", period_start=dt.date(2025, 1, 1),
                                 period_end=dt.date(2025, 12, 31)).seq


def _signed(app: Flask) -> tuple[int, int]:
    with transaction(app) as session:
        return (session.scalar(select(func.count()).select_from(SignedCheckpoint)) or 0,
                session.scalar(select(func.max(SignedCheckpoint.size))) or 0)


class _Writes:
    """Every INSERT, UPDATE or DELETE sent to any database while it is open."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.statements.append(statement)

    def __enter__(self) -> _Writes:
        event.listen(Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(Engine, "before_cursor_execute", self._seen)


def test_registry_reads_write_nothing_and_say_when_to_retry(app: Flask) -> None:
    signed_seq = _retire(app, 1)
    Worker(app, checkpoint_every=0).tick()  # the demo's entries and that one are signed
    count, size = _signed(app)
    assert size > 0
    seq = _retire(app)
    assert seq > size
    client = app.test_client()
    with _Writes() as writes:
        note = client.get("/ledger/checkpoint")
        page = client.get(f"/registry/certificates/{seq}")
        as_json = client.get(f"/registry/certificates/{seq}.json")
        pdf = client.get(f"/registry/certificates/{seq}.pdf")
        api = client.get(f"/api/v1/certificates/{seq}")
        api_note = client.get("/api/v1/checkpoint")
        journal = client.get("/ledger/journal.jsonl")
        older = client.get(f"/registry/certificates/{signed_seq}.json")
    assert writes.statements == []
    assert _signed(app) == (count, size)

    # The newest signed checkpoint, not a fresh one.
    assert note.status_code == 200 and f"\n{size}\n" in note.get_data(as_text=True)
    assert api_note.status_code == 200 and api_note.get_json()["size"] == size
    assert journal.headers["X-Checkpoint-Size"] == str(size)
    assert len(journal.get_data().splitlines()) == size
    # The retirement is recorded; its certificate says it is on its way, and when to look.
    assert page.status_code == 200 and page.headers["Retry-After"] == "5"
    body = page.get_data(as_text=True)
    assert "certificate on its way" in body and f'data-pending="{seq}"' in body
    assert 'http-equiv="refresh"' in body
    assert as_json.status_code == 202 and as_json.headers["Retry-After"] == "5"
    assert as_json.get_json()["status"] == "pending" and as_json.get_json()["quantity"] == 2
    assert pdf.status_code == 202 and pdf.mimetype == "text/html"
    assert api.status_code == 503 and api.headers["Retry-After"] == "5"
    assert api.get_json()["type"].endswith("#problem-not-signed-yet")
    # What an older checkpoint covers is served as before.
    assert older.status_code == 200 and signed_seq <= older.get_json()["tree_size"] <= size

    done = Worker(app, checkpoint_every=0).tick()
    assert done.signed["live"] >= seq and not done.errors
    cert = client.get(f"/registry/certificates/{seq}.json")
    assert cert.status_code == 200
    document = json.loads(cert.get_data())
    assert document["seq"] == seq and document["tree_size"] >= seq
    assert client.get(f"/registry/certificates/{seq}").status_code == 200
    assert client.get(f"/api/v1/certificates/{seq}").status_code == 200
    assert f"\n{done.signed['live']}\n" in client.get("/ledger/checkpoint").get_data(as_text=True)


def test_before_the_first_checkpoint_reads_answer_503_with_retry_after(app: Flask) -> None:
    assert _signed(app) == (0, 0)
    client = app.test_client()
    with _Writes() as writes:
        note = client.get("/ledger/checkpoint")
        api = client.get("/api/v1/checkpoint")
        manifest = client.get("/ledger/manifest.json")
    assert writes.statements == []
    assert note.status_code == 503 and note.headers["Retry-After"] == "5"
    assert "No checkpoint is signed yet" in note.get_data(as_text=True)
    assert api.status_code == 503 and api.headers["Retry-After"] == "5"
    assert manifest.status_code == 503
    assert _signed(app) == (0, 0)


def test_the_cli_and_the_worker_still_sign(app: Flask) -> None:
    seq = _retire(app, 3)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["ledger", "certificate", str(seq)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["tree_size"] >= seq
    assert _signed(app)[1] >= seq


def test_an_unknown_signing_mode_is_refused(tmp_path: Path) -> None:
    from marketplace import create_app
    from marketplace.config import ConfigError

    with pytest.raises(ConfigError, match="CARBON_CHECKPOINT_SIGNING must be worker or request"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "SECRET_KEY": "t",
                    "CHECKPOINT_SIGNING": "sometimes"})


def test_without_a_signing_key_reads_say_503_not_pending(databases: Any, backend: str,
                                                        tmp_path: Path) -> None:
    app = api_app_for(databases.fresh(backend), tmp_path / "missing.key",
                      CHECKPOINT_SIGNING="worker", TEST_CHECKPOINT_KEY=str(tmp_path / "no.key"))
    try:
        load_demo(app)
        client = app.test_client()
        assert client.get("/ledger/checkpoint").status_code == 503
        page = client.get("/registry/certificates/3")
        assert page.status_code == 503 and "on its way" not in page.get_data(as_text=True)
        assert client.get("/api/v1/certificates/3").status_code == 503
        assert "not-signed-yet" not in client.get("/api/v1/certificates/3").get_data(as_text=True)
    finally:
        engine = app.extensions.get("selva_engine")
        if engine is not None:
            engine.dispose()
