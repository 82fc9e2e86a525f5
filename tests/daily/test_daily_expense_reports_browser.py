"""P6.4 on a phone, in a real browser (Debian's chromium through Playwright, CSRF on,
strict CSP): a supervisor reads the team's expense analysis with its SVG charts, and
finance sets a year's budget that the analysis then compares with."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from plugins.daily.models import ExpenseClaim, ExpenseLine
from portal.audit.recorder import acting_as
from portal.extensions import db
from portal.loops.service import local_today
from portal.testing import PHONE, SCREENSHOTS, log_in_page, open_page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser


def test_p6_4_supervisor_reads_the_analysis_and_finance_sets_a_budget_on_a_phone(
    live_server: Any, phone_page: Any, browser: Any, org: dict[str, int], make_person: Any
) -> None:
    app = live_server.app
    with app.app_context(), acting_as("test"):
        year = local_today().year
        claim = ExpenseClaim(owner_id=org["li"], title="Suzhou trip", status="approved")
        db.session.add(claim)
        db.session.flush()
        for day, category, cents in ((1, "meal", 12_000), (2, "hotel", 48_000)):
            db.session.add(
                ExpenseLine(
                    claim_id=claim.id,
                    owner_id=org["li"],
                    spent_on=date(year, 1, day),
                    category=category,
                    amount_cents=cents,
                )
            )
        db.session.commit()
    make_person("fin", roles=["finance"], unit=org["company"])
    page = phone_page
    log_in_page(page, live_server, "fin")
    page.goto(live_server.url + "/daily/expenses/analysis/budgets/")
    page.locator("#year-unit").select_option(str(org["shanghai"]))
    year_form = page.get_by_test_id("budget-year-form")
    year_form.locator("#year-month_1").fill("500")
    year_form.get_by_test_id("budget-year-submit").click()
    expect(page.get_by_test_id("budget-list-row")).to_have_count(12)
    assert page.console_errors == []

    page = open_page(browser, **PHONE)  # the supervisor, on their own phone
    log_in_page(page, live_server, "sup_east")
    page.goto(live_server.url + "/daily/expenses/analysis/")
    expect(page.get_by_test_id("total-spent")).to_have_text("¥600.00")
    row = page.get_by_test_id("budget-row")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("used")).to_have_text("10.0\u00a0%")  # 600 of 12 x 500
    expect(row).to_contain_text(f"{year}-01")  # but January alone is over its 500
    for chart in ("chart-month", "chart-category", "chart-people"):
        image = page.get_by_test_id(chart)
        image.scroll_into_view_if_needed()
        page.wait_for_function(
            "el => el.complete && el.naturalWidth > 0", arg=image.element_handle()
        )
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=SCREENSHOTS / "expense-analysis-phone.png", full_page=True)
    assert page.console_errors == []  # no CSP violation, no script error
    page.context.close()
