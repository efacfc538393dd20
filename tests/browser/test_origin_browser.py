"""The registry of record in a real browser: an operator uploads Verra's export on the
reconciliation page, sees what it did and the conflict it found, and the project page stops
offering the serials the origin registry retired for someone else, at once.

Runs against a live server with CSRF on (``tests/browser/server.py``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.marketplace.shop import add_user

from .server import (  # noqa: F401  (fixtures)
    LiveServer,
    Pages,
    browser,
    live,
    log_in,
    pages,
    unique_email,
)

HEADER = (Path(__file__).resolve().parents[2] / "marketplace" / "demo_data"
          / "verra_vcus_2025.csv").read_text(encoding="utf-8").splitlines()[0]
FIRST_2017 = 88_120_455


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _available_2017(page: Any) -> int:
    page.goto("/projects/alto-mayo")
    text = page.get_by_label("Vintage", exact=True).locator("option", has_text="2017").inner_text()
    return int(re.search(r"\(([\d,]+) t available\)", text).group(1).replace(",", ""))  # type: ignore[union-attr]


def test_operator_uploads_verra_export_sees_the_conflict_and_stock_drops(
        pages: Pages, live: LiveServer, tmp_path: Path) -> None:
    expect = _expect()
    shopper = pages.new()
    before = _available_2017(shopper)

    first, last = FIRST_2017 + 500, FIRST_2017 + 749
    serial = f"5903-{first}-{last}-VCS-VCU-263-VER-PE-14-944-01012017-31122017-1"
    export = tmp_path / "verra-export.csv"
    export.write_text(
        HEADER + "\r\n"
        + f'02/10/2018,,01/01/2017,31/12/2017,944,Alto Mayo Protected Forest,Peru,Agriculture '
          f'Forestry and Other Land Use,VM0015,"700,000",250,{serial},CCB-Gold,15/11/2026,'
          f'Other Offsets GmbH,Environmental Benefit,Offsets for 2026 flights,\r\n',
        encoding="utf-8")

    email = unique_email("operator")
    add_user(live.app, email, name="Olga Operator", role="operator")
    page = pages.new()
    log_in(page, email)
    page.goto("/operator/")
    page.get_by_role("link", name="Origin registry").click()
    page.wait_for_url(re.compile(r"/operator/origin$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Reconciliation with the origin registry")
    conflicts = page.locator("ul.conflicts li")
    expect(conflicts).to_have_count(2)  # the demo's own conflict at Madre de Dios

    page.get_by_label("Export file").set_input_files(str(export))
    page.get_by_role("button", name="Import and reconcile").click()
    page.wait_for_url(re.compile(r"/operator/origin$"))
    expect(page.locator(".flash")).to_contain_text(
        "Imported verra-export.csv: read 1 row: 1 origin record added (250 t)")
    expect(page.locator(".flash")).to_contain_text("250 t frozen")
    expect(conflicts).to_have_count(3)
    expect(conflicts.filter(has_text=f"VCS-944 2017 (batch 2) serials {first}-{last} (250 t) "
                                     "frozen here")).to_have_count(1)
    row = page.locator("table.reconciliation tr", has_text="VCS-944 2017 (batch 2)")
    expect(row.locator(".origin-status")).to_have_text("250")

    assert _available_2017(shopper) == before - 250
    shopper.goto("/registry/origin")
    expect(shopper.locator("[data-conflicts] li", has_text="(250 t) frozen here")).to_have_count(1)
