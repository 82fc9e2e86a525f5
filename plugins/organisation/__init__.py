"""P2 Organisation and duties: the sales roles, the kinds of unit, the organisation chart
and each person's team. Hook implementations only; the views live in views.py."""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from portal.plugins import (
    NavItem,
    Permission,
    PluginMeta,
    RoleSpec,
    SettingSpec,
    UnitKind,
    Widget,
    hookimpl,
)

NAME = "organisation"


@hookimpl
def portal_plugin_meta() -> PluginMeta:
    return PluginMeta(
        name=NAME,
        title=_l("Organisation and duties"),
        version="0.1.0",
        clause="P2",
        description=_l("Sales roles, units, organisation chart."),
    )


@hookimpl
def portal_roles() -> list[RoleSpec]:
    # Duties are the policy's own words (P2.2-P2.4), shown on each person's profile.
    return [
        RoleSpec(
            "manager",
            _l("Sales manager"),
            read_scope="all",
            write_scope="all",
            rank=30,
            clause="P2.2",
            duties=[
                _l("Set the sales strategy and the annual sales plan"),
                _l("Break the sales target down and assign it to the team"),
                _l("Lead and develop the team"),
                _l("Open markets and keep key customer relationships"),
                _l("Coordinate with other departments"),
                _l("Analyse sales data, draw lessons and propose improvements"),
            ],
        ),
        RoleSpec(
            "supervisor",
            _l("Sales supervisor"),
            read_scope="team",
            write_scope="team",
            rank=20,
            clause="P2.3",
            duties=[
                _l("Help the manager plan"),
                _l("Run one region or product line"),
                _l("Guide and supervise salespeople day to day and solve their problems quickly"),
                _l("Collect and analyse market information"),
                _l("Organise prospecting, visits and follow-ups to meet targets"),
                _l("Help with team building and training"),
            ],
        ),
        RoleSpec(
            "salesperson",
            _l("Salesperson"),
            read_scope="own",
            write_scope="own",
            rank=10,
            clause="P2.4",
            duties=[
                _l("Develop, visit and follow up customers"),
                _l("Find needs, offer solutions and close deals"),
                _l("Report customer and market information promptly"),
                _l("Keep relationships and raise satisfaction and loyalty"),
                _l("Meet personal targets and work with the team"),
            ],
        ),
        RoleSpec(
            "finance",
            _l("Finance"),
            read_scope="all",
            write_scope="own",
            rank=8,
            duties=[
                _l("Check and pay approved expense claims"),
                _l("Follow receivables and customer credit"),
            ],
        ),
        RoleSpec(
            "hr",
            _l("Human resources"),
            read_scope="all",
            write_scope="own",
            rank=7,
            duties=[
                _l("Keep attendance, leave and training records"),
                _l("Support appraisal and career development"),
            ],
        ),
    ]


@hookimpl
def portal_unit_kinds() -> list[UnitKind]:
    return [
        UnitKind("company", _l("Company"), order=10),
        UnitKind("region", _l("Region"), order=20),
        UnitKind("product_line", _l("Product line"), order=30),
        UnitKind("team", _l("Team"), order=40),
    ]


@hookimpl
def portal_permissions() -> list[Permission]:
    return [
        Permission(
            "organisation.view_chart",
            _l("See the organisation chart"),
            default_roles=(
                "salesperson",
                "supervisor",
                "manager",
                "finance",
                "hr",
                "admin",
                "auditor",
            ),
        ),
        Permission(
            "organisation.view_team",
            _l("See one's team"),
            default_roles=("supervisor", "manager", "admin"),
        ),
    ]


@hookimpl
def portal_settings() -> list[SettingSpec]:
    return [
        SettingSpec(
            "organisation.chart_shows_headcount",
            _l("Show head counts on the chart"),
            type="bool",
            default=True,
        )
    ]


@hookimpl
def portal_blueprints() -> list[Any]:
    from .views import bp

    return [bp]


@hookimpl
def portal_nav_items(user: Any) -> list[NavItem]:
    return [
        NavItem(
            "organisation.chart", _l("Organisation"), order=80, permission="organisation.view_chart"
        ),
        NavItem("organisation.team", _l("My team"), order=20, permission="organisation.view_team"),
    ]


@hookimpl
def portal_dashboard_widgets(user: Any) -> list[Widget]:
    return [
        Widget(
            "organisation.my_place",
            _l("My place in the organisation"),
            "organisation.widget_my_place",
            order=10,
        )
    ]


@hookimpl
def portal_template_slot(slot: str, context: dict[str, Any]) -> Markup | None:
    if slot != "profile":
        return None
    from .views import unit_trail

    person = context["person"]
    return Markup(  # noqa: S704 - a rendered, autoescaped template
        render_template("organisation/_profile_trail.html", trail=unit_trail(person.unit))
    )


@hookimpl
def portal_demo_data(app: Flask) -> None:
    from .demo import create_demo_organisation

    create_demo_organisation()
