"""Running a team meeting on a phone (P6.2): mark attendance with htmx (the row comes
back, no reload), record a resolution (the panel comes back), publish the minutes;
Debian's chromium through Playwright against a live server (CSRF on, strict CSP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plugins.daily import meetings
from portal.audit.recorder import acting_as
from portal.testing import SCREENSHOTS, log_in_page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser


def test_p6_2_run_a_meeting_on_a_phone(live_server: Any, page: Any, org: dict[str, int]) -> None:
    from portal.auth.models import User
    from portal.extensions import db

    app = live_server.app
    starts = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    with app.app_context(), acting_as("test"):
        meeting = meetings.create_meeting(
            {
                "unit_id": org["east"],
                "title": "Shanghai weekly",
                "cadence": "weekly",
                "starts_at": starts,
                "agenda": [{"title": "Work reports", "presenter_id": org["li"]}],
            },
            db.session.get(User, org["sup_east"]),
        )
        db.session.commit()
        meeting_id = meeting.id
    page.set_viewport_size({"width": 390, "height": 844})
    log_in_page(page, live_server, "sup_east")
    page.goto(f"{live_server.url}/daily/meetings/{meeting_id}/run")
    row = page.locator(f"#attendee-{org['li']}")
    row.get_by_test_id("mark-present").click()
    expect(row.get_by_test_id("attendee-status")).to_have_text("Present")
    page.locator("#text").fill("Visit the three A customers in Pudong")
    page.locator("#owner_id").select_option(str(org["li"]))
    page.get_by_test_id("add-resolution").click()
    expect(page.get_by_test_id("resolution-list")).to_contain_text("Pudong")
    page.locator("#minutes").fill("Targets reviewed.")
    page.get_by_test_id("save-minutes").click()
    expect(page.locator(".alert-success")).to_contain_text("minutes are saved")
    page.screenshot(path=str(SCREENSHOTS / "meeting-run-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.get_by_test_id("close-meeting").click()
    expect(page.get_by_test_id("meeting-status")).to_have_text("Minutes published")
    assert page.console_errors == []
