"""The page cache (marketplace.pagecache) on both databases, and on Redis: a purchase, a
reservation, a retirement, a new listing and an erasure each change the rendered page (at once,
or for a reservation within PAGE_STOCK_SECONDS), and the ETag changes exactly when the page
does. Apps here run without DATABASE_BIND, so PostgreSQL reads the state outside a
transaction, as in production."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger import operations
from ledger.checkpoint import write_keypair
from marketplace import checkout, signing
from marketplace.checkout import inventory_account
from marketplace.database import db
from marketplace.models import Listing, User
from marketplace.pagecache import CSRF_PLACEHOLDER

from .shop import PASSWORD, add_user, load_demo, login, make_app, small_project, transaction

STOCK_SECONDS = 1.0


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_keypair(tmp_path_factory.mktemp("keys"), "selva.example/ledger")


def _app(url: str, keys: tuple[Path, Path], **overrides: Any) -> Flask:
    app = make_app(url, CHECKPOINT_KEY=str(keys[0]), CHECKPOINT_SIGNING="worker",
                   PAGE_STOCK_SECONDS=STOCK_SECONDS, **overrides)
    load_demo(app)
    return app


@pytest.fixture
def app(fresh_url: str, keys: tuple[Path, Path]) -> Iterator[Flask]:
    found = _app(fresh_url, keys)
    yield found
    db.dispose_all()


def _normal(html: str) -> str:
    """The page without what differs between two renders that mean the same (the CSRF
    token's signature)."""
    return re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token"', html)


def _get(client: FlaskClient, path: str, etag: str | None = None) -> tuple[int, str, str]:
    headers = {"If-None-Match": etag} if etag else {}
    response = client.get(path, headers=headers)
    assert response.status_code in (200, 304), (path, response.status_code)
    return response.status_code, _normal(response.get_data(as_text=True)), \
        response.headers.get("ETag", "")


class Watch:
    """One visitor watching a page: each look says whether the page changed, and checks that
    the ETag changed exactly when it did (and that the old ETag then gets a full page, the
    current one a 304)."""

    def __init__(self, client: FlaskClient, path: str) -> None:
        self.client, self.path = client, path
        _, self.html, self.etag = _get(client, path)
        assert self.etag.startswith('W/"')

    def look(self) -> bool:
        status, html, etag = _get(self.client, self.path, self.etag)
        changed = status == 200
        if changed:
            assert etag != self.etag and html != self.html, "a 200 to a current ETag"
            self.html, self.etag = html, etag
        else:
            assert html == "" and etag == self.etag
        # Whatever the ETag says, the page itself agrees with it.
        _, fresh, fresh_etag = _get(self.client, self.path)
        assert fresh_etag == self.etag and fresh == self.html
        return changed


def _token(html: str) -> str:
    for tag in re.findall(r"<input[^>]*>", html):
        if 'name="csrf_token"' in tag:
            found = re.search(r'value="([^"]+)"', tag)
            assert found, tag
            return found.group(1)
    raise AssertionError("no CSRF token in the page")


def _stock(html: str) -> int:
    match = re.search(r"<strong>([\d,]+) t</strong> available now", html)
    return int(match.group(1).replace(",", "")) if match else 0


def _user(app: Flask, email: str) -> User:
    with transaction(app) as session:
        found = session.scalars(select(User).where(User.email == email)).one()
        session.expunge(found)
        return found


def _order(app: Flask, listing: int, quantity: int, email: str = "cache@example.org") -> str:
    """An unpaid order: its tonnes are reserved."""
    with transaction(app) as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        order = checkout.place_order(
            session, user=user, lines=[checkout.CartLine(listing_id=listing, quantity=quantity)],
            details=checkout.CheckoutDetails(
                beneficiary="Cache Tester", purpose="voluntary", country="GB",
                period_start=dt.date(2025, 1, 1), period_end=dt.date(2025, 12, 31),
                action="retire", note=""),
            gateway="demo")
        return f"{order.reference}|{order.total_minor}|{order.currency}"


def _pay(app: Flask, order: str) -> None:
    reference, amount, currency = order.split("|")
    with transaction(app) as session:
        assert checkout.fulfil(session, reference, amount_minor=int(amount),
                               currency=currency).startswith("fulfilled")


def test_stock_purchase_reservation_and_new_listing(app: Flask) -> None:
    listing = small_project(app, 40)
    add_user(app, "cache@example.org", "Cache Tester")
    visitor = app.test_client()
    project = Watch(visitor, "/projects/small-test-forest")
    catalogue = Watch(visitor, "/projects")
    assert _stock(project.html) == 40
    assert not project.look() and not catalogue.look()  # nothing happened: 304s

    # A reservation holds 5 t: shown within PAGE_STOCK_SECONDS.
    order = _order(app, listing, 5)
    time.sleep(STOCK_SECONDS + 0.1)
    assert project.look() and _stock(project.html) == 35
    assert not project.look()

    # The payment moves the tonnes in the ledger: the page changes at once.
    _pay(app, order)
    assert project.look() and _stock(project.html) == 35  # sold: retired, no longer held
    assert "retired to date" in project.html and not project.look()

    # Tonnes leaving the inventory (an operator's transfer): at once.
    project_id = _project_id(app)
    with transaction(app) as session:
        holder = operations.open_account(session, "cache-holder", "customer")
        operations.transfer(session, from_account=inventory_account(session).id,
                            to_account=holder.id, quantity=7, project_id=project_id)
    assert project.look() and _stock(project.html) == 28

    # A new listing appears in the catalogue at once.
    assert "Second small forest" not in catalogue.html and catalogue.look() is True
    with transaction(app) as session:
        registered = operations.register_project(session, registry="SLV", registry_id="SMALL2",
                                                 name="Second small forest", country="PE")
        session.add(Listing(project_id=registered.id, slug="second-small-forest",
                            status="listed", price_minor=1500, currency="USD"))
    assert catalogue.look() and "Second small forest" in catalogue.html
    # ...and a price change too.
    with transaction(app) as session:
        found = session.scalars(select(Listing).where(Listing.slug == "small-test-forest")).one()
        found.price_minor = 2100
    assert project.look() and "21.00" in project.html


def _project_id(app: Flask) -> int:
    with transaction(app) as session:
        return int(session.scalar(select(Listing.project_id)
                                  .where(Listing.slug == "small-test-forest")))


def test_registry_overview_and_certificate_erasure(app: Flask) -> None:
    registry = Watch(app.test_client(), "/registry")
    with transaction(app) as session:
        holder = operations.open_account(session, "erasure-holder", "customer")
        operations.transfer(session, from_account=inventory_account(session).id,
                            to_account=holder.id, quantity=2)
        seq = operations.retire(session, account_id=holder.id, quantity=2,
                                beneficiary="Rosalind Franklin", purpose="voluntary",
                                country="GB", period_start=dt.date(2025, 1, 1),
                                period_end=dt.date(2025, 12, 31)).seq
    assert registry.look() and f'/registry/certificates/{seq}"' in registry.html  # at once
    visitor = app.test_client()
    pending = visitor.get(f"/registry/certificates/{seq}")
    assert "certificate on its way" in pending.get_data(as_text=True)
    assert "ETag" not in pending.headers  # a pending page is never stored

    with transaction(app) as session:
        signing.current_checkpoint(session)  # what the worker does
    assert registry.look() and not registry.look()  # the new checkpoint is shown
    certificate = Watch(visitor, f"/registry/certificates/{seq}")
    assert "Rosalind Franklin" in certificate.html and not certificate.look()

    add_user(app, "cache-op@example.org", "Oona Operator", role="operator")
    operator = app.test_client()
    login(operator, "cache-op@example.org")
    as_operator = operator.get(f"/registry/certificates/{seq}").get_data(as_text=True)
    assert "Withhold the beneficiary" in as_operator  # operators get their own variant
    assert "Withhold the beneficiary" not in certificate.html
    assert operator.post(f"/registry/certificates/{seq}/erase").status_code == 302
    assert certificate.look()  # the erasure: at once
    assert "Rosalind Franklin" not in certificate.html
    assert "withheld at the holder's request" in certificate.html


def test_each_visitor_gets_their_own_header_and_csrf_token(fresh_url: str,
                                                           keys: tuple[Path, Path]) -> None:
    app = _app(fresh_url, keys, WTF_CSRF_ENABLED=True)
    try:
        add_user(app, "ann@example.org", "Ann Cached")
        add_user(app, "bob@example.org", "Bob Cached")
        ann, bob, anonymous = app.test_client(), app.test_client(), app.test_client()
        for client, email in ((ann, "ann@example.org"), (bob, "bob@example.org")):
            page = client.get("/login").get_data(as_text=True)
            token = _token(page)
            assert client.post("/login", data={"email": email, "password": PASSWORD,
                                               "csrf_token": token}).status_code == 302
        pages = {name: client.get("/projects/alto-mayo").get_data(as_text=True)
                 for name, client in (("ann", ann), ("bob", bob), ("anon", anonymous))}
        assert "Ann Cached" in pages["ann"] and "Bob Cached" not in pages["ann"]
        assert "Bob Cached" in pages["bob"] and "Ann Cached" not in pages["bob"]
        assert "Ann Cached" not in pages["anon"] and "Bob Cached" not in pages["anon"]
        tokens = {name: _token(html) for name, html in pages.items()}
        assert len(set(tokens.values())) == 3 and "csrf-" not in "".join(tokens.values())
        # Each visitor's token works for that visitor's form, and only for theirs.
        listing = re.search(r'name="listing_id" value="(\d+)"', pages["anon"]).group(1)
        form = {"listing_id": listing, "quantity": "1"}
        assert anonymous.post("/cart/add", data={**form, "csrf_token": tokens["anon"]}
                              ).status_code == 302
        assert anonymous.post("/cart/add", data={**form, "csrf_token": tokens["ann"]}
                              ).status_code == 400
        # The cart's size is part of the page: the cart's owner sees it at once.
        assert "Cart (1)" in anonymous.get("/projects/alto-mayo").get_data(as_text=True)
        assert "Cart (1)" not in bob.get("/projects/alto-mayo").get_data(as_text=True)
    finally:
        db.dispose_all()


def test_a_flashed_message_is_shown_once_and_never_cached(app: Flask) -> None:
    client = app.test_client()
    client.get("/projects")
    with client.session_transaction() as session:
        session["_flashes"] = [("info", "A message for this visitor only")]
    first = client.get("/projects").get_data(as_text=True)
    assert "A message for this visitor only" in first
    with client.session_transaction() as session:
        session["_flashes"] = [("info", "Another message")]
    with_form = client.get("/projects/alto-mayo").get_data(as_text=True)
    assert "Another message" in with_form and CSRF_PLACEHOLDER not in with_form
    assert _token(with_form)
    assert "A message for this visitor only" not in client.get("/projects").get_data(as_text=True)
    assert "A message for this visitor only" not in \
        app.test_client().get("/projects").get_data(as_text=True)


def _redis_url() -> str:
    try:
        import redis

        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Redis does not answer at 127.0.0.1:6379: {exc}")
    return "redis://127.0.0.1:6379/0"


def test_on_redis_two_apps_share_the_cache_and_see_changes(
        fresh_url: str, keys: tuple[Path, Path]) -> None:
    url = _redis_url()
    # Two apps on one database stand for two hosts; a key prefix per test keeps runs apart.
    first = _app(fresh_url, keys, CACHE_URL=url)
    second = make_app(fresh_url, CHECKPOINT_KEY=str(keys[0]), CACHE_URL=url,
                      PAGE_STOCK_SECONDS=STOCK_SECONDS)
    try:
        token = uuid.uuid4().hex
        renders: list[str] = []
        from marketplace import catalogue

        real = catalogue._index

        def counting() -> str:
            renders.append("x")
            return real()

        catalogue._index = counting  # type: ignore[assignment]
        try:
            a = first.test_client().get(f"/projects?sort=name&t={token}")
            b = second.test_client().get(f"/projects?sort=name&t={token}")
            assert a.status_code == b.status_code == 200 and len(renders) == 1
            assert a.headers["ETag"] == b.headers["ETag"]
            listing = small_project(first, 5)
            assert listing
            c = second.test_client().get(f"/projects?sort=name&t={token}")
            assert len(renders) == 2 and "Small test forest" in c.get_data(as_text=True)
            assert c.headers["ETag"] != a.headers["ETag"]
        finally:
            catalogue._index = real  # type: ignore[assignment]
    finally:
        db.dispose_all()


def test_redis_down_is_a_miss_not_an_error(fresh_url: str, keys: tuple[Path, Path],
                                           caplog: pytest.LogCaptureFixture) -> None:
    app = _app(fresh_url, keys, CACHE_URL="redis://127.0.0.1:9/0")
    try:
        client = app.test_client()
        for _ in range(2):
            response = client.get("/projects")
            assert response.status_code == 200 and "Alto Mayo" in response.get_data(as_text=True)
        assert any("Redis unavailable" in r.getMessage() for r in caplog.records)
    finally:
        db.dispose_all()


def test_the_cache_can_be_turned_off(fresh_url: str, keys: tuple[Path, Path]) -> None:
    app = _app(fresh_url, keys, PAGE_CACHE=False)
    try:
        response = app.test_client().get("/projects")
        assert response.status_code == 200 and "ETag" not in response.headers
    finally:
        db.dispose_all()


def test_text_holding_the_placeholder_never_gets_a_token(app: Flask) -> None:
    with transaction(app) as session:
        holder = operations.open_account(session, "placeholder-holder", "customer")
        operations.transfer(session, from_account=inventory_account(session).id,
                            to_account=holder.id, quantity=1)
        seq = operations.retire(session, account_id=holder.id, quantity=1,
                                beneficiary=f'x {CSRF_PLACEHOLDER} value="{CSRF_PLACEHOLDER}"',
                                purpose="voluntary", country="GB",
                                period_start=dt.date(2025, 1, 1),
                                period_end=dt.date(2025, 12, 31)).seq
        signing.current_checkpoint(session)
    client = app.test_client()
    client.get("/projects/alto-mayo")  # this visitor now has a CSRF secret
    html = client.get(f"/registry/certificates/{seq}").get_data(as_text=True)
    assert html.count(CSRF_PLACEHOLDER) == 2  # the name, shown as written, escaped


def test_a_project_registered_shows_on_the_registry_at_once(app: Flask) -> None:
    registry = Watch(app.test_client(), "/registry")
    with transaction(app) as session:
        operations.register_project(session, registry="SLV", registry_id="NEWREG",
                                    name="A newly registered forest", country="PE")
    assert registry.look() and "A newly registered forest" in registry.html


def test_pages_survive_connections_the_server_dropped(app: Flask, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("a PostgreSQL server terminates connections; SQLite has none")
    import psycopg

    from ledger.db import normalize_url

    client = app.test_client()
    assert client.get("/projects").status_code == 200
    with app.app_context():
        url = db.engine().url.render_as_string(hide_password=False)
    plain = normalize_url(url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'").fetchone()
    assert killed is not None and killed[0] > 0
    for path in ("/projects", "/projects/alto-mayo", "/registry"):
        assert client.get(path).status_code == 200, path
