"""My work: one inbox per person, the team view, and the loop metrics with their charts
(P1.3.2 closed loop, P1.3.4 continuous improvement).

The inbox gathers everything a person must act on, wherever it comes from: loop items
they own that are open or in progress, done items that wait for their verification (the
ones they raised for someone else, and those their people raised for themselves: see
``verification_parts``), and approvals waiting for them (``approvals.waiting_for``). The
sources are one ``UNION ALL`` of (key, section, rank, sort time) ordered overdue
first and then by due date, paginated in the database; the page's rows are then loaded
by primary key in one query per source, so a person with 10,000 open items costs the
same handful of statements as one with ten. Loop keys are item ids, approval keys the
negated request id, so one integer column identifies a row of either kind.

Filters are plain GET parameters (bookmarkable, work without JavaScript); with htmx the
form swaps only the list (``HX-Target: work-list``), the same template including the
list fragment, and the URL is pushed so reloading shows the same page. Unknown filter
values are ignored rather than refused: a filter can only narrow a list already in scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask_babel import format_timedelta
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import aliased, lazyload

from ..auth.models import User
from ..extensions import db
from ..listing import like_pattern, page_args, paginate
from ..models import as_utc, utcnow
from ..org.models import OrgUnit
from ..scoping import led_unit_paths, scoped
from . import charts, metrics, service
from .models import LOOP_STATUSES, OPEN_STATUSES, ApprovalRequest, LoopItem

bp = Blueprint("work", __name__, url_prefix="/work")

SECTIONS = ("todo", "verify", "approvals")
SECTION_LABELS = {
    "todo": _l("To do"),
    "verify": _l("To verify"),
    "approvals": _l("Approvals"),
}
DUE_CHOICES = service.DUE_WINDOWS
DUE_LABELS = {
    "overdue": _l("Overdue"),
    "today": _l("Due today"),
    "week": _l("Due this week"),
    "later": _l("Due later"),
}
# The loop service's words for a status, and the one an approval waiting has here.
STATUS_LABELS = {**service.STATUS_LABELS, "pending": _l("Waiting for approval")}
INBOX_STATUSES = ("open", "in_progress", "done")
TEAM_DEFAULT_STATUSES = ("open", "in_progress", "done")
MAX_PEOPLE = 500  # people offered in the team view's person filter and summary
LIST_TARGET = "work-list"


# -- filters --------------------------------------------------------------------------


@dataclass
class Filters:
    """What the person asked to see; empty strings mean "no filter"."""

    section: str = ""
    type: str = ""
    clause: str = ""
    status: str = ""
    due: str = ""
    q: str = ""
    person: int | None = None

    @property
    def active(self) -> bool:
        return any([self.type, self.clause, self.status, self.due, self.q, self.person])


def read_filters(args: Any, statuses: tuple[str, ...]) -> Filters:
    """Filters from a query string; values that are not offered are dropped."""
    state = current_app.extensions["portal"]
    known_types = set(state.loop_types) | set(state.approval_kinds)
    section = args.get("section", "")
    kind = args.get("type", "")
    status = args.get("status", "")
    due = args.get("due", "")
    person = args.get("person", type=int)
    return Filters(
        section=section if section in SECTIONS else "",
        type=kind if kind in known_types else "",
        clause=(args.get("clause") or "").strip()[:32],
        status=status if status in statuses else "",
        due=due if due in DUE_CHOICES else "",
        q=(args.get("q") or "").strip()[:100],
        person=person if person and 0 < person < 2**31 else None,
    )


def narrow(statement: sa.Select, filters: Filters, now: datetime, zone: tzinfo) -> sa.Select:
    """Apply the filters to a SELECT over loop items, as the loop register and the API
    filter them (``service.filter_loops``): type, clause (and the clauses below it),
    status, due-date window and title words."""
    chosen = {
        "type": filters.type,
        "clause": filters.clause,
        "status": filters.status,
        "due": filters.due,
        "q": filters.q,
    }
    return service.filter_loops(statement, chosen, now, zone)


LOOP_ROW_LOADING = (service.light_person(LoopItem.owner), service.light_person(LoopItem.raised_by))


def _overdue_first(now: datetime) -> Any:
    return sa.case((service.overdue_condition(now), 0), else_=1)


# -- rows -----------------------------------------------------------------------------


@dataclass
class WorkRow:
    """One line of the inbox or team list, whichever source it comes from."""

    kind: str  # "loop" or "approval"
    section: str
    record: Any
    type_label: str
    clause: str
    title: str
    url: str
    status: str
    status_label: str
    due_at: datetime | None = None
    due_relative: str = ""
    overdue: bool = False
    priority: str = ""
    priority_label: str = ""
    escalation_level: int = 0
    subject: str = ""
    subject_url: str = ""
    people: dict[str, Any] = field(default_factory=dict)


def _url(endpoint: str, **values: Any) -> str:
    """A link to another area's page, or "" while that page does not exist."""
    if endpoint not in current_app.view_functions:
        return ""
    return url_for(endpoint, **values)


def loop_row(item: LoopItem, section: str, now: datetime) -> WorkRow:
    """Presentation of one loop item."""
    state = current_app.extensions["portal"]
    loop_type = state.loop_types.get(item.type)
    due = as_utc(item.due_at)
    overdue = service.is_overdue(item, now)
    return WorkRow(
        kind="loop",
        section=section,
        record=item,
        type_label=str(loop_type.label) if loop_type else item.type,
        clause=item.clause or (loop_type.clause if loop_type else ""),
        title=item.title,
        url=_url("loops.detail", loop_id=item.id),
        status=item.status,
        status_label=str(STATUS_LABELS.get(item.status, item.status)),
        due_at=due,
        due_relative=format_timedelta(due - now, add_direction=True) if due else "",
        overdue=overdue,
        priority=item.priority,
        priority_label=str(service.PRIORITY_LABELS.get(item.priority, item.priority)),
        escalation_level=item.escalation_level or 0,
        subject=f"{item.subject_table} #{item.subject_id}" if item.subject_table else "",
        subject_url=item.subject_link or "",
        people={"owner": item.owner, "raised_by": item.raised_by},
    )


def approval_row(approval: ApprovalRequest, now: datetime) -> WorkRow:
    """Presentation of one approval request waiting for the viewer."""
    kind = current_app.extensions["portal"].approval_kinds.get(approval.kind)
    since = as_utc(approval.created_at)
    return WorkRow(
        kind="approval",
        section="approvals",
        record=approval,
        type_label=str(kind.label) if kind else approval.kind,
        clause=kind.clause if kind else "",
        title=approval.title,
        url=_url("approvals.detail", request_id=approval.id),
        status="pending",
        status_label=str(STATUS_LABELS["pending"]),
        due_at=None,
        due_relative=format_timedelta(since - now, add_direction=True) if since else "",
        subject=f"{approval.subject_table} #{approval.subject_id}"
        if approval.subject_table
        else "",
        subject_url=approval.subject_link or "",
        people={"requester": approval.requester},
    )


# -- the inbox query -------------------------------------------------------------------


def _waiting_approvals(user: User, now: datetime) -> sa.Select | None:
    """``approvals.waiting_for`` if the approvals service is there (imported lazily:
    the inbox works before any approval kind exists)."""
    try:
        from .approvals import waiting_for
    except ImportError:
        return None
    return waiting_for(user, now)


def _approval_kinds_for(filters: Filters) -> list[str] | None:
    """Approval kinds the type/clause filters allow (None: any)."""
    kinds = current_app.extensions["portal"].approval_kinds
    if not filters.type and not filters.clause:
        return None
    return [
        name
        for name, kind in kinds.items()
        if (not filters.type or name == filters.type)
        and (
            not filters.clause
            or kind.clause == filters.clause
            or (kind.clause or "").startswith(filters.clause + ".")
        )
    ]


def _verify_columns() -> tuple[Any, ...]:
    return (
        LoopItem.id.label("key"),
        sa.literal("verify").label("section"),
        sa.literal(1).label("rank"),
        LoopItem.due_at.label("sort_at"),
    )


def verification_parts(user: User) -> list[sa.Select]:
    """Done items waiting for ``user``'s verification, decided as the loop service
    decides it (``service.verifier_of`` / ``may_verify``): an item raised by someone
    for another person waits for whoever raised it; an item the owner raised for
    themselves, or the system raised, waits for the owner's supervisor (the leader of
    the nearest unit above them that someone else leads), and for the owner only when
    nobody is above them. Done in SQL so a page of them costs no query per item."""
    done = LoopItem.status == "done"
    self_or_system = sa.or_(
        LoopItem.raised_by_id.is_(None), LoopItem.raised_by_id == LoopItem.owner_id
    )
    parts = [
        sa.select(*_verify_columns()).where(
            done, LoopItem.raised_by_id == user.id, LoopItem.owner_id != user.id
        )
    ]
    if led_unit_paths(user):
        owner = aliased(User, name="verify_owner")
        owner_unit = aliased(OrgUnit, name="verify_owner_unit")
        led = aliased(OrgUnit, name="verify_led")
        nearer = aliased(OrgUnit, name="verify_nearer")
        someone_nearer = (
            sa.exists()
            .where(
                owner_unit.path.startswith(nearer.path),
                sa.func.length(nearer.path) > sa.func.length(led.path),
                nearer.leader_id.is_not(None),
                nearer.leader_id != owner.id,
            )
            .correlate_except(nearer)  # owner and unit from the outer query, led from the middle
        )
        i_am_nearest = (
            sa.exists()
            .where(led.leader_id == user.id, owner_unit.path.startswith(led.path), ~someone_nearer)
            .correlate_except(led)
        )
        statement = (
            sa.select(*_verify_columns())
            .join(owner, owner.id == LoopItem.owner_id)
            .join(owner_unit, owner_unit.id == owner.unit_id)
            .where(done, self_or_system, LoopItem.owner_id != user.id, i_am_nearest)
        )
        parts.append(scoped(statement, LoopItem, user))
    own = sa.select(*_verify_columns()).where(done, self_or_system, LoopItem.owner_id == user.id)
    if user.unit is not None:
        above = sa.exists().where(
            sa.literal(user.unit.path).startswith(OrgUnit.path),
            OrgUnit.leader_id.is_not(None),
            OrgUnit.leader_id != user.id,
        )
        own = own.where(~above)
    parts.append(own)
    return parts


def inbox_sources(
    user: User, filters: Filters, now: datetime, zone: tzinfo, sections: tuple[str, ...]
) -> sa.Subquery | None:
    """The UNION ALL of the inbox's sources as (key, section, rank, sort_at); None when
    the filters leave no source."""
    parts: list[sa.Select] = []
    if "todo" in sections and filters.status in ("", *OPEN_STATUSES):
        todo = sa.select(
            LoopItem.id.label("key"),
            sa.literal("todo").label("section"),
            _overdue_first(now).label("rank"),
            LoopItem.due_at.label("sort_at"),
        ).where(LoopItem.owner_id == user.id, LoopItem.status.in_(OPEN_STATUSES))
        parts.append(narrow(todo, filters, now, zone))
    # Waiting for verification has no due date of its own: a due filter leaves it out.
    if "verify" in sections and filters.status in ("", "done") and not filters.due:
        parts.extend(narrow(part, filters, now, zone) for part in verification_parts(user))
    kinds = _approval_kinds_for(filters)
    waiting = _waiting_approvals(user, now) if "approvals" in sections else None
    if waiting is not None and not filters.status and not filters.due and kinds != []:
        approval = waiting.with_only_columns(
            (-ApprovalRequest.id).label("key"),
            sa.literal("approvals").label("section"),
            sa.literal(1).label("rank"),
            ApprovalRequest.created_at.label("sort_at"),
        )
        if kinds is not None:
            approval = approval.where(ApprovalRequest.kind.in_(kinds))
        if filters.q:
            approval = approval.where(
                ApprovalRequest.title.ilike(like_pattern(filters.q), escape="\\")
            )
        parts.append(approval)
    if not parts:
        return None
    return sa.union_all(*parts).subquery("inbox")


def section_counts(
    user: User, filters: Filters, now: datetime, zone: tzinfo
) -> dict[str, dict[str, int]]:
    """Items per section (and how many are overdue) under the current filters: one
    grouped query over the same union the list uses."""
    counts = {name: {"total": 0, "overdue": 0} for name in SECTIONS}
    sources = inbox_sources(user, filters, now, zone, SECTIONS)
    if sources is None:
        return counts
    statement = sa.select(
        sources.c.section,
        sa.func.count(),
        sa.func.sum(sa.case((sources.c.rank == 0, 1), else_=0)),
    ).group_by(sources.c.section)
    for section, total, overdue in db.session.execute(statement):
        counts[section] = {"total": int(total), "overdue": int(overdue or 0)}
    return counts


def inbox_page(user: User, filters: Filters, now: datetime, zone: tzinfo) -> Any:
    """One page of the inbox, overdue first, then by due date (approvals by the time
    they have been waiting), as WorkRows."""
    sections = (filters.section,) if filters.section else SECTIONS
    sources = inbox_sources(user, filters, now, zone, sections)
    if sources is None:
        statement = sa.select(sa.literal(0)).where(sa.false())
    else:
        statement = sa.select(sources.c.key).order_by(
            sources.c.rank, sources.c.sort_at, sources.c.key
        )
    page = paginate(statement)
    keys = [int(key) for key in page.items]
    loop_ids = [key for key in keys if key > 0]
    approval_ids = [-key for key in keys if key < 0]
    loops = (
        {
            item.id: item
            for item in db.session.scalars(
                sa.select(LoopItem).options(*LOOP_ROW_LOADING).where(LoopItem.id.in_(loop_ids))
            )
        }
        if loop_ids
        else {}
    )
    approvals = (
        {
            approval.id: approval
            for approval in db.session.scalars(
                sa.select(ApprovalRequest)
                .options(
                    lazyload(ApprovalRequest.steps), service.light_person(ApprovalRequest.requester)
                )
                .where(ApprovalRequest.id.in_(approval_ids))
            )
        }
        if approval_ids
        else {}
    )
    rows = []
    for key in keys:
        if key > 0 and key in loops:
            item = loops[key]
            section = "todo" if item.owner_id == user.id and item.is_open else "verify"
            rows.append(loop_row(item, section, now))
        elif key < 0 and -key in approvals:
            rows.append(approval_row(approvals[-key], now))
    page.items = rows
    return page


# -- choices shown in the filter forms ------------------------------------------------


def filter_choices(with_approvals: bool) -> dict[str, Any]:
    """Types (loop types, approval kinds) and clauses declared by the plugins."""
    state = current_app.extensions["portal"]
    loop_types = sorted(
        ((name, str(t.label)) for name, t in state.loop_types.items()), key=lambda p: p[1]
    )
    approval_kinds = (
        sorted(
            ((name, str(k.label)) for name, k in state.approval_kinds.items()), key=lambda p: p[1]
        )
        if with_approvals
        else []
    )
    clauses = {t.clause for t in state.loop_types.values() if t.clause}
    if with_approvals:
        clauses |= {k.clause for k in state.approval_kinds.values() if k.clause}
    return {
        "loop_types": loop_types,
        "approval_kinds": approval_kinds,
        "clauses": sorted(clauses),
        "due_labels": DUE_LABELS,
        "status_labels": STATUS_LABELS,
        "section_labels": SECTION_LABELS,
    }


def _reaches_team(user: User) -> bool:
    return user.scope_for("read") in ("team", "all")


def _render_list(full: str, fragment: str, **context: Any) -> Any:
    """The whole page, or only the list when htmx asked for it."""
    template = fragment if request.headers.get("HX-Target") == LIST_TARGET else full
    return render_template(template, **context)


# -- pages ------------------------------------------------------------------------------


@bp.get("/")
def inbox() -> Any:
    """Everything the person owns or must act on, overdue first (P1.3.2)."""
    now = utcnow()
    zone = service.portal_zone()
    filters = read_filters(request.args, INBOX_STATUSES)
    page = inbox_page(current_user, filters, now, zone)
    return _render_list(
        "work/inbox.html",
        "work/_inbox_list.html",
        page=page,
        filters=filters,
        counts=section_counts(current_user, filters, now, zone),
        choices=filter_choices(with_approvals=True),
        statuses=INBOX_STATUSES,
        reaches_team=_reaches_team(current_user),
        now=now,
    )


def team_people(user: User) -> list[User]:
    """The people in the viewer's read scope other than themself (bounded)."""
    statement = (
        scoped(sa.select(User), User, user)
        .where(User.id != user.id, User.active.is_(True))
        .order_by(User.display_name, User.id)
        .limit(MAX_PEOPLE)
    )
    return list(db.session.scalars(statement))


def team_statement(user: User, filters: Filters, now: datetime, zone: tzinfo) -> sa.Select:
    """Loop items owned by the people in the viewer's scope (not the viewer's own: they
    are in My work), overdue first, then by due date."""
    statement = scoped(sa.select(LoopItem).options(*LOOP_ROW_LOADING), LoopItem, user).where(
        LoopItem.owner_id != user.id
    )
    statement = narrow(statement, filters, now, zone)
    if not filters.status:
        statement = statement.where(LoopItem.status.in_(TEAM_DEFAULT_STATUSES))
    if filters.person:
        statement = statement.where(LoopItem.owner_id == filters.person)
    return statement.order_by(_overdue_first(now), LoopItem.due_at, LoopItem.id)


def team_summary(user: User, filters: Filters, now: datetime) -> list[sa.Row]:
    """Per person in scope: open, overdue, done awaiting verification (one grouped
    query; the type, clause and text filters apply)."""
    counted = [
        sa.func.sum(sa.case((LoopItem.status.in_(OPEN_STATUSES), 1), else_=0)).label("open"),
        sa.func.sum(sa.case((service.overdue_condition(now), 1), else_=0)).label("overdue"),
        sa.func.sum(sa.case((LoopItem.status == "done", 1), else_=0)).label("to_verify"),
    ]
    narrowed = Filters(type=filters.type, clause=filters.clause, q=filters.q)
    statement = (
        sa.select(User.id, User.display_name, *counted)
        .select_from(LoopItem)
        .join(User, User.id == LoopItem.owner_id)
        .where(LoopItem.owner_id != user.id, LoopItem.status.in_(TEAM_DEFAULT_STATUSES))
    )
    statement = narrow(statement, narrowed, now, service.portal_zone())
    statement = (
        statement.group_by(User.id, User.display_name)
        .order_by(sa.desc("overdue"), sa.desc("open"), User.display_name)
        .limit(MAX_PEOPLE)
    )
    return list(db.session.execute(scoped(statement, LoopItem, user)))


@bp.get("/team")
def team() -> Any:
    """The loops of the people a supervisor or manager reaches (P2.3 guide and
    supervise): a summary per person and the list, with My work's filters plus person."""
    if not _reaches_team(current_user):
        abort(403)
    now = utcnow()
    zone = service.portal_zone()
    filters = read_filters(request.args, LOOP_STATUSES)
    filters.section = ""
    page = paginate(team_statement(current_user, filters, now, zone))
    page.items = [loop_row(item, "team", now) for item in page.items]
    people = team_people(current_user)
    return _render_list(
        "work/team.html",
        "work/_team_list.html",
        page=page,
        filters=filters,
        summary=team_summary(current_user, filters, now),
        people=people,
        leads_nobody=current_user.scope_for("read") == "team" and not led_unit_paths(current_user),
        choices=filter_choices(with_approvals=False),
        statuses=LOOP_STATUSES,
        now=now,
    )


# -- metrics ----------------------------------------------------------------------------


@dataclass
class MetricsQuery:
    """The metrics page's selection: period, bucket, grouping."""

    period: metrics.Period
    period_key: str
    bucket: str
    group: str
    since: str = ""
    until: str = ""


def _day(value: str | None) -> date | None:
    try:
        day = datetime.strptime(value or "", "%Y-%m-%d").date()
    except ValueError:
        return None
    return day if 2000 <= day.year <= 2100 else None


def read_metrics_query(args: Any, now: datetime) -> MetricsQuery:
    """The selection from a query string; anything not offered falls back to a default."""
    bucket = args.get("bucket", "week")
    bucket = bucket if bucket in metrics.BUCKETS else "week"
    group = args.get("group", "person")
    group = group if group in metrics.GROUPS else "person"
    period_key = args.get("period", metrics.DEFAULT_PERIOD)
    period_key = period_key if period_key in metrics.PERIODS else metrics.DEFAULT_PERIOD
    since, until = _day(args.get("since")), _day(args.get("until"))
    if since:
        until = until or now.astimezone(service.portal_zone()).date()
        period = metrics.custom_period(since, until, bucket, now)
        return MetricsQuery(period, "custom", bucket, group, since.isoformat(), until.isoformat())
    return MetricsQuery(metrics.recent_period(period_key, bucket, now), period_key, bucket, group)


@bp.get("/metrics", endpoint="metrics")
def metrics_page() -> Any:
    """Closure rate, overdue, median time to close and reopen rate within the viewer's
    scope, per group and over time, in tables and charts (P1.3.4)."""
    now = utcnow()
    query = read_metrics_query(request.args, now)
    args = request.args.to_dict()
    return render_template(
        "work/metrics.html",
        query=query,
        total=metrics.totals(current_user, query.period, now),
        rows=metrics.loop_metrics(current_user, query.period, query.group, now),
        series=metrics.loop_metrics(current_user, query.period, "time", now),
        chart_args={key: value for key, value in args.items() if key != "name"},
        charts=list(charts.CHARTS),
        period_labels=metrics.PERIOD_LABELS,
        bucket_labels=metrics.BUCKET_LABELS,
        group_labels=metrics.GROUP_LABELS,
        scope=current_user.scope_for("read"),
    )


@bp.get("/metrics/chart/<name>.svg")
def chart(name: str) -> Any:
    """One chart of the metrics page as an SVG image, for the same selection."""
    if name not in charts.CHARTS:
        abort(404)
    now = utcnow()
    query = read_metrics_query(request.args, now)
    _builder, time_series = charts.CHARTS[name]
    group = "time" if time_series else query.group
    rows = metrics.loop_metrics(current_user, query.period, group, now)
    return charts.svg_response(charts.chart_svg(name, rows, group))


@bp.app_template_global()
def work_page_args(**overrides: Any) -> dict[str, Any]:
    """The current filters with some replaced (and the page reset unless given)."""
    overrides.setdefault("page", None)
    return page_args(**overrides)
