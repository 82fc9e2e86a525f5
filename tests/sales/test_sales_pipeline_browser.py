"""The pipeline's kanban in a real browser (P3.2): a card moves by its Move button and
by drag and drop, through htmx, under the strict CSP; a stage whose fields are empty
asks for them in a panel and moves nothing until they are given; on a phone the
columns scroll sideways and the Move form works by touch."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest

from plugins.sales import pipeline
from plugins.sales.models import Customer, Opportunity
from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.testing import SCREENSHOTS, log_in_page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser


def seed(app: Any, org: dict[str, int]) -> dict[str, int]:
    """li's customer with a well-documented deal and a bare one."""
    with app.test_request_context(), acting_as("test"):
        li = db.session.get(User, org["li"])
        customer = Customer(owner_id=li.id, name="Donghai Machinery", name_key="donghaimachinery")
        db.session.add(customer)
        db.session.commit()
        full = pipeline.create_opportunity(
            customer,
            {
                "name": "Line 3 monitoring",
                "need_analysis": "Stops twice a week.",
                "decision_maker": "Mr Zhou",
                "expected_close_on": date(2031, 6, 30),
                "amount": "250000",
            },
            li,
        )
        bare = pipeline.create_opportunity(customer, {"name": "Spare parts"}, li)
        db.session.commit()
        return {"full": full.id, "bare": bare.id}


def stage_of(app: Any, opportunity_id: int) -> str:
    with app.app_context():
        return db.session.get(Opportunity, opportunity_id).stage


def card(page: Any, name: str) -> Any:
    return page.get_by_test_id("card").filter(has_text=name)


def column(page: Any, code: str) -> Any:
    return page.get_by_test_id(f"column-{code}")


def test_p3_2_kanban_moves_a_card_by_button_and_by_drag_and_asks_for_missing_fields(
    live_server: Any, page: Any, org: dict[str, int]
) -> None:
    ids = seed(live_server.app, org)
    page.set_viewport_size({"width": 1920, "height": 1000})  # every column in view
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    log_in_page(page, live_server, "li")
    page.get_by_test_id("main-nav").get_by_role("link", name="Pipeline").click()
    expect(page.locator("main h1")).to_have_text("Pipeline")
    expect(column(page, "lead").get_by_test_id("card")).to_have_count(2)
    expect(column(page, "lead").get_by_test_id("column-count")).to_have_text("2")
    page.evaluate("window.__stayed = true")

    # 1. By the button on the card (htmx swaps the board, the page stays).
    full = card(page, "Line 3 monitoring")
    full.get_by_test_id("card-move-toggle").click()
    full.get_by_test_id("card-move-stage").select_option("qualified")
    with page.expect_response(lambda r: "/move" in r.url) as answered:
        full.get_by_test_id("card-move-button").click()
    response = answered.value
    assert response.status == 200
    assert response.request.headers.get("hx-request") == "true"
    assert response.request.headers.get("x-csrftoken")
    expect(column(page, "qualified").get_by_test_id("card")).to_have_count(1)
    expect(page.get_by_test_id("board-message")).to_contain_text("moved to Qualified")
    assert page.evaluate("window.__stayed") is True
    assert stage_of(live_server.app, ids["full"]) == "qualified"

    # 2. By drag and drop onto the next column (the same endpoint, through htmx).
    with page.expect_response(lambda r: "/move" in r.url) as answered:
        card(page, "Line 3 monitoring").drag_to(column(page, "needs_analysis"))
    assert answered.value.status == 200
    assert answered.value.request.headers.get("hx-target") == "pipeline-board"
    assert answered.value.request.headers.get("x-csrftoken")
    expect(column(page, "needs_analysis").get_by_test_id("card")).to_have_count(1)
    expect(column(page, "needs_analysis")).to_contain_text("Line 3 monitoring")
    assert stage_of(live_server.app, ids["full"]) == "needs_analysis"

    # 3. Dragging the bare deal to Proposal: 422, a panel asks for the fields, nothing moved.
    with page.expect_response(lambda r: "/move" in r.url) as answered:
        card(page, "Spare parts").drag_to(column(page, "proposal"))
    assert answered.value.status == 422
    panel = page.get_by_test_id("missing-panel")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("Write the needs analysis before moving to Proposal.")
    expect(panel).to_contain_text("Enter an expected amount above zero")
    expect(column(page, "lead")).to_contain_text("Spare parts")  # still where it was
    assert stage_of(live_server.app, ids["bare"]) == "lead"
    page.screenshot(path=SCREENSHOTS / "pipeline-missing-fields.png", full_page=True)
    expect(panel.get_by_label("Needs analysis")).to_be_focused()
    panel.get_by_label("Needs analysis").fill("Needs spares for two lines.")
    panel.get_by_label("Proposed solution").fill("A yearly spare-parts kit.")
    panel.get_by_label("Expected amount (yuan)").fill("abc")
    panel.get_by_label("Expected close date").fill("2031-09-30")
    with page.expect_response(lambda r: "/move" in r.url) as answered:
        panel.get_by_test_id("missing-submit").click()
    assert answered.value.status == 422  # a bad amount: asked again, with its message
    expect(page.get_by_test_id("missing-panel")).to_contain_text("Enter an amount in yuan")
    page.get_by_test_id("missing-panel").get_by_label("Expected amount (yuan)").fill("36000")
    with page.expect_response(lambda r: "/move" in r.url) as answered:
        page.get_by_test_id("missing-submit").click()
    assert answered.value.status == 200
    expect(page.get_by_test_id("missing-panel")).to_have_count(0)
    expect(column(page, "proposal")).to_contain_text("Spare parts")
    expect(column(page, "proposal").get_by_test_id("column-amount")).to_have_text("¥36,000.00")
    assert stage_of(live_server.app, ids["bare"]) == "proposal"

    # 4. Dropped on Lost: the reason is asked for, then it moves.
    with page.expect_response(lambda r: "/move" in r.url) as answered:
        card(page, "Spare parts").drag_to(column(page, "lost"))
    assert answered.value.status == 422
    panel = page.get_by_test_id("missing-panel")
    panel.get_by_label("Lost reason").select_option("price")
    panel.get_by_label("What happened").fill("A local supplier quoted 30% less.")
    panel.get_by_test_id("missing-submit").click()
    expect(column(page, "lost")).to_contain_text("Spare parts")
    assert stage_of(live_server.app, ids["bare"]) == "lost"
    page.screenshot(path=SCREENSHOTS / "pipeline-board.png", full_page=True)
    # The three 422 answers are logged by the browser as failed loads; nothing else is.
    expected_422 = "status of 422"
    assert [e for e in page.console_errors if expected_422 not in e] == []
    assert failed == []


def test_p3_2_kanban_on_a_phone_scrolls_sideways_and_moves_by_touch(
    live_server: Any, phone_page: Any, org: dict[str, int]
) -> None:
    ids = seed(live_server.app, org)
    page = phone_page
    log_in_page(page, live_server, "li")
    page.goto(live_server.url + "/sales/pipeline/board")
    expect(page.get_by_test_id("board-columns")).to_be_visible()
    # The page is no wider than the screen; the board scrolls inside itself.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert page.evaluate(
        "(() => { const b = document.querySelector('[data-testid=board-columns]');"
        " return b.scrollWidth > b.clientWidth; })()"
    )
    full = card(page, "Line 3 monitoring")
    full.get_by_test_id("card-move-toggle").tap()
    full.get_by_test_id("card-move-stage").select_option("qualified")
    full.get_by_test_id("card-move-button").tap()
    expect(column(page, "qualified")).to_contain_text("Line 3 monitoring")
    assert stage_of(live_server.app, ids["full"]) == "qualified"
    page.screenshot(path=SCREENSHOTS / "pipeline-board-phone.png", full_page=True)
    assert page.console_errors == []


def test_p3_2_funnel_page_chart_loads_under_the_csp(
    live_server: Any, page: Any, org: dict[str, int]
) -> None:
    seed(live_server.app, org)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    log_in_page(page, live_server, "sup_east")
    page.goto(live_server.url + "/sales/pipeline/board")
    expect(page.get_by_test_id("card-owner").first).to_have_text("Li")
    page.get_by_test_id("funnel-link").click()
    expect(page.locator("main h1")).to_have_text("Sales funnel")
    expect(page.get_by_test_id("funnel-created")).to_have_text("2")
    chart = page.get_by_test_id("funnel-chart")
    expect(chart).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=chart.element_handle()
    )
    page.get_by_test_id("funnel-group").select_option("team")
    expect(page).to_have_url(re.compile(r"group=team"))
    expect(page.get_by_test_id("funnel-group-label").first).to_have_text("East")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=SCREENSHOTS / "pipeline-funnel.png", full_page=True)
    assert page.console_errors == []
    assert failed == []
