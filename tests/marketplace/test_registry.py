"""The public registry: totals, retirement search, serial look-up, certificates (page, JSON,
PDF) that verify offline, erasure on request, and the raw ledger endpoints (checkpoint, key,
journal, Merkle proofs) that let anyone check it all without trusting the operator."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger import audit, operations, queries, tree
from ledger.checkpoint import open_note, write_keypair
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.schema import Batch, Block, Entry, Project
from ledger.verify import verify_certificate
from marketplace.accounts import account_of
from ledger.db import make_engine
from marketplace import registry
from marketplace.database import db
from marketplace import checkout
from marketplace.checkout import inventory_account
from marketplace.models import Order, User

from .shop import add_user, checkout_form, listing_for, load_demo, login, make_app, transaction

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(signer key file, verifier key file) for the operator's checkpoints."""
    return write_keypair(tmp_path_factory.mktemp("keys"), "selva.example/ledger")


@pytest.fixture(scope="module")
def demo_url(databases: Any, backend: str, keys: tuple[Path, Path]) -> str:
    """The demo ledger and listings, loaded once per module and backend."""
    url: str = databases.fresh(backend)
    load_demo(make_app(url, CHECKPOINT_KEY=str(keys[0])))
    db.dispose_all()
    return url


@pytest.fixture
def app(demo_url: str, keys: tuple[Path, Path]) -> Iterator[Flask]:
    """The app inside a transaction rolled back after the test (``conftest.app``)."""
    engine = make_engine(demo_url)
    connection = engine.connect()
    outer = connection.begin()
    try:
        yield make_app(demo_url, CHECKPOINT_KEY=str(keys[0]), DATABASE_BIND=connection)
    finally:
        outer.rollback()
        connection.close()
        engine.dispose()


@pytest.fixture
def verifier(keys: tuple[Path, Path]) -> str:
    return keys[1].read_text().strip()


def buy(app: Flask, client: FlaskClient, registry_id: str, quantity: int,
        **form: str) -> tuple[str, list[int]]:
    """Buy as the client's user and have the payment arrive: the order is placed and fulfilled
    by the same service functions the checkout page and the payment webhook call. Returns the
    order's reference and its retirement seqs."""
    details = checkout_form(**form)
    listing = listing_for(app, registry_id)
    with client.session_transaction() as cookie:
        user_id = int(cookie["_user_id"])
    with transaction(app) as session:
        user = session.get(User, user_id)
        order = checkout.place_order(
            session, user=user,
            lines=[checkout.CartLine(listing_id=listing, quantity=quantity)],
            details=checkout.CheckoutDetails(
                beneficiary=details["beneficiary"], purpose=details["purpose"],
                country=details["country"],
                period_start=dt.date.fromisoformat(details["period_start"]),
                period_end=dt.date.fromisoformat(details["period_end"]),
                action=details["action"], note=details["note"]),
            gateway="demo")
        reference, amount, currency = order.reference, order.total_minor, order.currency
    with transaction(app) as session:
        assert checkout.fulfil(session, reference, amount_minor=amount,
                               currency=currency).startswith("fulfilled")
    with transaction(app) as session:
        order = session.scalars(select(Order).where(Order.reference == reference)).one()
        assert order.status == "fulfilled"
        return reference, [r.retire_seq for r in order.reservations if r.retire_seq is not None]


def buyer(app: Flask, email: str = "zed@example.org", name: str = "Zed Buyer") -> FlaskClient:
    client = app.test_client()
    add_user(app, email, name)
    login(client, email)
    return client


def retired_blocks(app: Flask, seq: int) -> list[tuple[int, int, str]]:
    """(first, last, serial string) of the blocks a retirement created."""
    with transaction(app) as session:
        blocks = session.scalars(select(Block).where(Block.created_by == seq,
                                                     Block.state == "retired")
                                 .order_by(Block.first_serial)).all()
        return [(b.first_serial, b.last_serial,
                 queries.serial_string(b.batch, b.first_serial, b.last_serial)) for b in blocks]


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code,
                                            response.get_data(as_text=True)[:1500])
    return response.get_data(as_text=True)


def seqs_listed(html: str) -> set[int]:
    return {int(s) for s in re.findall(r'<tr data-seq="(\d+)">', html)}


DEMO_RETIREMENTS = (3, 10, 12)
"""The demo's retirements: Café Tunki, Lima (12 t of Alto Mayo 2016, covered at origin),
Andean Trails Trekking Co. (8 t of Alto Mayo 2016, pending) and Lima Running Club (10 t of
Madre de Dios 2014, 5 of them in conflict)."""


def demo_retirement(app: Flask) -> int:
    """The demo data's first retirement (Café Tunki, Lima, 12 t of Alto Mayo 2016)."""
    with transaction(app) as session:
        seqs = list(session.scalars(select(Entry.seq).where(Entry.kind == "retire")
                                    .order_by(Entry.seq).limit(3)))
    assert tuple(seqs) == DEMO_RETIREMENTS
    return seqs[0]


def _pdf_objects(pdf: bytes) -> bytes:
    """The PDF's objects with its compressed streams (object streams included) inflated."""
    out = [pdf]
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            out.append(zlib.decompress(stream))
        except zlib.error:
            pass
    return b"\n".join(out)


def _number(text: str) -> int:
    return int(text.replace(",", ""))


# -- overview -------------------------------------------------------------------------------


def test_registry_totals_match_the_ledger(app: Flask) -> None:
    client = buyer(app)
    buy(app, client, "868", 5)
    buy(app, client, "944", 3, action="hold")
    html = page(app.test_client(), "/registry")
    with transaction(app) as session:
        per_batch = queries.batch_totals(session)
        per_project = queries.project_totals(session)
        refs = {p.ref: p.id for p in session.scalars(select(Project))}
    columns = ("issued", "tradable", "retired", "cancelled", "buffer", "frozen")
    rows = dict(re.findall(r'<tr data-batch="(\d+)">(.*?)</tr>', html, re.S))
    assert {int(b) for b in rows} == set(per_batch)
    for batch_id, row in rows.items():
        shown = {col: _number(v) for col, v in re.findall(r'data-col="(\w+)">([\d,]+)<', row)}
        expected = per_batch[int(batch_id)]
        assert shown == {col: getattr(expected, col) for col in columns}
    projects = dict(re.findall(r'<tr data-project="([\w-]+)">(.*?)</tr>', html, re.S))
    assert set(projects) == set(refs)
    for ref, row in projects.items():
        shown = {col: _number(v) for col, v in re.findall(r'data-col="(\w+)">([\d,]+)<', row)}
        assert shown == {col: getattr(per_project[refs[ref]], col) for col in columns}
    overall = {col: _number(v) for col, v in re.findall(r'data-total="(\w+)">([\d,]+)<', html)}
    assert overall == {col: sum(getattr(t, col) for t in per_project.values()) for col in columns}
    assert overall["retired"] == 30 + 5  # the demo's three retirements, and this purchase
    assert overall["frozen"] == 49  # the demo's conflict at the origin registry
    # The verifier instructions and the raw ledger links are there.
    assert "python -m ledger.verify DIR --key KEY" in html
    for path in ("/ledger/key", "/ledger/checkpoint", "/ledger/journal.jsonl"):
        assert path in html


# -- retirements ----------------------------------------------------------------------------


def test_retirement_search_by_each_criterion(app: Flask) -> None:
    cafe = demo_retirement(app)
    trek, run = DEMO_RETIREMENTS[1:]  # Alto Mayo 2016 and Madre de Dios 2014
    _, [ada] = buy(app, buyer(app), "868", 4, beneficiary="Ada Lovelace")
    client = app.test_client()
    everything = page(client, "/registry/retirements")
    assert seqs_listed(everything) == {cafe, trek, run, ada}
    assert "Ada Lovelace" in everything and "Café Tunki, Lima" in everything

    def found(query: str) -> set[int]:
        html = page(client, f"/registry/retirements?{query}")
        assert 'role="alert"' not in html, html
        return seqs_listed(html)

    assert found("beneficiary=lovelace") == {ada}
    assert found("beneficiary=ADA+LOVE") == {ada}
    assert found("beneficiary=tunki") == {cafe}
    assert found("beneficiary=Caf%C3%A9") == {cafe}
    assert found("beneficiary=%25") == set()  # a LIKE wildcard is a literal character
    assert found("beneficiary=_") == set()
    assert found("project=VCS-868") == {ada, run}
    assert found("project=vcs-944") == {cafe, trek}
    assert found("vintage=2014") == {ada, run}
    assert found("vintage=2016") == {cafe, trek}
    assert found("vintage=2019") == set()
    day = dt.timedelta(days=1)
    assert found(f"from={TODAY - day}&to={TODAY + day}") == {cafe, trek, run, ada}
    assert found(f"from={TODAY + day}") == set()
    assert found("from=2000-01-01&to=2000-12-31") == set()
    [(first, last, serial)] = retired_blocks(app, ada)
    assert last - first + 1 == 4
    assert found(f"serial={first + 2}") == {ada}
    assert found(f"serial={serial}") == {ada}
    [(cafe_first, _, _)] = retired_blocks(app, cafe)
    assert found(f"serial={cafe_first}") == {cafe}
    assert found(f"serial={first - 1}") == set()  # sold to nobody: still in the inventory
    assert found(f"beneficiary=ada&project=VCS-944") == set()
    assert found(f"beneficiary=ada&project=VCS-868&vintage=2014&serial={first}") == {ada}


@pytest.mark.parametrize("query, message", [
    ("vintage=abc", "The vintage must be a year"),
    ("vintage=99999999999999999999", "The vintage must be a year"),
    ("from=2024-13-01", "The from date must be a date"),
    ("to=yesterday", "The to date must be a date"),
    ("from=2025-02-01&to=2025-01-01", "starts after it ends"),
    ("serial=SLV-nonsense", "not a serial number or serial string"),
    ("serial=0", "out of range"),
    ("serial=99999999999999999999", "out of range"),
    ("project=NOPE-1", "There is no project"),
    ("beneficiary=" + "x" * 300, "too long"),
])
def test_bad_search_input_is_a_message(app: Flask, query: str, message: str) -> None:
    html = page(app.test_client(), f"/registry/retirements?{query}")
    assert 'role="alert"' in html
    assert message in html
    assert seqs_listed(html) == set()


def test_retirements_are_paginated(app: Flask) -> None:
    with transaction(app) as session:
        holder = operations.open_account(session, "bulk-holder", "customer")
        batch = session.scalar(select(Batch.id).order_by(Batch.id.desc()))
        operations.transfer(session, from_account=inventory_account(session).id,
                            to_account=holder.id, quantity=30, batch_id=batch)
        bulk = [operations.retire(session, account_id=holder.id, quantity=1,
                                  beneficiary=f"Bulk Beneficiary {i}", purpose="voluntary",
                                  country="GB", period_start=dt.date(2025, 1, 1),
                                  period_end=dt.date(2025, 12, 31)).seq for i in range(30)]
    cafe = demo_retirement(app)
    client = app.test_client()
    first = page(client, "/registry/retirements")
    assert 'data-count="33"' in first
    assert seqs_listed(first) == set(sorted(bulk)[-25:])  # newest first
    assert 'rel="next"' in first and "page=2" in first
    second = page(client, "/registry/retirements?page=2")
    assert seqs_listed(second) == set(sorted(bulk)[:5]) | set(DEMO_RETIREMENTS)
    assert cafe == DEMO_RETIREMENTS[0]
    assert 'rel="prev"' in second
    assert seqs_listed(page(client, "/registry/retirements?page=abc")) == seqs_listed(first)
    beyond = page(client, "/registry/retirements?page=9")
    assert seqs_listed(beyond) == set() and "no results on page 9" in beyond
    only = page(client, "/registry/retirements?beneficiary=beneficiary+2")
    assert len(seqs_listed(only)) == 11  # 2, 20..29
    assert "page=2" not in only


# -- serial look-up -------------------------------------------------------------------------


def test_serial_lookup_by_number_and_string(app: Flask) -> None:
    client_of_buyer = buyer(app, "quinn@example.org", "Quinn Buyer")
    _, [seq] = buy(app, client_of_buyer, "944", 3, beneficiary="Acme Teapots")
    [(first, last, serial)] = retired_blocks(app, seq)
    client = app.test_client()
    for query in (str(first + 1), serial, f"  {serial}  "):
        html = page(client, f"/registry/serial?{_q(query)}")
        assert 'role="alert"' not in html
        assert f"data-current-serial>{serial}<" in html
        assert f"/registry/certificates/{seq}" in html
        # The whole history: issued to the inventory, moved to the buyer, retired there.
        assert "Issued" in html and "Transferred" in html and "Retired" in html
        assert "the marketplace&#39;s inventory" in html and "a buyer&#39;s account" in html
        with transaction(app) as session:
            hashes = [e.hash for e in session.scalars(select(Entry).where(
                Entry.seq.in_([1, seq - 1, seq])))]
        for digest in hashes:
            assert digest in html
        assert "Quinn" not in html and "quinn@example.org" not in html
    # A serial still in the inventory: its block is tradable and held by the marketplace.
    html = page(client, f"/registry/serial?q={last + 1}")
    assert "tradable" in html and "/registry/certificates/" not in html


@pytest.mark.parametrize("query, message", [
    ("999999999999", "No credit with serial number 999999999999"),
    ("4821-1-2-VCS-VCU-263-VER-PE-14-944-01012016-31122016-1", "No credit with serial"),
    ("SLV-not-a-serial", "not a serial number or serial string"),
    ("hello world", "not a serial number or serial string"),
    ("0", "not a serial number or serial string"),
    ("²", "not a serial number or serial string"),
    ("9" * 300, "too long"),
])
def test_serial_lookup_bad_or_unknown(app: Flask, query: str, message: str) -> None:
    html = page(app.test_client(), f"/registry/serial?{_q(query)}")
    assert 'role="alert"' in html and message in html


def _q(text: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"q": text})


def test_entry_page_shows_the_record_and_hash(app: Flask) -> None:
    seq = demo_retirement(app)
    client = app.test_client()
    html = page(client, f"/registry/entries/{seq}")
    with transaction(app) as session:
        entry = session.get(Entry, seq)
        digest, record = entry.hash, json.loads(bytes(entry.record))
    assert f"data-hash>{digest}<" in html
    assert "&#34;kind&#34;: &#34;retire&#34;" in html
    assert record["data"]["beneficiary"] in html  # the salted commitment, never the name
    assert f"/registry/certificates/{seq}" in html
    page(client, "/registry/entries/9999", 404)


# -- certificates ---------------------------------------------------------------------------


def test_certificate_page_json_and_pdf(app: Flask, keys: tuple[Path, Path], verifier: str,
                                       tmp_path: Path) -> None:
    _, [seq] = buy(app, buyer(app), "868", 2, beneficiary="Ada Lovelace", purpose="net_zero",
                   country="FR", period_start="2025-01-01", period_end="2025-06-30")
    [(first, last, serial)] = retired_blocks(app, seq)
    client = app.test_client()
    html = page(client, f"/registry/certificates/{seq}")
    for text in ("Ada Lovelace", serial, "Madre de Dios Amazon Forest Protection", "VCS-868",
                 "2014", "Progress towards a net-zero or climate target", "2025-01-01",
                 "2025-06-30", "python -m ledger.verify --certificate"):
        assert text in html, text

    response = client.get(f"/registry/certificates/{seq}.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    cert = response.get_json()
    assert cert["format"] == "selva-certificate/1"
    assert cert["seq"] == seq and cert["leaf_index"] == seq - 1 and cert["kind"] == "retirement"
    assert cert["beneficiary"]["name"] == "Ada Lovelace" and cert["withheld"] is False
    assert cert["quantity"] == 2 and cert["serials"] == [serial]
    assert cert["project"] == {"ref": "VCS-868", "name": "Madre de Dios Amazon Forest Protection",
                               "country": "PE"}
    assert cert["vintage"] == {"start": "2014-01-01", "end": "2014-12-31"}
    assert cert["purpose"] == {"code": "net_zero",
                               "label": "Progress towards a net-zero or climate target"}
    assert cert["country"] == "FR" and cert["period"] == {"start": "2025-01-01", "end": "2025-06-30"}
    assert cert["date"] == cert["recorded_at"][:10]
    assert cert["links"]["page"] == f"http://localhost/registry/certificates/{seq}"
    assert cert["links"]["pdf"].endswith(f"/registry/certificates/{seq}.pdf")
    assert cert["tree_size"] >= seq
    assert base64.b64decode(cert["root"]) == open_note(cert["checkpoint"].encode(), verifier).root
    with transaction(app) as session:
        assert cert["hash"] == session.get(Entry, seq).hash
        assert cert["batch"] == session.scalar(select(Block.batch_id).where(Block.created_by == seq,
                                                                            Block.state == "retired"))
    assert verify_certificate(cert, verifier).startswith(f"certificate OK: seq {seq}, 2 t retired "
                                                         "for Ada Lovelace")
    cert_file = tmp_path / "certificate.json"
    cert_file.write_bytes(response.data)
    result = subprocess.run([sys.executable, "-m", "ledger.verify", "--certificate", str(cert_file),
                             "--key", str(keys[1])], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "certificate OK" in result.stdout
    # The certificate is stable: asking again gives the same checkpoint and proof.
    assert client.get(f"/registry/certificates/{seq}.json").get_json() == cert

    response = client.get(f"/registry/certificates/{seq}.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    pdf = response.data
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and len(pdf) > 5000
    assert b"/MediaBox [0 0 595.27" in _pdf_objects(pdf)  # one A4 page
    with app.test_request_context():
        printed = registry.render_certificate_print(cert)
    assert serial in printed and "Ada Lovelace" in printed
    assert f"http://localhost/registry/certificates/{seq}" in printed
    assert 'src="data:image/svg+xml;base64,' in printed
    assert "<link" not in printed and "http://localhost/static" not in printed  # self-contained


def test_certificates_only_for_retirements(app: Flask) -> None:
    client = app.test_client()
    for suffix in ("", ".json", ".pdf"):
        page(client, f"/registry/certificates/1{suffix}", 404)  # an issuance
        page(client, f"/registry/certificates/9999{suffix}", 404)
        page(client, f"/registry/certificates/0{suffix}", 404)


def test_the_buyers_order_page_links_to_the_certificate(app: Flask) -> None:
    client = buyer(app)
    reference, [seq] = buy(app, client, "944", 1)
    [(_, _, serial)] = retired_blocks(app, seq)
    html = page(client, f"/orders/{reference}")
    assert f"/registry/certificates/{seq}" in html
    assert f"/registry/certificates/{seq}.pdf" in html
    assert "/registry/serial?q=" + serial in html


def test_erasure_withholds_the_name_and_the_ledger_still_verifies(
        app: Flask, verifier: str, keys: tuple[Path, Path], tmp_path: Path) -> None:
    customer = buyer(app)
    _, [seq] = buy(app, customer, "868", 1, beneficiary="Ada Lovelace")
    add_user(app, "op@example.org", "Olga Operator", role="operator")
    operator = app.test_client()
    login(operator, "op@example.org")
    anonymous = app.test_client()
    before = anonymous.get(f"/registry/certificates/{seq}.json").get_json()

    assert "Withhold the beneficiary" not in page(customer, f"/registry/certificates/{seq}")
    assert "Withhold the beneficiary" in page(operator, f"/registry/certificates/{seq}")
    response = anonymous.post(f"/registry/certificates/{seq}/erase")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert customer.post(f"/registry/certificates/{seq}/erase").status_code == 403
    assert operator.post("/registry/certificates/1/erase").status_code == 404
    assert "Ada Lovelace" in page(anonymous, f"/registry/certificates/{seq}")

    response = operator.post(f"/registry/certificates/{seq}/erase")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/registry/certificates/{seq}")
    assert operator.post(f"/registry/certificates/{seq}/erase").status_code == 302  # idempotent

    html = page(anonymous, f"/registry/certificates/{seq}")
    assert "Ada Lovelace" not in html
    assert "withheld at the holder's request" in html
    cert = anonymous.get(f"/registry/certificates/{seq}.json").get_json()
    assert cert["beneficiary"] is None and cert["withheld"] is True
    assert cert["record"] == before["record"] and cert["hash"] == before["hash"]
    assert "withheld" in verify_certificate(cert, verifier)
    cert_file = tmp_path / "erased.json"
    cert_file.write_text(json.dumps(cert))
    result = subprocess.run([sys.executable, "-m", "ledger.verify", "--certificate", str(cert_file),
                             "--key", str(keys[1])], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    # The certificate issued before the erasure still verifies too (it carried the name then).
    assert "Ada Lovelace" in verify_certificate(before, verifier)
    with app.test_request_context():
        printed = registry.render_certificate_print(cert)
    assert "Ada Lovelace" not in printed and "withheld at the holder" in printed
    pdf = anonymous.get(f"/registry/certificates/{seq}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    listing = page(anonymous, "/registry/retirements")
    assert "Ada Lovelace" not in listing and seq in seqs_listed(listing)
    assert "Withheld at the holder" in listing
    assert seqs_listed(page(anonymous, "/registry/retirements?beneficiary=ada")) == set()
    with transaction(app) as session:
        audit.verify(session)
    result = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert "ledger OK" in result.output


# -- the raw ledger -------------------------------------------------------------------------


def test_checkpoint_key_and_proofs(app: Flask, verifier: str) -> None:
    client = app.test_client()
    response = client.get("/ledger/key")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    key = response.get_data(as_text=True).strip()
    assert key == verifier
    first = client.get("/ledger/checkpoint")
    assert first.mimetype == "text/plain"
    one = open_note(first.data, key, origin="selva.example/ledger")
    with transaction(app) as session:
        assert one.size == session.scalar(select(Entry.seq).order_by(Entry.seq.desc()).limit(1))
    assert client.get("/ledger/checkpoint").data == first.data  # nothing new: the same note

    _, [seq] = buy(app, buyer(app), "944", 2)
    second = client.get("/ledger/checkpoint")
    two = open_note(second.data, key)
    assert two.size > one.size and seq <= two.size
    assert client.get(f"/ledger/checkpoint?size={one.size}").data == first.data
    assert client.get("/ledger/checkpoint?size=2").status_code == 404
    assert client.get("/ledger/checkpoint?size=x").status_code == 400

    proof = client.get(f"/ledger/proofs/consistency?from={one.size}&to={two.size}").get_json()
    assert base64.b64decode(proof["from_root"]) == one.root
    assert base64.b64decode(proof["to_root"]) == two.root
    verify_consistency(one.size, two.size, one.root, two.root,
                       [base64.b64decode(p) for p in proof["proof"]])

    inclusion = client.get(f"/ledger/proofs/inclusion?seq={seq}&size={two.size}").get_json()
    with transaction(app) as session:
        entry = session.get(Entry, seq)
        record, digest = bytes(entry.record), entry.hash
    assert inclusion["hash"] == digest and inclusion["leaf_index"] == seq - 1
    assert base64.b64decode(inclusion["leaf_hash"]) == leaf_hash(record)
    assert inclusion["checkpoint"] == second.get_data(as_text=True)
    verify_inclusion(seq - 1, two.size, leaf_hash(record),
                     [base64.b64decode(p) for p in inclusion["proof"]], two.root)
    # An older tree: the proof leads to that tree's root.
    old = client.get(f"/ledger/proofs/inclusion?seq=2&size={one.size}").get_json()
    with transaction(app) as session:
        record2 = bytes(session.get(Entry, 2).record)
    verify_inclusion(1, one.size, leaf_hash(record2), [base64.b64decode(p) for p in old["proof"]],
                     one.root)


@pytest.mark.parametrize("path", [
    "/ledger/proofs/inclusion",
    "/ledger/proofs/inclusion?seq=1",
    "/ledger/proofs/inclusion?seq=abc&size=3",
    "/ledger/proofs/inclusion?seq=-1&size=3",
    "/ledger/proofs/inclusion?seq=0&size=3",
    "/ledger/proofs/inclusion?seq=4&size=3",
    "/ledger/proofs/inclusion?seq=1&size=100000",
    "/ledger/proofs/inclusion?seq=1&size=99999999999999999999999",
    "/ledger/proofs/consistency?from=1",
    "/ledger/proofs/consistency?from=0&to=3",
    "/ledger/proofs/consistency?from=4&to=3",
    "/ledger/proofs/consistency?from=1&to=100000",
    "/ledger/proofs/consistency?from=1.5&to=3",
])
def test_bad_proof_parameters_are_400_json(app: Flask, path: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 400
    assert response.is_json and response.get_json()["error"]


def test_the_published_journal_verifies_offline(app: Flask, keys: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    buy(app, buyer(app), "1001", 3)
    client = app.test_client()
    response = client.get("/ledger/journal.jsonl")
    assert response.status_code == 200
    size = int(response.headers["X-Checkpoint-Size"])
    with transaction(app) as session:
        assert size == session.scalar(select(Entry.seq).order_by(Entry.seq.desc()).limit(1))
    lines = response.data.splitlines()
    assert len(lines) == size
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, size + 1))
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "journal.jsonl").write_bytes(response.data)
    (folder / "checkpoint.txt").write_bytes(client.get(f"/ledger/checkpoint?size={size}").data)
    (folder / "key.pub").write_bytes(client.get("/ledger/key").data)
    (folder / "manifest.json").write_bytes(client.get(f"/ledger/manifest.json?size={size}").data)
    result = subprocess.run([sys.executable, "-m", "ledger.verify", str(folder), "--key",
                             str(keys[1])], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "journal OK" in result.stdout and "SLV-1001" in result.stdout


def test_a_customers_name_never_appears_on_registry_pages(app: Flask) -> None:
    client = buyer(app, "quentin@example.org", "Quentin Privatename")
    _, [retired] = buy(app, client, "944", 2, beneficiary="Green Teapot Ltd")
    buy(app, client, "868", 3, action="hold")
    with transaction(app) as session:
        user = session.scalars(select(User).where(User.email == "quentin@example.org")).one()
        user_account, user_id = account_of(session, user).id, user.id
        size = session.scalar(select(Entry.seq).order_by(Entry.seq.desc()).limit(1))
        held_first = session.scalar(select(Block.first_serial).where(
            Block.account_id == user_account, Block.state == "tradable",
            Block.spent_by.is_(None)))
    [(_, _, retired_serial)] = retired_blocks(app, retired)
    anonymous = app.test_client()
    urls = ["/registry", "/registry/retirements", "/registry/retirements?beneficiary=teapot",
            f"/registry/serial?{_q(retired_serial)}", f"/registry/serial?q={held_first}",
            f"/registry/certificates/{retired}", f"/registry/certificates/{retired}.json",
            "/ledger/journal.jsonl", "/ledger/checkpoint"]
    urls += [f"/registry/entries/{seq}" for seq in range(1, size + 1)]
    seen = ""
    for url in urls:
        text = page(anonymous, url)
        for secret in ("Quentin", "Privatename", "quentin@example.org"):
            assert secret not in text, (url, secret)
        seen += text
    assert "Green Teapot Ltd" in seen  # the beneficiary they chose to publish
    assert f"user:{user_id}" not in seen


def _csrf(html: str) -> str:
    tag = re.search(r'<input[^>]*name="csrf_token"[^>]*>', html)
    assert tag, "no CSRF token in the form"
    match = re.search(r'value="([^"]+)"', tag.group(0))
    assert match
    return match.group(1)


def test_erasure_needs_the_forms_csrf_token(fresh_url: str, keys: tuple[Path, Path]) -> None:
    app = make_app(fresh_url, CHECKPOINT_KEY=str(keys[0]), WTF_CSRF_ENABLED=True)
    try:
        load_demo(app)
        seq = demo_retirement(app)
        add_user(app, "op@example.org", "Olga Operator", role="operator")
        operator = app.test_client()
        token = _csrf(page(operator, "/login"))
        from .shop import PASSWORD

        assert operator.post("/login", data={"email": "op@example.org", "password": PASSWORD,
                                             "csrf_token": token}).status_code == 302
        html = page(operator, f"/registry/certificates/{seq}")
        assert operator.post(f"/registry/certificates/{seq}/erase").status_code == 400
        assert "Café Tunki, Lima" in page(operator, f"/registry/certificates/{seq}")
        response = operator.post(f"/registry/certificates/{seq}/erase",
                                 data={"csrf_token": _csrf(html)})
        assert response.status_code == 302
        assert "Café Tunki, Lima" not in page(operator, f"/registry/certificates/{seq}")
    finally:
        bind = app.extensions["selva_db"].kw.get("bind")
        if bind is not None:
            bind.dispose()


def test_without_a_signing_key_the_registry_still_serves_pages(fresh_url: str,
                                                               tmp_path: Path) -> None:
    app = make_app(fresh_url, CHECKPOINT_KEY=str(tmp_path / "missing.key"))
    try:
        load_demo(app)
        seq = demo_retirement(app)
        client = app.test_client()
        assert "No checkpoint has been signed yet" in page(client, "/registry")
        page(client, "/registry/retirements")
        page(client, f"/registry/entries/{seq}")
        for url in ("/ledger/checkpoint", "/ledger/key", "/ledger/journal.jsonl"):
            response = client.get(url)
            assert response.status_code == 503 and response.mimetype == "text/plain", url
        assert client.get(f"/registry/certificates/{seq}").status_code == 503
        assert client.get(f"/registry/certificates/{seq}.json").status_code == 503
    finally:
        bind = app.extensions["selva_db"].kw.get("bind")
        if bind is not None:
            bind.dispose()


def test_the_app_never_signs_a_checkpoint_under_another_origin(
        app: Flask, keys: tuple[Path, Path]) -> None:
    """The origin line names the log; the key is named after it. A checkpoint whose origin
    differs from the key's name would be refused by every verifier, so it is never signed."""
    from ledger.checkpoint import CheckpointError

    signer = keys[0].read_text().strip()
    with pytest.raises(CheckpointError, match="is not its key's name"), \
            transaction(app) as session:
        tree.sign_checkpoint(session, signer, "selva.example/another-log")
    with transaction(app) as session:
        signed = tree.sign_checkpoint(session, signer, "selva.example/ledger")
        assert signed.note.startswith("selva.example/ledger\n")


def test_a_certificate_pdf_is_rendered_once_and_again_after_an_erasure(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from marketplace.models.rendered import CertificatePdf

    customer = buyer(app)
    _, [seq] = buy(app, customer, "868", 1, beneficiary="Grace Hopper")
    rendered: list[str] = []
    real = registry.pdf_from_html

    def counting(html: str) -> bytes:
        rendered.append(html)
        return real(html)

    monkeypatch.setattr(registry, "pdf_from_html", counting)
    anonymous = app.test_client()
    first = anonymous.get(f"/registry/certificates/{seq}.pdf")
    second = anonymous.get(f"/registry/certificates/{seq}.pdf")
    assert first.status_code == second.status_code == 200
    assert len(rendered) == 1 and "Grace Hopper" in rendered[0]
    assert second.data == first.data and first.data.startswith(b"%PDF-")
    etag = first.headers["ETag"]
    assert etag and second.headers["ETag"] == etag
    again = anonymous.get(f"/registry/certificates/{seq}.pdf", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and len(rendered) == 1
    with transaction(app) as session:
        row = session.get(CertificatePdf, ("retirement", str(seq)))
        assert row is not None and bytes(row.pdf) == first.data

    add_user(app, "pdf-op@example.org", "Petra Operator", role="operator")
    operator = app.test_client()
    login(operator, "pdf-op@example.org")
    assert operator.post(f"/registry/certificates/{seq}/erase").status_code == 302
    with transaction(app) as session:  # the stored PDF with the name went with the erasure
        assert session.get(CertificatePdf, ("retirement", str(seq))) is None
    after = anonymous.get(f"/registry/certificates/{seq}.pdf", headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["ETag"] != etag
    assert len(rendered) == 2 and "Grace Hopper" not in rendered[1]
    assert anonymous.get(f"/registry/certificates/{seq}.pdf").data == after.data
    assert len(rendered) == 2

    # When what the certificate can change with moves (the origin registry recorded
    # something), the certificate is built again: unchanged, the stored PDF is kept...
    with transaction(app) as session:
        session.get(CertificatePdf, ("retirement", str(seq))).stamp = "moved"
    assert anonymous.get(f"/registry/certificates/{seq}.pdf").data == after.data
    assert len(rendered) == 2
    with transaction(app) as session:
        assert session.get(CertificatePdf, ("retirement", str(seq))).stamp != "moved"
    # ...and changed (its digest differs), it is rendered anew.
    with transaction(app) as session:
        row = session.get(CertificatePdf, ("retirement", str(seq)))
        row.stamp, row.digest = "moved", "0" * 64
    assert anonymous.get(f"/registry/certificates/{seq}.pdf").status_code == 200
    assert len(rendered) == 3


def test_an_erasure_during_the_first_render_never_leaves_the_name_served(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from marketplace.models.rendered import CertificatePdf

    _, [seq] = buy(app, buyer(app), "868", 1, beneficiary="Ada Byron")
    real = registry.pdf_from_html
    rendered: list[str] = []

    def erasing(html: str) -> bytes:
        rendered.append(html)
        if len(rendered) == 1:  # an operator erases the name while the first PDF renders
            with transaction(app) as session:
                operations.erase_beneficiary(session, seq)
        return real(html)

    monkeypatch.setattr(registry, "pdf_from_html", erasing)
    client = app.test_client()
    assert client.get(f"/registry/certificates/{seq}.pdf").status_code == 200
    assert "Ada Byron" in rendered[0]
    with transaction(app) as session:  # the PDF rendered with the name was not kept
        assert session.get(CertificatePdf, ("retirement", str(seq))) is None
    again = client.get(f"/registry/certificates/{seq}.pdf")
    assert again.status_code == 200 and len(rendered) == 2 and "Ada Byron" not in rendered[1]
    assert client.get(f"/registry/certificates/{seq}.pdf").data == again.data
    assert len(rendered) == 2

    # Should a stored row still carry a name erased since, its stamp is stale: never served.
    with transaction(app) as session:
        row = session.get(CertificatePdf, ("retirement", str(seq)))
        row.stamp = row.stamp.replace("|True|", "|False|")
    client.get(f"/registry/certificates/{seq}.pdf")
    assert len(rendered) == 2  # rebuilt and re-stamped: same document, no new render
    with transaction(app) as session:
        assert "|True|" in session.get(CertificatePdf, ("retirement", str(seq))).stamp
