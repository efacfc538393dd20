"""Helpers for storefront tests: an app on a fresh database with the demo data, listings,
and users who can log in."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from ledger import operations
from ledger.schema import Project
from marketplace import create_app, demo, testmode
from marketplace.auth import create_user
from marketplace.checkout import inventory_account
from marketplace.database import db
from marketplace.models import Listing, User

PASSWORD = "correct horse battery"
_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")  # tests only: fast to check


def make_app(url: str, **overrides: Any) -> Flask:
    config = {"DATABASE_URL": url, "SECRET_KEY": "test", "STRIPE_WEBHOOK_SECRET": "whsec_test",
              "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False, "POOL_SEAL_SECONDS": 0,
          "CHECKPOINT_SIGNING": "request"}
    config.update(overrides)
    return create_app(config)


@contextmanager
def transaction(app: Flask, mode: str = "live") -> Iterator[Any]:
    """A committed transaction on ``mode``'s data (live, or API test mode's)."""
    with app.app_context(), db.use(mode), db.session.begin():
        yield db.session


def load_demo(app: Flask) -> None:
    """The demo ledger data and listings, and test mode's mirror of them."""
    with transaction(app) as session:
        demo.load(session)
    with app.app_context():
        testmode.seed_from_live()


def listing_for(app: Flask, registry_id: str) -> int:
    with transaction(app) as session:
        return int(session.scalar(
            select(Listing.id).join(Project, Project.id == Listing.project_id)
            .where(Project.registry_id == registry_id)))


def small_project(app: Flask, tonnes: int, price_minor: int = 2000) -> int:
    """A project whose inventory holds exactly ``tonnes``; returns its listing id."""
    with transaction(app) as session:
        project = operations.register_project(session, registry="SLV", registry_id="SMALL1",
                                              name="Small test forest", country="PE")
        operations.issue(session, project_id=project.id,
                         account_id=inventory_account(session).id,
                         vintage_start=dt.date(2021, 1, 1), vintage_end=dt.date(2021, 12, 31),
                         quantity=tonnes, origin="SLV:SMALL1:2021")
        listing = Listing(project_id=project.id, slug="small-test-forest", status="listed",
                          price_minor=price_minor, currency="USD")
        session.add(listing)
        session.flush()
        return listing.id


def add_user(app: Flask, email: str, name: str = "Test Buyer", role: str = "customer") -> int:
    with transaction(app) as session:
        user = create_user(name, email, "placeholder-password", role=role)
        user.password_hash = _HASH
        session.flush()
        return user.id


def login(client: FlaskClient, email: str) -> None:
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def checkout_form(**overrides: str) -> dict[str, str]:
    form = {"buy_for": "self", "beneficiary": "Ada Lovelace", "purpose": "voluntary", "note": "",
            "country": "GB", "period_start": "2025-01-01", "period_end": "2025-12-31",
            "action": "retire"}
    form.update(overrides)
    return form


def pay_demo(client: FlaskClient, checkout_response: Any) -> str:
    """Follow a checkout redirect to the demo payment page and pay; return the order reference."""
    assert checkout_response.status_code == 302, checkout_response.get_data(as_text=True)[:800]
    location = checkout_response.headers["Location"]
    session_id = location.rstrip("/").rsplit("/", 1)[1]
    paid = client.post(f"/demo-checkout/{session_id}/pay")
    assert paid.status_code == 302
    match = re.search(r"/orders/(SLV-[0-9A-F]+)/success", paid.headers["Location"])
    assert match, paid.headers["Location"]
    return match.group(1)


def user_id(app: Flask, email: str) -> int:
    with transaction(app) as session:
        return int(session.scalar(select(User.id).where(User.email == email)))


def ticks_at_once(app: Flask, workers: int = 2, each: int = 2) -> None:
    """``workers`` workers (as on several hosts) each running ``each`` passes, all at once."""
    import threading

    from marketplace.worker import Worker

    running = [Worker(app) for _ in range(workers)]
    threads = [threading.Thread(target=w.tick) for w in running for _ in range(each)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
