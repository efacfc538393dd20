"""The registry of record, end to end on both databases: Verra's export imported through the
CLI and the operator's pages, conflicts frozen at once in the shop, the API and the registry,
certificates that show (and prove offline) what the origin registry shows, labels with their
history and the filters on them.

The demo (``marketplace.demo``) leaves three retirements: seq 3 covered at origin, seq 10
pending, seq 12 in conflict (5 t of it retired at Verra for another buyer, whose 49 other
serials froze in the inventory).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ledger import audit, operations, queries
from ledger.schema import Batch, Block, Entry
from ledger.verify import Invalid, check_origin, verify_certificate, verify_export
from marketplace import checkout
from marketplace.demo import DEMO_ORIGIN_FILE
from marketplace.models.api import WebhookEndpoint, WebhookEvent
from marketplace.models.mail import OutboxEmail

from .shop import add_user, login, transaction
from .test_api_helpers import make_company
from .test_registry import app, keys, seqs_listed, verifier  # noqa: F401  (its fixtures)

COVERED, PENDING, CONFLICT = 3, 10, 12
UPDATE_FILE = DEMO_ORIGIN_FILE.with_name("verra_vcus_2026.csv")
HEADER = DEMO_ORIGIN_FILE.read_text(encoding="utf-8").splitlines()[0]
ALTO_2017 = (88_120_455, 5903)  # batch 2: first serial, Verra issuance


def cli(app: Flask, *args: str) -> Result:
    with app.app_context():
        return app.test_cli_runner().invoke(args=list(args))


def entries(app: Flask) -> int:
    with transaction(app) as session:
        return int(session.scalar(select(func.count()).select_from(Entry)) or 0)


def certificate(client: FlaskClient, seq: int) -> dict[str, object]:
    response = client.get(f"/registry/certificates/{seq}.json")
    assert response.status_code == 200
    data: dict[str, object] = response.get_json()
    return data


def verra_row(serial: str, quantity: int, *, date: str = "01/12/2026",
              beneficiary: str = "Other Offsets GmbH", reason: str = "Environmental Benefit",
              project: str | None = None) -> str:
    project = project or serial.split("-")[9]
    return (f"02/10/2018,,01/01/2017,31/12/2017,{project},Alto Mayo Protected Forest,Peru,"
            f"Agriculture Forestry and Other Land Use,VM0015,\"700,000\",\"{quantity:,}\","
            f"{serial},CCB-Gold,{date},\"{beneficiary}\",{reason},,")


def alto_2017(first: int, last: int) -> str:
    return f"5903-{first}-{last}-VCS-VCU-263-VER-PE-14-944-01012017-31122017-1"


def write_csv(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "export.csv"
    path.write_text("\r\n".join([header, *rows]) + "\r\n", encoding="utf-8")
    return path


# -- the demo shows all three -----------------------------------------------------------------


def test_the_demo_shows_covered_pending_and_conflict(app: Flask, verifier: str) -> None:
    client = app.test_client()
    statuses = {seq: certificate(client, seq)["origin"] for seq in (COVERED, PENDING, CONFLICT)}
    assert {seq: o["status"] for seq, o in statuses.items()} == {  # type: ignore[index]
        COVERED: "covered", PENDING: "pending", CONFLICT: "conflict"}
    conflict = statuses[CONFLICT]
    assert (conflict["conflict_tonnes"], conflict["pending_tonnes"]) == (5, 5)  # type: ignore[index]
    html = client.get(f"/registry/certificates/{CONFLICT}").get_data(as_text=True)
    assert 'data-origin-status="conflict"' in html and "Amazonia Offsets S.A.C." in html
    origin_page = client.get("/registry/origin").get_data(as_text=True)
    assert "serials 40118707-40118711 (5 t) retired here" in origin_page
    assert "serials 40118712-40118760 (49 t) frozen here" in origin_page
    assert cli(app, "origin", "status").exit_code == 1
    with transaction(app) as session:
        assert audit.verify(session).totals["VCS-868"].frozen == 49


# -- importing Verra's export ------------------------------------------------------------------


def test_reconcile_covers_a_pending_retirement_and_twice_adds_nothing(app: Flask,
                                                                    verifier: str) -> None:
    client = app.test_client()
    before = certificate(client, PENDING)
    assert before["origin"]["status"] == "pending"  # type: ignore[index]
    first = cli(app, "origin", "reconcile", "--registry", "verra", str(UPDATE_FILE))
    assert first.exit_code == 1, first.output  # the demo's conflict is still there
    lines = first.stdout.splitlines()
    assert lines[0].startswith("read 5 rows: 1 origin record added (8 t), 66 t already recorded")
    assert ("VCS-944 2016 (batch 1)  retired here 20 t | covered at origin 20 t | pending at "
            "origin 0 t | conflicts 0 t") in lines
    assert ("VCS-868 2014 (batch 4)  retired here 10 t | covered at origin 0 t | pending at "
            "origin 5 t | conflicts 54 t") in lines
    assert sum(line.startswith("conflict: ") for line in lines) == 2
    count = entries(app)
    again = cli(app, "origin", "reconcile", str(UPDATE_FILE))
    assert again.exit_code == 1
    assert again.stdout.startswith("read 5 rows: 0 origin records added (0 t), 74 t already")
    assert entries(app) == count
    after = certificate(client, PENDING)
    origin = after["origin"]
    assert origin["status"] == "covered"  # type: ignore[index]
    [record] = origin["records"]  # type: ignore[index]
    assert (record["first"], record["last"], record["ours"]) == (61_407_223, 61_407_230, True)
    assert record["url"] == "https://registry.verra.org/app/projectDetail/VCS/944"
    checked = verify_certificate(after, verifier)
    assert checked.splitlines()[1].startswith("origin: covered: all 8 t are retired at the "
                                              "origin registry into this marketplace's name")
    pending = verify_certificate(before, verifier)
    assert pending.splitlines()[1].startswith("origin: pending: 8 t not yet shown retired")


def test_a_conflicting_row_freezes_exactly_its_serials_everywhere_at_once(
        app: Flask, tmp_path: Path) -> None:
    """Verra shows 100 serials of Alto Mayo 2017, in the middle of the inventory's block,
    retired for someone else. Exactly those 100 freeze, and the shop, the API and the
    registry stop offering them at once."""
    first = ALTO_2017[0] + 1000
    client = app.test_client()
    company = make_company(app)
    api = lambda: {v["batch"]: v["available_tonnes"] for v in client.get(  # noqa: E731
        "/api/v1/projects/1", headers=company.headers).get_json()["vintages"]}
    with transaction(app) as session:
        batch = session.scalar(select(Batch.id).where(Batch.first_serial == ALTO_2017[0]))
        shop_before = checkout.for_sale_by_batch(session)[batch]
        tradable_before = queries.batch_totals(session)[batch].tradable
    api_before = api()[batch]
    page_before = client.get("/projects/alto-mayo").get_data(as_text=True)
    assert f"{shop_before:,} t" in page_before
    path = write_csv(tmp_path, verra_row(alto_2017(first, first + 99), 100))
    result = cli(app, "origin", "reconcile", str(path))
    assert result.exit_code == 1
    assert (f"conflict: VCS-944 2017 (batch {batch}) serials {first}-{first + 99} (100 t) frozen "
            "here") in result.stdout
    with transaction(app) as session:
        assert checkout.for_sale_by_batch(session)[batch] == shop_before - 100
        totals = queries.batch_totals(session)[batch]
        assert (totals.tradable, totals.frozen) == (tradable_before - 100, 100)
        frozen = session.execute(select(Block.first_serial, Block.last_serial).where(
            Block.batch_id == batch, Block.state == "frozen")).all()
        assert [tuple(r) for r in frozen] == [(first, first + 99)]
        assert audit.verify(session).entries == session.scalar(
            select(func.count()).select_from(Entry))
    assert api()[batch] == api_before - 100
    page_after = client.get("/projects/alto-mayo").get_data(as_text=True)
    assert f"{shop_before - 100:,} t" in page_after
    registry = client.get("/registry").get_data(as_text=True)
    assert f'<tr data-batch="{batch}">' in registry
    assert 'data-col="frozen">100<' in registry


def test_a_retirement_covered_by_an_import_sends_its_webhook_and_api_shows_origin(
        app: Flask, tmp_path: Path) -> None:
    company = make_company(app)
    with transaction(app) as session:
        session.add(WebhookEndpoint(organisation_id=company.org_id, url="http://127.0.0.1:9/x",
                                    secret="whsec_x", livemode=True,
                                    events="retirement.covered_at_origin",
                                    created_by=company.user_id))
        batch = session.scalar(select(Batch.id).where(Batch.first_serial == ALTO_2017[0]))
        operations.transfer(session, from_account=checkout.inventory_account(session).id,
                            to_account=company.account_id, quantity=5, batch_id=batch)
    client = app.test_client()
    response = client.post("/api/v1/retirements", headers=company.headers, json={
        "quantity": 5, "beneficiary": "Acme Travel Ltd", "purpose": "travel", "country": "GB",
        "period_start": "2025-01-01", "period_end": "2025-12-31"})
    assert response.status_code == 201, response.get_data(as_text=True)
    retirement = response.get_json()
    assert retirement["origin"]["status"] == "pending"
    assert retirement["labels"][0]["mitigation"] == "avoidance"
    [serial] = retirement["serials"]
    first, last = int(serial.split("-")[1]), int(serial.split("-")[2])
    path = write_csv(tmp_path, verra_row(alto_2017(first, last), 5,
                                         beneficiary="Selva customers, see selva.example"))
    imported = cli(app, "origin", "reconcile", str(path))
    assert imported.exit_code == 1, imported.output  # the demo's conflict
    assert "1 retirement newly covered" in imported.stdout, imported.output
    shown = client.get(f"/api/v1/retirements/{retirement['id']}", headers=company.headers)
    assert shown.get_json()["origin"]["status"] == "covered"
    with transaction(app) as session:
        events = list(session.scalars(select(WebhookEvent).where(
            WebhookEvent.organisation_id == company.org_id)))
        assert [e.type for e in events] == ["retirement.covered_at_origin"]
        payload = json.loads(events[0].payload)
        assert payload["data"]["object"]["id"] == retirement["id"]
        assert payload["data"]["object"]["origin"]["status"] == "covered"
        # ... and the organisation's admin gets an email saying so
        [note] = [m for m in session.scalars(select(OutboxEmail))
                  if m.kind == "covered_at_origin"]
        assert note.to_address == company.email and "covered at the origin" in note.subject
        assert f"/registry/certificates/{retirement['seq']}" in note.body
    assert cli(app, "origin", "reconcile", str(path)).exit_code == 1
    with transaction(app) as session:  # the same file again: no second event
        assert session.scalar(select(func.count()).select_from(WebhookEvent).where(
            WebhookEvent.organisation_id == company.org_id)) == 1
        assert session.scalar(select(func.count()).select_from(OutboxEmail).where(
            OutboxEmail.kind == "covered_at_origin")) == 1


@pytest.mark.parametrize("content, message", [
    ("Serial Number,Quantity\r\n", "the header is not Verra's VCU export"),
    (None, "does not parse"),
    ("qty", "is not the 100 t its serial number holds"),
    ("issuance", "which mirrors Verra issuance 5903 of VCS 944, but the file names issuance 5904"),
    ("nul", "NUL bytes"),
    ("latin1", "not UTF-8"),
    ("date", "is not a date"),
    ("", "the file is empty"),
])
def test_a_bad_file_is_one_line_exit_2_and_writes_nothing(app: Flask, tmp_path: Path,
                                                          content: str | None,
                                                          message: str) -> None:
    good = alto_2017(ALTO_2017[0] + 10, ALTO_2017[0] + 109)
    path = tmp_path / "bad.csv"
    rows = {
        None: verra_row("5903-1-2-NOT-A-SERIAL", 2, project="944"),
        "qty": verra_row(good, 99),
        "issuance": verra_row(good.replace("5903-", "5904-", 1), 100),
        "date": verra_row(good, 100, date="yesterday"),
    }
    if content in rows:
        # a good row first, so that a half-done import would show
        path.write_text("\r\n".join([HEADER, verra_row(alto_2017(ALTO_2017[0], ALTO_2017[0] + 9),
                                                       10), rows[content]]) + "\r\n")
    elif content == "nul":
        path.write_bytes((HEADER + "\r\n" + verra_row(good, 100)).encode() + b"\x00\r\n")
    elif content == "latin1":
        path.write_bytes((HEADER + "\r\n" + verra_row(good, 100, beneficiary="Caf\xe9"))
                         .encode("latin-1"))
    else:
        path.write_text(content or "")
    count = entries(app)
    result = cli(app, "origin", "reconcile", "--registry", "verra", str(path))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert entries(app) == count


def test_rows_outside_every_batch_are_ignored_not_errors(app: Flask, tmp_path: Path) -> None:
    path = write_csv(tmp_path, verra_row(
        "9660-115597313-115618057-VCS-VCU-261-VER-US-14-1060-01012019-31122019-0", 20_745,
        project="1060"))
    count = entries(app)
    result = cli(app, "origin", "reconcile", str(path))
    assert result.exit_code == 1  # the demo's conflict
    assert "1 row ignored (20,745 t outside every mirrored batch)" in result.stdout
    assert entries(app) == count


def test_record_one_origin_retirement_by_hand(app: Flask) -> None:
    first = ALTO_2017[0]
    result = cli(app, "origin", "record", "--batch", "2", "--serials", f"{first}-{first + 4}",
                 "--date", "2026-11-30", "--beneficiary", "Selva customers",
                 "--reference", "https://registry.example/tx/42")
    assert result.exit_code == 0, result.output
    assert "origin retired 5 t of batch 2 (ours); 0 t frozen" in result.stdout
    overlap = cli(app, "origin", "record", "--batch", "2", "--serials", f"{first + 4}-{first + 9}",
                  "--date", "2026-11-30", "--beneficiary", "Someone",
                  "--reference", "tx 43")
    assert overlap.exit_code == 1 and "overlap the origin record" in overlap.stderr
    native = cli(app, "origin", "record", "--batch", "6", "--serials", "1-5", "--date",
                 "2026-11-30", "--reference", "x")
    assert native.exit_code == 1 and "registry of record" in native.stderr


# -- the operator's pages -----------------------------------------------------------------------


def test_operator_uploads_the_export_and_sees_the_reconciliation(app: Flask) -> None:
    add_user(app, "op@example.org", role="operator")
    client = app.test_client()
    login(client, "op@example.org")
    page = client.get("/operator/origin").get_data(as_text=True)
    assert "Retire at origin next" in page and "61407223–61407230" in page
    assert "Selva customers, see selva.example/registry" in page
    response = client.post("/operator/origin/import", data={
        "registry": "verra", "file": (UPDATE_FILE.open("rb"), "verra.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 302
    page = client.get("/operator/origin").get_data(as_text=True)
    assert "Imported verra.csv: read 5 rows: 1 origin record added (8 t)" in page
    assert "61407223–61407230" not in page  # no longer pending
    bad = client.post("/operator/origin/import", data={
        "registry": "verra", "file": (open(__file__, "rb"), "notes.csv")},
        content_type="multipart/form-data")
    assert bad.status_code == 200
    assert "Nothing was saved." in bad.get_data(as_text=True)
    assert "notes.csv: line 1: the header is not Verra" in bad.get_data(as_text=True)


def test_labels_form_records_a_change_with_its_history(app: Flask) -> None:
    add_user(app, "op@example.org", role="operator")
    client = app.test_client()
    login(client, "op@example.org")
    count = entries(app)
    response = client.post("/operator/batches/1/labels", data={
        "ccp": "y", "ccp_since": "2026-11-01", "ca_declaration": "Committed",
        "ca_status": "Pending", "corsia": "first_phase", "mitigation": "avoidance",
        "effective": "2026-11-01", "note": "Approved"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert entries(app) == count + 1
    history = client.get("/registry/batches/1").get_data(as_text=True)
    assert "ICVCM CCP since 2026-11-01" in history and "Approved" in history
    refused = client.post("/operator/batches/1/labels", data={
        "ca_declaration": "Unknown", "ca_status": "Completed", "effective": "2026-11-02"})
    assert "once it is committed" in refused.get_data(as_text=True)
    assert entries(app) == count + 1
    assert client.get("/operator/batches/99999999999/labels").status_code == 404


def test_auditors_see_the_reconciliation_but_change_nothing(app: Flask) -> None:
    add_user(app, "audit@example.org", role="auditor")
    client = app.test_client()
    login(client, "audit@example.org")
    page = client.get("/operator/origin")
    assert page.status_code == 200 and "Import the origin registry" not in page.get_data(True)
    count = entries(app)
    upload = client.post("/operator/origin/import", data={
        "registry": "verra", "file": (UPDATE_FILE.open("rb"), "verra.csv")},
        content_type="multipart/form-data")
    assert upload.status_code == 403
    assert client.post("/operator/batches/1/labels", data={"effective": "2026-01-01"}
                       ).status_code == 403
    assert entries(app) == count
    add_user(app, "buyer@example.org")
    other = app.test_client()
    login(other, "buyer@example.org")
    assert other.get("/operator/origin").status_code == 403
    assert app.test_client().get("/operator/origin").status_code == 302  # to the login page


# -- labels: snapshots and filters ---------------------------------------------------------------


def test_a_certificate_keeps_the_labels_in_force_at_its_retirement(app: Flask) -> None:
    client = app.test_client()
    # The demo's retirements came before the demo labelled its batches.
    [before] = certificate(client, CONFLICT)["labels"]  # type: ignore[misc]
    assert (before["batch"], before["mitigation"], before["ccp"]) == (4, None, False)
    assert cli(app, "ledger", "label", "--batch", "1", "--ccp-since", "2026-01-01",
               "--note", "test").exit_code == 0
    with transaction(app) as session:
        holder = operations.open_account(session, "label-holder", "customer")
        operations.transfer(session, from_account=checkout.inventory_account(session).id,
                            to_account=holder.id, quantity=2, batch_id=1)
        seq = operations.retire(session, account_id=holder.id, quantity=2, beneficiary="Bo",
                                purpose="voluntary", country="GB",
                                period_start=dt.date(2025, 1, 1),
                                period_end=dt.date(2025, 12, 31)).seq
    assert cli(app, "ledger", "label", "--batch", "1", "--no-ccp").exit_code == 0
    [labels] = certificate(client, seq)["labels"]  # type: ignore[misc]
    assert (labels["ccp"], labels["ccp_since"], labels["mitigation"]) == (True, "2026-01-01",
                                                                         "avoidance")
    count = entries(app)
    with transaction(app) as session:
        assert audit.verify(session).entries == count


def test_label_filters_in_the_catalogue_the_api_and_their_errors(app: Flask) -> None:
    client = app.test_client()
    company = make_company(app)

    def shop(query: str) -> str:
        return client.get(f"/projects?{query}").get_data(as_text=True)

    def api(query: str) -> list[str]:
        response = client.get(f"/api/v1/projects?{query}", headers=company.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [p["ref"] for p in response.get_json()["data"]]

    assert "1 project" in shop("ccp=true") and "Alto Mayo" in shop("ccp=true")
    assert "Madre de Dios" not in shop("ccp=true")
    assert api("ccp=true&corsia=first_phase") == ["VCS-944"]
    assert api("mitigation=mixed") == ["SLV-1001"]
    assert api("article6=true") == ["VCS-868"]
    assert sorted(api("ccp=false")) == ["SLV-1001", "VCS-868", "VCS-944"]
    assert "The CORSIA filter is one of" in shop("corsia=third")
    bad = client.get("/api/v1/projects?ccp=maybe&corsia=third", headers=company.headers)
    assert bad.status_code == 422
    assert {e["parameter"] for e in bad.get_json()["errors"]} == {"ccp", "corsia"}
    [alto] = [p for p in client.get("/api/v1/projects", headers=company.headers)
              .get_json()["data"] if p["ref"] == "VCS-944"]
    assert [v["labels"]["ccp"] for v in alto["vintages"]] == [False, False, True]

    # The corresponding adjustment, by CAD Trust's values: in the shop, the API and the registry.
    assert api("ca=committed") == ["VCS-868"] and api("ca_status=pending") == ["VCS-868"]
    assert api("ca=committed&ca_status=completed") == []
    assert sorted(api("ca=unknown")) == ["SLV-1001", "VCS-868", "VCS-944"]
    assert "Madre de Dios" in shop("ca=committed") and "Alto Mayo" not in shop("ca=committed")
    assert "The ca filter is one of" in shop("ca=maybe")
    bad = client.get("/api/v1/projects?ca=maybe&ca_status=done", headers=company.headers)
    assert {e["parameter"] for e in bad.get_json()["errors"]} == {"ca", "ca_status"}
    page = client.get("/registry/retirements?ca=committed").get_data(as_text=True)
    assert '<option value="committed" selected>' in page


# -- offline: the export ----------------------------------------------------------------------


def test_the_offline_verifier_reports_origin_and_strict_mode_fails_on_conflict(
        app: Flask, keys: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from ledger.verify import main

    export = tmp_path / "export"
    assert cli(app, "ledger", "export", str(export)).exit_code == 0
    assert main([str(export), "--key", str(keys[1])]) == 0
    out = capsys.readouterr().out
    assert "VCS-868                 10           0          5          5            49" in out
    assert main([str(export), "--key", str(keys[1]), "--strict-origin"]) == 1
    assert "INVALID: origin: 54 t in conflict" in capsys.readouterr().err
    assert main([str(export), "--key", str(keys[1]), "--max-pending-days", "30"]) == 0
    summary = verify_export(export, keys[1].read_text().strip())
    check_origin(summary, strict=False, max_pending_days=30)
    later = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=31)
    with pytest.raises(Invalid, match=rf"seq {PENDING}: 8 t retired on .* are still pending at "
                                      r"the origin registry after 31 days"):
        check_origin(summary, strict=False, max_pending_days=30, today=later)


def test_a_forged_origin_claim_on_a_certificate_is_refused(app: Flask, verifier: str) -> None:
    client = app.test_client()
    cert = certificate(client, COVERED)
    assert verify_certificate(cert, verifier).splitlines()[1].startswith("origin: covered")
    forged = json.loads(json.dumps(cert))
    forged["origin"]["evidence"] = []
    with pytest.raises(Invalid, match="claims the retirement is covered"):
        verify_certificate(forged, verifier)
    forged = json.loads(json.dumps(cert))
    record = json.loads(forged["origin"]["evidence"][0]["record"])
    record["data"]["ours"] = False
    forged["origin"]["evidence"][0]["record"] = json.dumps(record)
    with pytest.raises(Invalid, match="origin entry's hash"):
        verify_certificate(forged, verifier)
    conflict = certificate(client, CONFLICT)
    assert "CONFLICT: 5 t" in verify_certificate(conflict, verifier)


def test_registry_search_by_the_labels_in_force_at_retirement(app: Flask) -> None:
    with transaction(app) as session:
        holder = operations.open_account(session, "ccp-holder", "customer")
        operations.transfer(session, from_account=checkout.inventory_account(session).id,
                            to_account=holder.id, quantity=3, batch_id=3)  # CCP, CORSIA
        labelled = operations.retire(session, account_id=holder.id, quantity=3,
                                     beneficiary="Cy", purpose="voluntary", country="GB",
                                     period_start=dt.date(2025, 1, 1),
                                     period_end=dt.date(2025, 12, 31)).seq
    client = app.test_client()

    def found(query: str) -> set[int]:
        html = client.get(f"/registry/retirements?{query}").get_data(as_text=True)
        assert 'role="alert"' not in html, html
        return seqs_listed(html)

    assert found("ccp=true") == {labelled}
    assert found("corsia=first_phase") == {labelled}
    assert found("corsia=any") == {labelled}
    assert found("ccp=false") == {COVERED, PENDING, CONFLICT}  # unlabelled when retired
    # Withdrawing the label later does not change what it was at retirement.
    assert cli(app, "ledger", "label", "--batch", "3", "--no-ccp").exit_code == 0
    assert found("ccp=true") == {labelled}
    html = client.get("/registry/retirements?corsia=fourth").get_data(as_text=True)
    assert 'role="alert"' in html and "The CORSIA filter is one of" in html
