"""The public registry in a real browser (issues 3 and 4): from an order's retirement to its
certificate page, PDF, JSON and serial look-up, which must all name the same serial string and
entry hash; and a beneficiary's name that looks like a script stays text everywhere.

Runs against a live server with CSRF on (``tests/browser/server.py``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

from marketplace import certificates, registry
from marketplace.database import db

from .server import (  # noqa: F401  (fixtures)
    LiveServer,
    Pages,
    add_to_cart,
    browser,
    check_out,
    live,
    log_in,
    pages,
    wait_fulfilled,
)

HASH = re.compile(r"^[0-9a-f]{64}$")


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _buy_and_retire(pages: Pages, live: LiveServer, *, buyer: str, beneficiary: str,
                    tonnes: int) -> tuple[Any, str]:
    """A logged-in buyer retires ``tonnes`` of Alto Mayo for ``beneficiary``; returns the
    fulfilled success page and the order reference."""
    page = pages.new()
    log_in(page, live.add_user(buyer))
    add_to_cart(page, tonnes)
    reference = check_out(page, beneficiary=beneficiary)
    wait_fulfilled(page)
    return page, reference


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_certificate_pdf_json_and_serial_lookup_show_the_same_serial_and_hash(
        pages: Pages, live: LiveServer) -> None:
    expect = _expect()
    page, reference = _buy_and_retire(pages, live, buyer="Tomás Ayala",
                                      beneficiary="Tomás Ayala", tonnes=3)

    # What the order shows of its retirement.
    retirement = page.locator(".retirement")
    expect(retirement).to_have_count(1)
    serial = retirement.locator(".serial").inner_text().strip()
    assert re.fullmatch(r"[0-9A-Za-z-]+", serial), serial
    entry_hash = retirement.locator("text=/^entry hash /").inner_text().removeprefix("entry hash ").strip()
    assert HASH.match(entry_hash), entry_hash
    seq = int(re.search(r"ledger entry (\d+)", retirement.inner_text()).group(1))  # type: ignore[union-attr]

    # 1. The certificate page.
    retirement.get_by_role("link", name="Certificate").click()
    page.wait_for_url(re.compile(rf"/registry/certificates/{seq}$"))
    certificate_url = page.url
    cert = page.locator("article.reg-cert")
    expect(cert).to_have_attribute("data-seq", str(seq))
    expect(cert.locator(".serial")).to_have_count(1)
    expect(cert.locator(".serial")).to_have_text(serial)
    expect(cert.locator("dt:text-is('Entry hash') + dd")).to_have_text(entry_hash)
    expect(cert.locator("[data-beneficiary]")).to_have_text("Tomás Ayala")
    expect(cert.get_by_role("heading", level=1)).to_contain_text("3 tonnes")

    # 2. The PDF, fetched with the page's cookies; and the HTML it is printed from.
    pdf_href = cert.get_by_role("link", name="Download PDF").get_attribute("href")
    assert pdf_href == f"/registry/certificates/{seq}.pdf"
    pdf = page.request.get(pdf_href)
    try:
        assert pdf.status == 200
        assert pdf.headers["content-type"] == "application/pdf"
        body = pdf.body()
    finally:
        pdf.dispose()
    assert body.startswith(b"%PDF-")
    assert len(body) > 5_000
    assert body.rstrip().endswith(b"%%EOF")
    with live.app.test_request_context("/", base_url=live.url):
        with db.session.begin():
            source = certificates.certificate(db.session, seq)
        printed = registry.render_certificate_print(source)
    assert source["serials"] == [serial] and source["hash"] == entry_hash
    assert f'<div class="mono">{serial}</div>' in printed
    assert f'<span class="mono">{entry_hash}</span>' in printed
    assert certificate_url in printed  # the QR code's and the caption's address
    pdftotext = shutil.which("pdftotext")
    if pdftotext is not None:  # optional (poppler-utils): the PDF's own text
        text = subprocess.run([pdftotext, "-", "-"], input=body, capture_output=True,
                              check=True, timeout=30).stdout.decode("utf-8")
        assert serial in _squeeze(text) and entry_hash in _squeeze(text)
        assert "Tomás Ayala" in text

    # 3. The certificate JSON, linked from the page.
    json_href = cert.get_by_role("link", name="Certificate JSON").get_attribute("href")
    document = page.request.get(json_href)
    try:
        assert document.status == 200
        assert document.headers["content-type"].startswith("application/json")
        data = document.json()
    finally:
        document.dispose()
    assert (data["seq"], data["hash"], data["serials"], data["quantity"]) == (seq, entry_hash, [serial], 3)
    assert data["beneficiary"]["name"] == "Tomás Ayala"

    # 4. The serial look-up, from the order's link.
    page.goto(f"/orders/{reference}")
    page.locator(".retirement").get_by_role("link", name="Look up the serial").click()
    page.wait_for_url(re.compile(r"/registry/serial\?q="))
    expect(page.get_by_label("Serial number or serial string")).to_have_value(serial)
    found = page.locator("section[data-batch]")
    expect(found).to_have_count(1)
    expect(found.locator("[data-current-serial]")).to_have_text(serial)
    expect(found.locator(".reg-badge").first).to_have_text("retired")
    step = found.locator(f'li[data-seq="{seq}"]')
    expect(step).to_have_count(1)
    expect(step.locator(".serial")).to_have_text(serial)
    expect(step).to_contain_text(f"entry hash {entry_hash}")
    step.get_by_role("link", name="Retirement certificate").click()
    page.wait_for_url(certificate_url)
    page.close()


PAYLOAD = "<script>window.__pwned=1</script>"


def test_a_script_as_beneficiary_is_shown_as_text(pages: Pages, live: LiveServer) -> None:
    expect = _expect()
    page, _reference = _buy_and_retire(pages, live, buyer="Mallory", beneficiary=PAYLOAD,
                                       tonnes=1)

    # The success page: the name is text, and the script never ran.
    main = page.locator("main")
    expect(main.locator("strong", has_text=PAYLOAD)).to_have_text(PAYLOAD)
    expect(page.get_by_role("heading", name=f"Retired in the name of {PAYLOAD}")).to_be_visible()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("main script").count() == 0
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page.content()

    # The public certificate.
    page.locator(".retirement").get_by_role("link", name="Certificate").click()
    page.wait_for_url(re.compile(r"/registry/certificates/\d+$"))
    expect(page.locator("[data-beneficiary]")).to_have_text(PAYLOAD)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("main script").count() == 0

    # The registry's list of retirements, where anyone can search by name.
    page.goto("/registry/retirements?beneficiary=__pwned")
    expect(page.locator("main")).to_contain_text(PAYLOAD)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("main script").count() == 0
    page.close()
