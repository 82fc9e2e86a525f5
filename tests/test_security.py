"""Deny by default, CSRF everywhere, strict CSP, offline assets (P6.3 data kept secure)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from portal.security import PUBLIC_ENDPOINTS

# Routes reachable without a login, each for a reason: the login page itself, the
# language switch (the login page offers it), static and vendor files, the favicon,
# the health check, and the API (bearer-token guard of its own; the OpenAPI document
# holds no data).
EXPLICIT_EXEMPTIONS = {
    "static",
    "web.vendor",
    "web.favicon",
    "web.health",
    "auth.login",
    "auth.set_language",
    "api.openapi",
}


def _sample_url(rule: Any) -> str:
    url = rule.rule
    for argument in rule.arguments:
        url = re.sub(rf"<(?:[^:<>]+:)?{argument}>", "1", url)
    return url


def test_p6_3_every_route_needs_a_login_unless_explicitly_exempt(app: Any) -> None:
    client = app.test_client()
    assert PUBLIC_ENDPOINTS | {"api.openapi"} == EXPLICIT_EXEMPTIONS
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in EXPLICIT_EXEMPTIONS:
            continue
        url = _sample_url(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            checked += 1
            if rule.endpoint.startswith("api."):
                assert response.status_code == 401, (method, url)
                assert response.is_json
            else:
                assert response.status_code == 302, (method, url, response.status_code)
                assert "/login" in response.location, (method, url)
    assert checked > 30


def test_p6_3_htmx_request_without_login_is_told_to_navigate_to_login(client: Any) -> None:
    response = client.get("/people/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"


def test_p6_3_admin_pages_refuse_people_without_the_permission(
    client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "manager")
    for url in (
        "/admin/users",
        "/admin/users/new",
        f"/admin/users/{org['li']}",
        "/admin/roles",
        "/admin/units",
        "/admin/settings",
        "/admin/plugins",
        "/admin/audit/",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post("/admin/users/new", data={"username": "x"}).status_code == 403


@pytest.fixture
def csrf_app(make_app: Any) -> Any:
    return make_app(WTF_CSRF_ENABLED=True)


def test_csrf_is_required_on_forms_and_htmx_requests(csrf_app: Any, make_person: Any) -> None:
    make_person("li", roles=["salesperson"])
    client = csrf_app.test_client()
    # Even the login form needs the token.
    response = client.post("/login", data={"username": "li", "password": "x"})
    assert response.status_code == 400
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(
        "/login", data={"username": "li", "password": "correct-horse-42", "csrf_token": token}
    )
    assert response.status_code == 302
    # A logged-in htmx POST without the header is refused; with it, accepted.
    response = client.post(
        "/account/language", data={"locale": "en"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 400
    home = client.get("/").get_data(as_text=True)
    token = re.search(r'id="portal-csrf" data-token="([^"]+)"', home).group(1)
    response = client.post(
        "/account/language",
        data={"locale": "en"},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert response.status_code == 303


def test_strict_csp_and_security_headers_on_every_page(client: Any) -> None:
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "HX-Request" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == "no-store"


def test_no_inline_scripts_styles_or_handlers_in_templates() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    offenders = []
    for template in [
        *root.glob("portal/templates/**/*.html"),
        *root.glob("plugins/*/templates/**/*.html"),
    ]:
        text = template.read_text(encoding="utf-8")
        if (
            re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text)
            or "<style" in text
            or re.search(r"\son[a-z]+=", text)
            or "hx-on" in text
            or 'style="' in text
        ):
            offenders.append(str(template.relative_to(root)))
        if re.search(r"""(src|href)=["']https?://""", text):
            offenders.append(f"{template.relative_to(root)} (outside address)")
    assert offenders == []


def test_front_end_libraries_are_served_from_installed_packages(client: Any) -> None:
    page = client.get("/login").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="(/vendor/[^"]+)"', page)
    assert any("htmx.min.js" in a for a in assets) and any("bootstrap.min.css" in a for a in assets)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.data) > 1000
        assert response.cache_control.max_age == 31536000
    assert client.get("/vendor/nothing/x.js").status_code == 404
    assert client.get("/vendor/htmx/../../../etc/passwd").status_code == 404


def test_open_redirect_after_login_is_refused(client: Any, make_person: Any) -> None:
    make_person("li")
    response = client.post(
        "/login?next=https://evil.example/", data={"username": "li", "password": "correct-horse-42"}
    )
    assert response.status_code == 302 and response.location == "/"
    client.post("/logout")
    response = client.post(
        "/login?next=//evil.example/x", data={"username": "li", "password": "correct-horse-42"}
    )
    assert response.location == "/"


def test_behind_a_proxy_the_client_address_is_read_from_the_forwarded_header(
    make_app: Any, make_person: Any
) -> None:
    app = make_app(PROXY_HOPS=1)
    make_person("li")
    client = app.test_client()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post(
            "/login",
            data={"username": "ghost", "password": "x"},
            headers={"X-Forwarded-For": "10.0.0.7"},
        )
    # Another client behind the same proxy is not locked out by the first one's failures.
    response = client.post(
        "/login",
        data={"username": "li", "password": "correct-horse-42"},
        headers={"X-Forwarded-For": "10.0.0.8"},
    )
    assert response.status_code == 302
