"""My work and the loop metrics in a real browser (P1.3.2 closed loop, P1.3.4 metrics):
Debian's chromium through Playwright against a live server (CSRF on, strict CSP, htmx)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from portal.audit.recorder import acting_as
from portal.plugins import LoopType
from portal.testing import SCREENSHOTS, log_in_page, throwaway_plugin

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser


@pytest.fixture
def work_server(make_live_server: Any) -> Any:
    """The portal with a second loop type, served on a loopback port (CSRF on)."""
    plugin = throwaway_plugin(
        "bw",
        portal_loop_types=lambda: [LoopType("bw.follow_up", "Customer follow-up", clause="P3.1.3")],
    )
    return make_live_server(plugins=[("bw", plugin)])


def seed(app: Any, org: dict[str, int]) -> None:
    from portal.extensions import db
    from portal.loops.models import LoopItem
    from portal.models import utcnow

    now = utcnow()
    li = org["li"]
    specs = [
        ("Send the revised quote", "bw.follow_up", "P3.1.3", now + timedelta(days=2), 0),
        ("Overdue: call back the buyer", "bw.follow_up", "P3.1.3", now - timedelta(days=3), 1),
        ("Tidy the visit notes", "core.action", "P1.3.2", now + timedelta(days=1), 0),
        ("Prepare the weekly report", "core.action", "P1.3.2", now + timedelta(days=6), 0),
    ]
    with app.app_context(), acting_as("test"):
        for title, kind, clause, due, level in specs:
            db.session.add(
                LoopItem(
                    type=kind,
                    clause=clause,
                    title=title,
                    owner_id=li,
                    raised_by_id=org["sup_east"],
                    due_at=due,
                    priority="high" if level else "normal",
                    escalation_level=level,
                    created_at=now - timedelta(days=8),
                )
            )
        db.session.add(
            LoopItem(
                type="core.action",
                clause="P1.3.2",
                title="Closed last week",
                owner_id=li,
                raised_by_id=org["sup_east"],
                due_at=now - timedelta(days=2),
                status="verified",
                created_at=now - timedelta(days=9),
                closed_at=now - timedelta(days=5),
            )
        )
        db.session.add(
            LoopItem(
                type="core.action",
                title="Wang's item",
                owner_id=org["wang"],
                raised_by_id=org["wang"],
                due_at=now - timedelta(days=1),
            )
        )
        db.session.commit()


def test_p1_3_2_my_work_overdue_first_filter_by_type_with_htmx_and_open_an_item(
    work_server: Any, page: Any, org: dict[str, int]
) -> None:
    seed(work_server.app, org)
    log_in_page(page, work_server, "li")
    page.get_by_test_id("main-nav").get_by_role("link", name="My work").click()
    expect(page.locator("main h1")).to_have_text("My work")

    rows = page.get_by_test_id("work-row")
    expect(rows).to_have_count(4)
    expect(rows.first.get_by_test_id("work-title")).to_have_text("Overdue: call back the buyer")
    expect(rows.first.get_by_test_id("overdue-badge")).to_be_visible()
    expect(rows.first.get_by_test_id("work-escalation")).to_be_visible()
    expect(page.get_by_test_id("work-title")).to_have_text(
        [
            "Overdue: call back the buyer",
            "Tidy the visit notes",
            "Send the revised quote",
            "Prepare the weekly report",
        ]
    )
    assert "Wang's item" not in page.content()
    page.screenshot(path=SCREENSHOTS / "work-inbox.png", full_page=True)

    # The type filter swaps the list through htmx: the page around it stays.
    page.evaluate("window.__stayed = true")
    with page.expect_response(lambda r: "/work/?" in r.url) as answered:
        page.get_by_test_id("filter-type").select_option("bw.follow_up")
    response = answered.value
    assert response.request.headers.get("hx-request") == "true"
    assert response.request.headers.get("hx-target") == "work-list"
    assert "HX-Request" in response.headers.get("vary", "")
    expect(page.get_by_test_id("work-title")).to_have_text(
        ["Overdue: call back the buyer", "Send the revised quote"]
    )
    expect(page).to_have_url(re.compile(r"/work/\?.*type=bw\.follow_up"))
    assert page.evaluate("window.__stayed") is True
    expect(page.get_by_test_id("count-todo")).to_have_text("2")

    # Reloading the pushed URL renders the same filtered list as a whole page.
    page.reload()
    expect(page.get_by_test_id("filter-type")).to_have_value("bw.follow_up")
    expect(page.get_by_test_id("work-row")).to_have_count(2)

    # Open the overdue item.
    page.get_by_test_id("work-row").first.get_by_test_id("work-title").click()
    expect(page).to_have_url(re.compile(r"/loops/\d+$"))
    expect(page.locator("main")).to_contain_text("Overdue: call back the buyer")
    assert page.console_errors == []


def test_p1_3_4_metrics_page_charts_load_under_the_csp(
    work_server: Any, page: Any, org: dict[str, int]
) -> None:
    seed(work_server.app, org)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    log_in_page(page, work_server, "sup_east")
    # The team view: a summary per person in the supervisor's units, then the items.
    page.get_by_test_id("main-nav").get_by_role("link", name="My work").click()
    page.get_by_test_id("team-link").click()
    expect(page.locator("main h1")).to_have_text("Team loops")
    summary = page.get_by_test_id("summary-row")
    expect(summary).to_have_count(2)
    expect(summary.first).to_contain_text("Li")
    expect(summary.nth(1)).to_contain_text("Wang")
    expect(page.get_by_test_id("work-row").first.get_by_test_id("overdue-badge")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "work-team.png", full_page=True)
    page.get_by_test_id("main-nav").get_by_role("link", name="Loop metrics").click()
    expect(page.locator("main h1")).to_have_text("Loop metrics")
    expect(page.get_by_test_id("total-overdue")).to_have_text("2")  # li's and wang's
    charts = page.locator("img[data-testid^=chart-]")
    expect(charts).to_have_count(5)
    for index in range(5):
        chart = charts.nth(index)
        chart.scroll_into_view_if_needed()
        expect(chart).to_be_visible()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=chart.element_handle()
        )
    page.get_by_test_id("metrics-group").select_option("type")
    expect(page).to_have_url(re.compile(r"group=type"))
    expect(page.get_by_test_id("metrics-groups")).to_contain_text("Customer follow-up")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=SCREENSHOTS / "work-metrics.png", full_page=True)
    assert page.console_errors == []
    assert failed == []


def test_p1_3_2_my_work_on_a_phone(work_server: Any, phone_page: Any, org: dict[str, int]) -> None:
    seed(work_server.app, org)
    page = phone_page
    log_in_page(page, work_server, "li")
    page.goto(work_server.url + "/work/")
    expect(page.get_by_test_id("work-row")).to_have_count(4)
    # Rows stack into cards: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    first = page.get_by_test_id("work-row").first
    title_box = first.get_by_test_id("work-title").bounding_box()
    due_box = first.get_by_test_id("work-due").bounding_box()
    assert due_box["y"] > title_box["y"]  # under the title, not beside it
    page.screenshot(path=SCREENSHOTS / "work-inbox-phone.png", full_page=True)
    assert page.console_errors == []
