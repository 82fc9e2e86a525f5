"""P3 The sales process, from prospect to after-sales, and P6.3 sales data.

Hook implementations only. The parts, one pair of files each (services, views):
customers (P3.1: market notes, prospects, the shared pool, contacts and follow-ups,
import), pipeline (P3.2: opportunities, kanban, funnel), quotes (P3.3), contracts
(P3.4), aftersales (P3.5), reports (P6.3 sales data and export); api.py holds the JSON
resources and demo.py the demo quarter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from flask_babel import lazy_gettext as _l

from portal.plugins import (
    ApiRoute,
    ApprovalKind,
    EventType,
    Job,
    LinkTarget,
    LoopType,
    NavItem,
    NotificationKind,
    Permission,
    PluginMeta,
    Widget,
    hookimpl,
)

NAME = "sales"

SELLERS = ("salesperson", "supervisor", "manager")
LEADERS = ("supervisor", "manager")


@hookimpl
def portal_plugin_meta() -> PluginMeta:
    return PluginMeta(
        name=NAME,
        title=_l("Sales process"),
        version="0.1.0",
        clause="P3",
        description=_l(
            "Prospects, contacts, opportunities, quotations, contracts, after-sales and sales data."
        ),
        requires=("organisation",),
    )


@hookimpl
def portal_models() -> None:
    from . import models  # noqa: F401


@hookimpl
def portal_migrations() -> str:
    return str(Path(__file__).resolve().parent / "migrations")


@hookimpl
def portal_permissions() -> list[Permission]:
    # The admin holds every right a role it hands out carries (nobody grants more than
    # they hold), so "admin" is in every list.
    readers = (*SELLERS, "finance", "admin", "auditor")
    writers = (*SELLERS, "admin")
    return [
        Permission("sales.view", _l("See customers and the sales pipeline"), readers),
        Permission("sales.edit", _l("Record customers, contacts, deals and complaints"), writers),
        Permission("sales.claim_pool", _l("Claim prospects from the shared pool"), writers),
        Permission("sales.import", _l("Import prospects from a file"), writers),
        Permission(
            "sales.export", _l("Export sales data"), (*LEADERS, "finance", "admin", "auditor")
        ),
        Permission(
            "sales.view_reports",
            _l("See sales summaries and charts"),
            (*LEADERS, "finance", "admin", "auditor"),
        ),
        Permission("sales.manage_products", _l("Maintain the product list"), ("manager", "admin")),
        Permission(
            "sales.record_payment", _l("Record payments received"), ("finance", "manager", "admin")
        ),
    ]


@hookimpl
def portal_loop_types() -> list[LoopType]:
    return [
        LoopType("sales.follow_up", _l("Customer follow-up"), clause="P3.1.3"),
        LoopType("sales.milestone", _l("Contract milestone"), clause="P3.4.2"),
        LoopType("sales.payment", _l("Payment collection"), clause="P3.4.2"),
        LoopType("sales.satisfaction", _l("Satisfaction check after delivery"), clause="P3.4.2"),
        LoopType("sales.feedback", _l("Customer feedback"), clause="P3.5.1"),
        LoopType("sales.complaint", _l("Customer complaint"), clause="P3.5.2"),
        LoopType(
            "sales.corrective_action", _l("Root cause and corrective action"), clause="P3.5.2"
        ),
    ]


def _on_discount_decided(request: Any) -> None:
    from .quotes import on_discount_decided

    on_discount_decided(request)


def _on_contract_review_decided(request: Any) -> None:
    from .contracts import on_review_decided

    on_review_decided(request)


@hookimpl
def portal_approval_kinds() -> list[ApprovalKind]:
    return [
        ApprovalKind(
            "sales.discount",
            _l("Quotation discount"),
            ruleset="discount_approval",
            clause="P3.3",
            on_decided=_on_discount_decided,
        ),
        ApprovalKind(
            "sales.contract_review",
            _l("Contract review before signing"),
            ruleset="contract_review",
            clause="P3.4.1",
            on_decided=_on_contract_review_decided,
        ),
    ]


@hookimpl
def portal_notification_kinds() -> list[NotificationKind]:
    return [
        NotificationKind("sales.follow_up_overdue", _l("A customer follow-up is overdue")),
        NotificationKind("sales.returned_to_pool", _l("A prospect went back to the shared pool")),
        NotificationKind("sales.complaint_escalated", _l("A complaint was escalated")),
        NotificationKind("sales.quote_decided", _l("A quotation's discount was decided")),
        NotificationKind("sales.contract_decided", _l("A contract review was decided")),
    ]


@hookimpl
def portal_link_targets() -> list[LinkTarget]:
    # Other plugins link to customers and deals (an expense for a customer, P6.4)
    # through the core, within the reader's own scope.
    from .links import customer_names, opportunity_names, search_customers, search_opportunities

    return [
        LinkTarget(
            "sales.customer",
            _l("Customer"),
            search=search_customers,
            describe=customer_names,
            endpoint="sales_customers.detail",
            id_arg="customer_id",
        ),
        LinkTarget(
            "sales.opportunity",
            _l("Opportunity"),
            search=search_opportunities,
            describe=opportunity_names,
            endpoint="sales_pipeline.detail",
            id_arg="opportunity_id",
        ),
    ]


@hookimpl
def portal_event_types() -> list[EventType]:
    return [
        EventType("sales.customer_won", _l("A prospect became a customer"), ("customer_id",)),
        EventType(
            "sales.opportunity_closed",
            _l("An opportunity was won or lost"),
            ("opportunity_id", "outcome", "owner_id", "closed_on"),
        ),
        EventType("sales.contract_signed", _l("A contract was signed"), ("contract_id",)),
        EventType("sales.complaint_closed", _l("A complaint was closed"), ("feedback_id",)),
    ]


def _follow_up_sweep() -> Any:
    from .customers import run_follow_up_sweep

    return run_follow_up_sweep()


def _complaint_sweep() -> Any:
    from .aftersales import run_complaint_sla_sweep

    return run_complaint_sla_sweep()


@hookimpl
def portal_jobs() -> list[Job]:
    return [
        Job(
            "sales.follow_up_sweep",
            _follow_up_sweep,
            every_seconds=6 * 3600,
            description="Follow-up cadence and shared-pool return (rules/follow_up.yaml)",
        ),
        Job(
            "sales.complaint_sla_sweep",
            _complaint_sweep,
            every_seconds=900,
            description="Complaint response deadlines and escalation (rules/complaint_sla.yaml)",
        ),
    ]


@hookimpl
def portal_blueprints() -> list[Any]:
    from .aftersales_views import bp as aftersales_bp
    from .contracts_views import bp as contracts_bp
    from .customers_views import bp as customers_bp
    from .imports_views import bp as imports_bp
    from .market_views import bp as market_bp
    from .pipeline_views import bp as pipeline_bp
    from .quotes_views import bp as quotes_bp
    from .reports_views import bp as reports_bp
    from .template_helpers import bp as templates_bp

    return [
        customers_bp,
        imports_bp,
        market_bp,
        pipeline_bp,
        quotes_bp,
        contracts_bp,
        aftersales_bp,
        reports_bp,
        templates_bp,
    ]


@hookimpl
def portal_api_routes() -> list[ApiRoute]:
    from .api import api_routes

    return api_routes()


@hookimpl
def portal_nav_items(user: Any) -> list[NavItem]:
    return [
        NavItem("sales_customers.index", _l("Customers"), order=30, permission="sales.view"),
        NavItem("sales_pipeline.board", _l("Pipeline"), order=31, permission="sales.view"),
        NavItem("sales_quotes.index", _l("Quotations"), order=32, permission="sales.view"),
        NavItem("sales_contracts.index", _l("Contracts"), order=33, permission="sales.view"),
        NavItem("sales_aftersales.index", _l("After-sales"), order=34, permission="sales.view"),
        NavItem("sales_reports.index", _l("Sales data"), order=36, permission="sales.view_reports"),
    ]


@hookimpl
def portal_dashboard_widgets(user: Any) -> list[Widget]:
    return [
        Widget(
            "sales.my_week",
            _l("My sales week"),
            "sales_customers.widget_my_week",
            order=20,
            permission="sales.view",
        )
    ]


@hookimpl
def portal_on_event(event: Any) -> None:
    # A milestone's loop item closed anywhere (My work, the API) marks the milestone done
    # at once, and delivery starts the satisfaction check (P3.4.2).
    if event.name != "core.loop_changed" or event.payload.get("type") != "sales.milestone":
        return
    if event.payload.get("to_status") in ("done", "verified"):
        from .contracts import sync_from_loop

        sync_from_loop(event.payload["loop_id"])


@hookimpl
def portal_demo_data(app: Flask) -> None:
    from .demo import create_demo_sales

    create_demo_sales()
