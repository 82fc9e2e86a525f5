"""The plugin contract, tested through the public path (Datasette-style meta-tests).

Every hook in ``portal/plugins/hookspecs.py`` must be documented in ``docs/plugins.md``
and have a ``test_hook_<name>`` test; each of those registers throwaway plugins with
``make_app(plugins=[(name, object)])`` and checks what a plugin author would see: pages,
navigation, admin screens, the CLI, the API, and the start-up report when a rule of the
contract is broken.

SQLAlchemy's metadata is process-global: tests that add tables to it do so inside the
hook call (the core compares the metadata before and after ``portal_models``) and take
them out again, so no other test (``portal db check``, table cleanup) ever sees them.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import pytest
import sqlalchemy as sa
from flask import Blueprint, jsonify, render_template, render_template_string
from markupsafe import Markup, escape

from portal.api import current_api_user
from portal.extensions import db
from portal.plugins import (
    ApiRoute,
    ApprovalKind,
    Event,
    EventType,
    FactProvider,
    Job,
    LoopType,
    NavItem,
    NotificationKind,
    Permission,
    PluginMeta,
    RoleSpec,
    RuleAction,
    SettingSpec,
    UnitKind,
    Widget,
    hookimpl,
    hookspecs,
)
from portal.testing import throwaway_plugin as make_plugin

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "plugins.md"
TESTS = ROOT / "tests"

HOOKS = sorted(
    name
    for name, value in vars(hookspecs).items()
    if name.startswith("portal_") and hasattr(value, f"{hookspecs.PROJECT}_spec")
)


# -- helpers -------------------------------------------------------------------------


def records(app: Any) -> dict[str, Any]:
    return app.extensions["portal"].host.records


def loaded(app: Any, name: str) -> bool:
    return records(app)[name].loaded


def error_of(app: Any, name: str) -> str:
    record = records(app)[name]
    assert not record.loaded, f"{name} should have been left out"
    return record.error


def state(app: Any) -> Any:
    return app.extensions["portal"]


def page_blueprint(name: str, body: str = "page", **kwargs: Any) -> Blueprint:
    """A blueprint with a view ``index`` at ``/`` answering ``body``."""
    bp = Blueprint(name, __name__, **kwargs)
    bp.add_url_rule("/", "index", lambda: body)
    return bp


def logged_in(app: Any, login: Callable[..., Any], username: str) -> Any:
    client = app.test_client()
    login(client, username)
    return client


@pytest.fixture
def metadata_guard() -> Iterator[None]:
    """Take any table a test added to the process-global metadata out again."""
    before = set(db.metadata.tables)
    yield
    for name in set(db.metadata.tables) - before:
        db.metadata.remove(db.metadata.tables[name])


# -- meta-tests ----------------------------------------------------------------------


def test_the_contract_has_hooks() -> None:
    assert "portal_plugin_meta" in HOOKS and "portal_on_event" in HOOKS
    assert len(HOOKS) == len(set(HOOKS)) >= 20


def test_every_hook_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    documented = re.findall(r"^### (portal_\w+)\s*$", text, flags=re.MULTILINE)
    missing = sorted(set(HOOKS) - set(documented))
    stale = sorted(set(documented) - set(HOOKS))
    assert not missing, f"hooks without a '### <name>' heading in docs/plugins.md: {missing}"
    assert not stale, f"docs/plugins.md documents hooks that do not exist: {stale}"
    assert len(documented) == len(set(documented)), "a hook is documented twice"


def test_every_hook_has_a_test() -> None:
    names: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        names |= set(re.findall(r"^\s*def (test_hook_\w+)\(", path.read_text(), re.MULTILINE))
    missing = [hook for hook in HOOKS if f"test_hook_{hook.removeprefix('portal_')}" not in names]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"
    short = [hook.removeprefix("portal_") for hook in HOOKS]
    stale = sorted(
        name
        for name in names
        if not any(name == f"test_hook_{s}" or name.startswith(f"test_hook_{s}_") for s in short)
    )
    assert not stale, f"test_hook_* tests naming no hook: {stale}"


def test_unknown_hook_name_is_caught(make_app: Any) -> None:
    typo = make_plugin("typo", portal_nav_itemz=lambda user: [NavItem("web.home", "Typo")])
    app = make_app(plugins=[("typo", typo)])
    message = error_of(app, "typo")
    assert "registration failed" in message and "portal_nav_itemz" in message
    assert loaded(app, "core") and loaded(app, "organisation")
    assert app.test_client().get("/login").status_code == 200


def test_wrong_hookimpl_argument_is_caught(make_app: Any) -> None:
    wrong = make_plugin("wrongarg", portal_nav_items=lambda person: [])
    app = make_app(plugins=[("wrongarg", wrong)])
    assert "person" in error_of(app, "wrongarg")
    assert app.test_client().get("/login").status_code == 200


def test_failing_plugin_at_import_is_reported_and_portal_starts(
    make_app: Any,
    make_person: Any,
    login: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A real installed distribution whose package raises on import.
    site = tmp_path / "site"
    (site / "broken_portal_plugin").mkdir(parents=True)
    (site / "broken_portal_plugin" / "__init__.py").write_text(
        "raise RuntimeError('missing licence key')\n"
    )
    dist_info = site / "broken_portal_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-portal-plugin\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text("[portal.plugins]\nbroken = broken_portal_plugin\n")
    monkeypatch.syspath_prepend(str(site))

    app = make_app()
    record = records(app)["broken"]
    assert record.source == "broken-portal-plugin"
    assert not record.loaded
    assert "import failed" in record.error and "missing licence key" in record.error
    assert loaded(app, "organisation")

    output = app.test_cli_runner().invoke(args=["plugins", "list"]).output
    assert "broken  -  source=broken-portal-plugin  FAILED" in output
    assert "error: import failed: RuntimeError: missing licence key" in output

    make_person("boss", roles=["admin"])
    client = logged_in(app, login, "boss")
    page = client.get("/admin/plugins")
    assert page.status_code == 200
    assert "missing licence key" in page.text
    assert client.get("/").status_code == 200


def test_unknown_plugin_in_config_is_reported(make_app: Any) -> None:
    app = make_app(PORTAL_PLUGINS=["organisation", "nonexistent"])
    record = records(app)["nonexistent"]
    assert record.source == "config"
    assert not record.loaded
    assert record.error == (
        "plugin 'nonexistent' is enabled in config (PORTAL_PLUGINS) but not installed"
    )
    assert loaded(app, "organisation")
    output = app.test_cli_runner().invoke(args=["plugins", "list"]).output
    assert "nonexistent  -  source=config  FAILED" in output
    assert app.test_client().get("/login").status_code == 200


def test_a_plugin_left_out_takes_nothing_with_it(make_app: Any) -> None:
    """Accepted whole or not at all: a plugin breaking one rule contributes nothing."""
    half = make_plugin(
        "half",
        portal_permissions=lambda: [Permission("half.ok", "Fine")],
        portal_settings=lambda: [SettingSpec("half.ok", "Fine")],
        portal_blueprints=lambda: [page_blueprint("half")],
        portal_jobs=lambda: [Job("elsewhere.job", print, every_seconds=3600)],
    )
    app = make_app(plugins=[("half", half)])
    assert "portal_jobs" in error_of(app, "half")
    assert "half.ok" not in state(app).permissions
    assert "half.ok" not in state(app).settings
    assert "half" not in app.blueprints


# -- setup hooks -----------------------------------------------------------------------


def test_hook_plugin_meta(make_app: Any) -> None:
    good = make_plugin(
        "metaok",
        requires=("organisation",),
        portal_plugin_meta=lambda: PluginMeta(
            name="metaok", title="Meta OK", version="2.5", clause="P9", requires=("organisation",)
        ),
    )
    misnamed = make_plugin("misnamed", portal_plugin_meta=lambda: PluginMeta("other", "Other"))
    not_meta = make_plugin("notmeta", portal_plugin_meta=lambda: {"name": "notmeta"})
    needy = make_plugin("needy", requires=("nonexistent",))
    chained = make_plugin("chained", requires=("needy",))
    raising = make_plugin("metaboom", portal_plugin_meta=lambda: 1 / 0)
    anonymous = SimpleNamespace(portal_nav_items=hookimpl(lambda user: []))
    app = make_app(
        plugins=[
            ("metaok", good),
            ("misnamed", misnamed),
            ("notmeta", not_meta),
            ("needy", needy),
            ("chained", chained),
            ("metaboom", raising),
            ("anonymous", anonymous),
        ]
    )
    record = records(app)["metaok"]
    assert record.loaded and record.version == "2.5" and record.title == "Meta OK"
    assert record.meta.clause == "P9"
    order = [r.name for r in state(app).host.loaded()]
    assert order[0] == "core" and order.index("organisation") < order.index("metaok")
    assert "PluginMeta(name='misnamed'" in error_of(app, "misnamed")
    assert "PluginMeta(name='notmeta'" in error_of(app, "notmeta")
    assert error_of(app, "needy") == "requires plugin(s) not enabled: nonexistent"
    assert error_of(app, "chained") == "requires plugin(s) not enabled: needy"
    assert "ZeroDivisionError" in error_of(app, "metaboom")
    assert error_of(app, "anonymous") == "does not implement portal_plugin_meta"
    assert app.test_client().get("/login").status_code == 200


def test_hook_plugin_meta_requires_a_plugin_that_failed_setup(make_app: Any) -> None:
    """A plugin left out at setup takes the plugins requiring it along."""
    base = make_plugin("basex", portal_blueprints=lambda: [page_blueprint("wrongname")])
    dependent = make_plugin(
        "dependent", requires=("basex",), portal_blueprints=lambda: [page_blueprint("dependent")]
    )
    app = make_app(plugins=[("basex", base), ("dependent", dependent)])
    assert "must be named 'basex'" in error_of(app, "basex")
    assert "basex" in error_of(app, "dependent")
    assert "dependent" not in app.blueprints


def test_hook_plugin_meta_disabled_by_config(make_app: Any) -> None:
    app = make_app(PORTAL_PLUGINS=[])
    record = records(app)["organisation"]
    assert not record.enabled and not record.loaded and record.error == ""
    assert "organisation" not in app.blueprints
    assert app.test_client().get("/organisation/").status_code == 404


def test_hook_models(make_app: Any, metadata_guard: None) -> None:
    def good_models() -> None:
        sa.Table(
            "modelok_thing",
            db.metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(40)),
        )

    def stray_models() -> None:
        sa.Table("stray_thing", db.metadata, sa.Column("id", sa.Integer, primary_key=True))

    app = make_app(
        plugins=[
            ("modelok", make_plugin("modelok", portal_models=good_models)),
            ("modelbad", make_plugin("modelbad", portal_models=stray_models)),
        ]
    )
    assert loaded(app, "modelok")
    assert (
        error_of(app, "modelbad") == "portal_models: tables must be named 'modelbad_*': stray_thing"
    )
    table = db.metadata.tables["modelok_thing"]
    with app.app_context():
        db.metadata.create_all(bind=db.engine, tables=[table])
        try:
            with db.engine.begin() as connection:
                connection.execute(table.insert().values(name="first"))
                assert connection.execute(sa.select(table.c.name)).scalar_one() == "first"
        finally:
            db.metadata.drop_all(bind=db.engine, tables=[table])
            db.engine.dispose()


def test_hook_migrations(make_app: Any, tmp_path: Path) -> None:
    from portal.extensions import migrate

    folder = tmp_path / "migrations"
    folder.mkdir()
    good = make_plugin("migok", portal_migrations=lambda: str(folder))
    bad = make_plugin("migbad", portal_migrations=lambda: str(tmp_path / "nowhere"))
    app = make_app(plugins=[("migok", good), ("migbad", bad)])
    assert loaded(app, "migok")
    assert str(folder) in state(app).migration_dirs
    assert "which is not a folder" in error_of(app, "migbad")
    assert str(tmp_path / "nowhere") not in state(app).migration_dirs
    with app.app_context():  # what `portal db ...` hands to Alembic
        locations = migrate.get_config().get_version_locations_list()
    assert str(folder) in locations
    assert any(location.endswith("migrations/versions") for location in locations)


def test_hook_migrations_branch_is_applied_by_upgrade_heads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin's own Alembic branch, depending on the core's first revision, is applied
    by ``upgrade heads`` on a fresh database (its own SQLite file, whatever the suite runs
    on: this is about Alembic's wiring, not the dialect)."""
    from flask_migrate import downgrade

    from portal import create_app
    from portal.database import upgrade_schema
    from portal.testing import base_config

    monkeypatch.setenv("PORTAL_QUIET_MIGRATIONS", "1")
    folder = tmp_path / "migbranch_migrations"
    folder.mkdir()
    (folder / "0001_migbranch_things.py").write_text(
        textwrap.dedent(
            '''\
            """migbranch things"""
            import sqlalchemy as sa
            from alembic import op

            revision = "0001_migbranch"
            down_revision = None
            branch_labels = ("migbranch",)
            depends_on = "0001_core"


            def upgrade():
                op.create_table(
                    "migbranch_thing",
                    sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("owner_id", sa.Integer(), sa.ForeignKey("core_user.id")),
                )


            def downgrade():
                op.drop_table("migbranch_thing")
            '''
        )
    )
    plugin = make_plugin("migbranch", portal_migrations=lambda: str(folder))
    config = base_config("sqlite:///" + str(tmp_path / "fresh.db"), tmp_path)
    config["PORTAL_EXTRA_PLUGINS"] = [("migbranch", plugin)]
    app = create_app(config)
    with app.app_context():
        try:
            upgrade_schema()
            tables = set(sa.inspect(db.engine).get_table_names())
            assert {"core_user", "migbranch_thing"} <= tables
            downgrade(revision="migbranch@base")
            assert "migbranch_thing" not in sa.inspect(db.engine).get_table_names()
            assert "core_user" in sa.inspect(db.engine).get_table_names()
        finally:
            db.engine.dispose()


def test_hook_blueprints(make_app: Any, make_person: Any, login: Any, tmp_path: Path) -> None:
    main = page_blueprint("bpt", body="bpt page", url_prefix="/elsewhere")
    main.add_url_rule("/open", "open", lambda: "open page")
    main.public_endpoints = ("open",)  # type: ignore[attr-defined]
    extra = Blueprint("bpt_extra", __name__)  # a plugin's blueprints share /<plugin>
    extra.add_url_rule("/extra", "extra", lambda: "extra page")
    templates = tmp_path / "tplok" / "templates" / "tplok"
    templates.mkdir(parents=True)
    (templates / "page.html").write_text(
        '{% extends "base.html" %}{% block content %}<p id="tplok">{{ word }}</p>{% endblock %}'
    )
    with_templates = Blueprint(
        "tplok", __name__, template_folder="templates", root_path=str(tmp_path / "tplok")
    )
    with_templates.add_url_rule("/", "index", lambda: render_template("tplok/page.html", word="ok"))
    stray_root = tmp_path / "tplbad"
    (stray_root / "templates" / "tplbad").mkdir(parents=True)
    (stray_root / "templates" / "base.html").write_text("hijacked")
    strays = Blueprint("tplbad", __name__, template_folder="templates", root_path=str(stray_root))
    app = make_app(
        plugins=[
            ("bpt", make_plugin("bpt", portal_blueprints=lambda: [main, extra])),
            ("tplok", make_plugin("tplok", portal_blueprints=lambda: [with_templates])),
            ("bpbad", make_plugin("bpbad", portal_blueprints=lambda: [page_blueprint("other")])),
            ("tplbad", make_plugin("tplbad", portal_blueprints=lambda: [strays])),
            ("notbp", make_plugin("notbp", portal_blueprints=lambda: ["bp"])),
        ]
    )
    assert loaded(app, "bpt") and loaded(app, "tplok")
    assert error_of(app, "bpbad") == (
        "portal_blueprints: blueprint 'other' must be named 'bpbad' or 'bpbad_*'"
    )
    assert error_of(app, "tplbad") == (
        "portal_blueprints: templates must live in templates/tplbad/, found: base.html"
    )
    assert "must return a list of Blueprint" in error_of(app, "notbp")
    assert "other" not in app.blueprints and "tplbad" not in app.blueprints

    anonymous = app.test_client()
    assert anonymous.get("/bpt/").status_code == 302  # login required by default
    assert anonymous.get("/bpt/open").text == "open page"  # listed in public_endpoints
    make_person("li")
    client = logged_in(app, login, "li")
    assert client.get("/bpt/").text == "bpt page"  # under /<plugin>, not its url_prefix
    assert client.get("/elsewhere/").status_code == 404
    assert client.get("/bpt/extra").text == "extra page"
    page = client.get("/tplok/")
    assert page.status_code == 200 and '<p id="tplok">ok</p>' in page.text
    assert "hijacked" not in client.get("/").text


def test_hook_roles(make_app: Any, make_person: Any, login: Any) -> None:
    from portal.auth.models import Role
    from portal.database import sync_registry

    coach = RoleSpec(
        "coach", "Coach", read_scope="team", write_scope="own", rank=15, duties=["Coach people"]
    )
    app = make_app(
        plugins=[
            ("rolet", make_plugin("rolet", portal_roles=lambda: [coach])),
            ("rolebad", make_plugin("rolebad", portal_roles=lambda: [RoleSpec("x", "X", "any")])),
            ("roledup", make_plugin("roledup", portal_roles=lambda: [RoleSpec("admin", "Boss")])),
        ]
    )
    assert state(app).roles["coach"] == ("rolet", coach)
    assert "scopes must be one of" in error_of(app, "rolebad")
    assert "role 'admin' is already declared by another plugin" in error_of(app, "roledup")
    with app.app_context():
        role = db.session.scalars(sa.select(Role).where(Role.code == "coach")).one()
        assert (role.name, role.read_scope, role.write_scope, role.rank) == (
            "Coach",
            "team",
            "own",
            15,
        )
        assert role.duties == "Coach people"
        role.name = "Team coach"  # an admin's edit
        role.read_scope = "all"
        db.session.commit()
        assert sync_registry() == {"roles": 0, "grants": 0}  # seeded once only
        role = db.session.scalars(sa.select(Role).where(Role.code == "coach")).one()
        assert (role.name, role.read_scope) == ("Team coach", "all")
        assert db.session.scalar(sa.select(sa.func.count()).where(Role.code == "coach")) == 1
    make_person("boss", roles=["admin"])
    make_person("carla", roles=["coach"])
    client = logged_in(app, login, "boss")
    assert "Team coach" in client.get("/admin/roles").text


def test_hook_unit_kinds(make_app: Any, make_person: Any, login: Any) -> None:
    district = UnitKind("district", "District", order=25)
    app = make_app(
        plugins=[
            ("kindt", make_plugin("kindt", portal_unit_kinds=lambda: [district])),
            (
                "kinddup",
                make_plugin(
                    "kinddup",
                    requires=("organisation",),  # loads after it: first come, first served
                    portal_unit_kinds=lambda: [UnitKind("team", "T")],
                ),
            ),
        ]
    )
    assert state(app).unit_kinds["district"] == district
    assert "unit kind 'team' is already declared" in error_of(app, "kinddup")
    make_person("boss", roles=["admin"])
    client = logged_in(app, login, "boss")
    form = client.get("/admin/units/new").text
    assert 'value="district"' in form and "District" in form
    saved = client.post(
        "/admin/units/new",
        data={"name": "North district", "kind": "district", "parent_id": "", "leader_id": ""},
    )
    assert saved.status_code == 303
    assert "North district" in client.get("/admin/units").text


def test_hook_permissions(make_app: Any, make_person: Any, login: Any) -> None:
    from portal.auth.models import Role
    from portal.database import sync_registry

    approve = Permission(
        "permt.approve", "Approve things", default_roles=("supervisor", "manager", "no_such_role")
    )
    app = make_app(
        plugins=[
            ("permt", make_plugin("permt", portal_permissions=lambda: [approve])),
            (
                "permbad",
                make_plugin("permbad", portal_permissions=lambda: [Permission("other.x", "X")]),
            ),
            (
                "permcore",
                make_plugin(
                    "permcore", portal_permissions=lambda: [Permission("core.users.manage", "X")]
                ),
            ),
        ]
    )
    assert state(app).permissions["permt.approve"] == ("permt", approve)
    assert error_of(app, "permbad") == (
        "portal_permissions: permission 'other.x' must start with 'permbad.'"
    )
    assert "must start with 'permcore.'" in error_of(app, "permcore")

    def grants() -> dict[str, set[str]]:
        with app.app_context():
            return {
                role.code: role.permission_codes for role in db.session.scalars(sa.select(Role))
            }

    seeded = grants()
    assert "permt.approve" in seeded["supervisor"] and "permt.approve" in seeded["manager"]
    assert "permt.approve" not in seeded["salesperson"]

    make_person("boss", roles=["admin"])
    make_person("sam", roles=["supervisor"])
    make_person("li", roles=["salesperson"])
    with app.app_context():
        supervisor_id = db.session.scalars(
            sa.select(Role.id).where(Role.code == "supervisor")
        ).one()
    admin = logged_in(app, login, "boss")
    page = admin.get(f"/admin/roles/{supervisor_id}").text
    assert re.search(r'value="permt\.approve"\s+checked', page)
    assert "Approve things (permt.approve)" in page

    # The admin revokes the default grant; a later sync never gives it back.
    form = {
        "code": "supervisor",
        "name": "Sales supervisor",
        "read_scope": "team",
        "write_scope": "team",
        "duties": "",
        "permissions": sorted(seeded["supervisor"] - {"permt.approve"}),
    }
    assert admin.post(f"/admin/roles/{supervisor_id}", data=form).status_code == 303
    with app.app_context():
        sync_registry()
    assert "permt.approve" not in grants()["supervisor"]


def test_hook_settings(make_app: Any, make_person: Any, login: Any) -> None:
    from portal.settings import get_setting

    specs = [
        SettingSpec("sett.limit", "Limit", type="int", default=5, minimum=1, maximum=10),
        SettingSpec("sett.mode", "Mode", type="choice", default="a", choices=("a", "b")),
        SettingSpec("sett.enabled", "Enabled", type="bool", default=False),
        SettingSpec("sett.greeting", "Greeting", default="hi"),
    ]
    app = make_app(
        plugins=[
            ("sett", make_plugin("sett", portal_settings=lambda: specs)),
            ("settbad", make_plugin("settbad", portal_settings=lambda: [SettingSpec("x.y", "Y")])),
            (
                "settchoice",
                make_plugin(
                    "settchoice",
                    portal_settings=lambda: [SettingSpec("settchoice.c", "C", type="choice")],
                ),
            ),
        ],
        PORTAL_SETTINGS={"sett.greeting": "hello from instance config"},
    )
    assert "setting 'x.y' must start with 'settbad.'" in error_of(app, "settbad")
    assert "is a choice without choices" in error_of(app, "settchoice")
    with app.app_context():
        assert get_setting("sett.limit") == 5
        assert get_setting("sett.mode") == "a"
        assert get_setting("sett.enabled") is False
        assert get_setting("sett.greeting") == "hello from instance config"
        with pytest.raises(KeyError):
            get_setting("settbad.y")

    make_person("boss", roles=["admin"])
    client = logged_in(app, login, "boss")
    page = client.get("/admin/settings").text
    assert "sett.limit" in page and "sett.mode" in page
    with app.app_context():
        form = {
            spec.key: str(get_setting(spec.key))
            for spec in state(app).settings.values()
            if spec.type != "bool"
        }
    bad = client.post("/admin/settings", data={**form, "sett.limit": "11", "sett.mode": "c"})
    assert bad.status_code == 422
    assert "Must be at most 10." in bad.text
    assert "Choose one of: a, b." in bad.text
    assert bad.text.count("invalid-feedback") == 2
    with app.app_context():
        assert get_setting("sett.limit") == 5  # all or nothing
    good = client.post(
        "/admin/settings", data={**form, "sett.limit": "7", "sett.mode": "b", "sett.enabled": "yes"}
    )
    assert good.status_code == 303
    with app.app_context():
        assert get_setting("sett.limit") == 7
        assert get_setting("sett.mode") == "b"
        assert get_setting("sett.enabled") is True


def test_hook_cli_commands(make_app: Any) -> None:
    @click.group("clit")
    def group() -> None:
        """Throwaway commands."""

    @group.command("greet")
    @click.argument("who")
    def greet(who: str) -> None:
        click.echo(f"hello {who}")

    @click.command("other")
    def other() -> None:
        """Not named after its plugin."""

    app = make_app(
        plugins=[
            ("clit", make_plugin("clit", portal_cli_commands=lambda: [group])),
            ("clibad", make_plugin("clibad", portal_cli_commands=lambda: [other])),
            ("clinot", make_plugin("clinot", portal_cli_commands=lambda: [print])),
        ]
    )
    assert app.cli.commands["clit"] is group
    assert "other" not in app.cli.commands
    assert error_of(app, "clibad") == (
        "portal_cli_commands: CLI command 'other' must be named 'clibad'"
    )
    assert "must return a list of Command" in error_of(app, "clinot")
    result = app.test_cli_runner().invoke(args=["clit", "greet", "world"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello world\n"


def _named_callable_refusals(
    make_app: Any, hook: str, build: Callable[[str, Any], Any], registry: str
) -> None:
    """Shared checks of jobs, rule actions, fact providers: namespace, callable, unique."""

    def job_function() -> None:
        return None

    app = make_app(
        plugins=[
            ("nco", make_plugin("nco", **{hook: lambda: [build("nco.thing", job_function)]})),
            ("ncons", make_plugin("ncons", **{hook: lambda: [build("other.thing", job_function)]})),
            ("nccall", make_plugin("nccall", **{hook: lambda: [build("nccall.thing", "text")]})),
            ("nctype", make_plugin("nctype", **{hook: lambda: ["nctype.thing"]})),
        ]
    )
    registered = getattr(state(app), registry)
    assert registered["nco.thing"].func is job_function
    assert "must start with 'ncons.'" in error_of(app, "ncons")
    assert "'nccall.thing': func is not callable" in error_of(app, "nccall")
    assert "must return a list of" in error_of(app, "nctype")
    assert not {"other.thing", "nccall.thing"} & set(registered)
    assert app.test_client().get("/login").status_code == 200


def test_hook_jobs(make_app: Any) -> None:
    _named_callable_refusals(
        make_app, "portal_jobs", lambda name, f: Job(name, f, every_seconds=3600), "jobs"
    )
    app = make_app(
        plugins=[
            ("jobfast", make_plugin("jobfast", portal_jobs=lambda: [Job("jobfast.j", print, 10)])),
        ]
    )
    assert "runs more often than once a minute" in error_of(app, "jobfast")
    assert "core.purge_login_attempts" in state(app).jobs


def test_hook_rule_actions(make_app: Any) -> None:
    _named_callable_refusals(
        make_app,
        "portal_rule_actions",
        lambda name, f: RuleAction(name, f, arguments={"level": str}),
        "rule_actions",
    )


def test_hook_fact_providers(make_app: Any) -> None:
    _named_callable_refusals(
        make_app,
        "portal_fact_providers",
        lambda name, f: FactProvider(name, {"amount": int}, f),
        "fact_providers",
    )


def test_hook_event_types(make_app: Any) -> None:
    from portal.events import UnknownEventError, emit

    app = make_app(
        plugins=[
            ("evt", make_plugin("evt", portal_event_types=lambda: [EventType("evt.done", "D")])),
            ("evtbad", make_plugin("evtbad", portal_event_types=lambda: [EventType("core.x")])),
            ("evtdup", make_plugin("evtdup", portal_event_types=lambda: [EventType("evt.done")])),
        ]
    )
    assert state(app).event_types["evt.done"].description == "D"
    assert "core.user_created" in state(app).event_types
    assert "must start with 'evtbad.'" in error_of(app, "evtbad")
    assert "must start with 'evtdup.'" in error_of(app, "evtdup")
    with app.app_context():
        assert emit("evt.done").name == "evt.done"
        with pytest.raises(UnknownEventError, match="core.x"):
            emit("core.x")


def test_hook_api_routes(make_app: Any, make_person: Any, api_token: Any) -> None:
    def ping() -> Any:
        return jsonify(pong=True, user=current_api_user().username)

    def item(item_id: int) -> Any:
        return jsonify(id=item_id)

    routes = [
        ApiRoute("/ping", ping, summary="Ping"),
        ApiRoute("/items/<int:item_id>", item, permission="apit.read", schema={"type": "object"}),
    ]
    app = make_app(
        plugins=[
            (
                "apit",
                make_plugin(
                    "apit",
                    portal_api_routes=lambda: routes,
                    portal_permissions=lambda: [
                        Permission("apit.read", "Read", default_roles=("manager",))
                    ],
                ),
            ),
            ("apibad", make_plugin("apibad", portal_api_routes=lambda: [ApiRoute("x", ping)])),
        ]
    )
    assert "API route 'x' must start with '/'" in error_of(app, "apibad")
    make_person("li", roles=["salesperson"])
    make_person("mia", roles=["manager"])
    client = app.test_client()
    anonymous = client.get("/api/v1/apit/ping")
    assert anonymous.status_code == 401
    assert anonymous.json["error"]["code"] == "unauthenticated"
    li = {"Authorization": f"Bearer {api_token('li')}"}
    mia = {"Authorization": f"Bearer {api_token('mia')}"}
    assert client.get("/api/v1/apit/ping", headers=li).json == {"pong": True, "user": "li"}
    assert client.get("/api/v1/ping", headers=li).status_code == 404
    denied = client.get("/api/v1/apit/items/3", headers=li)
    assert denied.status_code == 403 and denied.json["error"]["code"] == "forbidden"
    assert client.get("/api/v1/apit/items/3", headers=mia).json == {"id": 3}
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert paths["/api/v1/apit/ping"]["get"]["summary"] == "Ping"
    assert paths["/api/v1/apit/ping"]["get"]["tags"] == ["apit"]
    operation = paths["/api/v1/apit/items/{item_id}"]["get"]
    assert operation["x-permission"] == "apit.read"
    assert operation["parameters"][0]["name"] == "item_id"
    assert not any(path.startswith("/api/v1/apibad") for path in paths)


def test_hook_api_routes_sharing_a_view_do_not_stop_the_portal(make_app: Any) -> None:
    def items(item_id: int | None = None) -> Any:
        return jsonify(id=item_id)

    routes = [ApiRoute("/items", items), ApiRoute("/items/<int:item_id>", items)]
    app = make_app(
        plugins=[("apishare", make_plugin("apishare", portal_api_routes=lambda: routes))]
    )
    assert loaded(app, "apishare")
    assert app.test_client().get("/login").status_code == 200


def test_hook_demo_data(make_app: Any) -> None:
    from portal.audit.recorder import acting_as
    from portal.auth.models import User
    from portal.demo import run_demo

    calls: list[tuple[str, bool]] = []

    def demo_for(name: str) -> Callable[[Any], None]:
        def demo(app: Any) -> None:
            admin_exists = db.session.scalars(
                sa.select(User.id).where(User.username == "admin")
            ).first()
            calls.append((name, admin_exists is not None))

        return demo

    # Sorted by name "demoa" comes first; its requirement must run before it.
    app = make_app(
        plugins=[
            (
                "demoa",
                make_plugin("demoa", requires=("demoz",), portal_demo_data=demo_for("demoa")),
            ),
            ("demoz", make_plugin("demoz", portal_demo_data=demo_for("demoz"))),
        ]
    )
    with app.app_context(), acting_as("test"):
        people = run_demo(app)
    assert calls == [("demoz", True), ("demoa", True)]  # after the core's demo people
    assert "admin" in {person.username for person in people}


def test_hook_demo_data_failure_rolls_everything_back(make_app: Any) -> None:
    from portal.audit.recorder import acting_as
    from portal.auth.models import User
    from portal.demo import run_demo

    def broken(app: Any) -> None:
        raise RuntimeError("demo broke")

    app = make_app(plugins=[("demobad", make_plugin("demobad", portal_demo_data=broken))])
    with app.app_context(), acting_as("test"), pytest.raises(RuntimeError, match="demo broke"):
        run_demo(app)
    with app.app_context():
        assert db.session.scalars(sa.select(User).where(User.username == "admin")).first() is None


def test_hook_startup(make_app: Any) -> None:
    seen: dict[str, Any] = {}

    def startup(app: Any) -> None:
        seen["api"] = "api" in app.blueprints
        seen["state"] = "portal" in app.extensions
        seen["babel"] = "babel" in app.extensions
        app.jinja_env.filters["shout"] = lambda text: f"{text.upper()}!"

    def broken(app: Any) -> None:
        raise RuntimeError("startup broke")

    app = make_app(
        plugins=[
            ("startt", make_plugin("startt", portal_startup=startup)),
            ("startbad", make_plugin("startbad", portal_startup=broken)),
        ]
    )
    assert seen == {"api": True, "state": True, "babel": True}
    with app.test_request_context():
        assert render_template_string("{{ 'hi'|shout }}") == "HI!"
    assert "portal_startup raised" in error_of(app, "startbad")
    assert "startup broke" in error_of(app, "startbad")
    assert app.test_client().get("/login").status_code == 200


# -- request-time contributions -------------------------------------------------------


def _nav(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}">(.*?)</ul>', html, flags=re.DOTALL)
    return match.group(1) if match else ""


def test_hook_nav_items(
    make_app: Any, make_person: Any, login: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def items(user: Any) -> list[NavItem]:
        assert user.is_authenticated
        return [
            NavItem("navt.index", "Navt guarded", order=55, permission="navt.see"),
            NavItem("navt.index", "Navt open", order=56),
            NavItem("navt.index", "Navt admin", section="admin", permission="navt.see"),
            NavItem("navt.index", "Navt mine", section="user"),
            NavItem("navt.nowhere", "Navt broken"),
        ]

    def boom(user: Any) -> list[NavItem]:
        raise RuntimeError("nav broke")

    plugin = make_plugin(
        "navt",
        portal_blueprints=lambda: [page_blueprint("navt")],
        portal_permissions=lambda: [
            Permission("navt.see", "See navt", default_roles=("salesperson",))
        ],
        portal_nav_items=items,
    )
    app = make_app(
        plugins=[("navt", plugin), ("navboom", make_plugin("navboom", portal_nav_items=boom))]
    )
    make_person("li", roles=["salesperson"])
    make_person("hana", roles=["hr"])

    page = logged_in(app, login, "li").get("/")
    assert page.status_code == 200
    main = _nav(page.text, "main-nav")
    assert re.search(r'href="/navt/"\s*>Navt guarded</a>', main)
    assert "Navt open" in main and "Home" in main
    assert main.index("Navt guarded") < main.index("Navt open")  # by order
    assert "Navt admin" in page.text and "Navt mine" in page.text
    assert "Navt broken" not in page.text
    assert "navt.nowhere does not exist" in caplog.text
    assert "navboom" in caplog.text and "portal_nav_items raised" in caplog.text

    other = logged_in(app, login, "hana").get("/")
    assert other.status_code == 200
    assert "Navt guarded" not in other.text and "Navt admin" not in other.text
    assert "Navt open" in _nav(other.text, "main-nav")
    assert "Navt" not in app.test_client().get("/login").text  # nobody logged in


def test_hook_dashboard_widgets(make_app: Any, make_person: Any, login: Any) -> None:
    bp = Blueprint("dash", __name__)
    bp.add_url_rule("/tile", "tile", lambda: "<p>tile body</p>")

    def widgets(user: Any) -> list[Widget]:
        return [
            Widget("dash.tile", "Dash tile", "dash.tile", order=1),
            Widget("dash.secret", "Dash secret", "dash.tile", permission="dash.secret"),
            Widget("dash.broken", "Dash broken", "dash.nowhere"),
        ]

    def boom(user: Any) -> list[Widget]:
        raise RuntimeError("widget broke")

    app = make_app(
        plugins=[
            (
                "dash",
                make_plugin(
                    "dash",
                    portal_blueprints=lambda: [bp],
                    portal_dashboard_widgets=widgets,
                    portal_permissions=lambda: [Permission("dash.secret", "Secret")],
                ),
            ),
            ("dashboom", make_plugin("dashboom", portal_dashboard_widgets=boom)),
        ]
    )
    make_person("li", roles=["salesperson"])
    client = logged_in(app, login, "li")
    home = client.get("/")
    assert home.status_code == 200
    assert "Dash tile" in home.text
    assert re.search(r'hx-get="/dash/tile"\s+hx-trigger="load"', home.text)
    assert "Dash secret" not in home.text  # permission not held
    assert "Dash broken" not in home.text  # endpoint does not exist: left out, logged
    assert client.get("/dash/tile").text == "<p>tile body</p>"


def test_hook_template_slot(make_app: Any, make_person: Any, login: Any) -> None:
    def slot(slot: str, context: dict[str, Any]) -> Any:
        if slot == "profile":
            person, viewer = context["person"], context["viewer"]
            return Markup('<p id="slot-profile">{} seen by {}</p>').format(
                person.username, viewer.username
            )
        if slot == "head":
            return Markup('<meta name="slot-test" content="head">')
        if slot == "page_top":
            return "<b>plain & escaped</b>"
        if slot == "footer":
            return Markup('<span id="slot-footer">footer</span>')
        return None

    def boom(slot: str, context: dict[str, Any]) -> Any:
        raise RuntimeError("slot broke")

    app = make_app(
        plugins=[
            ("slott", make_plugin("slott", portal_template_slot=slot)),
            ("slotboom", make_plugin("slotboom", portal_template_slot=boom)),
        ]
    )
    make_person("li", roles=["salesperson"])
    page = logged_in(app, login, "li").get("/people/me")
    assert page.status_code == 200
    assert '<p id="slot-profile">li seen by li</p>' in page.text
    assert '<meta name="slot-test" content="head">' in page.text.split("</head>")[0]
    assert str(escape("<b>plain & escaped</b>")) in page.text
    assert "<b>plain & escaped</b>" not in page.text
    assert '<span id="slot-footer">footer</span>' in page.text


# -- events ------------------------------------------------------------------------------


def test_hook_on_event(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    from portal.audit.recorder import acting_as
    from portal.events import UnknownEventError, emit
    from portal.org.services import create_user

    received: list[Event] = []
    late: list[str] = []

    def boom(event: Event) -> None:
        raise RuntimeError("handler broke")

    app = make_app(
        plugins=[
            (
                "evta",
                make_plugin(
                    "evta",
                    portal_event_types=lambda: [EventType("evta.closed", payload=("deal_id",))],
                    portal_on_event=lambda event: received.append(event),
                ),
            ),
            ("evtb", make_plugin("evtb", portal_on_event=boom)),
            ("evtc", make_plugin("evtc", portal_on_event=lambda event: late.append(event.name))),
        ]
    )
    with app.app_context():
        event = emit("evta.closed", actor_id=7, deal_id=42)
        with pytest.raises(UnknownEventError, match="evta.clsoed"):
            emit("evta.clsoed", deal_id=42)
        with acting_as("test"):
            user = create_user("evan", "Evan", "correct-horse-42", roles=["salesperson"])
            db.session.commit()
            user_id = user.id
    assert received[0] is event
    assert (event.name, dict(event.payload), event.actor_id) == ("evta.closed", {"deal_id": 42}, 7)
    assert received[1].name == "core.user_created"
    assert received[1].payload == {"user_id": user_id}
    assert late == ["evta.closed", "core.user_created"]  # after a raising handler
    assert "evtb" in caplog.text and "handler broke" in caplog.text


def test_hooks_reach_plugins_only_through_the_core() -> None:
    """Plugins never import each other: the built-in ones import only portal.* and
    third-party libraries."""
    plugins_dir = ROOT / "plugins"
    names = {path.name for path in plugins_dir.iterdir() if (path / "__init__.py").exists()}
    offenders = []
    for path in plugins_dir.rglob("*.py"):
        own = path.relative_to(plugins_dir).parts[0]
        source = path.read_text()
        for other in names - {own}:
            if re.search(rf"^\s*(from|import)\s+plugins\.{other}\b", source, re.MULTILINE):
                offenders.append(f"{path.relative_to(ROOT)} imports plugins.{other}")
    assert not offenders


def test_hookspecs_have_docstrings_with_examples() -> None:
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Example::" in doc, f"{name} has no example in its docstring"


def test_hook_notification_kinds(make_app: Any, make_person: Any) -> None:
    from portal.auth.models import User
    from portal.loops.models import Notification, OutboundEmail
    from portal.loops.notifications import UnknownNotificationKind, notify

    paid = NotificationKind("ntf.paid", "Paid", email_default=False)
    app = make_app(
        plugins=[
            ("ntf", make_plugin("ntf", portal_notification_kinds=lambda: [paid])),
            ("ntfbad", make_plugin("ntfbad", portal_notification_kinds=lambda: [paid])),
            (
                "ntfother",
                make_plugin(
                    "ntfother",
                    portal_notification_kinds=lambda: [NotificationKind("core.x", "X")],
                ),
            ),
        ]
    )
    assert state(app).notification_kinds["ntf.paid"] is paid
    assert "core.approval_waiting" in state(app).notification_kinds
    assert "must start with 'ntfbad.'" in error_of(app, "ntfbad")
    assert "must start with 'ntfother.'" in error_of(app, "ntfother")
    with app.app_context():
        person = db.session.get(User, make_person("payee", email="payee@example.com"))
        notify(person, "ntf.paid", "Claim paid")
        db.session.commit()
        assert db.session.scalar(sa.select(Notification.title)) == "Claim paid"
        # email_default=False: in the app only until the person asks for email.
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboundEmail)) == 0
        with pytest.raises(UnknownNotificationKind, match="ntf.unpaid"):
            notify(person, "ntf.unpaid", "typo")


def test_hook_loop_types(make_app: Any, make_person: Any) -> None:
    from portal.auth.models import User
    from portal.loops.service import raise_loop
    from portal.org.services import ValidationFailed

    visit = LoopType("lpt.visit_follow_up", "Visit follow-up", clause="P3.1.3")
    app = make_app(
        plugins=[
            ("lpt", make_plugin("lpt", portal_loop_types=lambda: [visit])),
            (
                "lptbad",
                make_plugin("lptbad", portal_loop_types=lambda: [LoopType("lpt.other", "X")]),
            ),
            ("lpttype", make_plugin("lpttype", portal_loop_types=lambda: ["lpttype.x"])),
        ]
    )
    assert state(app).loop_types["lpt.visit_follow_up"] is visit
    assert "core.action" in state(app).loop_types
    assert "must start with 'lptbad.'" in error_of(app, "lptbad")
    assert "must return a list of" in error_of(app, "lpttype")
    with app.app_context():
        owner = db.session.get(User, make_person("owner"))
        item = raise_loop("lpt.visit_follow_up", "Call back", owner, subject=("lpt_visit", 7))
        db.session.commit()
        # The declared clause is the item's clause unless the caller names another.
        assert (item.type, item.clause, item.subject_id) == ("lpt.visit_follow_up", "P3.1.3", "7")
        with pytest.raises(ValidationFailed) as refused:
            raise_loop("lpt.visit_followup", "typo", owner)
        assert "type" in refused.value.fields


def test_hook_approval_kinds(make_app: Any, make_person: Any) -> None:
    from portal.auth.models import User
    from portal.loops.approvals import submit
    from portal.org.services import ValidationFailed

    decided: list[str] = []
    discount = ApprovalKind(
        "apk.discount",
        "Discount",
        ruleset="discount_approval",
        on_decided=lambda request: decided.append(request.status),
    )

    def kinds(*items: ApprovalKind) -> Callable[[], list[ApprovalKind]]:
        return lambda: list(items)

    app = make_app(
        plugins=[
            ("apk", make_plugin("apk", portal_approval_kinds=kinds(discount))),
            ("apkns", make_plugin("apkns", portal_approval_kinds=kinds(discount))),
            (
                "apkcall",
                make_plugin(
                    "apkcall",
                    portal_approval_kinds=kinds(
                        ApprovalKind("apkcall.x", "X", ruleset="expenses", on_decided="no")
                    ),
                ),
            ),
            (
                "apkrule",
                make_plugin(
                    "apkrule",
                    portal_approval_kinds=kinds(ApprovalKind("apkrule.x", "X", ruleset="")),
                ),
            ),
        ]
    )
    assert state(app).approval_kinds["apk.discount"] is discount
    assert "must start with 'apkns.'" in error_of(app, "apkns")
    assert "on_decided is not callable" in error_of(app, "apkcall")
    assert "names no rule file" in error_of(app, "apkrule")
    facts = {
        "requested_by": "salesperson",
        "discount_pct": 5,
        "deal_amount": 80000,
        "gross_margin_pct": 30,
    }
    with app.app_context():
        requester = db.session.get(User, make_person("seller"))
        # Within the salesperson's authority the rule file routes to nobody: approved at
        # once, and the plugin hears of it in the same transaction.
        request = submit("apk.discount", "Quote 1", requester, facts)
        db.session.commit()
        assert (request.status, request.ruleset, decided) == (
            "approved",
            "discount_approval",
            ["approved"],
        )
        with pytest.raises(ValidationFailed):
            submit("apk.discunt", "typo", requester, facts)


def test_hook_link_targets(make_app: Any, make_person: Any, login: Callable[..., Any]) -> None:
    from flask_login import current_user

    from portal.links import describe_links, link_targets, link_url, search_links
    from portal.plugins import LinkTarget

    records_by_id = {1: ("Donghai", "owner"), 2: ("Xinhua", "other"), 3: ("Dongfang", "owner")}

    def readable() -> dict[int, str]:
        mine = current_user.username
        return {i: name for i, (name, who) in records_by_id.items() if who == mine}

    def search(text: str, limit: int) -> list[tuple[int, str]]:
        return [(i, n) for i, n in readable().items() if text.lower() in n.lower()][:limit]

    def describe(ids: Any) -> dict[int, str]:
        return {i: n for i, n in readable().items() if i in ids}

    def broken(*_: Any) -> Any:
        raise RuntimeError("boom")

    bp = Blueprint("lnk", __name__)
    bp.add_url_rule("/<int:thing_id>", "thing", lambda thing_id: f"thing {thing_id}")
    good = LinkTarget("lnk.thing", "Thing", search, describe, "lnk.thing", id_arg="thing_id")
    app = make_app(
        plugins=[
            (
                "lnk",
                make_plugin(
                    "lnk",
                    portal_blueprints=lambda: [bp],
                    portal_link_targets=lambda: [
                        good,
                        LinkTarget("lnk.broken", "Broken", broken, broken, "lnk.thing"),
                    ],
                ),
            ),
            (
                "lnkns",
                make_plugin(
                    "lnkns",
                    portal_link_targets=lambda: [
                        LinkTarget("lnk.other", "X", search, describe, "lnk.thing")
                    ],
                ),
            ),
            (
                "lnkcall",
                make_plugin(
                    "lnkcall",
                    portal_link_targets=lambda: [
                        LinkTarget("lnkcall.x", "X", "no", describe, "lnk.thing")  # type: ignore[arg-type]
                    ],
                ),
            ),
        ]
    )
    assert state(app).link_targets["lnk.thing"] is good
    assert "must start with 'lnkns.'" in error_of(app, "lnkns")
    assert "must be callable" in error_of(app, "lnkcall")
    make_person("owner")
    from flask import g

    from portal.auth.models import User

    with app.test_request_context("/"):
        # The request's user, as flask-login keeps it after loading the session.
        g._login_user = db.session.scalars(sa.select(User).where(User.username == "owner")).one()
        assert set(link_targets()) >= {"lnk.thing", "lnk.broken"}
        assert search_links("lnk.thing", "dong") == [(1, "Donghai"), (3, "Dongfang")]
        assert search_links("lnk.thing", "dong", limit=1) == [(1, "Donghai")]
        # Another person's record is never described: the reader sees no link to it.
        assert describe_links("lnk.thing", [1, 2]) == {1: "Donghai"}
        assert link_url("lnk.thing", 3) == "/lnk/3"
        assert search_links("lnk.unknown", "x") == [] and link_url("lnk.unknown", 1) is None
        # A target that fails gives nothing instead of breaking the page linking to it.
        assert search_links("lnk.broken", "x") == [] and describe_links("lnk.broken", [1]) == {}
