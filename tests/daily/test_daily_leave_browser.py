"""P6.1 leave in a real browser on a phone: Debian's chromium through Playwright against
a live server (CSRF on, strict CSP). A salesperson asks for two days of sick leave
with a hospital certificate, is refused first without it, then follows the request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from plugins.daily import leave
from portal.audit.recorder import acting_as
from portal.extensions import db
from portal.loops.service import local_today
from portal.testing import log_in_page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def test_p6_1_ask_for_sick_leave_with_a_certificate_on_a_phone(
    live_server: Any, phone_page: Any, org: dict[str, int]
) -> None:
    with live_server.app.test_request_context(), acting_as("test"):
        leave.ensure_leave_types()
        db.session.commit()
    today = local_today()
    monday = today + timedelta(days=7 - today.weekday())
    page = phone_page
    log_in_page(page, live_server, "li")
    page.goto(f"{live_server.url}/daily/leave/")
    page.get_by_test_id("new-leave").click()
    form = page.get_by_test_id("leave-form")
    form.get_by_label("Type of leave").select_option("sick")
    form.get_by_label("First day").fill(monday.isoformat())
    form.get_by_label("Last day").fill((monday + timedelta(days=1)).isoformat())
    page.get_by_test_id("send-leave").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("needs a hospital certificate")

    form.get_by_label("Documents").set_input_files(
        {"name": "certificate.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    page.get_by_test_id("send-leave").click()
    expect(page.get_by_test_id("leave-status")).to_contain_text("Waiting for approval")
    expect(page.get_by_test_id("leave-days")).to_have_text("2")
    expect(page.get_by_test_id("leave-documents")).to_contain_text("certificate.pdf")
    expect(page.get_by_test_id("approval-step")).to_contain_text("Sup_East")
    # The refused form answered 422 on purpose; nothing else (a CSP violation) may show.
    errors = [e for e in page.console_errors if "status of 422" not in e]  # type: ignore[attr-defined]
    assert errors == []
