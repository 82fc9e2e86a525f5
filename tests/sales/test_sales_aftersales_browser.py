"""After-sales in a real browser on a phone-sized screen (P3.5): log a complaint, answer
it and see the deadlines; Debian's chromium through Playwright against a live server
(CSRF on, strict CSP, htmx boost)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from portal.audit.recorder import acting_as
from portal.testing import SCREENSHOTS, log_in_page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser


def test_p3_5_2_log_and_answer_a_complaint_on_a_phone(
    live_server: Any, page: Any, org: dict[str, int]
) -> None:
    from plugins.sales.models import Customer
    from portal.extensions import db

    app = live_server.app
    with app.app_context(), acting_as("test"):
        customer = Customer(name="Ningbo Castings", name_key="ningbocastings", owner_id=org["li"])
        db.session.add(customer)
        db.session.commit()
        customer_id = customer.id
    page.set_viewport_size({"width": 390, "height": 844})
    log_in_page(page, live_server, "li")

    page.goto(live_server.url + "/sales/aftersales/new?q=Ningbo")
    page.get_by_role("link", name="Choose").click()
    expect(page).to_have_url(re.compile(rf"customer_id={customer_id}"))
    page.locator("#category").select_option("quality")
    page.locator("#priority").select_option("high")
    page.locator("#title").fill("Castings porous in batch 12")
    page.get_by_test_id("save-feedback").click()
    expect(page.get_by_test_id("feedback-title")).to_contain_text("Castings porous in batch 12")
    expect(page.get_by_test_id("feedback-deadlines")).to_contain_text("in 4 hours")
    page.screenshot(path=str(SCREENSHOTS / "aftersales-detail-phone.png"), full_page=True)

    page.locator("#respond-first_response").fill("Quality engineer on site tomorrow.")
    page.get_by_role("button", name="Save the response").click()
    expect(page.get_by_test_id("feedback-handling")).to_contain_text("Quality engineer on site")
    expect(page.get_by_test_id("feedback-badges")).to_contain_text("Responded")
    # Closing too early: the missing steps, each named, and nothing closed.
    expect(page.locator('details[data-step="record_cause"]')).to_have_attribute("open", "")
    page.locator('details[data-step="close"] summary').click()
    page.get_by_test_id("form-close").get_by_role("button", name="Close").click()
    expect(page.get_by_test_id("form-close")).to_contain_text("Record the cause")
    expect(page.get_by_test_id("feedback-badges")).to_contain_text("Responded")

    page.goto(live_server.url + "/sales/aftersales/")
    expect(page.get_by_test_id("feedback-cards")).to_contain_text("Castings porous")
    page.screenshot(path=str(SCREENSHOTS / "aftersales-list-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    # The refused close answered 422 (the browser logs that); nothing else went wrong,
    # no CSP violation in particular.
    assert [e for e in page.console_errors if "status of 422" not in e] == []
