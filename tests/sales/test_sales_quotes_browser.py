"""P3.3 quotation in a real browser: Debian's chromium through Playwright against a
live server (CSRF on, strict CSP, htmx). A salesperson builds a quotation with two
lines (one filled in from the product list, one added with htmx), submits it and opens
the printable quotation."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.sales.models import Customer, Opportunity, Product, Quotation
from portal.audit.recorder import acting_as
from portal.extensions import db
from portal.testing import SCREENSHOTS, log_in_page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser


def seed(app: Any, org: dict[str, int]) -> dict[str, int]:
    with app.app_context(), acting_as("test"):
        product = Product(
            code="SRV-100",
            name="Edge server",
            unit="set",
            list_price_cents=1_000_000,
            cost_cents=600_000,
        )
        customer = Customer(
            owner_id=org["li"], name="Donghai Valves Co.", name_key="donghaivalvesco"
        )
        db.session.add_all([product, customer])
        db.session.flush()
        opportunity = Opportunity(
            owner_id=org["li"], customer_id=customer.id, name="Valve line upgrade", stage="proposal"
        )
        db.session.add(opportunity)
        db.session.commit()
        return {"product": product.id, "opportunity": opportunity.id}


def test_p3_3_build_a_quote_with_htmx_lines_submit_it_and_print_it(
    live_server: Any, page: Any, org: dict[str, int]
) -> None:
    ids = seed(live_server.app, org)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    log_in_page(page, live_server, "li")
    page.goto(f"{live_server.url}/sales/quotes/new?opportunity_id={ids['opportunity']}")
    rows = page.get_by_test_id("quote-line-row")
    expect(rows).to_have_count(3)

    # The first row from the product list: htmx reloads the row with its details.
    rows.first.get_by_test_id("line-product").select_option(str(ids["product"]))
    expect(rows.first.get_by_test_id("line-description")).to_have_value("Edge server")
    expect(rows.first.get_by_test_id("line-unit-price")).to_have_value("10000.00")
    rows.first.get_by_test_id("line-quantity").fill("2")
    rows.first.get_by_test_id("line-discount").fill("3")

    # A row added with htmx (no page load), then a blank row removed in the page.
    page.evaluate("window.__stayed = true")
    page.get_by_test_id("add-line").click()
    expect(rows).to_have_count(4)
    added = rows.nth(3)
    expect(added.get_by_test_id("line-quantity")).to_have_attribute("name", "lines-3-quantity")
    added.get_by_test_id("line-description").fill("Installation and commissioning")
    added.get_by_test_id("line-unit-price").fill("1800")
    page.get_by_test_id("add-line").click()
    expect(rows).to_have_count(5)
    expect(rows.nth(4).get_by_test_id("line-quantity")).to_have_attribute(
        "name", "lines-4-quantity"
    )
    rows.nth(4).get_by_test_id("line-remove").click()
    expect(rows).to_have_count(4)
    assert page.evaluate("window.__stayed") is True
    page.screenshot(path=SCREENSHOTS / "quote-form.png", full_page=True)

    page.get_by_test_id("save-quote").click()
    expect(page).to_have_url(re.compile(r"/sales/quotes/\d+$"))
    expect(page.get_by_test_id("quote-line")).to_have_count(2)
    expect(page.get_by_test_id("total")).to_have_text("21,200.00")  # 19,400 + 1,800

    # 3 % off is within a salesperson's authority: approved at once.
    page.get_by_test_id("submit-quote").click()
    expect(page.get_by_test_id("quote-status").first).to_have_attribute("data-status", "approved")
    expect(page.get_by_test_id("approval-link")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "quote-detail.png", full_page=True)
    with live_server.app.app_context():
        quote = db.session.scalars(sa.select(Quotation)).one()
        assert (quote.status, len(quote.lines)) == ("approved", 2)
        quote_id = quote.id

    # The printable quotation opens in its own tab, in the chosen language.
    with page.context.expect_page() as opened:
        page.get_by_test_id("print-zh").click()
    sheet = opened.value
    sheet.wait_for_load_state()
    expect(sheet).to_have_url(re.compile(rf"/sales/quotes/{quote_id}/print\?lang=zh_CN"))
    expect(sheet.get_by_test_id("amount-in-words")).to_have_text("贰万壹仟贰佰元整")
    expect(sheet.get_by_test_id("print-button")).to_be_visible()
    sheet.emulate_media(media="print")
    expect(sheet.get_by_test_id("print-toolbar")).to_be_hidden()
    sheet.emulate_media(media="screen")
    sheet.screenshot(path=SCREENSHOTS / "quote-print-zh.png", full_page=True)
    page.goto(f"{live_server.url}/sales/quotes/{quote_id}/print?lang=en")
    expect(page.locator("h1")).to_have_text("Quotation")
    expect(page.get_by_test_id("print-total")).to_have_text("¥ 21,200.00")
    # The print button calls window.print from the static script (no inline script).
    page.evaluate("window.print = () => { window.__printed = true; }")
    page.get_by_test_id("print-button").click()
    assert page.evaluate("window.__printed") is True
    assert page.console_errors == []
    assert failed == []
