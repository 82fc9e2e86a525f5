"""Pytest fixtures for the portal and for plugins, shipped so that a third-party plugin
tests exactly the way the built-in ones do (loaded through the ``pytest11`` entry point).

The database is real: a SQLite file by default, or the server named by
``TEST_DATABASE_URL`` (CI runs the suite on PostgreSQL too). Its schema is built once per
session by the migrations themselves; every test then starts from empty tables. Under
pytest-xdist each worker has a database of its own (``_database_url``).

Fixtures: ``app``, ``client``, ``make_app`` (an app with extra throwaway plugins),
``make_person``, ``login``, ``api_client``, ``live_server``, ``browser``, ``page`` and
``phone_page`` (390 x 844, touch).

Helpers: ``throwaway_plugin``, ``count_statements`` (no N+1), and for browser tests
``log_in_page(page, live_server, "li")`` (a person logs in through the login form),
``open_page(browser, **context_options)`` (a page of one's own, e.g. ``**PHONE`` with
``device_scale_factor=2``), ``SCREENSHOTS`` (the folder for pictures a human looks at)
and ``BROWSER_TIMEOUT`` (every page waits at most this long: a broken page fails fast).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

DEMO_TEST_PASSWORD = "correct-horse-42"  # noqa: S105 - the password test people get
CHROMIUM = "/usr/bin/chromium"
BROWSER_TIMEOUT = 5000  # ms: on a loopback server a broken page fails fast, not after 30 s
# Screenshots browser tests take for a human to look at (outside the repository).
SCREENSHOTS = Path(tempfile.gettempdir()) / "salesloop-screenshots"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def throwaway_plugin(name: str, requires: tuple[str, ...] = (), **hooks: Callable[..., Any]) -> Any:
    """A plugin made up in a test: a module-like object whose attributes are hook
    implementations, for ``make_app(plugins=[(name, throwaway_plugin(name, ...))])``.
    ``portal_plugin_meta`` is supplied (name, title, ``requires``) unless given."""
    from portal.plugins import PluginMeta, hookimpl

    def meta() -> PluginMeta:
        return PluginMeta(name=name, title=name.title(), version="1.0", requires=requires)

    hooks.setdefault("portal_plugin_meta", meta)
    return SimpleNamespace(**{hook: hookimpl(function) for hook, function in hooks.items()})


def _postgres_engine(url: str, **options: Any) -> sa.engine.Engine:
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    return sa.create_engine(url, **options)


def _worker_database(url: str, worker: str) -> str:
    """The server database of one pytest-xdist worker (``test`` -> ``test_gw0``), created
    when missing: workers running at once must never empty each other's tables."""
    parsed = sa.engine.make_url(url)
    name = f"{parsed.database}_{worker}"
    admin = _postgres_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if not exists:
                quoted = connection.dialect.identifier_preparer.quote(name)
                connection.execute(sa.text(f"CREATE DATABASE {quoted}"))
    finally:
        admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def _database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        if worker and "postgresql" in url:
            url = _worker_database(url, worker)
            # What the worker's tests and the processes they start read as well.
            os.environ["TEST_DATABASE_URL"] = url
        return url
    # Under pytest-xdist each worker has a temporary folder, so a SQLite file, of its own.
    return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "portal-test.db")


# The engines of the test apps, by database: one app per test would otherwise compile
# every SQL statement again (see portal.caches.shared_engine).
SHARED_ENGINES: dict[str, Any] = {}


def base_config(database_url: str, instance: Path) -> dict[str, Any]:
    """Configuration every test app starts from."""
    return {
        "PORTAL_SHARED_ENGINES": SHARED_ENGINES,
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key",
        "WTF_CSRF_ENABLED": False,
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "INSTANCE_PATH": str(instance),
    }


def _commit_without_flushing(dbapi_connection: Any, connection_record: Any) -> None:
    """Test databases are thrown away, so a commit need not wait for the disk (an fsync
    per commit is most of the suite's time on SQLite): SQLite without ``synchronous``,
    PostgreSQL without ``synchronous_commit``. What is committed is visible exactly as
    before; only a power cut could lose it."""
    module = type(dbapi_connection).__module__
    if module.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()
    elif module.startswith("psycopg"):
        dbapi_connection.execute("SET synchronous_commit TO off")
        if not dbapi_connection.autocommit:
            dbapi_connection.commit()


def _reset_postgres(url: str) -> None:
    engine = _postgres_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def portal_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database upgraded from empty by the migrations, once per test session."""
    from portal import create_app
    from portal.database import upgrade_schema

    if not sa.event.contains(sa.engine.Engine, "connect", _commit_without_flushing):
        sa.event.listen(sa.engine.Engine, "connect", _commit_without_flushing)
    url = _database_url(tmp_path_factory)
    if "postgresql" in url:
        _reset_postgres(url)
    os.environ.setdefault("PORTAL_QUIET_MIGRATIONS", "1")
    app = create_app(base_config(url, tmp_path_factory.mktemp("instance")))
    with app.app_context():
        upgrade_schema()
        from portal.extensions import db

        db.engine.dispose()
    return url


def _tables_with_rows(connection: Any, tables: list[sa.Table]) -> set[str]:
    """The names of ``tables`` holding at least one row, in a query per hundred tables
    (SQLite's limit on a compound select is 500): a test fills a few of the portal's
    tables, and emptying only those is what makes the reset cheap."""
    filled: set[str] = set()
    for start in range(0, len(tables), 100):
        checks = [
            sa.select(sa.literal(table.name).label("name")).where(
                sa.exists(sa.select(sa.literal(1)).select_from(table))
            )
            for table in tables[start : start + 100]
        ]
        filled.update(connection.execute(sa.union_all(*checks)).scalars())
    return filled


def _restart_postgres_sequences(connection: Any) -> None:
    """Every sequence of a table's column that has handed out a value starts again, as
    ``TRUNCATE ... RESTART IDENTITY`` would have done (ids count from 1 in each test)."""
    used = connection.execute(
        sa.text(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), start_value"
            " FROM pg_sequences WHERE schemaname = current_schema()"
            " AND last_value IS NOT NULL AND EXISTS (SELECT 1 FROM pg_depend"
            " WHERE objid = (quote_ident(schemaname) || '.' || quote_ident(sequencename))"
            "::regclass AND deptype IN ('a', 'i'))"
        )
    ).all()
    for name, start in used:
        connection.execute(
            sa.text("SELECT setval(:name, :start, false)"), {"name": name, "start": start}
        )


def _empty_tables(app: Any) -> None:
    """Delete the rows the test left, in the tables that have any. ``TRUNCATE`` of every
    table costs PostgreSQL seconds (new files for each table and index) even when they are
    empty; deleting a few rows costs milliseconds. On PostgreSQL a cycle of foreign keys
    that refuses the deletes falls back to that ``TRUNCATE``."""
    from portal.extensions import db

    with app.app_context():
        db.session.remove()
        existing = set(sa.inspect(db.engine).get_table_names())
        tables = [t for t in reversed(db.metadata.sorted_tables) if t.name in existing]
        postgres = db.engine.dialect.name == "postgresql"
        try:
            with db.engine.begin() as connection:
                if not postgres:
                    # Units and people refer to each other: clear them with checks off.
                    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                filled = _tables_with_rows(connection, tables)
                for table in tables:
                    if table.name in filled:
                        connection.execute(table.delete())
                if postgres:
                    _restart_postgres_sequences(connection)
                else:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        except sa.exc.IntegrityError:
            if not postgres:
                raise
            with db.engine.begin() as connection:
                names = ", ".join(f'"{t.name}"' for t in tables)
                connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        db.engine.dispose()


@pytest.fixture
def make_app(portal_database: str, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Build an app on the test database, optionally with extra throwaway plugins:
    ``make_app(plugins=[("name", plugin_object)], PORTAL_PLUGINS=[...])``."""
    from portal import create_app
    from portal.database import sync_registry

    built: list[Any] = []

    def build(plugins: list[tuple[str, Any]] | None = None, **config: Any) -> Any:
        settings = base_config(portal_database, tmp_path)
        settings["PORTAL_EXTRA_PLUGINS"] = list(plugins or [])
        settings.update(config)
        app = create_app(settings)
        with app.app_context():
            sync_registry()
        built.append(app)
        return app

    yield build
    if built:
        _empty_tables(built[0])
    for app in built:
        with app.app_context():
            from portal.extensions import db

            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    """The portal with the installed plugins, on an empty test database."""
    return make_app()


@pytest.fixture
def client(app: Any) -> Any:
    """A test client of ``app``."""
    return app.test_client()


@pytest.fixture
def make_person(app: Any) -> Callable[..., Any]:
    """Create a person: ``make_person("li", roles=["salesperson"], unit=unit)``."""
    from portal.audit.recorder import acting_as
    from portal.extensions import db
    from portal.org.services import create_user

    def make(
        username: str,
        roles: list[str] | None = None,
        unit: Any = None,
        display_name: str | None = None,
        **fields: Any,
    ) -> Any:
        with app.app_context(), acting_as("test"):
            user = create_user(
                username=username,
                display_name=display_name or username.title(),
                password=DEMO_TEST_PASSWORD,
                roles=roles or ["salesperson"],
                unit_id=unit if isinstance(unit, int) or unit is None else unit.id,
                **fields,
            )
            db.session.commit()
            user_id = user.id
        return user_id

    return make


@pytest.fixture
def make_unit(app: Any) -> Callable[..., int]:
    """Create a unit: ``make_unit("East", "region", parent=company_id, leader=user_id)``."""
    from portal.audit.recorder import acting_as
    from portal.extensions import db
    from portal.org.services import save_unit

    def make(
        name: str, kind: str = "team", parent: int | None = None, leader: int | None = None
    ) -> int:
        with app.app_context(), acting_as("test"):
            unit = save_unit(None, name, kind, parent, leader)
            db.session.commit()
            return unit.id

    return make


@pytest.fixture
def login(app: Any) -> Callable[..., Any]:
    """Log a test client in: ``login(client, "li")`` (password of ``make_person``)."""

    def do_login(test_client: Any, username: str, password: str = DEMO_TEST_PASSWORD) -> Any:
        response = test_client.post("/login", data={"username": username, "password": password})
        assert response.status_code == 302, f"login of {username} failed: {response.status_code}"
        return response

    return do_login


@pytest.fixture
def api_token(app: Any) -> Callable[[str], str]:
    """Issue an API token for a username."""
    from portal.auth.models import User
    from portal.auth.services import issue_token
    from portal.extensions import db

    def issue(username: str) -> str:
        with app.app_context():
            user = db.session.scalars(sa.select(User).where(User.username == username)).one()
            token = issue_token(user, "test")
            db.session.commit()
            return token

    return issue


# -- browser tests -------------------------------------------------------------


def count_statements(app: Any, client: Any, url: str, **kwargs: Any) -> int:
    """The SQL statements one GET of ``url`` issues (it must answer 200): how a test
    shows a page has no N+1, by comparing a few records with many. Only this thread's
    statements count (the test client runs the request here): an email sender or other
    background thread writing meanwhile would otherwise make the count depend on timing."""
    from .extensions import db

    seen: list[str] = []
    with app.app_context():
        engine = db.engine
    this_thread = threading.get_ident()

    def counted(*args: Any) -> None:
        if threading.get_ident() == this_thread:
            seen.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", counted)
    try:
        response = client.get(url, **kwargs)
        assert response.status_code == 200, (url, response.status_code)
    finally:
        sa.event.remove(engine, "before_cursor_execute", counted)
    return len(seen)


@pytest.fixture
def make_live_server(make_app: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """Serve a portal built like ``make_app(plugins, **config)`` on a free loopback port
    (CSRF on, as in production); ``server.url`` and ``server.app`` say where and what.
    Every server started is shut down after the test."""
    from werkzeug.serving import make_server

    started: list[tuple[Any, threading.Thread]] = []

    def serve(plugins: list[tuple[str, Any]] | None = None, **config: Any) -> Any:
        app = make_app(plugins=plugins, **{"WTF_CSRF_ENABLED": True, **config})
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        server.url = f"http://127.0.0.1:{server.server_port}"  # type: ignore[attr-defined]
        server.app = app  # type: ignore[attr-defined]
        started.append((server, thread))
        return server

    yield serve
    for server, thread in started:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def live_server(make_live_server: Callable[..., Any]) -> Any:
    """The portal served on a free loopback port (CSRF on, as in production)."""
    return make_live_server()


def log_in_page(page: Any, server: Any, username: str, password: str = DEMO_TEST_PASSWORD) -> None:
    """Log ``username`` in on a browser ``page`` through the login form of a live
    ``server`` (``live_server``, ``make_live_server``) and wait for the home page, its
    deferred scripts run: the way a person starts, for browser tests."""
    expect = pytest.importorskip("playwright.sync_api").expect
    page.goto(server.url + "/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.get_by_role("button", name=re.compile("Log in|登录")).click()
    expect(page).to_have_url(server.url + "/")
    page.wait_for_load_state("domcontentloaded")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield instance
        instance.close()


def open_page(browser: Any, **context_options: Any) -> Any:
    """A page in a fresh browser context (``locale="en-US"`` unless given; ``**PHONE``
    for a phone) that waits at most ``BROWSER_TIMEOUT`` and collects console errors and
    CSP violations in ``page.console_errors``, so tests can assert there are none. The
    folder ``SCREENSHOTS`` exists. ``page.context.close()`` ends it."""
    context_options.setdefault("locale", "en-US")
    context = browser.new_context(**context_options)
    new_page = context.new_page()
    new_page.set_default_timeout(BROWSER_TIMEOUT)
    errors: list[str] = []
    new_page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    new_page.on("pageerror", lambda error: errors.append(str(error)))
    new_page.console_errors = errors  # type: ignore[attr-defined]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return new_page


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser page (``open_page``)."""
    new_page = open_page(browser)
    yield new_page
    new_page.context.close()


@pytest.fixture
def phone_page(browser: Any) -> Iterator[Any]:
    """A fresh browser page on a phone-sized touch screen (``open_page(browser, **PHONE)``)."""
    new_page = open_page(browser, **PHONE)
    yield new_page
    new_page.context.close()
