"""Fixtures and helpers for the API tests (no tests here).

One app per test module and backend, on a fresh database holding the demo ledger and
listings, with a checkpoint key; each test makes its own organisation (with a live key, a test
key and a read-only key), so tests share the app but never each other's objects.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ledger.checkpoint import write_keypair
from ledger.schema import Block, Entry
from marketplace.accounts import account_of
from marketplace.api import keys
from marketplace.auth import create_user
from marketplace.checkout import for_sale_by_batch
from marketplace.models import Membership, Order, Reservation
from marketplace.orgs import create_organisation

from .shop import _HASH, PASSWORD, load_demo, make_app, transaction

ALTO_MAYO = 1
TAMBOPATA_REGISTRY = "1001"
RETIRE = {"action": "retire", "beneficiary": "Acme Travel Ltd", "purpose": "travel",
          "country": "GB", "period_start": "2025-01-01", "period_end": "2025-12-31"}


def signer_for_test_mode(signer: Path) -> Path:
    """The test ledger's signer key, made beside the live one on first use."""
    test_key = signer.parent / "selva.example_test-ledger.key"
    if not test_key.exists():
        write_keypair(signer.parent, "selva.example/test-ledger")
    return test_key


def api_app_for(url: str, signer: Path, **overrides: Any) -> Flask:
    overrides.setdefault("TEST_CHECKPOINT_KEY", str(signer_for_test_mode(signer)))
    return make_app(url, CHECKPOINT_KEY=str(signer), **overrides)


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_keypair(tmp_path_factory.mktemp("keys"), "selva.example/ledger")


@pytest.fixture(scope="module")
def app(databases: Any, backend: str, keypair: tuple[Path, Path]) -> Iterator[Flask]:
    app = api_app_for(databases.fresh(backend), keypair[0])
    load_demo(app)
    yield app
    engine = app.extensions.get("selva_engine")
    if engine is not None:
        engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Company:
    org_id: int
    user_id: int
    email: str
    account_id: int
    live: str
    test: str
    read: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.live)

    @property
    def test_headers(self) -> dict[str, str]:
        return bearer(self.test)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def make_company(app: Flask, name: str = "Acme Travel Ltd") -> Company:
    email = f"admin-{uuid.uuid4().hex[:10]}@example.org"
    with transaction(app) as session:
        user = create_user("Ada Admin", email, "placeholder-password", confirmed=True)
        user.password_hash = _HASH
        org = create_organisation(name, user)
        live = keys.create_key(session, organisation=org, user=user, name="live",
                               livemode=True)[1]
        test = keys.create_key(session, organisation=org, user=user, name="test",
                               livemode=False)[1]
        read = keys.create_key(session, organisation=org, user=user, name="read",
                               livemode=True, scope="read")[1]
        return Company(org.id, user.id, email, account_of(session, org).id, live, test, read)


@pytest.fixture
def company(app: Flask) -> Company:
    return make_company(app)


def add_member(app: Flask, org_id: int, role: str = "member") -> str:
    email = f"member-{uuid.uuid4().hex[:10]}@example.org"
    with transaction(app) as session:
        user = create_user("Mo Member", email, "placeholder-password")
        user.password_hash = _HASH
        session.add(Membership(user_id=user.id, organisation_id=org_id, role=role))
    return email


def login(client: FlaskClient, email: str) -> None:
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]


def assert_problem(response: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status (and type)."""
    assert response.status_code == status, response.get_data(as_text=True)[:800]
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status and isinstance(body["title"], str)
    assert "Traceback" not in response.get_data(as_text=True)
    if slug == "about:blank":
        assert body["type"] == "about:blank"
    elif slug is not None:
        assert body["type"].endswith(f"/developers#problem-{slug}"), body["type"]
    return dict(body)


def pointers(body: dict[str, Any]) -> set[str]:
    return {e.get("pointer") or e.get("parameter") or e.get("header") for e in body["errors"]}


@dataclass(frozen=True)
class LedgerState:
    entries: int
    blocks: int
    orders: int
    reservations: int
    for_sale: dict[int, int]


def ledger_state(app: Flask) -> LedgerState:
    with transaction(app) as session:
        return LedgerState(
            int(session.scalar(select(func.count()).select_from(Entry)) or 0),
            int(session.scalar(select(func.count()).select_from(Block)) or 0),
            int(session.scalar(select(func.count()).select_from(Order)) or 0),
            int(session.scalar(select(func.count()).select_from(Reservation)) or 0),
            for_sale_by_batch(session))


def this_year() -> int:
    return dt.datetime.now(dt.UTC).year
