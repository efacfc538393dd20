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

from marketplace import create_app, demo
from marketplace.auth import create_user
from marketplace.database import db
from marketplace.listings_demo import load_listings

PASSWORD = "a long test password"
_HASH = generate_password_hash(PASSWORD)  # once per run: scrypt is slow on purpose

CONFIG = {"SECRET_KEY": "test", "STRIPE_WEBHOOK_SECRET": "whsec_test",
          "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False}


def wire(app: Flask) -> None:
    """Register the storefront and back office if the app factory does not (it does now;
    this keeps the fixtures working on a factory without them)."""
    from marketplace import catalogue, operator

    if "catalogue" not in app.blueprints:
        catalogue.register(app)
    if "operator" not in app.blueprints:
        app.register_blueprint(operator.bp)


def make_app(url: str, **overrides: Any) -> Flask:
    app = create_app({"DATABASE_URL": url, **CONFIG, **overrides})
    wire(app)
    return app


def dispose(app: Flask) -> None:
    bind = app.extensions["selva_db"].kw.get("bind")
    if bind is not None and hasattr(bind, "dispose"):
        bind.dispose()


@contextmanager
def transaction(app: Flask) -> Iterator[Session]:
    """One transaction, as a view opens it."""
    with app.app_context(), db.session.begin():
        yield db.session


@pytest.fixture
def app(fresh_url: str) -> Iterator[Flask]:
    app = make_app(fresh_url)
    with transaction(app) as session:
        demo.load(session)
        load_listings(session)
    yield app
    dispose(app)


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
