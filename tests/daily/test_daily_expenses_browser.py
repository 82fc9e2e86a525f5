"""P6.4 on a phone, in a real browser (Debian's chromium through Playwright, a live
server with CSRF on and the strict CSP): a salesperson adds a taxi fare with the photo
of its receipt to a claim with htmx, sees the line's check, and submits the claim."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.daily.models import ExpenseClaim
from portal.extensions import db
from portal.testing import SCREENSHOTS, log_in_page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser


def tiny_png() -> bytes:
    """A valid 1x1 PNG, made here (no file in the repository)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_p6_4_a_salesperson_claims_a_taxi_fare_with_a_photo_from_a_phone(
    live_server: Any, phone_page: Any, org: dict[str, int], tmp_path: Path
) -> None:
    page = phone_page
    photo = tmp_path / "taxi.png"
    photo.write_bytes(tiny_png())
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    log_in_page(page, live_server, "li")
    page.goto(f"{live_server.url}/daily/expenses/new")
    page.get_by_label("Title").fill("Customer visits")
    page.get_by_role("button", name="Create and add lines").click()
    expect(page.get_by_test_id("lines")).to_be_visible()

    form = page.get_by_test_id("line-form")
    form.get_by_label("Amount (yuan)").fill("156.50")
    form.get_by_label("Category").select_option("taxi")
    form.get_by_label("City").fill("Shanghai")
    form.get_by_label("Vendor").fill("Didi")
    form.get_by_label("Receipts").set_input_files(str(photo))
    page.evaluate("window.__stayed = true")
    page.get_by_test_id("add-line").click()
    row = page.get_by_test_id("line-row")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("line-decision")).to_have_attribute("data-decision", "approve")
    expect(row.get_by_test_id("receipt-link")).to_have_text("taxi.png")
    assert page.evaluate("window.__stayed") is True  # htmx swapped the lines, no page load

    page.get_by_test_id("submit-claim").click()
    expect(page.get_by_test_id("claim-status")).to_have_attribute("data-status", "pending")
    expect(page.get_by_test_id("approval-link")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "daily_expenses_claim_phone.png"), full_page=True)
    page.goto(f"{live_server.url}/daily/expenses/")
    expect(page.get_by_test_id("claim-row")).to_have_count(1)
    page.screenshot(path=str(SCREENSHOTS / "daily_expenses_index_phone.png"), full_page=True)
    assert failed == [] and page.console_errors == []
    with live_server.app.app_context():
        claim = db.session.scalars(sa.select(ExpenseClaim)).one()
        assert claim.total_cents == 15650 and claim.number.startswith("BX")
