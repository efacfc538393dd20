"""Every route of the app, fed what an attacker sends, on PostgreSQL (which refuses what SQLite
forgives): NUL bytes, integers past 2^31 and 2^63, long and odd Unicode, in every path
argument, the query parameters the views read, and every field of every form. No answer may
be a 5xx, and a refused request changes nothing: the row counts stay and the ledger (live and
test mode) verifies.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, func, select
from wtforms.fields.core import UnboundField

from ledger import audit
from ledger.checkpoint import write_keypair
from marketplace.database import db

from .shop import PASSWORD, add_user, load_demo, make_app, transaction
from .test_api_helpers import make_company

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NASTY = [
    "\x00", "SLV-\x00", "1\x00", "99999999999999999999", str(2**63), str(2**31), "-1", "0",
    "x" * 5000, "١٢٣", "²", "\u202eevil", "%", "..", "<script>alert(1)</script>",
    "1e309", "Ω" * 300, " ", "null", "\x7f\x1b[2J", "\ufeff1",
]
"""What an attacker tries first."""

QUERY = ("q", "page", "size", "seq", "from", "to", "country", "project", "vintage", "serial",
         "beneficiary", "sort", "cursor", "limit", "status", "ccp", "corsia", "article6",
         "mitigation", "type", "min_price", "max_price", "start", "end", "next", "params",
         "standard", "purpose", "batch", "order")
"""Query parameters the views read (extra ones are ignored or refused, never a 5xx)."""

SKIP = {"static", "auth.logout"}
PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def form_fields() -> set[str]:
    """The names of every field of every form the app defines (the app, made first, has
    imported every view module and so every form class)."""
    names: set[str] = set()
    todo = list(FlaskForm.__subclasses__())
    while todo:
        form = todo.pop()
        todo.extend(form.__subclasses__())
        for name in dir(form):
            if isinstance(getattr(form, name, None), UnboundField):
                names.add(name)
    return names


@dataclass
class Site:
    app: Flask
    anonymous: FlaskClient
    customer: FlaskClient
    operator: FlaskClient
    fields: set[str]
    routes: list[tuple[str, str, str]]  # (endpoint, method, rule)
    api_keys: tuple[dict[str, str], ...]  # live and test mode


@pytest.fixture(scope="module")
def site(databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("keys")
    keys = write_keypair(folder, "selva.example/ledger")
    test_keys = write_keypair(folder, "selva.example/test-ledger")
    app = make_app(databases.fresh("postgres"), CHECKPOINT_KEY=str(keys[0]),
                   TEST_CHECKPOINT_KEY=str(test_keys[0]))
    load_demo(app)
    customer, operator = app.test_client(), app.test_client()
    for client, role in ((customer, "customer"), (operator, "operator")):
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.org"
        add_user(app, email, role=role)
        response = client.post("/login", data={"email": email, "password": PASSWORD})
        assert response.status_code == 302
    customer.post("/organisations", data={"name": "Fuzz Ltd"})
    routes = sorted((rule.endpoint, method, rule.rule) for rule in app.url_map.iter_rules()
                    for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
                    if rule.endpoint not in SKIP)
    company = make_company(app, "Fuzz API Ltd")
    yield Site(app, app.test_client(), customer, operator, form_fields(), routes,
               (company.headers, company.test_headers))
    db.dispose_all()


_TABLES: dict[str, MetaData] = {}


def counts(app: Flask) -> dict[str, int]:
    """Rows per table, live and test mode, in one query per mode."""
    found: dict[str, int] = {}
    for mode in ("live", "test"):
        with app.app_context():
            engine = db.engine(mode)
        if mode not in _TABLES:
            _TABLES[mode] = MetaData()
            _TABLES[mode].reflect(engine, resolve_fks=False)
        tables = sorted(_TABLES[mode].tables.items())
        query = select(*(select(func.count()).select_from(table).scalar_subquery().label(name)
                         for name, table in tables))
        with engine.connect() as connection:
            row = connection.execute(query).one()
        found.update({f"{mode}.{name}": int(value) for name, value in row._mapping.items()})
    return found


def verify_both(app: Flask) -> None:
    for mode in ("live", "test"):
        with transaction(app, mode) as session:
            audit.verify(session)


API_FIELDS = ("project", "quantity", "quote", "action", "beneficiary", "purpose", "note",
              "country", "period_start", "period_end", "payment_method", "batch", "lines",
              "filters", "vintage")


def _header(value: str) -> str:
    """The value as an HTTP header can carry it (no line breaks: no client can send them)."""
    return value.replace("\r", "").replace("\n", "")[:200] or "k"


def _query(value: str) -> str:
    return "&".join(f"{name}={quote(value, safe='')}" for name in QUERY)


def request(site: Site, client: FlaskClient, endpoint: str, method: str, rule: str,
            value: str) -> int:
    path = PARAM.sub(lambda _m: quote(value, safe=""), rule)
    if endpoint.startswith("api."):
        # As a caller with a key (live or test mode, by turns): past authentication, into the
        # views' own validation; the body has every field the API reads.
        headers = site.api_keys[len(value) % 2]
        if method == "GET":
            response = client.get(f"{path}?{_query(value)}", headers=headers)
        else:
            response = client.post(path, json={name: value for name in API_FIELDS},
                                   headers={**headers, "Idempotency-Key": _header(value)})
    elif method == "GET":
        response = client.get(f"{path}?{_query(value)}")
    else:
        response = client.post(path, data={name: value for name in site.fields})
    response.close()
    return response.status_code


def sweep(site: Site, values: list[str]) -> list[str]:
    """Send every value to every route as every kind of user; the 5xx answers found."""
    failures = []
    for endpoint, method, rule in site.routes:
        before = counts(site.app)
        refused = True
        for client in (site.anonymous, site.customer, site.operator):
            for value in values:
                status = request(site, client, endpoint, method, rule, value)
                if status >= 500:
                    failures.append(f"{status} {method} {rule} {value[:30]!r}")
                refused = refused and status >= 400
        if refused:
            after = counts(site.app)
            changed = {k: (before[k], after.get(k)) for k in before if after.get(k) != before[k]}
            assert not changed, f"{method} {rule}: refused, yet rows changed: {changed}"
    verify_both(site.app)
    return failures


def test_every_route_refuses_what_an_attacker_sends_without_a_5xx(site: Site) -> None:
    assert len(site.routes) > 80 and len(site.fields) > 40
    failures = sweep(site, NASTY)
    assert failures == [], "\n".join(failures)


odd_text = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=400),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.sampled_from(NASTY),
    st.text(st.sampled_from("\x00\x01\x1f\x7f\u0085\u2028\ufffe0123456789-"), max_size=30),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_odd_input_on_random_routes_is_never_a_5xx(site: Site, data: st.DataObject) -> None:
    endpoint, method, rule = data.draw(st.sampled_from(site.routes))
    value = data.draw(odd_text)
    client = data.draw(st.sampled_from((site.anonymous, site.customer, site.operator)))
    status = request(site, client, endpoint, method, rule, value)
    assert status < 500, (method, rule, value)
