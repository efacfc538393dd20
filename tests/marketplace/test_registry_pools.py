"""Kilogram pools on the public registry: the pools overview and one pool's page (pool
retirements with their serials, sealed allocations, search, pagination), the kilogram
certificate (page, JSON, PDF) that verifies offline and refuses every forgery, erasure on
request, the page shown while an allocation is being written into the ledger, and test mode
keeping its pools to itself.

The data comes from real kilogram orders (``checkout.place_order`` with a line in grams, paid
with ``checkout.fulfil``, written into the ledger with ``kilograms.seal``), on a project of
our own ("SLV-SMALL1") so that every figure is known; bulk allocations for pagination use
``operations.allocate`` directly.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger import audit, canonical, operations, queries
from ledger.checkpoint import write_keypair
from ledger.db import make_engine
from ledger.operations import AllocationRequest
from ledger.replay import replay_all
from ledger.schema import Block, Entry, PoolRetirement, Project
from ledger.verify import Invalid, main, verify_certificate
from marketplace import checkout, kilograms, registry
from marketplace.database import db
from marketplace.models.rendered import CertificatePdf
from marketplace.models import Listing, Order, User
from marketplace.models.pools import KgAllocation

from .shop import add_user, load_demo, login, make_app, small_project, transaction

ROOT = Path(__file__).resolve().parents[2]
POOL = "SLV-SMALL1"
PERIOD = (dt.date(2025, 1, 1), dt.date(2025, 12, 31))


REFILL = {"POOL_REFILL_BELOW_KG": 1_000, "POOL_REFILL_TONNES": 2}
"""The pool refills (the figures below assume them): when its free grams would fall below
1,000 kg, at least 2 t are retired into it."""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(signer key file, verifier key file) for the operator's checkpoints."""
    return write_keypair(tmp_path_factory.mktemp("keys"), "selva.example/ledger")


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_keypair(tmp_path_factory.mktemp("other-keys"), "selva.example/ledger")


@pytest.fixture(scope="module")
def demo_url(databases: Any, backend: str, keys: tuple[Path, Path]) -> str:
    """The demo ledger and listings, and a 10 t project of our own, once per backend."""
    url: str = databases.fresh(backend)
    app = make_app(url, CHECKPOINT_KEY=str(keys[0]))
    load_demo(app)
    small_project(app, 10)
    db.dispose_all()
    return url


@pytest.fixture
def app(demo_url: str, keys: tuple[Path, Path]) -> Iterator[Flask]:
    """The app inside a transaction rolled back after the test (``conftest.app``)."""
    engine = make_engine(demo_url)
    connection = engine.connect()
    outer = connection.begin()
    try:
        yield make_app(demo_url, CHECKPOINT_KEY=str(keys[0]), DATABASE_BIND=connection,
                       **REFILL)
    finally:
        outer.rollback()
        connection.close()
        engine.dispose()


@pytest.fixture
def verifier(keys: tuple[Path, Path]) -> str:
    return keys[1].read_text().strip()


# -- helpers ----------------------------------------------------------------------------------


def listing_of(app: Flask, ref: str = POOL) -> int:
    registry_name, _, registry_id = ref.partition("-")
    with transaction(app) as session:
        return int(session.scalar(
            select(Listing.id).join(Project, Project.id == Listing.project_id)
            .where(Project.registry_name == registry_name, Project.registry_id == registry_id)))


def buyer(app: Flask, email: str = "kim@example.org", name: str = "Kim Buyer") -> int:
    return add_user(app, email, name)


def order_kg(app: Flask, user_id: int, listing: int, grams: int, *, pay: bool = True,
             beneficiary: str = "Ada Lovelace", purpose: str = "voluntary",
             country: str = "GB", note: str = "") -> str:
    """Place an order for ``grams`` of the listing's pool and (``pay``) have the payment
    arrive; returns the allocation's reference."""
    with transaction(app) as session:
        user = session.get(User, user_id)
        order = checkout.place_order(
            session, user=user,
            lines=[checkout.CartLine(listing_id=listing, quantity=0, grams=grams)],
            details=checkout.CheckoutDetails(
                beneficiary=beneficiary, purpose=purpose, country=country,
                period_start=PERIOD[0], period_end=PERIOD[1], action="retire", note=note),
            gateway="demo")
        reference, amount, currency = order.reference, order.total_minor, order.currency
        kg = session.scalars(select(KgAllocation.reference)
                             .where(KgAllocation.order_id == order.id)).one()
    if pay:
        with transaction(app) as session:
            assert checkout.fulfil(session, reference, amount_minor=amount,
                                   currency=currency).startswith("fulfilled")
    return str(kg)


def seal(app: Flask) -> int:
    """Write every paid allocation into the ledger, as one ``allocate`` entry."""
    with transaction(app) as session:
        return kilograms.seal(session)


def buy_kg(app: Flask, user_id: int, grams: int, listing: int | None = None,
           **details: str) -> str:
    reference = order_kg(app, user_id, listing or listing_of(app), grams, **details)
    seal(app)
    return reference


def allocation_of(app: Flask, reference: str) -> KgAllocation:
    with transaction(app) as session:
        found = session.scalars(select(KgAllocation)
                                .where(KgAllocation.reference == reference)).one()
        session.expunge(found)
        return found


def pool_seqs(app: Flask, ref: str = POOL) -> list[int]:
    with transaction(app) as session:
        return list(session.scalars(select(PoolRetirement.seq).where(PoolRetirement.pool == ref)
                                    .order_by(PoolRetirement.seq)))


def serials_of(app: Flask, seq: int) -> list[str]:
    with transaction(app) as session:
        return [queries.serial_string(b.batch, b.first_serial, b.last_serial)
                for b in session.scalars(select(Block).where(Block.created_by == seq,
                                                             Block.state == "retired")
                                         .order_by(Block.first_serial))]


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code,
                                            response.get_data(as_text=True)[:1500])
    return response.get_data(as_text=True)


def pool_row(html: str, ref: str) -> dict[str, str]:
    match = re.search(rf'<tr data-pool="{re.escape(ref)}">(.*?)</tr>', html, re.S)
    assert match, f"no row for pool {ref}"
    return dict(re.findall(r'data-col="(\w+)">([^<]+)<', match.group(1)))


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-allocation="(\d+\.\d+)">', html)


def journal(app: Flask) -> list[tuple[int, bytes, str]]:
    with transaction(app) as session:
        return [(seq, bytes(record), digest) for seq, record, digest in
                session.execute(select(Entry.seq, Entry.record, Entry.hash).order_by(Entry.seq))]


def operator(app: Flask) -> FlaskClient:
    add_user(app, "op@example.org", "Olga Operator", role="operator")
    client = app.test_client()
    login(client, "op@example.org")
    return client


# -- the pools overview -----------------------------------------------------------------------


def test_pools_page_shows_the_ledgers_figures(app: Flask) -> None:
    client = app.test_client()
    before = pool_row(page(client, "/registry/pools"), POOL)
    assert before == {"tonnes": "0", "allocated": "0 g", "free": "0 g", "allocations": "0"}
    kim = buyer(app)
    buy_kg(app, kim, 2_500, beneficiary="Ada Lovelace")
    buy_kg(app, kim, 1_000_250, beneficiary="Flight LIM-CUZ")
    order_kg(app, kim, listing_of(app), 700, beneficiary="Not sealed yet")  # paid, not sealed

    html = page(client, "/registry/pools")
    # Two refills of 2 t each; 2.5 kg and 1,000.25 kg sealed; the unsealed 700 g not counted.
    assert pool_row(html, POOL) == {"tonnes": "4", "allocated": "1,002.75 kg",
                                    "free": "2,997.25 kg", "allocations": "2"}
    assert len(pool_seqs(app)) == 2
    # Every row agrees with a replay of the journal, and every listing has a row.
    totals = replay_all(journal(app)).pool_totals()
    for ref in re.findall(r'<tr data-pool="([\w-]+)">', html):
        t = totals.get(ref)
        expected = {"tonnes": f"{t.tonnes:,}" if t else "0",
                    "allocated": kilograms.format_mass(t.allocated) if t else "0 g",
                    "free": kilograms.format_mass(t.free) if t else "0 g",
                    "allocations": f"{t.allocations:,}" if t else "0"}
        assert pool_row(html, ref) == expected, ref
    assert {"VCS-944", "VCS-868", POOL} <= set(re.findall(r'<tr data-pool="([\w-]+)">', html))
    assert f'href="/registry/pools/{POOL}"' in html
    # The registry's overview and navigation link to it.
    assert 'href="/registry/pools"' in page(client, "/registry")


# -- one pool ---------------------------------------------------------------------------------


def test_pool_page_lists_retirements_allocations_and_searches(app: Flask) -> None:
    kim = buyer(app)
    ada = buy_kg(app, kim, 2_500, beneficiary="Ada Lovelace")
    bob = buy_kg(app, kim, 40_000, beneficiary="Bob's Bakery & Co")
    [first] = pool_seqs(app)
    ids = {ref: f"{a.seq}.{a.idx}" for ref in (ada, bob) for a in [allocation_of(app, ref)]}
    client = app.test_client()
    html = page(client, f"/registry/pools/{POOL}")
    assert "Small test forest" in html
    assert listed(html) == [ids[bob], ids[ada]]  # newest first
    for serial in serials_of(app, first):
        assert serial in html
    assert f'href="/registry/entries/{first}"' in html
    assert f'href="/registry/pools/{POOL}"' in page(client, f"/registry/entries/{first}")
    row = re.search(rf'<tr data-pool-seq="{first}">(.*?)</tr>', html, re.S)
    assert row and dict(re.findall(r'data-col="(\w+)">([^<]+)<', row.group(1))) == \
        {"allocated": "42.5 kg", "free": "1,957.5 kg"}
    assert "Ada Lovelace" in html and "Bob&#39;s Bakery &amp; Co" in html  # escaped
    assert f"/registry/kg/{ada}" in html and f"/registry/kg/{bob}" in html

    def found(query: dict[str, str]) -> list[str]:
        result = page(client, f"/registry/pools/{POOL}?{urlencode(query)}")
        assert 'role="alert"' not in result
        return listed(result)

    assert found({"beneficiary": "lovelace"}) == [ids[ada]]
    assert found({"beneficiary": "ADA LOVE"}) == [ids[ada]]
    assert found({"beneficiary": "bakery &"}) == [ids[bob]]
    assert found({"beneficiary": "%"}) == []  # a LIKE wildcard is a literal character
    assert found({"allocation": ids[bob]}) == [ids[bob]]
    assert found({"allocation": ids[bob], "beneficiary": "ada"}) == []
    nothing = page(client, f"/registry/pools/{POOL}?beneficiary=nobody+at+all")
    assert listed(nothing) == [] and "No allocation from this pool matches your search" in nothing
    assert 'data-count="0"' in nothing
    # Another pool's page does not list these allocations.
    assert listed(page(client, "/registry/pools/VCS-944")) == []


def test_pool_allocations_are_paginated(app: Flask) -> None:
    buy_kg(app, buyer(app), 1_000)
    [first] = pool_seqs(app)
    with transaction(app) as session:
        receipt = operations.allocate(session, [AllocationRequest(
            grams=1_000 + i, draws=((first, 1_000 + i),), beneficiary=f"Bulk Beneficiary {i}",
            purpose="voluntary", country="PE", period_start=PERIOD[0], period_end=PERIOD[1])
            for i in range(55)])
    client = app.test_client()
    one = page(client, f"/registry/pools/{POOL}")
    assert 'data-count="56"' in one
    assert listed(one) == [f"{receipt.seq}.{i}" for i in range(54, 4, -1)]
    assert 'rel="next"' in one and "page=2" in one
    two = page(client, f"/registry/pools/{POOL}?page=2")
    assert listed(two)[:5] == [f"{receipt.seq}.{i}" for i in range(4, -1, -1)]
    assert len(listed(two)) == 6 and 'rel="prev"' in two
    beyond = page(client, f"/registry/pools/{POOL}?page=9")
    assert listed(beyond) == [] and "no results on page 9" in beyond
    only = page(client, f"/registry/pools/{POOL}?beneficiary=beneficiary+5")
    assert len(listed(only)) == 6  # 5, 50..54
    # Bulk allocations written straight into the ledger have no certificate link.
    row = re.search(rf'<tr data-allocation="{receipt.seq}.0">.*?</tr>', two, re.S)
    assert row is not None and "/registry/kg/" not in row.group(0)


@pytest.mark.parametrize("query, message", [
    ("allocation=abc", "An allocation id is the ledger entry and the position in it"),
    ("allocation=12", "An allocation id is the ledger entry and the position in it"),
    ("allocation=1.2.3", "An allocation id is the ledger entry and the position in it"),
    ("allocation=0.1", "An allocation id is the ledger entry and the position in it"),
    ("allocation=%C2%B2.1", "An allocation id is the ledger entry and the position in it"),
    ("allocation=" + "9" * 300, "too long"),
    ("beneficiary=" + "x" * 300, "too long"),
    ("page=0", "The page must be a whole number"),
    ("page=abc", "The page must be a whole number"),
    ("page=99999999999999999999", "The page must be a whole number"),
])
def test_bad_pool_queries_are_a_message_and_400(app: Flask, query: str, message: str) -> None:
    buy_kg(app, buyer(app), 1_000)
    html = page(app.test_client(), f"/registry/pools/{POOL}?{query}", 400)
    assert 'role="alert"' in html and message in html
    assert listed(html) == []


@pytest.mark.parametrize("ref", ["NOPE-1", "vcs-944", "VCS_944", "VCS-944-1", "X" * 60,
                                 "SLV-NOSUCH"])
def test_an_unknown_pool_is_404(app: Flask, ref: str) -> None:
    html = page(app.test_client(), f"/registry/pools/{ref}", 404)
    assert "There is no kilogram pool" in html


def test_a_listed_project_with_an_empty_pool_has_a_page(app: Flask) -> None:
    html = page(app.test_client(), "/registry/pools/VCS-944")
    assert "No tonnes have been retired into this pool yet" in html
    assert "Nothing has been allocated from this pool yet" in html


# -- kilogram certificates --------------------------------------------------------------------


def test_kg_certificate_page_json_and_pdf(app: Flask, keys: tuple[Path, Path], verifier: str,
                                          tmp_path: Path) -> None:
    kim = buyer(app)
    listing = listing_of(app)
    other = order_kg(app, kim, listing, 1_000, beneficiary="Someone Else")
    reference = order_kg(app, kim, listing, 2_500, beneficiary="Ada Lovelace",
                         purpose="net_zero", country="FR", note="")
    assert seal(app) == 2  # one allocate entry holding both
    allocation = allocation_of(app, reference)
    seq, index = allocation.seq, allocation.idx
    assert seq is not None and index == 1 and allocation_of(app, other).idx == 0
    [pool_seq] = pool_seqs(app)
    serials = serials_of(app, pool_seq)
    assert serials
    client = app.test_client()

    html = page(client, f"/registry/kg/{reference}")
    for text in ("2.5 kg", "Ada Lovelace", "Small test forest", POOL, f"{seq}.{index}",
                 "Progress towards a net-zero or climate target", "France", "2025-01-01",
                 "2025-12-31", "python -m ledger.verify --certificate", *serials):
        assert text in html, text
    assert f'href="/registry/entries/{pool_seq}"' in html
    assert f'href="/registry/pools/{POOL}"' in html
    assert "Someone Else" not in html

    response = client.get(f"/registry/kg/{reference}.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    cert = response.get_json()
    assert cert["format"] == "selva-certificate/1" and cert["kind"] == "allocation"
    assert (cert["seq"], cert["index"], cert["id"], cert["reference"]) == \
        (seq, index, f"{seq}.{index}", reference)
    assert cert["grams"] == 2_500 and cert["mass"] == "2.5 kg" and cert["pool"] == POOL
    assert cert["beneficiary"]["name"] == "Ada Lovelace" and cert["withheld"] is False
    assert cert["project"] == {"ref": POOL, "name": "Small test forest", "country": "PE"}
    assert cert["draws"] == [{"seq": pool_seq, "grams": 2_500, "mass": "2.5 kg",
                              "serials": serials}]
    assert cert["purpose"]["code"] == "net_zero" and cert["country"] == "FR"
    assert cert["period"] == {"start": "2025-01-01", "end": "2025-12-31"}
    [pool] = cert["pool_retirements"]
    assert pool["seq"] == pool_seq and pool["serials"] == serials and pool["quantity"] == 2
    with transaction(app) as session:
        entry = session.get(Entry, seq)
        assert cert["hash"] == entry.hash and cert["record"] == bytes(entry.record).decode()
        assert pool["record"] == bytes(session.get(Entry, pool_seq).record).decode()
    record = json.loads(cert["record"])
    assert record["kind"] == "allocate" and len(record["data"]["allocations"]) == 2
    assert "Ada Lovelace" not in cert["record"]  # only the salted commitment is in the journal
    assert cert["links"]["page"] == f"http://localhost/registry/kg/{reference}"

    date = record["data"]["date"]
    assert verify_certificate(cert, verifier) == (
        f"certificate OK: allocation {seq}.{index}, 2.5 kg from pool {POOL} (pool retirement "
        f"seq {pool_seq}: serial {', '.join(serials)}) for Ada Lovelace on {date}, included "
        f"in the signed log of {cert['tree_size']:,} entries (selva.example/ledger)")
    path = tmp_path / "kg.json"
    path.write_bytes(response.data)
    result = subprocess.run([sys.executable, "-m", "ledger.verify", "--certificate", str(path),
                             "--key", str(keys[1])], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"certificate OK: allocation {seq}.{index}, 2.5 kg")
    assert client.get(f"/registry/kg/{reference}.json").get_json() == cert  # stable

    response = client.get(f"/registry/kg/{reference}.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-") and len(response.data) > 5000
    with app.test_request_context():
        printed = registry.render_kg_certificate_print(cert)
    assert "Ada Lovelace" in printed and serials[0] in printed and "2.5 kg" in printed
    assert 'src="data:image/svg+xml;base64,' in printed and "<link" not in printed


def test_a_kg_certificate_spanning_two_pool_retirements(app: Flask, verifier: str) -> None:
    app.config["POOL_REFILL_BELOW_KG"] = 0  # refill only when the pool runs short
    kim = buyer(app)
    buy_kg(app, kim, 1_500_000, beneficiary="First")  # 2 t retired, 0.5 t left
    reference = buy_kg(app, kim, 800_000, beneficiary="Spanning Ltd")  # refill: 2 t more
    first, second = pool_seqs(app)
    allocation = allocation_of(app, reference)
    assert allocation.draws == f"{first}:500000,{second}:300000"
    cert = app.test_client().get(f"/registry/kg/{reference}.json").get_json()
    assert [p["seq"] for p in cert["pool_retirements"]] == [first, second]
    out = verify_certificate(cert, verifier)
    assert (f"800 kg from pool {POOL} (pool retirement seq {first}: 500 kg, serial "
            f"{serials_of(app, first)[0]}; pool retirement seq {second}: 300 kg, serial "
            f"{serials_of(app, second)[0]}) for Spanning Ltd") in out
    html = page(app.test_client(), f"/registry/kg/{reference}")
    for serial in serials_of(app, first) + serials_of(app, second):
        assert serial in html


# -- forged kilogram certificates ----------------------------------------------------------------


Edit = Callable[[dict[str, Any], dict[str, Any]], None]


def _set(**changes: Any) -> Edit:
    def edit(c: dict[str, Any], extra: dict[str, Any]) -> None:
        c.update(changes)
    return edit


def _beneficiary(**changes: Any) -> Edit:
    def edit(c: dict[str, Any], extra: dict[str, Any]) -> None:
        c["beneficiary"].update(changes)
    return edit


def _other_allocation(c: dict[str, Any], extra: dict[str, Any]) -> None:
    """Claim the entry's other allocation (index, id and grams all consistent) but keep this
    beneficiary's name: the commitment at that index is someone else's."""
    c["index"] = 0
    c["id"] = f"{c['seq']}.0"
    c["grams"], c["mass"] = 1_000, "1 kg"
    c.pop("draws")


def _record_grams(rehash: bool) -> Edit:
    def edit(c: dict[str, Any], extra: dict[str, Any]) -> None:
        record = canonical.loads(c["record"].encode("utf-8"))
        record["data"]["allocations"][1]["grams"] = 25_000
        record["data"]["allocations"][1]["from"][0][1] = 25_000
        c["record"] = canonical.dumps(record).decode("utf-8")
        if rehash:
            c["hash"] = hashlib.sha256(canonical.dumps(record)).hexdigest()
    return edit


def _proof_flipped(c: dict[str, Any], extra: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(c["inclusion_proof"][0]))
    raw[0] ^= 0x80
    c["inclusion_proof"][0] = base64.b64encode(bytes(raw)).decode()


def _pool_proof_flipped(c: dict[str, Any], extra: dict[str, Any]) -> None:
    proof = c["pool_retirements"][0]["inclusion_proof"]
    raw = bytearray(base64.b64decode(proof[0]))
    raw[0] ^= 0x80
    proof[0] = base64.b64encode(bytes(raw)).decode()


def _grown(serial: str) -> str:
    """The same Selva serial string with its range one tonne longer (the range ends it)."""
    prefix, _, last = serial.rpartition("-")
    return f"{prefix}-{int(last) + 1}"


def _serial_shifted(c: dict[str, Any], extra: dict[str, Any]) -> None:
    block = c["pool_retirements"][0]["blocks"][0]
    block["serial"] = _grown(block["serial"])
    block["last"] += 1


def _serial_text_only(c: dict[str, Any], extra: dict[str, Any]) -> None:
    block = c["pool_retirements"][0]["blocks"][0]
    block["serial"] = _grown(block["serial"])


def _serials_dropped(c: dict[str, Any], extra: dict[str, Any]) -> None:
    c["pool_retirements"][0]["blocks"] = []


def _pool_of_a_retirement(c: dict[str, Any], extra: dict[str, Any]) -> None:
    """Pass a tonne retirement off as the pool retirement (its seq as the draw's)."""
    c["pool_retirements"][0].update(extra["retirement"])


def _pool_not_drawn(c: dict[str, Any], extra: dict[str, Any]) -> None:
    c["pool_retirements"] = [extra["other_pool"]]


def _pool_twice(c: dict[str, Any], extra: dict[str, Any]) -> None:
    c["pool_retirements"].append(copy.deepcopy(c["pool_retirements"][0]))


def _draw_serial_claimed(c: dict[str, Any], extra: dict[str, Any]) -> None:
    c["draws"][0]["serials"] = [_grown(c["draws"][0]["serials"][0])]


def _draw_grams_claimed(c: dict[str, Any], extra: dict[str, Any]) -> None:
    c["draws"][0]["grams"] = 25_000


def _pool_serials_claimed(c: dict[str, Any], extra: dict[str, Any]) -> None:
    pool = c["pool_retirements"][0]
    pool["serials"] = [_grown(pool["serials"][0])]


def _wrong_key(c: dict[str, Any], extra: dict[str, Any]) -> None:
    c["_key"] = extra["other_key"]


def _as_a_tonne_certificate(c: dict[str, Any], extra: dict[str, Any]) -> None:
    c["kind"] = "retirement"


ALLOCATION = "allocation {seq}.1"
MISMATCH = "the beneficiary's name does not match the allocation's commitment"

KG_MUTATIONS: list[Any] = [
    pytest.param(_set(grams=25_000), ALLOCATION,
                 "the certificate shows grams 25000, but the record has 2500",
                 id="grams-claimed"),
    pytest.param(_set(index=7), "allocation {seq}.7",
                 "there is no such allocation: entry {seq} holds 2", id="index-out-of-range"),
    pytest.param(_set(index=0), "allocation {seq}.0",
                 r"the certificate shows id '{seq}.1', but the record has '{seq}.0'",
                 id="index-changed"),
    pytest.param(_other_allocation, "allocation {seq}.0", MISMATCH, id="another-allocation"),
    pytest.param(_set(index=True), "certificate", "its index is not a whole number",
                 id="index-a-bool"),
    pytest.param(_beneficiary(name="Ada Lovelace Ltd"), ALLOCATION, MISMATCH,
                 id="beneficiary-renamed"),
    pytest.param(_beneficiary(salt="00" * 16), ALLOCATION, MISMATCH, id="salt-changed"),
    pytest.param(_beneficiary(name="\ud800"), ALLOCATION, MISMATCH, id="name-lone-surrogate"),
    pytest.param(_set(beneficiary="Ada Lovelace"), "certificate",
                 "its beneficiary is malformed", id="beneficiary-not-an-object"),
    pytest.param(_record_grams(rehash=False), "seq {seq}",
                 "the entry hash is not the SHA-256 of the record", id="record-edited"),
    pytest.param(_record_grams(rehash=True), "seq {seq}", "not proven to be in the signed log",
                 id="record-edited-rehashed"),
    pytest.param(_proof_flipped, "seq {seq}", "not proven to be in the signed log",
                 id="proof-flipped"),
    pytest.param(_wrong_key, "checkpoint", "note has no signature by", id="another-key"),
    pytest.param(_pool_proof_flipped, "seq {pool}",
                 "pool retirement not proven to be in the signed log", id="pool-proof-flipped"),
    pytest.param(_serial_shifted, "seq {pool}",
                 r"serial SLV-\S+ is not a block this pool retirement retired",
                 id="serial-range-grown"),
    pytest.param(_serial_text_only, "seq {pool}",
                 r"serial SLV-\S+ is not a block this pool retirement retired",
                 id="serial-text-changed"),
    pytest.param(_serials_dropped, "seq {pool}",
                 "the certificate does not show every serial this pool retirement retired",
                 id="serials-dropped"),
    pytest.param(_pool_of_a_retirement, "seq {pool}",
                 "the record is not the pool retirement this certificate names",
                 id="pool-retirement-swapped-for-a-retirement"),
    pytest.param(_pool_not_drawn, "seq {other_pool}",
                 "allocation {seq}.1 does not draw from this pool retirement",
                 id="pool-retirement-not-drawn-from"),
    pytest.param(_set(pool_retirements=[]), "certificate", "it carries no pool retirements",
                 id="no-pool-retirements"),
    pytest.param(_pool_twice, "seq {pool}", "the certificate carries this pool retirement twice",
                 id="pool-retirement-twice"),
    pytest.param(_set(pool="VCS-944"), ALLOCATION,
                 "the certificate shows pool 'VCS-944'", id="pool-claimed"),
    pytest.param(_set(country="FR"), ALLOCATION, "the certificate shows country 'FR'",
                 id="country-claimed"),
    pytest.param(_set(date="2001-01-01"), ALLOCATION, "the certificate shows date '2001-01-01'",
                 id="date-claimed"),
    pytest.param(_set(mass="25 kg"), ALLOCATION, "the certificate shows mass '25 kg'",
                 id="mass-claimed"),
    pytest.param(_draw_serial_claimed, ALLOCATION, "the certificate shows draws ",
                 id="draw-serials-claimed"),
    pytest.param(_pool_serials_claimed, "seq {pool}", "the certificate shows serials ",
                 id="pool-serials-claimed"),
    pytest.param(_draw_grams_claimed, ALLOCATION, "the certificate shows draws ",
                 id="draw-grams-claimed"),
    pytest.param(_as_a_tonne_certificate, "seq {seq}",
                 "the record is not the retirement this certificate names", id="kind-changed"),
    pytest.param(_set(record=17), "certificate", "the certificate is missing a field",
                 id="record-not-text"),
]


@pytest.fixture
def forged(app: Flask, other_keys: tuple[Path, Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A kilogram certificate at index 1 of an allocate entry of two, and what the forgeries
    need: another pool retirement (of VCS-944), a tonne retirement entry, another key."""
    kim = buyer(app)
    listing = listing_of(app)
    order_kg(app, kim, listing, 1_000, beneficiary="Someone Else")
    reference = order_kg(app, kim, listing, 2_500, beneficiary="Ada Lovelace")
    seal(app)
    buy_kg(app, kim, 5_000, listing=listing_of(app, "VCS-944"), beneficiary="Other Pool")
    client = app.test_client()
    cert = client.get(f"/registry/kg/{reference}.json").get_json()
    with transaction(app) as session:
        retirement = session.scalars(select(Entry).where(Entry.kind == "retire")
                                     .order_by(Entry.seq).limit(1)).one()
        extra_retirement = {"seq": cert["pool_retirements"][0]["seq"],
                            "record": bytes(retirement.record).decode("utf-8"),
                            "hash": retirement.hash}
        retirement_seq = retirement.seq
    [other_pool] = pool_seqs(app, "VCS-944")
    other_cert = client.get(
        f"/registry/kg/{reference_drawing_from(app, other_pool)}.json").get_json()
    extra = {"retirement": extra_retirement, "other_pool": other_cert["pool_retirements"][0],
             "other_key": str(other_keys[1]),
             "names": {"seq": cert["seq"], "pool": cert["pool_retirements"][0]["seq"],
                       "retirement": retirement_seq, "other_pool": other_pool}}
    return cert, extra


def reference_drawing_from(app: Flask, pool_seq: int) -> str:
    """The reference of a sealed allocation drawing from ``pool_seq``."""
    with transaction(app) as session:
        for allocation in session.scalars(select(KgAllocation)
                                          .where(KgAllocation.state == "sealed")):
            if any(seq == pool_seq for seq, _ in allocation.draw_pairs):
                return allocation.reference
    raise AssertionError(f"no allocation draws from {pool_seq}")


def run_verify(capsys: pytest.CaptureFixture[str], tmp_path: Path, cert: dict[str, Any],
               key: str | Path) -> tuple[int, str, str]:
    path = tmp_path / "certificate.json"
    path.write_text(json.dumps(cert), encoding="utf-8")
    code = main(["--certificate", str(path), "--key", str(key)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_untouched_kg_certificate_verifies(
        forged: tuple[dict[str, Any], dict[str, Any]], keys: tuple[Path, Path],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, extra = forged
    code, out, err = run_verify(capsys, tmp_path, cert, keys[1])
    assert (code, err) == (0, "")
    assert out.startswith(f"certificate OK: allocation {cert['seq']}.1, 2.5 kg from pool "
                          f"{POOL} (pool retirement seq {extra['names']['pool']}: serial ")
    assert " for Ada Lovelace on " in out


@pytest.mark.parametrize(("mutate", "where", "reason"), KG_MUTATIONS)
def test_a_forged_kg_certificate_is_refused(
        mutate: Edit, where: str, reason: str, forged: tuple[dict[str, Any], dict[str, Any]],
        keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, extra = forged
    cert = copy.deepcopy(cert)
    mutate(cert, extra)
    key = cert.pop("_key", str(keys[1]))
    code, out, err = run_verify(capsys, tmp_path, cert, key)
    names = extra["names"]
    expected = f"INVALID: {re.escape(where.format(**names))}: {reason.format(**names)}"
    assert (code, out) == (1, ""), (out, err)
    assert re.match(expected, err), (err, expected)


def test_a_kg_certificate_with_the_name_withheld_still_verifies(
        forged: tuple[dict[str, Any], dict[str, Any]], verifier: str) -> None:
    cert, _ = forged
    cert = copy.deepcopy(cert)
    cert["beneficiary"] = {"name": None, "salt": None}
    assert " for a beneficiary whose name was withheld on " in verify_certificate(cert, verifier)
    with pytest.raises(Invalid, match="does not match the allocation's commitment"):
        verify_certificate({**cert, "beneficiary": {"name": "Ada Lovelace", "salt": None}},
                           verifier)


# -- pending, released and unknown allocations ----------------------------------------------------


def test_a_paid_allocation_not_yet_sealed_says_so(app: Flask) -> None:
    reference = order_kg(app, buyer(app), listing_of(app), 2_500, beneficiary="Ada Lovelace")
    client = app.test_client()
    html = page(client, f"/registry/kg/{reference}")
    assert "being written into the" in html and "Refresh this page in a few seconds" in html
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "2.5 kg" in html and "Ada Lovelace" not in html and "<script" not in html
    response = client.get(f"/registry/kg/{reference}.json")
    assert response.status_code == 202 and response.headers["Retry-After"] == "5"
    body = response.get_json()
    assert body["status"] == "pending" and body["reference"] == reference
    assert body["grams"] == 2_500 and "format" not in body
    pdf = client.get(f"/registry/kg/{reference}.pdf")
    assert pdf.status_code == 202 and pdf.mimetype == "text/html"
    assert operator(app).post(f"/registry/kg/{reference}/erase").status_code == 409

    seal(app)
    assert "Ada Lovelace" in page(client, f"/registry/kg/{reference}")
    assert client.get(f"/registry/kg/{reference}.json").get_json()["kind"] == "allocation"


def test_unpaid_released_and_unknown_references_are_404(app: Flask) -> None:
    kim = buyer(app)
    listing = listing_of(app)
    unpaid = order_kg(app, kim, listing, 1_000, pay=False)
    lapsed = order_kg(app, kim, listing, 1_000, pay=False)
    with transaction(app) as session:
        order_id = session.scalar(select(KgAllocation.order_id)
                                  .where(KgAllocation.reference == lapsed))
        order_ref = session.scalar(select(Order.reference).where(Order.id == order_id))
        assert checkout.release(session, order_ref, "expired").startswith("expired")
    assert allocation_of(app, lapsed).state == "released"
    assert allocation_of(app, unpaid).state == "reserved"
    client = app.test_client()
    for reference in (unpaid, lapsed, "kg_0123456789abcdef", "kg_0123456789ABCDEF",
                      "kg_0123456789abcde", "KG-0123456789AB", "kg_0123456789abcdef0", "1", "x",
                      "kg_" + "a" * 60):
        for suffix in ("", ".json", ".pdf"):
            html = page(client, f"/registry/kg/{reference}{suffix}", 404)
            assert "There is no kilogram certificate with that reference" in html
    for suffix in ("", ".json", ".pdf"):  # a NUL byte (PostgreSQL refuses it in text)
        page(client, f"/registry/kg/kg_%00123456789abcd{suffix}", 404)


# -- erasure ------------------------------------------------------------------------------------


def test_erasure_withholds_the_kg_beneficiary(app: Flask, verifier: str) -> None:
    kim = buyer(app)
    reference = buy_kg(app, kim, 2_500, beneficiary="Ada Lovelace")
    customer = app.test_client()
    login(customer, "kim@example.org")
    anonymous = app.test_client()
    before = anonymous.get(f"/registry/kg/{reference}.json").get_json()
    ops = operator(app)
    assert "Withhold the beneficiary" not in page(customer, f"/registry/kg/{reference}")
    assert "Withhold the beneficiary" in page(ops, f"/registry/kg/{reference}")
    response = anonymous.post(f"/registry/kg/{reference}/erase")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert customer.post(f"/registry/kg/{reference}/erase").status_code == 403
    assert ops.post("/registry/kg/kg_0123456789abcdef/erase").status_code == 404
    assert "Ada Lovelace" in page(anonymous, f"/registry/kg/{reference}")
    pdf = anonymous.get(f"/registry/kg/{reference}.pdf")
    assert pdf.status_code == 200 and anonymous.get(
        f"/registry/kg/{reference}.pdf", headers={"If-None-Match": pdf.headers["ETag"]}
    ).status_code == 304  # stored, and served from storage
    with transaction(app) as session:
        assert session.get(CertificatePdf, ("allocation", reference)) is not None

    response = ops.post(f"/registry/kg/{reference}/erase")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/registry/kg/{reference}")
    with transaction(app) as session:  # the stored PDF with the name went with the erasure
        assert session.get(CertificatePdf, ("allocation", reference)) is None
    assert anonymous.get(f"/registry/kg/{reference}.pdf").headers["ETag"] != pdf.headers["ETag"]
    assert ops.post(f"/registry/kg/{reference}/erase").status_code == 302  # idempotent

    html = page(anonymous, f"/registry/kg/{reference}")
    assert "Ada Lovelace" not in html and "withheld at the holder's request" in html
    cert = anonymous.get(f"/registry/kg/{reference}.json").get_json()
    assert cert["beneficiary"] == {"name": None, "salt": None} and cert["withheld"] is True
    assert cert["record"] == before["record"] and cert["hash"] == before["hash"]
    assert " for a beneficiary whose name was withheld on " in verify_certificate(cert, verifier)
    assert " for Ada Lovelace on " in verify_certificate(before, verifier)  # issued before
    with app.test_request_context():
        printed = registry.render_kg_certificate_print(cert)
    assert "Ada Lovelace" not in printed and "withheld at the holder" in printed
    pool = page(anonymous, f"/registry/pools/{POOL}")
    assert "Ada Lovelace" not in pool and "Withheld at the holder" in pool
    assert listed(page(anonymous, f"/registry/pools/{POOL}?beneficiary=ada")) == []
    with transaction(app) as session:
        audit.verify(session)


# -- test mode --------------------------------------------------------------------------------


def test_the_test_registry_serves_its_own_pools_only(fresh_url: str,
                                                     keys: tuple[Path, Path]) -> None:
    app = make_app(fresh_url, CHECKPOINT_KEY=str(keys[0]), **REFILL)
    try:
        load_demo(app)
        live_reference = buy_kg(app, buyer(app), 2_500, listing=listing_of(app, "VCS-944"))
        with transaction(app, "test") as session:
            project = session.scalars(select(Project).where(
                Project.registry_name == "TEST", Project.registry_id == "VCS944")).one()
            inventory = checkout.inventory_account(session)
            pool_seq = operations.pool_retire(session, account_id=inventory.id,
                                              project_id=project.id, quantity=3).seq
            operations.allocate(session, [AllocationRequest(
                grams=7_000, draws=((pool_seq, 7_000),), beneficiary="Test Beneficiary",
                purpose="voluntary", country="PE", period_start=PERIOD[0],
                period_end=PERIOD[1])])
        client = app.test_client()
        live = page(client, "/registry/pools")
        test = page(client, "/test/registry/pools")
        assert pool_row(live, "VCS-944")["tonnes"] == "2"
        assert 'data-pool="TEST-VCS944"' not in live
        assert pool_row(test, "TEST-VCS944") == {"tonnes": "3", "allocated": "7 kg",
                                                 "free": "2,993 kg", "allocations": "1"}
        assert 'data-pool="VCS-944"' not in test and "Test mode" in test
        assert 'href="/test/registry/pools/TEST-VCS944"' in test
        pool = page(client, "/test/registry/pools/TEST-VCS944")
        assert "Test Beneficiary" in pool and f"{pool_seq + 1}.0" in pool
        page(client, "/test/registry/pools/VCS-944", 404)
        page(client, "/registry/pools/TEST-VCS944", 404)
        page(client, f"/test/registry/kg/{live_reference}", 404)
        assert "2.5 kg" in page(client, f"/registry/kg/{live_reference}")
    finally:
        db.dispose_all()

