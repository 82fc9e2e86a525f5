"""How the core keeps plugins apart and a bad one out, beyond the per-hook contract tests."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint

from portal import create_app
from portal.plugins import ApiRoute, Job, Permission, RoleSpec, UnitKind
from portal.testing import base_config, throwaway_plugin


def _record(app: Any, name: str) -> Any:
    return app.extensions["portal"].host.records[name]


@pytest.mark.parametrize("name", ["Sales", "sales_report", "x", "a.b", "crm-2"])
def test_plugin_names_are_short_lower_case_words(make_app: Any, name: str) -> None:
    app = make_app(plugins=[(name, throwaway_plugin(name))])
    assert not _record(app, name).loaded
    assert "lower-case letters and digits" in _record(app, name).error


def test_a_third_party_plugin_cannot_take_a_built_in_role_or_unit_kind(make_app: Any) -> None:
    squatter = throwaway_plugin(
        "acme",
        portal_roles=lambda: [RoleSpec("supervisor", "Fake supervisor", "all", "all")],
        portal_unit_kinds=lambda: [UnitKind("team", "Fake team")],
    )
    app = make_app(plugins=[("acme", squatter)])
    assert _record(app, "organisation").loaded
    assert not _record(app, "acme").loaded
    assert "already declared by another plugin" in _record(app, "acme").error


def test_a_plugin_declaring_the_same_name_twice_is_left_out(make_app: Any) -> None:
    twice = throwaway_plugin(
        "twice",
        portal_permissions=lambda: [
            Permission("twice.read", "Read"),
            Permission("twice.read", "Read again"),
        ],
    )
    app = make_app(plugins=[("twice", twice)])
    assert "'twice.read' is declared twice" in _record(app, "twice").error
    jobs = throwaway_plugin(
        "jobs",
        portal_jobs=lambda: [
            Job("jobs.sweep", print, every_seconds=3600),
            Job("jobs.sweep", print, 7200),
        ],
    )
    app = make_app(plugins=[("jobs", jobs)])
    assert "declared twice" in _record(app, "jobs").error


def test_an_api_route_needing_an_undeclared_permission_is_refused(make_app: Any) -> None:
    typo = throwaway_plugin(
        "typo", portal_api_routes=lambda: [ApiRoute("/x", lambda: {}, permission="typo.raed")]
    )
    app = make_app(plugins=[("typo", typo)])
    assert "undeclared permission 'typo.raed'" in _record(app, "typo").error


def test_pages_and_api_of_a_plugin_that_fails_at_startup_answer_404(
    make_app: Any, make_person: Any, login: Any, api_token: Any
) -> None:
    blueprint = Blueprint("late", __name__)
    blueprint.add_url_rule("/", "index", lambda: "late page")

    def explode(app: Any) -> None:
        raise RuntimeError("cannot reach the ERP")

    late = throwaway_plugin(
        "late",
        portal_blueprints=lambda: [blueprint],
        portal_startup=explode,
        portal_api_routes=lambda: [ApiRoute("/ping", lambda: {"pong": True})],
    )
    app = make_app(plugins=[("late", late)])
    assert not _record(app, "late").loaded
    assert "cannot reach the ERP" in _record(app, "late").error
    make_person("li")
    client = app.test_client()
    login(client, "li")
    assert client.get("/late/").status_code == 404
    token = api_token("li")
    response = client.get("/api/v1/late/ping", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404 and response.is_json


def test_enabled_plugins_can_come_from_the_environment(
    portal_database: str, tmp_path: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("PORTAL_PLUGINS", "organisation, ghost")
    settings = base_config(portal_database, tmp_path)
    app = create_app({key: value for key, value in settings.items()})
    records = app.extensions["portal"].host.records
    assert app.config["PORTAL_PLUGINS"] == ["organisation", "ghost"]
    assert records["organisation"].loaded
    assert "not installed" in records["ghost"].error
    assert all(not r.loaded for n, r in records.items() if n not in ("core", "organisation"))


def test_p2_role_names_follow_the_reader_until_an_admin_renames_them(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    client.post("/account/language", data={"locale": "zh_CN"})
    page = client.get(f"/people/{org['sup_east']}").get_data(as_text=True)
    assert "销售主管" in page and "Sales supervisor" not in page
    from portal.auth.models import Role
    from portal.extensions import db

    with app.app_context():
        role = db.session.query(Role).filter_by(code="supervisor").one()
        role.name = "Team coach"
        db.session.commit()
    assert "Team coach" in client.get(f"/people/{org['sup_east']}").get_data(as_text=True)


def test_error_pages_speak_the_readers_language(
    client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "li")
    client.post("/account/language", data={"locale": "zh_CN"})
    page = client.get("/people/999999")
    assert page.status_code == 404 and "页面不存在" in page.get_data(as_text=True)
    wrong_method = client.delete("/people/")
    assert wrong_method.status_code == 405
    assert "此地址不支持该操作" in wrong_method.get_data(as_text=True)


@pytest.mark.parametrize("name", ["core", "api", "admin", "people"])
def test_a_plugin_cannot_take_a_name_the_core_uses(make_app: Any, name: str) -> None:
    intruder = throwaway_plugin(name, portal_blueprints=lambda: [Blueprint(name, __name__)])
    app = make_app(plugins=[(name, intruder)])
    records = app.extensions["portal"].host.records
    assert records["core"].loaded
    intruder_record = records.get(f"{name}@test") or records[name]
    assert not intruder_record.loaded
    assert "reserved" in intruder_record.error or "already taken" in intruder_record.error
    assert app.test_client().get("/login").status_code == 200


def test_malformed_request_time_contributions_are_skipped(
    make_app: Any, make_person: Any, login: Any
) -> None:
    from portal.plugins import NavItem

    sloppy = throwaway_plugin(
        "sloppy",
        portal_nav_items=lambda user: [
            {"endpoint": "web.home"},
            NavItem("web.home", "Fine", url_kwargs=None),
        ],
        portal_dashboard_widgets=lambda user: ["not a widget"],
    )
    app = make_app(plugins=[("sloppy", sloppy)])
    make_person("li")
    client = app.test_client()
    login(client, "li")
    home = client.get("/")
    assert home.status_code == 200 and "Fine" in home.get_data(as_text=True)
    assert client.get("/people/").status_code == 200


def test_a_plugin_whose_blueprint_clashes_leaves_nothing_behind(make_app: Any) -> None:
    clash = throwaway_plugin(
        "clash",
        portal_roles=lambda: [RoleSpec("clash_boss", "Clash boss", "all", "all")],
        portal_permissions=lambda: [Permission("clash.do", "Do")],
        portal_blueprints=lambda: [Blueprint("clash", __name__), Blueprint("clash", __name__)],
    )
    app = make_app(plugins=[("clash", clash)])
    state = app.extensions["portal"]
    assert not state.host.records["clash"].loaded
    assert "clash_boss" not in state.roles and "clash.do" not in state.permissions


def test_tables_of_models_imported_with_the_plugin_must_carry_its_name(tmp_path: Any) -> None:
    """Run in a separate process: a model class, once defined, stays in the metadata."""
    import subprocess
    import sys
    import textwrap

    package = tmp_path / "sneaky"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent("""
        import sqlalchemy as sa
        from sqlalchemy.orm import Mapped, mapped_column
        from portal.extensions import db
        from portal.plugins import PluginMeta, hookimpl

        class Sneaky(db.Model):
            __tablename__ = "core_sneaky"
            id: Mapped[int] = mapped_column(primary_key=True)

        @hookimpl
        def portal_plugin_meta():
            return PluginMeta(name="sneaky", title="Sneaky")
    """)
    )
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import sneaky
        from portal import create_app
        app = create_app({{"TESTING": True, "SECRET_KEY": "x",
                          "DATABASE_URL": "sqlite:///{tmp_path}/x.db",
                          "PORTAL_EXTRA_PLUGINS": [("sneaky", sneaky)]}})
        print(app.extensions["portal"].host.records["sneaky"].error)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert "tables must be named 'sneaky_*': core_sneaky" in result.stdout, result.stderr
