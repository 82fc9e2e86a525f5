"""P3.1.3 on a phone, in a real browser (Debian's chromium through Playwright, CSRF on,
strict CSP): a salesperson opens a customer, logs a visit with the next follow-up, sees
it on the timeline, adds a contact person inline (htmx) and claims from the pool."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from portal.audit.recorder import acting_as
from portal.testing import SCREENSHOTS, log_in_page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser


def seed(app: Any, org: dict[str, int]) -> tuple[int, int]:
    from plugins.sales import customers
    from portal.auth.models import User
    from portal.extensions import db

    with app.test_request_context(), acting_as("test"):
        li = db.session.get(User, org["li"])
        customer = customers.create_customer(
            {
                "name": "上海明达机械有限公司",
                "phone": "021-6123 4567",
                "industry": "machinery",
                "size": "medium",
                "region": "east",
                "source": "exhibition",
                "need": "Automate the packing line",
                "stage": "customer",
                "grade": "A",
            },
            li,
        )
        pooled = customers.create_customer(
            {"name": "Pool Prospect Ltd", "need": "Cold storage", "size": "small"},
            db.session.get(User, org["manager"]),
            owner=None,
        )
        db.session.commit()
        return customer.id, pooled.id


def test_p3_1_3_log_a_visit_on_a_phone(
    live_server: Any, phone_page: Any, org: dict[str, int]
) -> None:
    customer_id, pooled_id = seed(live_server.app, org)
    page = phone_page
    log_in_page(page, live_server, "li")
    page.goto(live_server.url + "/sales/customers/")
    expect(page.get_by_test_id("customer-row")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.get_by_test_id("customer-name").click()
    expect(page.get_by_test_id("customer-title")).to_have_text("上海明达机械有限公司")

    page.get_by_test_id("log-contact").click()
    page.get_by_test_id("kind-visit").click()
    page.locator("#summary").fill("Plant tour with the plant manager")
    page.locator("#location_note").fill("Pudong plant")
    page.locator("#next_step").fill("Send the quotation")
    from portal.loops.service import local_today

    with live_server.app.app_context():
        next_day = local_today() + timedelta(days=3)
    page.locator("#next_follow_up_on").fill(next_day.isoformat())
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=SCREENSHOTS / "customers-log-visit-phone.png", full_page=True)
    page.get_by_test_id("save-activity").click()

    expect(page).to_have_url(re.compile(rf"/sales/customers/{customer_id}(#activity-\d+)?$"))
    entry = page.get_by_test_id("timeline-entry").first
    expect(entry).to_contain_text("Plant tour with the plant manager")
    expect(entry).to_have_attribute("data-kind", "visit")
    expect(page.get_by_test_id("subject-loops")).to_contain_text("Follow up 上海明达机械有限公司")

    # A contact person, inline: htmx swaps the section, the page stays.
    page.get_by_text("Add a person").click()
    page.locator("[data-testid=contact-form] #name").fill("Chen Jing")
    page.locator("[data-testid=contact-form] #title").fill("Buyer")
    page.get_by_test_id("add-contact").click()
    expect(page.get_by_test_id("contact")).to_have_count(1)
    expect(page.get_by_test_id("primary-contact")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "customers-detail-phone.png", full_page=True)

    # The shared pool: claim a prospect.
    page.goto(live_server.url + "/sales/customers/pool")
    expect(page.get_by_test_id("pool-prospect")).to_have_count(1)
    page.get_by_test_id("claim").click()
    expect(page).to_have_url(re.compile(rf"/sales/customers/{pooled_id}$"))
    expect(page.get_by_test_id("customer-owner")).to_contain_text("Li")
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_p3_1_2_list_and_pool_on_a_desktop(
    live_server: Any, page: Any, org: dict[str, int]
) -> None:
    customer_id, _pooled = seed(live_server.app, org)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in_page(page, live_server, "sup_east")
    page.goto(live_server.url + "/sales/customers/")
    row = page.get_by_test_id("customer-row")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("customer-owner")).to_have_text("Li")
    # A filter select submits on change (portal.js), no inline script needed.
    page.locator("#f-industry").select_option("retail")
    expect(page).to_have_url(re.compile(r"industry=retail"))
    expect(page.get_by_test_id("customer-row")).to_have_count(0)
    page.screenshot(path=SCREENSHOTS / "customers-list-desktop.png", full_page=True)
    page.goto(live_server.url + "/sales/customers/pool")
    expect(page.get_by_test_id("pool-prospect")).to_have_count(1)
    page.screenshot(path=SCREENSHOTS / "customers-pool-desktop.png", full_page=True)
    page.goto(live_server.url + f"/sales/customers/{customer_id}")
    page.screenshot(path=SCREENSHOTS / "customers-detail-desktop.png", full_page=True)
    assert page.console_errors == []
