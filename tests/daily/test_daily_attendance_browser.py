"""P6.1 checking in on a phone: Debian's chromium through Playwright against a live
server (CSRF on, strict CSP, htmx). A salesperson on a field visit opens the
attendance page, notes where they are and taps the big button; a second tap offers
the check-out instead."""

from __future__ import annotations

from typing import Any

import pytest

from plugins.daily import attendance
from portal.loops.service import local_today
from portal.testing import log_in_page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser


def test_p6_1_check_in_on_a_phone_with_a_location_note(
    live_server: Any, phone_page: Any, org: dict[str, int]
) -> None:
    page = phone_page
    log_in_page(page, live_server, "li")
    page.goto(f"{live_server.url}/daily/attendance/")
    button = page.get_by_test_id("punch-button")
    expect(button).to_have_text("Check in")
    box = button.bounding_box()
    assert box is not None and box["height"] >= 56 and box["width"] >= 300  # a thumb's target
    page.get_by_test_id("punch-note").fill("Donghai Valves, Pudong")
    button.tap()
    expect(page.get_by_test_id("punch-message")).to_contain_text("Checked in at")
    expect(page.get_by_test_id("punch-in")).not_to_have_text("—")
    expect(page.get_by_test_id("punch-button")).to_have_text("Check out")
    assert page.console_errors == []  # type: ignore[attr-defined]
    with live_server.app.app_context():
        row = attendance.day_of(org["li"], local_today())
        assert row is not None and row.check_in_note == "Donghai Valves, Pudong"
