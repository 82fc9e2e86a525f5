"""Real-browser tests (P1 layout, P2 navigation by role): Debian's chromium driven by
Playwright against ``live_server`` (CSRF on, strict CSP, htmx boost), as a person uses it."""

from __future__ import annotations

import gettext
import re
from pathlib import Path
from typing import Any

import pytest

from portal.testing import DEMO_TEST_PASSWORD, PHONE, SCREENSHOTS, log_in_page, open_page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser

CATALOG = Path(__file__).resolve().parent.parent / "portal" / "translations" / "zh_CN"
ADMIN_LINKS = ["People", "Organisation units", "Roles and permissions", "Settings", "Plugins"]

# What each role sees in the main navigation and in the Administration menu (None: no menu).
NAVIGATION: dict[str, tuple[list[str], list[str] | None]] = {
    "salesperson": (
        ["Home", "My work", "Approvals", "Organisation", "Loop metrics", "People"],
        None,
    ),
    "supervisor": (
        ["Home", "My work", "Approvals", "My team", "Organisation", "Loop metrics", "People"],
        None,
    ),
    "manager": (
        ["Home", "My work", "Approvals", "My team", "Organisation", "Loop metrics", "People"],
        None,
    ),
    "admin": (
        ["Home", "My work", "Approvals", "My team", "Organisation", "Loop metrics", "People"],
        [*ADMIN_LINKS, "Audit log", "Rule files"],
    ),
    "auditor": (
        ["Home", "My work", "Approvals", "Organisation", "Loop metrics", "People"],
        ["Audit log", "Rule files"],
    ),
    "finance": (["Home", "My work", "Approvals", "Organisation", "Loop metrics", "People"], None),
    "hr": (["Home", "My work", "Approvals", "Organisation", "Loop metrics", "People"], None),
}


def log_out(page: Any, server: Any) -> None:
    """Log out through the user menu and land on the login page."""
    page.get_by_test_id("user-menu").click()
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(server.url + "/login")
    expect(page.locator("#username")).to_be_visible()


def _translation(msgid: str) -> str | None:
    """The compiled zh_CN translation of ``msgid``, if the catalog exists and has it."""
    mo = CATALOG / "LC_MESSAGES" / "messages.mo"
    if not mo.exists():
        return None
    with mo.open("rb") as handle:
        text = gettext.GNUTranslations(handle).gettext(msgid)
    return text if text != msgid else None


@pytest.fixture
def builtin_server(make_live_server: Any) -> Any:
    """Like ``live_server``, with only the built-in plugins: whatever else is installed in
    the environment (an example plugin, say) would add links to the navigation."""
    return make_live_server(PORTAL_PLUGINS=["organisation"])


@pytest.mark.parametrize("role", sorted(NAVIGATION))
def test_p2_each_role_logs_in_and_sees_its_navigation(
    builtin_server: Any, page: Any, make_person: Any, role: str
) -> None:
    live_server = builtin_server
    make_person(role, roles=[role], display_name=f"Test {role}")
    log_in_page(page, live_server, role)
    main_links, admin_links = NAVIGATION[role]

    nav = page.get_by_test_id("main-nav")
    expect(nav.locator(":scope > li.nav-item:not(.dropdown) > a.nav-link")).to_have_text(main_links)
    expect(nav.locator("a.nav-link.active")).to_have_text(["Home"])
    menu = page.get_by_test_id("admin-menu")
    if admin_links is None:
        expect(menu).to_have_count(0)
    else:
        expect(menu.locator("+ ul.dropdown-menu a")).to_have_text(admin_links)
        menu.click()
        expect(menu.locator("+ ul.dropdown-menu")).to_be_visible()
        expect(page.get_by_role("link", name=admin_links[-1], exact=True)).to_be_visible()
    expect(page.get_by_test_id("user-menu")).to_have_text(f"Test {role}")

    log_out(page, live_server)
    expect(page.get_by_text("You have logged out.")).to_be_visible()
    expect(page.get_by_test_id("main-nav")).to_have_count(0)
    assert page.console_errors == []


def test_language_switch_changes_the_page_and_sticks(
    live_server: Any, page: Any, make_person: Any
) -> None:
    make_person("li", roles=["salesperson"])
    log_in_page(page, live_server, "li")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.get_by_test_id("language").select_option(label="简体中文")  # portal.js submits it
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page).to_have_url(live_server.url + "/")  # back where we were
    expect(page.get_by_test_id("language")).to_have_value("zh_CN")
    chinese = [text for text in map(_translation, ("Log out", "Home")) if text]
    for text in chinese:
        expect(page.get_by_text(text, exact=True).first).to_be_attached()

    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")

    log_out(page, live_server)
    # The session is gone and the browser asks for English: the login page is English ...
    expect(page.locator("html")).to_have_attribute("lang", "en")
    log_in_page(page, live_server, "li")
    # ... and the choice comes back with the person.
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    for text in chinese:
        expect(page.get_by_text(text, exact=True).first).to_be_attached()
    assert page.console_errors == []


def test_strict_csp_and_no_console_errors(live_server: Any, page: Any, org: dict[str, int]) -> None:
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    log_in_page(page, live_server, "admin")

    # Vendor assets came from the installed packages and work.
    assert page.evaluate("typeof window.htmx") == "object"
    assert page.evaluate("typeof window.bootstrap") == "object"
    assert page.evaluate("getComputedStyle(document.querySelector('nav.navbar')).display") == "flex"
    expect(page.locator("nav.navbar")).to_have_css("background-color", "rgb(13, 110, 253)")
    # The dashboard widget arrives through htmx.
    expect(page.locator('[data-widget="organisation.my_place"]')).to_contain_text("Reports to")

    links = page.eval_on_selector_all(
        "[data-testid=main-nav] a[href]:not([href='#']), .dropdown-menu a.dropdown-item[href]",
        "els => els.map(e => e.getAttribute('href'))",
    )
    for expected in ("/people/", "/admin/users", "/admin/audit", "/account/password"):
        assert any(link.startswith(expected) for link in links), (expected, links)
    paths = list(dict.fromkeys([*links, f"/people/{org['li']}", f"/admin/users/{org['li']}"]))
    paths += ["/admin/users/new"]
    for path in paths:
        response = page.goto(live_server.url + path)
        assert response is not None and response.status == 200, path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert "unsafe-eval" not in csp, path
        expect(page.locator("main h1")).to_be_visible()
        assert page.evaluate("typeof window.htmx") == "object", path
        assert page.console_errors == [], path

    page.goto(live_server.url + "/")
    expect(page.locator('[data-widget="organisation.my_place"]')).to_contain_text("Reports to")
    page.wait_for_load_state("networkidle")
    assert page.console_errors == []
    assert failed == []


def test_htmx_boosted_form_carries_csrf_and_shows_field_errors(
    live_server: Any, page: Any, org: dict[str, int]
) -> None:
    log_in_page(page, live_server, "admin")
    page.goto(live_server.url + "/admin/users")
    page.get_by_test_id("new-user").click()
    expect(page.locator("main h1")).to_have_text("New person")

    # Empty form: htmx posts it with the CSRF header, the server answers 422, htmx swaps it.
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Save").click()
    response = posted.value
    assert response.status == 422
    headers = response.request.headers
    assert headers.get("hx-request") == "true"  # boosted, not a plain form post
    assert headers.get("x-csrftoken"), "portal.js did not add the CSRF header"
    for field in ("username", "display_name", "roles", "password"):
        expect(page.locator(f"#{field}")).to_have_class(re.compile(r"\bis-invalid\b"))
        feedback = page.locator(f"#{field} ~ .invalid-feedback")
        expect(feedback.first).to_be_visible()
    expect(page.locator("#username ~ .invalid-feedback")).to_contain_text("This field is required")
    expect(page.locator("#roles ~ .invalid-feedback")).to_have_text("Choose at least one role.")
    page.screenshot(path=SCREENSHOTS / "user-form-errors.png", full_page=True)

    page.locator("#username").fill("nina")
    page.locator("#display_name").fill("Nina Newcomer")
    page.locator("#unit_id").select_option(str(org["shanghai"]))
    page.locator("#roles").select_option("salesperson")
    page.locator("#password").fill("sunny-days-77")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Nina Newcomer was created.")
    expect(page.locator("main table")).to_contain_text("Nina Newcomer")
    expect(page.locator("main h1")).to_have_text("People")
    # Chrome logs every 4xx response; the 422 was the expected answer, nothing else may show.
    expected_422 = "the server responded with a status of 422"
    assert [e for e in page.console_errors if expected_422 not in e] == []
    page.console_errors.clear()

    # The directory's live search (hx-get on input) replaces the rows only.
    page.goto(live_server.url + "/people/")
    rows = page.locator("#people-rows tbody tr")
    expect(rows).to_have_count(9)  # the org's eight people and Nina
    page.locator("#people-q").press_sequentially("zha")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Zhao")
    expect(page).to_have_url(re.compile(r"/people/\?q=zha$"))
    page.locator("#people-q").fill("nobody-like-that")
    expect(rows).to_have_text(["No one matches."])
    assert page.console_errors == []


def test_phone_viewport_navigation(live_server: Any, browser: Any, org: dict[str, int]) -> None:
    page = open_page(browser, device_scale_factor=2, **PHONE)
    try:
        log_in_page(page, live_server, "li")
        expect(page.locator('[data-widget="organisation.my_place"]')).to_contain_text("Shanghai")
        toggler = page.locator(".navbar-toggler")
        expect(toggler).to_be_visible()
        expect(page.get_by_test_id("main-nav")).to_be_hidden()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.screenshot(path=SCREENSHOTS / "home-phone.png", full_page=True)

        toggler.tap()
        expect(toggler).to_have_attribute("aria-expanded", "true")
        expect(page.get_by_test_id("main-nav").get_by_role("link", name="People")).to_be_visible()
        page.get_by_test_id("user-menu").tap()
        page.get_by_role("link", name="My profile").tap()
        expect(page.get_by_test_id("profile-name")).to_have_text("Li")
        expect(page.get_by_test_id("supervisor")).to_have_text("Sup_East")
        expect(page.locator(".navbar-toggler")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.screenshot(path=SCREENSHOTS / "profile-phone.png", full_page=True)
        assert page.console_errors == []
    finally:
        page.context.close()


def test_wrong_password_shows_message_and_throttles(
    live_server: Any, page: Any, make_person: Any
) -> None:
    make_person("li", roles=["salesperson"])
    page.goto(live_server.url + "/login")
    for attempt in range(5):
        page.locator("#username").fill("li")
        page.locator("#password").fill(f"wrong-password-{attempt}")
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.get_by_role("button", name="Log in").click()
        assert posted.value.status == 401
        expect(page.get_by_test_id("form-error")).to_have_text("Wrong username or password.")
        expect(page.locator("#password")).to_have_value("")  # never echoed back

    page.locator("#username").fill("li")
    page.locator("#password").fill(DEMO_TEST_PASSWORD)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Log in").click()
    assert posted.value.status == 429
    expect(page.get_by_test_id("form-error")).to_contain_text("Too many failed attempts")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_test_id("main-nav")).to_have_count(0)
