"""The rule files in a real browser (P1.3.4): an admin changes a limit, checks it, publishes
it and finds it in the history, under the strict CSP with htmx (no console errors)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from portal.testing import SCREENSHOTS, log_in_page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser

MEAL_ROWS = "rows: [[salesperson, 150], [supervisor, 250], [manager, 400]]"
RAISED_ROWS = "rows: [[salesperson, 300], [supervisor, 250], [manager, 400]]"


def test_p1_3_4_admin_edits_checks_publishes_and_finds_the_version_in_history(
    live_server: Any, page: Any, make_person: Any
) -> None:
    make_person("admin", roles=["admin"], display_name="Alex Admin")
    log_in_page(page, live_server, "admin")

    page.get_by_test_id("admin-menu").click()
    page.get_by_role("link", name="Rule files").click()
    expect(page.locator("main h1")).to_have_text("Rule files")
    page.get_by_role("link", name="Expense limits and routing").click()
    expect(page.get_by_test_id("version")).to_have_text("v1")
    page.get_by_test_id("edit-link").click()

    editor = page.locator("#source")
    original = editor.input_value()
    assert MEAL_ROWS in original

    # A typo: Check lists it with its line and column; the text stays as typed.
    broken = original.replace("when: {category: meal}", "when: {categroy: meal}")
    editor.fill(broken)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_test_id("check").click()
    assert posted.value.request.headers.get("hx-target") == "rule-result"
    assert posted.value.request.headers.get("x-csrftoken")
    errors = page.get_by_test_id("check-errors")
    line = broken.splitlines().index("    when: {categroy: meal}") + 1
    expect(errors).to_contain_text(f"{line}:")
    expect(errors).to_contain_text("categroy")
    assert editor.input_value() == broken
    page.screenshot(path=SCREENSHOTS / "rules-edit-errors.png", full_page=True)

    # The raised meal limit: valid, every test passes.
    editor.fill(original.replace(MEAL_ROWS, RAISED_ROWS))
    page.get_by_test_id("check").click()
    expect(page.get_by_test_id("check-ok")).to_contain_text(re.compile(r"all \d+ test cases pass"))

    page.locator("#note").fill("Meal limit for salespeople raised to 300")
    page.get_by_test_id("publish").click()
    expect(page.get_by_role("status").first).to_contain_text("Version 2 of expenses is in force.")
    expect(page.get_by_test_id("version")).to_have_text("v2")

    page.get_by_test_id("history-link").click()
    expect(page.locator("main h1")).to_have_text("History of expenses")
    newest = page.get_by_test_id("version-2")
    expect(newest).to_contain_text("Meal limit for salespeople raised to 300")
    expect(newest).to_contain_text("Alex Admin")
    expect(newest.locator(".diff-add")).to_contain_text([re.compile(r"salesperson, 300")])
    expect(newest.locator(".diff-del")).to_contain_text([re.compile(r"salesperson, 150")])
    expect(page.get_by_test_id("rollback-1")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "rules-history.png", full_page=True)

    # Rolling back asks first (hx-confirm: the browser's own dialog, no eval needed).
    questions: list[str] = []

    def answer(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", answer)
    page.get_by_test_id("rollback-1").click()
    expect(page.get_by_role("status").first).to_contain_text(
        "Version 1 is in force again, as version 3."
    )
    assert questions == ["Publish version 1 again as a new version?"]
    expect(page.get_by_test_id("version-3")).to_contain_text("Back to version 1")

    assert page.console_errors == []
