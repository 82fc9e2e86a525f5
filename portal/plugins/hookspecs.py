"""The plugin contract: every hook a Salesloop plugin may implement.

This is the one file a plugin author must read. Hooks are called with keyword
arguments; an implementation may accept fewer arguments than the spec lists. Every
hook returning data is called plugin by plugin, so the core knows who contributed
what and can enforce the namespacing rules (see ``docs/plugins.md``). A plugin's
name is its entry-point name in the ``portal.plugins`` group; below, ``<plugin>``
stands for it.

Where a hook is called: setup hooks once in ``create_app`` in the order of this file;
request-time hooks on every request that needs them (an implementation that raises is
logged and skipped); event hooks whenever ``portal.events.emit`` is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from flask import Blueprint, Flask

    from .types import (
        ApiRoute,
        ApprovalKind,
        Event,
        EventType,
        FactProvider,
        Job,
        LinkTarget,
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
    )

PROJECT = "portal"
hookspec = pluggy.HookspecMarker(PROJECT)


# ---------------------------------------------------------------------------
# Setup hooks: called once per application, in create_app, in this order.
# ---------------------------------------------------------------------------


@hookspec
def portal_plugin_meta() -> PluginMeta:
    """Say who the plugin is: name, title, version, the clause it serves, and the
    plugins it requires. Every plugin must implement it; ``name`` must equal the
    entry-point name. A plugin whose requirements are not enabled is left out.

    Example::

        @hookimpl
        def portal_plugin_meta():
            return PluginMeta(name="expenses", title=_l("Expenses"), version="1.0",
                              clause="P6.4", requires=("organisation",))
    """


@hookspec
def portal_models() -> None:
    """Import the plugin's SQLAlchemy models so they join ``portal.extensions.db``'s
    metadata. Tables must be named ``<plugin>_*``; the core checks it.

    Example::

        @hookimpl
        def portal_models():
            from . import models  # noqa: F401
    """


@hookspec
def portal_migrations() -> str:
    """Return the folder of the plugin's Alembic revisions (its own branch, labelled
    with the plugin name). The core adds it to Alembic's ``version_locations`` so
    ``portal db upgrade heads`` applies it.

    Example::

        @hookimpl
        def portal_migrations():
            return str(Path(__file__).parent / "migrations")
    """


@hookspec
def portal_blueprints() -> list[Blueprint]:
    """Return the plugin's Flask blueprints. The core registers them under the URL
    prefix ``/<plugin>``; a blueprint must be named ``<plugin>`` or ``<plugin>_*`` and
    keep its templates in ``templates/<plugin>/``. Every view needs a login unless the
    plugin lists it in the blueprint's ``public_endpoints`` attribute.

    Example::

        bp = Blueprint("expenses", __name__, template_folder="templates")

        @hookimpl
        def portal_blueprints():
            return [bp]
    """


@hookspec
def portal_roles() -> list[RoleSpec]:
    """Offer roles to the installation (code, label, data scopes, rank, duties). The
    specs seed role rows the first time a code is seen; admins edit roles afterwards.

    Example::

        @hookimpl
        def portal_roles():
            return [RoleSpec("salesperson", _l("Salesperson"), "own", "own", rank=10,
                             duties=[_l("Visit and follow up customers")], clause="P2.4")]
    """


@hookspec
def portal_unit_kinds() -> list[UnitKind]:
    """Offer kinds of organisation unit (company, region, product line, team ...)
    that admins choose from when they build the organisation tree.

    Example::

        @hookimpl
        def portal_unit_kinds():
            return [UnitKind("region", _l("Region"), order=20)]
    """


@hookspec
def portal_permissions() -> list[Permission]:
    """Declare permission codes ``<plugin>.<verb>`` and the roles that receive them
    on first install. Admins change grants afterwards in Admin > Roles.

    Example::

        @hookimpl
        def portal_permissions():
            return [Permission("expenses.approve", _l("Approve expense claims"),
                               default_roles=("supervisor", "manager"))]
    """


@hookspec
def portal_settings() -> list[SettingSpec]:
    """Declare settings ``<plugin>.<name>`` with type, default and bounds. Admins edit
    them in Admin > Settings; code reads them with ``portal.settings.get_setting``.

    Example::

        @hookimpl
        def portal_settings():
            return [SettingSpec("expenses.currency", _l("Currency"), default="CNY")]
    """


@hookspec
def portal_cli_commands() -> list[click.Command]:
    """Return click commands; each becomes ``portal <name>`` and must be named after
    the plugin (use a click group for several commands).

    Example::

        @click.group("expenses")
        def cli(): ...

        @hookimpl
        def portal_cli_commands():
            return [cli]
    """


@hookspec
def portal_jobs() -> list[Job]:
    """Declare scheduled jobs ``<plugin>.<name>`` with their period; the core's
    scheduler runs each at most once per period across all workers.

    Example::

        @hookimpl
        def portal_jobs():
            return [Job("expenses.remind", remind_unsubmitted, every_seconds=86400)]
    """


@hookspec
def portal_rule_actions() -> list[RuleAction]:
    """Declare actions rule files may call (``<plugin>.<name>``) and their typed
    arguments. Admins combine them in rule files; they never write Python.

    Example::

        @hookimpl
        def portal_rule_actions():
            return [RuleAction("expenses.require_approval", require_approval,
                               arguments={"level": str})]
    """


@hookspec
def portal_fact_providers() -> list[FactProvider]:
    """Declare facts rule files may test (``<plugin>.<name>``): typed fields and the
    function computing them from the database.

    Example::

        @hookimpl
        def portal_fact_providers():
            return [FactProvider("expenses.claim", {"amount": int, "category": str},
                                 claim_facts)]
    """


@hookspec
def portal_event_types() -> list[EventType]:
    """Declare the events the plugin emits (``<plugin>.<name>``). ``emit`` refuses an
    undeclared event, so a typo cannot silently reach nobody.

    Example::

        @hookimpl
        def portal_event_types():
            return [EventType("expenses.claim_paid", payload=("claim_id",))]
    """


@hookspec
def portal_api_routes() -> list[ApiRoute]:
    """Add JSON API endpoints. Paths are relative to ``/api/v1/<plugin>``; they get
    bearer-token auth, JSON errors and an entry in ``/api/v1/openapi.json``.

    Example::

        @hookimpl
        def portal_api_routes():
            return [ApiRoute("/claims", list_claims, summary="List claims",
                             paginated=True)]
    """


# ---------------------------------------------------------------------------
# Closed loop: what plugins feed into the core's loops, approvals and notifications.
# Setup hooks too, called after portal_api_routes.
# ---------------------------------------------------------------------------


@hookspec
def portal_loop_types() -> list[LoopType]:
    """Declare the kinds of closed-loop item the plugin raises (``<plugin>.<name>``)
    with the clause each serves. ``portal.loops.service.raise_loop`` refuses an
    undeclared type; the inbox and the metrics filter and group by them.

    Example::

        @hookimpl
        def portal_loop_types():
            return [LoopType("sales.follow_up", _l("Customer follow-up"), clause="P3.1.3")]
    """


@hookspec
def portal_approval_kinds() -> list[ApprovalKind]:
    """Declare what the plugin submits for approval (``<plugin>.<name>``), the rule
    file that routes it (its ``approvers`` output, e.g. ``[supervisor, finance]``) and
    ``on_decided(request)``, called in the same transaction once the request is
    approved, rejected, returned or cancelled.

    Example::

        @hookimpl
        def portal_approval_kinds():
            return [ApprovalKind("expenses.claim", _l("Expense claim"), ruleset="expenses",
                                 clause="P6.4", on_decided=claim_decided)]
    """


@hookspec
def portal_notification_kinds() -> list[NotificationKind]:
    """Declare the kinds of notification the plugin sends (``<plugin>.<name>``). Each
    person chooses per kind whether it also reaches them by email.

    Example::

        @hookimpl
        def portal_notification_kinds():
            return [NotificationKind("expenses.paid", _l("An expense claim was paid"))]
    """


@hookspec
def portal_link_targets() -> list[LinkTarget]:
    """Declare the kinds of record (``<plugin>.<name>``) that other plugins may link to
    without importing this one: an expense line's customer or opportunity, say. Each
    ``LinkTarget`` searches and describes only what the current user may read (the
    plugin's own scoping) and names the record's page. Other plugins go through
    ``portal.links`` (``search_links``, ``describe_links``, ``link_url``).

    Example::

        @hookimpl
        def portal_link_targets():
            return [LinkTarget("sales.customer", _l("Customer"), search=search_customers,
                               describe=customer_names, endpoint="sales_customers.detail",
                               id_arg="customer_id")]
    """


@hookspec
def portal_demo_data(app: Flask) -> None:
    """Create demo records for ``portal demo``. Called in dependency order inside one
    transaction; must be idempotent (a second run changes nothing).

    Example::

        @hookimpl
        def portal_demo_data(app):
            if not Claim.query.first():
                db.session.add(Claim(...))
    """


@hookspec
def portal_startup(app: Flask) -> None:
    """Last setup step, after everything is registered: the escape hatch for a plugin
    that needs the finished app (e.g. to add a Jinja filter).

    Example::

        @hookimpl
        def portal_startup(app):
            app.jinja_env.filters["fen"] = format_fen
    """


# ---------------------------------------------------------------------------
# Request-time contributions: called while rendering; a raising implementation is
# logged and skipped, and the page still renders.
# ---------------------------------------------------------------------------


@hookspec
def portal_nav_items(user: Any) -> list[NavItem]:
    """Return navigation links for ``user`` (main menu, admin menu or user menu). Items
    with a ``permission`` the user lacks are hidden by the core.

    Example::

        @hookimpl
        def portal_nav_items(user):
            return [NavItem("expenses.index", _l("Expenses"), order=40)]
    """


@hookspec
def portal_dashboard_widgets(user: Any) -> list[Widget]:
    """Return dashboard tiles for ``user``; each tile's body is loaded from its
    endpoint by htmx so a slow tile never delays the page.

    Example::

        @hookimpl
        def portal_dashboard_widgets(user):
            return [Widget("expenses.pending", _l("Claims to approve"),
                           "expenses.widget_pending")]
    """


@hookspec
def portal_template_slot(slot: str, context: dict[str, Any]) -> str | None:
    """Return HTML (a ``Markup``) for a named slot in a core template, or None. Slots:
    ``head`` (end of <head>), ``page_top`` (above the content), ``profile`` (a person's
    profile page; context has ``person`` and ``viewer``), ``footer``.

    Example::

        @hookimpl
        def portal_template_slot(slot, context):
            if slot == "profile":
                return Markup(render_template("expenses/_profile.html", **context))
    """


# ---------------------------------------------------------------------------
# Events: how plugins react to each other without importing each other.
# ---------------------------------------------------------------------------


@hookspec
def portal_on_event(event: Event) -> None:
    """React to an event emitted by the core or another plugin. Called inside the
    request's transaction after the change; a raising handler is logged and skipped.

    Example::

        @hookimpl
        def portal_on_event(event):
            if event.name == "core.user_moved":
                refresh_targets(event.payload["user_id"])
    """
