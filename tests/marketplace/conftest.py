"""Fixtures for the storefront and back-office tests: an app on a fresh database (SQLite and
PostgreSQL) holding the demo ledger and the demo listings, a client, and logins by role.

Test modules may define their own ``app``; these are the defaults for the catalogue and
operator tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from ledger.db import make_engine
from marketplace import create_app, demo
from marketplace.auth import create_user
from marketplace.database import db
from marketplace.listings_demo import load_listings

PASSWORD = "a long test password"
_HASH = generate_password_hash(PASSWORD)  # once per run: scrypt is slow on purpose

CONFIG = {"SECRET_KEY": "test", "STRIPE_WEBHOOK_SECRET": "whsec_test",
          "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False, "POOL_SEAL_SECONDS": 0,
          "CHECKPOINT_SIGNING": "request"}


def make_app(url: str, **overrides: Any) -> Flask:
    return create_app({"DATABASE_URL": url, **CONFIG, **overrides})


def dispose(app: Flask) -> None:
    bind = app.extensions["selva_db"].kw.get("bind")
    if bind is not None and hasattr(bind, "dispose"):
        bind.dispose()


@contextmanager
def transaction(app: Flask) -> Iterator[Session]:
    """One transaction, as a view opens it."""
    with app.app_context(), db.session.begin():
        yield db.session


@pytest.fixture(scope="module")
def demo_url(databases: Any, backend: str) -> str:
    """A database holding the demo ledger and listings, made once per module and backend."""
    url: str = databases.fresh(backend)
    app = make_app(url)
    with transaction(app) as session:
        demo.load(session)
        load_listings(session)
    db.dispose_all()
    return url


@pytest.fixture
def app(demo_url: str) -> Iterator[Flask]:
    """The app on the demo database, every session inside one transaction that is rolled back
    after the test (as the ledger tests run): what a test writes, commits included, is gone
    before the next one starts. Tests that need commits other connections can see (threads,
    test mode, the browser) make their own app on ``fresh_url``."""
    engine = make_engine(demo_url)
    connection = engine.connect()
    outer = connection.begin()
    try:
        yield make_app(demo_url, DATABASE_BIND=connection)
    finally:
        outer.rollback()
        connection.close()
        engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def add_user(app: Flask, email: str, role: str = "customer", name: str = "Test User") -> int:
    with transaction(app):
        user = create_user(name, email, "placeholder password", role=role)
        user.password_hash = _HASH
        db.session.flush()
        return user.id


@pytest.fixture
def login_as(app: Flask, client: FlaskClient) -> Callable[[str], FlaskClient]:
    """``login_as("operator")``: create a user with that role and log the client in."""

    def login(role: str) -> FlaskClient:
        email = f"{role}@example.org"
        add_user(app, email, role=role)
        response = client.post("/login", data={"email": email, "password": PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return client

    return login
