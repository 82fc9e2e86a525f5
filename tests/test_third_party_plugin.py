"""A real third-party plugin: ``examples/salesloop-hello``, pip-installed (not editable),
found by the portal through its ``portal.plugins`` entry point alone."""

from __future__ import annotations

import gettext
import importlib
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from portal.extensions import db

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "salesloop-hello"
DIST = "salesloop-hello"
GRANTED = {"salesperson", "supervisor", "manager", "admin"}


@pytest.fixture(scope="session")
def hello_distribution() -> metadata.Distribution:
    """The installed distribution; installed from the example folder once if missing."""
    try:
        return metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "-q", str(EXAMPLE)], check=True
        )
        importlib.invalidate_caches()
        return metadata.distribution(DIST)


pytestmark = pytest.mark.usefixtures("hello_distribution")


def _nav_links(html: str) -> list[str]:
    return re.findall(r'<a class="nav-link[^"]*" href="([^"]+)"', html)


def _role_id(app: Any, code: str) -> int:
    from portal.auth.models import Role

    with app.app_context():
        return db.session.scalars(sa.select(Role.id).where(Role.code == code)).one()


def test_hello_is_a_pip_installed_distribution(hello_distribution: metadata.Distribution) -> None:
    (entry_point,) = [ep for ep in hello_distribution.entry_points if ep.group == "portal.plugins"]
    assert (entry_point.name, entry_point.value) == ("hello", "salesloop_hello")
    direct_url = json.loads(hello_distribution.read_text("direct_url.json") or "{}")
    assert not direct_url.get("dir_info", {}).get("editable"), "installed in editable mode"
    files = {str(path) for path in hello_distribution.files or ()}
    assert "salesloop_hello/templates/hello/index.html" in files
    assert "salesloop_hello/translations/zh_CN/LC_MESSAGES/messages.mo" in files
    import salesloop_hello

    package = Path(salesloop_hello.__file__).resolve().parent
    assert not package.is_relative_to(EXAMPLE), "imported from the source tree, not installed"


def test_hello_is_found_through_its_entry_point_alone(app: Any) -> None:
    import salesloop_hello

    assert app.config["PORTAL_EXTRA_PLUGINS"] == []
    record = app.extensions["portal"].host.records["hello"]
    assert record.loaded and record.error == ""
    assert record.source == DIST
    assert record.module is salesloop_hello
    assert record.version == "0.1.0"
    output = app.test_cli_runner().invoke(args=["plugins", "list"]).output
    assert "hello  0.1.0  source=salesloop-hello  loaded" in output
    hooks = re.search(r"^hello .*\n    hooks: (.*)$", output, re.MULTILINE)
    assert hooks is not None
    assert hooks.group(1).split(", ") == [
        "portal_api_routes",
        "portal_blueprints",
        "portal_nav_items",
        "portal_permissions",
        "portal_plugin_meta",
    ]


def test_hello_permission_is_granted_by_default_to_the_sales_roles(
    app: Any, make_person: Any, login: Any
) -> None:
    from portal.auth.models import Role

    with app.app_context():
        holders = {
            role.code
            for role in db.session.scalars(sa.select(Role))
            if "hello.greet" in role.permission_codes
        }
    assert holders == GRANTED
    make_person("boss", roles=["admin"])
    client = app.test_client()
    login(client, "boss")
    page = client.get(f"/admin/roles/{_role_id(app, 'salesperson')}").text
    assert re.search(r'value="hello\.greet"\s+checked', page)
    assert "See the greeting page (hello.greet)" in page
    hr_page = client.get(f"/admin/roles/{_role_id(app, 'hr')}").text
    assert re.search(r'value="hello\.greet"\s*>', hr_page)  # listed, not granted


def test_salesperson_sees_the_nav_item_and_the_page(app: Any, make_person: Any, login: Any) -> None:
    make_person("li", roles=["salesperson"])
    client = app.test_client()
    login(client, "li")
    home = client.get("/")
    assert "/hello/" in _nav_links(home.text)
    page = client.get("/hello/")
    assert page.status_code == 200
    assert '<h1 class="h3 mb-3" data-testid="hello-greeting">Hello, Li!</h1>' in page.text
    assert "This page comes from the salesloop-hello plugin." in page.text
    assert 'data-testid="main-nav"' in page.text  # extends the portal's base.html


def test_someone_without_the_permission_gets_403_and_no_nav_item(
    app: Any, make_person: Any, login: Any
) -> None:
    make_person("hana", roles=["hr"])
    client = app.test_client()
    login(client, "hana")
    assert "/hello/" not in _nav_links(client.get("/").text)
    assert client.get("/hello/").status_code == 403
    assert app.test_client().get("/hello/").status_code == 302  # anonymous: log in first


def test_hello_api_route_needs_a_token_and_is_documented(
    app: Any, make_person: Any, api_token: Any
) -> None:
    make_person("li", roles=["salesperson"])
    make_person("hana", roles=["hr"])
    client = app.test_client()
    assert client.get("/api/v1/hello/greeting").status_code == 401
    response = client.get(
        "/api/v1/hello/greeting", headers={"Authorization": f"Bearer {api_token('li')}"}
    )
    assert response.status_code == 200
    assert response.json == {"greeting": "Hello, Li!", "username": "li"}
    denied = client.get(
        "/api/v1/hello/greeting", headers={"Authorization": f"Bearer {api_token('hana')}"}
    )
    assert denied.status_code == 403
    operation = client.get("/api/v1/openapi.json").json["paths"]["/api/v1/hello/greeting"]["get"]
    assert operation["x-permission"] == "hello.greet"
    assert operation["tags"] == ["hello"]
    assert set(operation["responses"]["200"]["content"]["application/json"]["schema"]["required"])
    assert operation["summary"] == "A greeting for the token's owner"


def test_hello_ships_its_chinese_strings(app: Any) -> None:
    import salesloop_hello

    translations = Path(salesloop_hello.__file__).parent / "translations"
    assert str(translations) in app.extensions["portal"].translation_dirs
    with (translations / "zh_CN" / "LC_MESSAGES" / "messages.mo").open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)
    expected = {
        "Hello": "你好",
        "See the greeting page": "查看问候页面",
        "Hello, %(name)s!": "%(name)s，你好！",
        "This page comes from the salesloop-hello plugin.": "本页面由 salesloop-hello 插件提供。",
        "An example plugin that greets the person logged in.": "一个向登录者问好的示例插件。",
    }
    assert {msgid: catalog.gettext(msgid) for msgid in expected} == expected


def test_hello_page_in_chinese(app: Any, make_person: Any, login: Any) -> None:
    from portal.auth.models import User

    make_person("li", roles=["salesperson"], display_name="李")
    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.username == "li")).one()
        user.locale = "zh_CN"
        db.session.commit()
    client = app.test_client()
    login(client, "li")
    page = client.get("/hello/")
    assert page.status_code == 200
    assert "李，你好！" in page.text
    assert "本页面由 salesloop-hello 插件提供。" in page.text
    assert re.search(r'href="/hello/"[^>]*>你好</a>', page.text)


def test_hello_is_disabled_when_not_in_the_allow_list(
    make_app: Any, make_person: Any, login: Any, api_token: Any
) -> None:
    app = make_app(PORTAL_PLUGINS=["organisation"])
    record = app.extensions["portal"].host.records["hello"]
    assert not record.enabled and not record.loaded
    assert "hello  -  source=salesloop-hello  disabled" in (
        app.test_cli_runner().invoke(args=["plugins", "list"]).output
    )
    assert "hello.greet" not in app.extensions["portal"].permissions
    make_person("li", roles=["salesperson"])
    client = app.test_client()
    login(client, "li")
    assert client.get("/hello/").status_code == 404
    assert "/hello/" not in _nav_links(client.get("/").text)
    token = {"Authorization": f"Bearer {api_token('li')}"}
    assert client.get("/api/v1/hello/greeting", headers=token).status_code == 404
    assert "/api/v1/hello/greeting" not in client.get("/api/v1/openapi.json").json["paths"]


def test_hello_is_listed_on_the_admin_plugins_page(app: Any, make_person: Any, login: Any) -> None:
    make_person("boss", roles=["admin"])
    client = app.test_client()
    login(client, "boss")
    page = client.get("/admin/plugins").text
    row = re.search(r"<strong>hello</strong>.*?</tr>", page, re.DOTALL)
    assert row is not None
    assert "salesloop-hello" in row.group(0) and "Loaded" in row.group(0)
