"""Loop items (P1.3.2): the one service every chapter plugin calls to raise something
that must be owned, done by a due date, closed with evidence and verified.

Why a service and not just the model: the web pages, the JSON API, the jobs and the
plugins must apply the same rules (who may act, which transitions are legal, what the
rule files say, who is told) or they would drift apart. Every function here validates
before it writes anything (``ValidationFailed`` with per-field messages, ``NotAllowed``,
``StateConflict``), writes a ``LoopEvent`` for each change so the history survives
closing and reopening, emits ``core.loop_raised`` / ``core.loop_changed`` and leaves the
commit to the caller, so a page or a plugin changes its own record and the loop item in
one transaction. Two people acting on the same item at once are caught by the item's
optimistic lock (``StaleDataError`` at flush/commit, answered 409 by the views).

The numbers of the policy are in rule files, not here: ``loop_policy`` (default due
date, reminder notice, auto-verification) and ``loop_escalation`` (when an overdue item
goes up the line and who is told).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app, has_app_context
from flask_babel import LazyString
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import defaultload, lazyload
from sqlalchemy.orm.exc import StaleDataError

from ..audit.recorder import acting_as
from ..auth.models import User
from ..database import keyset_batches
from ..events import emit
from ..extensions import db
from ..files import DEFAULT_MAX_BYTES, DEFAULT_TYPES, store_uploads, upload_folder
from ..listing import id_arg, like_pattern
from ..models import as_utc, utcnow
from ..org.models import OrgUnit
from ..org.services import ValidationFailed, supervisor_of
from ..rules.engine import Evaluation, RuleInputError
from ..rules.service import evaluate_distinct, rules
from ..scoping import can_reach, scoped, visible_owner_ids
from .errors import NotAllowed, StateConflict
from .models import OPEN_STATUSES, PRIORITIES, LoopAttachment, LoopEvent, LoopItem
from .notifications import is_portal_path, notify, portal_path

log = logging.getLogger("portal.loops")

POLICY_RULESET = "loop_policy"
ESCALATION_RULESET = "loop_escalation"
# Stored rule decisions name the loop item they changed by this table and its id.
SUBJECT_TABLE = LoopItem.__tablename__

ACTIONS = ("start", "close", "verify", "reopen", "comment", "reassign")
# From which statuses each action is legal; anything else is a StateConflict (409).
LEGAL_FROM: dict[str, tuple[str, ...]] = {
    "start": ("open",),
    "close": ("open", "in_progress"),
    "verify": ("done",),
    "reopen": ("done", "verified"),
    "comment": ("open", "in_progress", "done", "verified"),
    "reassign": OPEN_STATUSES,
}

STATUS_LABELS = {
    "open": _l("Open"),
    "in_progress": _l("In progress"),
    "done": _l("Done, to verify"),
    "verified": _l("Verified"),
}
PRIORITY_LABELS = {
    "low": _l("Low"),
    "normal": _l("Normal"),
    "high": _l("High"),
    "urgent": _l("Urgent"),
}
ACTION_LABELS = {
    "start": _l("Start"),
    "close": _l("Close"),
    "verify": _l("Verify"),
    "reopen": _l("Reopen"),
    "comment": _l("Comment"),
    "reassign": _l("Reassign"),
}
# How each kind of history entry reads on the timeline.
EVENT_LABELS = {
    "raised": _l("raised"),
    "started": _l("started"),
    "closed": _l("closed"),
    "verified": _l("verified"),
    "reopened": _l("reopened"),
    "commented": _l("commented"),
    "reassigned": _l("reassigned"),
    "escalated": _l("escalated"),
    "reminded": _l("reminded of the due date"),
}
_STATE_MESSAGES = {
    "start": _l("Only an open item can be started."),
    "close": _l("Only an open or started item can be closed."),
    "verify": _l("Only an item that is done can be verified."),
    "reopen": _l("Only an item that is done or verified can be reopened."),
    "comment": _l("This item cannot take comments."),
    "reassign": _l("Only an open or started item can be given to someone else."),
}
_NOT_ALLOWED = {
    "start": _l("Only the owner or someone responsible for them may start this item."),
    "close": _l("Only the owner or someone responsible for them may close this item."),
    "verify": _l("Only whoever raised this item may verify it."),
    "reopen": _l("Only whoever raised this item or the owner's supervisor may reopen it."),
    "comment": _l("You may read this item but not comment on it."),
    "reassign": _l("Only someone responsible for the owner may give this item to another person."),
}

MAX_TEXT = 10_000
# A sanity bound, not a policy number: a due date ten years out is a typo (and a date
# near the year 9999 would overflow when converted between time zones).
MAX_DUE_DAYS = 3653
SUBJECT_TABLE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# The due-date windows the lists filter by (``due=``), in the portal's days and weeks.
DUE_WINDOWS = ("overdue", "today", "week", "later")

# Closure evidence files: the defaults, each overridable in the configuration.
DEFAULT_ATTACHMENT_MAX_BYTES = DEFAULT_MAX_BYTES
DEFAULT_ATTACHMENT_MAX_FILES = 5
DEFAULT_ATTACHMENT_TYPES = DEFAULT_TYPES


# -- reading and scope ---------------------------------------------------------


def visible_loops(statement: sa.Select, user: User) -> sa.Select:
    """Restrict a SELECT of loop items to those ``user`` may read: the owner is in their
    read scope (``portal.scoping``), or they raised the item themselves (whoever raised
    something must be able to follow and verify it, wherever its owner sits)."""
    owners = visible_owner_ids(user, "read")
    if owners is None:
        return statement
    return statement.where(sa.or_(LoopItem.owner_id.in_(owners), LoopItem.raised_by_id == user.id))


def get_loop(loop_id: int, user: User) -> LoopItem | None:
    """One loop item if ``user`` may read it, else None (the views answer 404)."""
    if not 0 < loop_id < 2**62:
        return None
    statement = visible_loops(sa.select(LoopItem).where(LoopItem.id == loop_id), user)
    return db.session.scalars(statement).first()


HISTORY_LIMIT = 500  # entries of one item's history shown (the latest ones)


def history_of(item: LoopItem, limit: int = HISTORY_LIMIT) -> list[LoopEvent]:
    """The item's latest ``limit`` history entries, oldest first (the page and the API:
    an item with a long history still shows how it stands now)."""
    latest = (
        sa.select(LoopEvent)
        .options(light_person(LoopEvent.actor))
        .where(LoopEvent.loop_id == item.id)
        .order_by(LoopEvent.at.desc(), LoopEvent.id.desc())
        .limit(limit)
    )
    return list(reversed(db.session.scalars(latest).all()))


def loops_for_subject(table: str, subject_id: Any, user: User, limit: int = 50) -> list[LoopItem]:
    """The loop items raised about one record of any plugin that ``user`` may read,
    unfinished first: the link from a record back to its items."""
    statement = visible_loops(
        sa.select(LoopItem).where(
            LoopItem.subject_table == table, LoopItem.subject_id == str(subject_id)
        ),
        user,
    )
    unfinished_first = sa.case((LoopItem.status.in_(OPEN_STATUSES), 0), else_=1)
    statement = statement.order_by(unfinished_first, LoopItem.due_at, LoopItem.id).limit(limit)
    return list(db.session.scalars(statement))


def filter_loops(
    statement: sa.Select,
    args: Mapping[str, Any],
    now: datetime | None = None,
    zone: tzinfo | None = None,
) -> sa.Select:
    """The one set of loop-item filters, shared by the register, My work, the team view
    and the API: ``type``, ``clause`` (that clause or any below it: P3 matches P3.1.2),
    ``status`` (a status, or ``active`` for open and started), ``owner`` (id),
    ``raised_by`` (id), ``priority``, ``due`` (``overdue``, ``today``, ``week``,
    ``later``: see ``due_condition``), ``overdue`` and ``escalated`` (``1``),
    ``subject_table`` with ``subject_id``, ``q`` (words of the title). Unknown values
    filter nothing out rather than failing, so a stale bookmark still opens."""
    now = _now(now)
    value = _arg(args, "type", 80)
    if value:
        statement = statement.where(LoopItem.type == value)
    value = _arg(args, "clause", 32)
    if value:
        statement = statement.where(clause_matches(LoopItem.clause, value))
    value = _arg(args, "status", 16)
    if value == "active":
        statement = statement.where(LoopItem.status.in_(OPEN_STATUSES))
    elif value in STATUS_LABELS:
        statement = statement.where(LoopItem.status == value)
    value = _arg(args, "priority", 16)
    if value in PRIORITIES:
        statement = statement.where(LoopItem.priority == value)
    for key, column in (("owner", LoopItem.owner_id), ("raised_by", LoopItem.raised_by_id)):
        number = id_arg(args.get(key))
        if number is not None:
            statement = statement.where(column == number)
    value = _arg(args, "due", 8)
    if value in DUE_WINDOWS:
        statement = statement.where(due_condition(value, now, zone))
    if _arg(args, "overdue", 5) in ("1", "true", "yes"):
        statement = statement.where(due_condition("overdue", now, zone))
    if _arg(args, "escalated", 5) in ("1", "true", "yes"):
        statement = statement.where(
            LoopItem.status.in_(OPEN_STATUSES), LoopItem.escalation_level > 0
        )
    table = _arg(args, "subject_table", 64)
    if table:
        statement = statement.where(LoopItem.subject_table == table)
        subject_id = _arg(args, "subject_id", 64)
        if subject_id:
            statement = statement.where(LoopItem.subject_id == subject_id)
    words = _arg(args, "q", 100)
    if words:
        statement = statement.where(LoopItem.title.ilike(like_pattern(words), escape="\\"))
    return statement


def _arg(args: Mapping[str, Any], key: str, longest: int) -> str:
    value = args.get(key)
    return str(value).strip()[:longest] if value not in (None, "") else ""


def clause_matches(column: Any, clause: str) -> Any:
    """The clause itself or any clause below it (P3 matches P3.1.2, not P31)."""
    return sa.or_(column == clause, column.startswith(clause + ".", autoescape=True))


def overdue_condition(now: datetime) -> Any:
    """Open or started and past the due date: ``is_overdue`` in SQL."""
    return sa.and_(LoopItem.status.in_(OPEN_STATUSES), LoopItem.due_at < now)


def due_condition(due: str, now: datetime, zone: tzinfo | None = None) -> Any:
    """A due-date window: ``overdue`` (open or started, due before now), ``today`` /
    ``week`` (not yet overdue, due before the end of the local day / of Sunday),
    ``later`` (after this week). Days and weeks are the portal's (``portal_zone``)."""
    today = now.astimezone(zone or portal_zone()).date()
    end_of_today = local_midnight(today + timedelta(days=1), zone)
    end_of_week = local_midnight(today + timedelta(days=7 - today.weekday()), zone)
    if due == "overdue":
        return overdue_condition(now)
    if due == "today":
        return sa.and_(LoopItem.due_at >= now, LoopItem.due_at < end_of_today)
    if due == "week":
        return sa.and_(LoopItem.due_at >= now, LoopItem.due_at < end_of_week)
    if due == "later":
        return LoopItem.due_at >= end_of_week
    return sa.true()


def light_person(relationship: Any) -> Any:
    """A loader option for a related person shown by name only: not their roles,
    grants and unit, which the User mapper would otherwise fetch for every person on a
    page."""
    return defaultload(relationship).options(lazyload(User.roles), lazyload(User.unit))


def is_overdue(item: LoopItem, now: datetime | None = None) -> bool:
    """Open or started and past its due date."""
    now = as_utc(now) or utcnow()
    return item.status in OPEN_STATUSES and as_utc(item.due_at) < now


def loop_path(loop_id: int) -> str:
    """The item's page, for notification links (also outside a request, in jobs)."""
    return portal_path("loops.detail", loop_id=loop_id)


# -- who may do what -------------------------------------------------------------


def _reaches(item: LoopItem, user: User) -> bool:
    """Whether ``user``'s WRITE scope reaches the item's owner (the owner themselves,
    their supervisors, a manager); one indexed query."""
    return can_reach(item, user, "write")


def may_verify(item: LoopItem, user: User) -> bool:
    """Verification is by whoever raised the item. An item raised by the system, or by
    the owner for themselves, is checked by someone above the owner (anyone whose write
    scope reaches them), since nobody verifies their own work; only an owner with no
    supervisor at all verifies their own."""
    raiser = item.raised_by_id
    if raiser is not None and raiser != item.owner_id:
        return user.id == raiser
    if user.id == item.owner_id:
        return supervisor_of(item.owner) is None
    return _reaches(item, user)


def verifier_of(item: LoopItem) -> User | None:
    """Who is asked to verify a done item (told by ``core.loop_to_verify``)."""
    if item.raised_by_id is not None and item.raised_by_id != item.owner_id:
        return item.raised_by
    return supervisor_of(item.owner)


def _person_may(
    item: LoopItem, user: User, action: str, reach: Callable[[], bool] | None = None
) -> bool:
    """The person part of the permission, whatever the status (status: LEGAL_FROM).
    ``reach`` answers "does the user's write scope reach the owner" (asked at most once)."""
    reach = reach or (lambda: _reaches(item, user))
    is_owner = item.owner_id == user.id
    is_raiser = item.raised_by_id is not None and item.raised_by_id == user.id
    if action in ("start", "close"):
        return is_owner or reach()
    if action == "verify":
        return may_verify(item, user)
    if action == "reopen":
        return is_raiser or (not is_owner and reach())
    if action == "comment":
        return is_owner or is_raiser or reach()
    if action == "reassign":
        return user.scope_for("write") in ("team", "all") and reach()
    return False


def check_action(item: LoopItem, user: User, action: str) -> None:
    """Raise NotAllowed (403) when ``user`` may not take ``action`` on the item at all,
    StateConflict (409) when the item is not in a state that allows it. The person is
    checked first: someone without the right learns nothing from the state."""
    if action not in LEGAL_FROM:
        raise StateConflict(_("Unknown action."))
    if not _person_may(item, user, action):
        raise NotAllowed(str(_NOT_ALLOWED[action]))
    if item.status not in LEGAL_FROM[action]:
        raise StateConflict(str(_STATE_MESSAGES[action]))


def allowed_actions(item: LoopItem, user: User) -> list[str]:
    """The actions ``user`` may take on the item now, in display order (one scope
    query however many actions are offered)."""
    known: list[bool] = []

    def reach() -> bool:
        if not known:
            known.append(_reaches(item, user))
        return known[0]

    return [
        action
        for action in ACTIONS
        if item.status in LEGAL_FROM[action] and _person_may(item, user, action, reach)
    ]


# -- rule files ----------------------------------------------------------------


def _evaluate(name: str, facts: Mapping[str, Any]) -> tuple[Evaluation, int]:
    """Evaluate with the version in force; returns the evaluation and the version's row
    id, so the decision can be stored once the item it changed has an id."""
    active = rules().active(name)
    evaluation = rules().runtime.evaluate(active.rule_file, facts, version=active.version)
    return evaluation, active.version_id


def _policy_facts(type_name: str, priority: str, owner_id: int, raised_by_id: int | None) -> dict:
    return {
        "type": type_name,
        "priority": priority,
        "self_raised": raised_by_id is not None and raised_by_id == owner_id,
    }


# -- helpers -----------------------------------------------------------------------


def _now(now: datetime | None) -> datetime:
    return as_utc(now) or utcnow()


def portal_zone() -> tzinfo:
    """The company's time zone (``BABEL_DEFAULT_TIMEZONE``, the one pages show times
    in): a due *date* ends at midnight there, and "today", this week and the metrics'
    weeks and months are its days. Outside an application (a script, a test's own
    arithmetic) the default configuration's zone, so both count the same days."""
    if has_app_context():
        name = current_app.config.get("BABEL_DEFAULT_TIMEZONE")
    else:
        from ..config import BABEL_DEFAULT_TIMEZONE as name
    return ZoneInfo(name or "UTC")


def local_midnight(day: date, zone: tzinfo | None = None) -> datetime:
    """The start of a day in the portal's time zone (or ``zone``), in UTC."""
    return datetime.combine(day, time(), tzinfo=zone or portal_zone()).astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    """A due date as UTC; a naive one is read in the portal's time zone (what a person
    means by "Friday 18:00")."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=portal_zone())
    return moment.astimezone(UTC)


def due_at_from_date(day: date) -> datetime:
    """A due *date* as the end of that day in the portal's time zone, in UTC."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=portal_zone()).astimezone(UTC)


def local_today(now: datetime | None = None) -> date:
    """Today in the portal's time zone (due dates and leave are chosen as local days)."""
    return _now(now).astimezone(portal_zone()).date()


def latest_due_date(now: datetime | None = None) -> date:
    """The last day a due date may fall on (``MAX_DUE_DAYS`` from today)."""
    return local_today(now) + timedelta(days=MAX_DUE_DAYS)


def _person(value: User | int | None) -> User | None:
    if value is None or isinstance(value, User):
        return value
    return db.session.get(User, int(value))


def _text(value: Any, field: str, errors: dict[str, list[str]], required: Any = None) -> str:
    text = ("" if value is None else str(value)).strip()
    if required is not None and not text:
        errors[field] = [str(required)]
    elif len(text) > MAX_TEXT:
        errors[field] = [_("At most %(n)s characters.", n=MAX_TEXT)]
    return text


def _check_due(due_at: datetime | None, now: datetime, errors: dict[str, list[str]]) -> Any:
    if due_at is None:
        return None
    try:
        due_at = _aware(due_at)
    except OverflowError:  # a date at the end of the calendar
        errors["due_at"] = [_("The due date is too far away: at most ten years from now.")]
        return None
    if due_at <= now:
        errors["due_at"] = [_("The due date cannot be in the past.")]
    elif due_at > now + timedelta(days=MAX_DUE_DAYS):
        errors["due_at"] = [_("The due date is too far away: at most ten years from now.")]
    return due_at


def _record(
    item: LoopItem,
    actor: User | None,
    action: str,
    from_status: str | None,
    now: datetime,
    note: str = "",
    details: dict[str, Any] | None = None,
) -> LoopEvent:
    """One history entry, and the event plugins react to."""
    event = LoopEvent(
        loop_id=item.id,
        at=now,
        actor_id=getattr(actor, "id", None),
        action=action,
        from_status=from_status,
        to_status=item.status,
        note=note,
        details=details or {},
    )
    db.session.add(event)
    emit(
        "core.loop_changed",
        actor_id=getattr(actor, "id", None),
        loop_id=item.id,
        type=item.type,
        action=action,
        from_status=from_status,
        to_status=item.status,
        subject_table=item.subject_table,
        subject_id=item.subject_id,
    )
    return event


# -- raising -------------------------------------------------------------------------


def raise_loop(
    type: str,  # noqa: A002 - the loop type, named as plugins declare it
    title: str,
    owner: User | int,
    *,
    raised_by: User | int | None = None,
    due_at: datetime | None = None,
    priority: str = "normal",
    subject: tuple[str, Any] | None = None,
    subject_link: str = "",
    description: str = "",
    clause: str | None = None,
    now: datetime | None = None,
) -> LoopItem:
    """Raise a loop item; the caller commits. ``type`` must be declared by an enabled
    plugin (``portal_loop_types``); ``subject=(table, id)`` ties it to any record of any
    plugin and ``subject_link`` (a path in the portal) leads back there. Without
    ``due_at`` the rule file ``loop_policy`` gives the due date; the clause defaults to
    the type's. ``raised_by=None`` means the system raised it (a job, a rule). The owner
    is told unless they raised it themselves. Raises ValidationFailed before any write.
    Who may give an item to whom is the caller's decision (the pages and the API allow
    owners within the actor's write scope)."""
    now = _now(now)
    errors: dict[str, list[str]] = {}
    loop_type = current_app.extensions["portal"].loop_types.get(type)
    if loop_type is None:
        errors["type"] = [_("No enabled plugin declares the loop type '%(type)s'.", type=type)]
    title = _text(title, "title", errors, required=_l("Give the item a title."))
    if len(title) > 200:
        errors["title"] = [_("At most %(n)s characters.", n=200)]
    description = _text(description, "description", errors)
    if priority not in PRIORITIES:
        errors["priority"] = [_("Choose a priority: %(values)s.", values=", ".join(PRIORITIES))]
    owner_user = _person(owner)
    if owner_user is None or not owner_user.active:
        errors["owner"] = [_("Choose an active person as owner.")]
    raiser = _person(raised_by)
    if raised_by is not None and raiser is None:
        errors["raised_by"] = [_("No such person.")]
    due_at = _check_due(due_at, now, errors)
    subject_table = subject_id = None
    if subject is not None:
        subject_table, subject_id = str(subject[0]), str(subject[1])
        if not SUBJECT_TABLE_PATTERN.match(subject_table) or not 0 < len(subject_id) <= 64:
            errors["subject"] = [_("A subject is a table name and a record id.")]
    subject_link = (subject_link or "").strip()
    if subject_link and (len(subject_link) > 500 or not is_portal_path(subject_link)):
        errors["subject_link"] = [_("The link must be a path inside the portal.")]
    if clause is not None and len(clause) > 32:
        errors["clause"] = [_("At most %(n)s characters.", n=32)]
    if errors:
        raise ValidationFailed(errors)
    policy = None
    if due_at is None:
        facts = _policy_facts(type, priority, owner_user.id, getattr(raiser, "id", None))
        policy = _evaluate(POLICY_RULESET, facts)
        due_at = now + timedelta(days=int(policy[0].outputs["due_days"]))
    item = LoopItem(
        type=type,
        clause=loop_type.clause if clause is None else clause,
        title=title,
        description=description,
        subject_table=subject_table,
        subject_id=subject_id,
        subject_link=subject_link,
        owner=owner_user,
        raised_by=raiser,
        due_at=due_at,
        priority=priority,
        status="open",
        created_at=now,
        updated_at=now,
    )
    db.session.add(item)
    db.session.flush()
    if policy is not None:  # the due date came from the rule file: keep why
        rules().record(policy[0], (SUBJECT_TABLE, item.id), policy[1])
    db.session.add(
        LoopEvent(
            loop_id=item.id,
            at=now,
            actor_id=getattr(raiser, "id", None),
            action="raised",
            from_status=None,
            to_status="open",
            note=description[:500],
            details={"owner_id": owner_user.id, "due_at": due_at.isoformat()},
        )
    )
    if raiser is None or raiser.id != owner_user.id:
        notify(
            owner_user,
            "core.loop_assigned",
            _l("New loop item for you: %(title)s", title=title),
            _l("Due %(due)s.", due=_due_text(due_at)),
            link=loop_path(item.id),
        )
    emit(
        "core.loop_raised",
        actor_id=getattr(raiser, "id", None),
        loop_id=item.id,
        type=type,
        subject_table=subject_table,
        subject_id=subject_id,
    )
    return item


def _due_text(due_at: datetime) -> LazyString:
    """The due date in the reader's language and time zone, rendered when shown."""
    from flask_babel import format_datetime

    return LazyString(lambda: format_datetime(due_at, "short"))


# -- acting on an item -------------------------------------------------------------


def start(item: LoopItem, actor: User, *, now: datetime | None = None) -> LoopItem:
    """The owner (or someone above them) begins the work: open -> in progress."""
    now = _now(now)
    check_action(item, actor, "start")
    previous = item.status
    item.status, item.started_at = "in_progress", now
    db.session.flush()
    _record(item, actor, "started", previous, now)
    return item


def close(
    item: LoopItem,
    actor: User,
    note: str,
    evidence: str = "",
    files: Iterable[Any] = (),
    *,
    now: datetime | None = None,
) -> LoopItem:
    """Close the item with what was done: the closing note is required, ``evidence`` is
    free text and ``files`` (uploaded files: objects with ``filename`` and ``stream``,
    like werkzeug's FileStorage) are stored as attachments. Whoever verifies is told;
    ``loop_policy`` may verify it at once (e.g. one's own low-priority to-do)."""
    now = _now(now)
    check_action(item, actor, "close")
    errors: dict[str, list[str]] = {}
    note = _text(
        note, "closure_note", errors, required=_l("Say what was done: a closing note is required.")
    )
    evidence = _text(evidence, "evidence", errors)
    uploads = [upload for upload in files if upload is not None and getattr(upload, "filename", "")]
    limit = int(current_app.config.get("LOOP_ATTACHMENT_MAX_FILES", DEFAULT_ATTACHMENT_MAX_FILES))
    if len(uploads) > limit:
        errors["files"] = [_("Attach at most %(n)s files.", n=limit)]
    if errors:
        raise ValidationFailed(errors)
    # Ask the rule file before writing anything: the rules service may publish a changed
    # file in a session of its own, which an open write of ours would block on SQLite.
    facts = _policy_facts(item.type, item.priority, item.owner_id, item.raised_by_id)
    evaluation, version_id = _evaluate(POLICY_RULESET, facts)
    attachments = _store_files(item, actor, uploads, now)
    previous = item.status
    item.status, item.closure_note, item.evidence, item.closed_at = "done", note, evidence, now
    for attachment in attachments:
        db.session.add(attachment)
    db.session.flush()
    _record(
        item,
        actor,
        "closed",
        previous,
        now,
        note=note,
        details={"evidence": evidence, "attachments": [a.filename for a in attachments]},
    )
    if evaluation.outputs.get("auto_verify"):
        item.status, item.verified_at, item.verified_by_id = "verified", now, None
        db.session.flush()
        rules().record(evaluation, (SUBJECT_TABLE, item.id), version_id)
        _record(
            item,
            None,
            "verified",
            "done",
            now,
            details={"auto": True, "ruleset": POLICY_RULESET, "rules": evaluation.rules},
        )
        return item
    verifier = verifier_of(item)
    if verifier is not None and verifier.id != actor.id:
        notify(
            verifier,
            "core.loop_to_verify",
            _l("Done, please verify: %(title)s", title=item.title),
            note[:1000],
            link=loop_path(item.id),
        )
    return item


def verify(item: LoopItem, actor: User, note: str = "", *, now: datetime | None = None) -> LoopItem:
    """Whoever raised the item confirms it is really resolved: done -> verified."""
    now = _now(now)
    check_action(item, actor, "verify")
    errors: dict[str, list[str]] = {}
    note = _text(note, "note", errors)
    if errors:
        raise ValidationFailed(errors)
    item.status, item.verified_at, item.verified_by_id = "verified", now, actor.id
    db.session.flush()
    _record(item, actor, "verified", "done", now, note=note)
    return item


def reopen(
    item: LoopItem,
    actor: User,
    reason: str,
    *,
    due_at: datetime | None = None,
    now: datetime | None = None,
) -> LoopItem:
    """Send a done or verified item back to its owner: the reason is required, the
    history stays (the earlier closing note lives on in its event), the item counts one
    more reopening and starts a new round of escalation (optionally with a new due date)."""
    now = _now(now)
    check_action(item, actor, "reopen")
    errors: dict[str, list[str]] = {}
    reason = _text(reason, "reason", errors, required=_l("Say why the item is reopened."))
    due_at = _check_due(due_at, now, errors)
    if errors:
        raise ValidationFailed(errors)
    previous = item.status
    item.status = "open"
    item.reopen_count += 1
    item.closure_note, item.evidence = "", ""
    item.closed_at = item.verified_at = item.verified_by_id = None
    item.escalation_level, item.escalated_at = 0, None
    if due_at is not None:
        item.due_at = due_at
    db.session.flush()
    _record(
        item,
        actor,
        "reopened",
        previous,
        now,
        note=reason,
        details={"due_at": as_utc(item.due_at).isoformat(), "reopen_count": item.reopen_count},
    )
    if actor.id != item.owner_id:
        notify(
            item.owner,
            "core.loop_reopened",
            _l("Reopened: %(title)s", title=item.title),
            reason[:1000],
            link=loop_path(item.id),
        )
    return item


def comment(item: LoopItem, actor: User, note: str, *, now: datetime | None = None) -> LoopEvent:
    """A remark on the timeline, in any status (the item itself does not change)."""
    now = _now(now)
    check_action(item, actor, "comment")
    errors: dict[str, list[str]] = {}
    note = _text(note, "note", errors, required=_l("Write a comment."))
    if errors:
        raise ValidationFailed(errors)
    return _record(item, actor, "commented", item.status, now, note=note)


def reassign(
    item: LoopItem,
    actor: User,
    new_owner: User | int,
    due_at: datetime | None = None,
    *,
    note: str = "",
    now: datetime | None = None,
) -> LoopItem:
    """Give an unfinished item to another person within the actor's write scope,
    optionally with a new due date (which starts a new round of escalation)."""
    now = _now(now)
    check_action(item, actor, "reassign")
    errors: dict[str, list[str]] = {}
    person = _person(new_owner)
    if person is None or not person.active:
        errors["owner"] = [_("Choose an active person as owner.")]
    elif person.id == item.owner_id:
        errors["owner"] = [_("The item already belongs to this person.")]
    elif not in_write_scope(actor, person):
        errors["owner"] = [_("You can only give items to people you are responsible for.")]
    due_at = _check_due(due_at, now, errors)
    note = _text(note, "note", errors)
    if errors:
        raise ValidationFailed(errors)
    previous_owner = item.owner_id
    item.owner = person
    if due_at is not None:
        item.due_at = due_at
        item.escalation_level, item.escalated_at = 0, None
    db.session.flush()
    _record(
        item,
        actor,
        "reassigned",
        item.status,
        now,
        note=note,
        details={
            "from_owner_id": previous_owner,
            "to_owner_id": person.id,
            "due_at": as_utc(item.due_at).isoformat(),
        },
    )
    if person.id != actor.id:
        notify(
            person,
            "core.loop_assigned",
            _l("New loop item for you: %(title)s", title=item.title),
            _l("Due %(due)s.", due=_due_text(as_utc(item.due_at))),
            link=loop_path(item.id),
        )
    return item


def in_write_scope(actor: User, person: User) -> bool:
    """Whether ``person`` is within ``actor``'s write scope (may be given an item)."""
    statement = scoped(sa.select(User.id).where(User.id == person.id), User, actor, "write")
    return db.session.scalar(statement) is not None


def act(
    item: LoopItem,
    actor: User,
    action: str,
    *,
    note: str = "",
    evidence: str = "",
    files: Iterable[Any] = (),
    new_owner: User | int | None = None,
    due_at: datetime | None = None,
    now: datetime | None = None,
) -> LoopItem:
    """One entry point for the pages and the API: run ``action`` with the fields it
    reads (the others are ignored)."""
    if action == "start":
        return start(item, actor, now=now)
    if action == "close":
        return close(item, actor, note, evidence, files, now=now)
    if action == "verify":
        return verify(item, actor, note, now=now)
    if action == "reopen":
        return reopen(item, actor, note, due_at=due_at, now=now)
    if action == "comment":
        comment(item, actor, note, now=now)
        return item
    if action == "reassign":
        check_action(item, actor, "reassign")
        if new_owner is None:
            raise ValidationFailed({"owner": [_("Choose the new owner.")]})
        return reassign(item, actor, new_owner, due_at, note=note, now=now)
    raise StateConflict(_("Unknown action."))


# -- attachments -------------------------------------------------------------------

ATTACHMENT_AREA = "loops"


def upload_dir() -> Path:
    """Where evidence files are kept: ``instance/uploads/loops`` (outside static/)."""
    return upload_folder(ATTACHMENT_AREA)


def attachment_path(attachment: LoopAttachment) -> Path:
    """The stored file of an attachment."""
    return upload_dir() / attachment.stored_name


def _store_files(
    item: LoopItem, actor: User, uploads: Sequence[Any], now: datetime
) -> list[LoopAttachment]:
    """Check and store every upload, or none (``portal.files``), as the item's evidence."""
    stored = store_uploads(
        uploads,
        ATTACHMENT_AREA,
        types=current_app.config.get("LOOP_ATTACHMENT_TYPES") or DEFAULT_ATTACHMENT_TYPES,
        max_bytes=int(
            current_app.config.get("LOOP_ATTACHMENT_MAX_BYTES", DEFAULT_ATTACHMENT_MAX_BYTES)
        ),
    )
    return [
        LoopAttachment(
            loop_id=item.id,
            **file.columns(),
            uploaded_by_id=actor.id,
            uploaded_at=now,
        )
        for file in stored
    ]


# -- the sweeps --------------------------------------------------------------------------


_SUPERVISOR_LEVEL = re.compile(r"^supervisor(?:_(\d{1,2}))?$")


def supervisor_level(name: str) -> int | None:
    """How far up the line a route name in a rule file reaches: 1 for ``supervisor``,
    N for ``supervisor_N``, None for any other name (the approval routes and the
    escalation's ``notify`` read these names alike)."""
    found = _SUPERVISOR_LEVEL.match(name)
    if found is None:
        return None
    return int(found.group(1) or 1) or None


def _unit_ids(path: str | None) -> list[int]:
    """The ids on a unit's materialised path, the top of the tree first."""
    return [int(part) for part in (path or "").strip("/").split("/") if part]


class LeaderChains:
    """The leaders above people, for one person or many at once: the active leaders of
    the units on the path of a person's unit (their own unit first, then up the tree),
    nearest first, each once, never the person themselves. The first is their
    ``supervisor`` (what ``portal.org.services.supervisor_of`` answers while that leader
    is active), the second ``supervisor_2`` and so on: the one meaning of those names
    for the approval routes (``approvals.leader_chain``) and the escalation sweep.

    People's units and the units' leaders are read in chunks and remembered, so a sweep
    pays a few queries per batch, not per item."""

    def __init__(self) -> None:
        self._path_of: dict[int, str | None] = {}
        self._leader_of: dict[int, int | None] = {}  # unit id -> its active leader

    def _load_people(self, people: Iterable[int]) -> None:
        missing = sorted({person for person in people if person not in self._path_of})
        for start_at in range(0, len(missing), 500):
            chunk = missing[start_at : start_at + 500]
            rows = db.session.execute(
                sa.select(User.id, OrgUnit.path)
                .outerjoin(OrgUnit, OrgUnit.id == User.unit_id)
                .where(User.id.in_(chunk))
            )
            found = dict(rows.all())
            for person in chunk:
                self._path_of[person] = found.get(person)

    def _load_units(self, unit_ids: Iterable[int]) -> None:
        missing = sorted({unit for unit in unit_ids if unit not in self._leader_of})
        leader = sa.and_(User.id == OrgUnit.leader_id, User.active.is_(True))
        for start_at in range(0, len(missing), 500):
            chunk = missing[start_at : start_at + 500]
            rows = db.session.execute(
                sa.select(OrgUnit.id, User.id).outerjoin(User, leader).where(OrgUnit.id.in_(chunk))
            )
            found = dict(rows.all())
            for unit in chunk:
                self._leader_of[unit] = found.get(unit)

    def of_paths(self, paths: Mapping[int, str | None]) -> dict[int, list[int]]:
        """``{person: [supervisor, supervisor_2, ...]}`` for people whose unit paths are
        known (``{person id: path of their unit or None}``)."""
        ancestry = {person: _unit_ids(path) for person, path in paths.items()}
        self._load_units(unit for units in ancestry.values() for unit in units)
        chains: dict[int, list[int]] = {}
        for person, units in ancestry.items():
            chain: list[int] = []
            for unit in reversed(units):
                leader_id = self._leader_of.get(unit)
                if leader_id and leader_id != person and leader_id not in chain:
                    chain.append(leader_id)
            chains[person] = chain
        return chains

    def of_people(self, people: Iterable[int]) -> dict[int, list[int]]:
        """``{person: [supervisor, supervisor_2, ...]}`` for people by id."""
        people = set(people)
        self._load_people(people)
        return self.of_paths({person: self._path_of[person] for person in people})

    def of_user(self, user: User) -> list[int]:
        """One person's chain (one query: the leaders of the units above them)."""
        path = user.unit.path if user.unit is not None else None
        return self.of_paths({user.id: path})[user.id]


def _recipients(roles: Sequence[str], owner_id: int, chain: Sequence[int]) -> list[int]:
    """The people an escalation names: ``owner``, ``supervisor``, ``supervisor_2`` ...
    (a level above the top of the chain names nobody)."""
    people: list[int] = []
    for role in roles:
        depth = 0 if role == "owner" else supervisor_level(role)
        if depth is None:
            log.warning("loop_escalation names an unknown recipient %r; ignored", role)
            continue
        person = owner_id if depth == 0 else (chain[depth - 1] if len(chain) >= depth else None)
        if person is not None and person not in people:
            people.append(person)
    return people


def _people(ids: Iterable[int]) -> dict[int, User]:
    """The people to tell, loaded in one query per 500 (not one each)."""
    wanted = sorted(set(ids))
    found: dict[int, User] = {}
    for start_at in range(0, len(wanted), 500):
        chunk = wanted[start_at : start_at + 500]
        found.update(
            (u.id, u) for u in db.session.scalars(sa.select(User).where(User.id.in_(chunk)))
        )
    return found


def _list_body(titles: Sequence[str]) -> str:
    """The first titles of a digest message (a supervisor is not sent a thousand)."""
    lines = [f"- {title}" for title in titles[:20]]
    if len(titles) > 20:
        lines.append(f"- ... (+{len(titles) - 20})")
    return "\n".join(lines)


def escalate_overdue(now: datetime | None = None, batch_size: int = 1000) -> dict[str, int]:
    """The hourly sweep (job ``core.escalate_overdue_loops``): every open or started
    item past its due date is put to the rule file ``loop_escalation`` (priority, type,
    whole hours overdue, current level); an item whose level rises gets the new level, a
    history entry and a stored decision, and the people the rule names (owner,
    supervisor, supervisor_2 ...) are told, one message per person per batch. A level
    is never announced twice, so running again at the same time changes nothing.

    Built for 100,000 open items: keyset batches on the (status, due_at, id) index,
    one rule evaluation per distinct input tuple in the run, supervisors resolved per
    batch (``LeaderChains``), one commit per batch (memory stays bounded; a crash loses
    at most a batch, which the next run redoes).

    The levels are written in bulk, and audited: the rising items of a batch are locked
    (``FOR UPDATE`` on PostgreSQL) and read back, those someone changed since the scan
    are left for the next run (their lock version moved on), and the rest get their
    level by one ``UPDATE ... WHERE id IN (...)`` per (level, version) group, so the
    audit log's bulk-update row lists exactly the ids it changed (its parameters) next
    to the values written; each item's history says the same. The lock version moves
    on too, so a person acting on a page read before the escalation is told the item
    changed."""
    now = _now(now)
    counts = {"checked": 0, "escalated": 0, "notified": 0}
    with acting_as("job:core.escalate_overdue_loops"):
        active = rules().active(ESCALATION_RULESET)
        answers: dict[tuple[Any, ...], Evaluation | None] = {}
        chains = LeaderChains()
        for status in OPEN_STATUSES:
            statement = sa.select(
                LoopItem.id,
                LoopItem.due_at,
                LoopItem.priority,
                LoopItem.type,
                LoopItem.escalation_level,
                LoopItem.lock_version,
            ).where(LoopItem.status == status, LoopItem.due_at < now)
            order = (LoopItem.due_at, LoopItem.id)
            for rows in keyset_batches(statement, order, batch_size):
                counts["checked"] += len(rows)
                rising = _rising(rows, now, active, answers)
                if rising:
                    escalated, notified = _escalate_batch(rising, now, active, chains)
                    counts["escalated"] += escalated
                    counts["notified"] += notified
                db.session.commit()
    return counts


def _facts_key(row: Any, now: datetime) -> tuple[Any, ...]:
    hours = max(int((now - as_utc(row.due_at)).total_seconds() // 3600), 0)
    return (row.priority, row.type, hours, row.escalation_level)


def _rising(
    rows: Sequence[Any],
    now: datetime,
    active: Any,
    answers: dict[tuple[Any, ...], Evaluation | None],
) -> list[tuple[Any, Evaluation, int]]:
    """The items of a batch whose level the rule file raises: (row, evaluation, level)."""
    keys = [_facts_key(row, now) for row in rows]
    evaluate_distinct(active, ("priority", "type", "hours_overdue", "current_level"), keys, answers)
    rising = []
    for row, key in zip(rows, keys, strict=True):
        evaluation = answers[key]
        if evaluation is None:
            continue
        level = int(evaluation.outputs.get("level") or 0)
        if level > row.escalation_level:
            rising.append((row, evaluation, level))
    return rising


def _unchanged_since_scan(rising: Sequence[tuple[Any, Evaluation, int]]) -> set[int]:
    """Lock the rising items (PostgreSQL; SQLite has one writer anyway) and keep the ids
    of those whose lock version is still the one the scan saw: nobody changed them."""
    seen = {row.id: row.lock_version for row, _evaluation, _level in rising}
    unchanged: set[int] = set()
    ids = sorted(seen)
    for start_at in range(0, len(ids), 1000):
        statement = (
            sa.select(LoopItem.id, LoopItem.lock_version)
            .where(LoopItem.id.in_(ids[start_at : start_at + 1000]))
            .order_by(LoopItem.id)
            .with_for_update()
        )
        for item_id, version in db.session.execute(statement):
            if version == seen[item_id]:
                unchanged.add(item_id)
    return unchanged


def _escalate_batch(
    rising: Sequence[tuple[Any, Evaluation, int]],
    now: datetime,
    active: Any,
    chains: LeaderChains,
) -> tuple[int, int]:
    unchanged = _unchanged_since_scan(rising)
    groups: dict[tuple[int, int], list[tuple[Any, Evaluation]]] = defaultdict(list)
    for row, evaluation, level in rising:
        if row.id in unchanged:
            groups[(level, row.lock_version)].append((row, evaluation))
    escalated: list[tuple[Any, Any, Evaluation, int]] = []  # (new row, scanned row, ...)
    for (level, version), members in groups.items():
        by_id = {row.id: (row, evaluation) for row, evaluation in members}
        # The ids are exactly the items to change (locked above); the conditions repeat
        # what the scan saw, so that even without row locks (SQLite) an item changed in
        # between is left alone, and RETURNING names the ones really written.
        statement = (
            sa.update(LoopItem)
            .where(
                LoopItem.id.in_(sorted(by_id)),
                LoopItem.lock_version == version,
                LoopItem.status.in_(OPEN_STATUSES),
                LoopItem.escalation_level < level,
            )
            .values(
                escalation_level=level,
                escalated_at=now,
                updated_at=now,
                lock_version=version + 1,
            )
            .returning(
                LoopItem.id,
                LoopItem.owner_id,
                LoopItem.status,
                LoopItem.type,
                LoopItem.title,
                LoopItem.subject_table,
                LoopItem.subject_id,
            )
            .execution_options(synchronize_session=False)
        )
        for written in db.session.execute(statement).all():
            scanned, evaluation = by_id[written.id]
            escalated.append((written, scanned, evaluation, level))
    if not escalated:
        return 0, 0
    chain_of = chains.of_people({written.owner_id for written, *_rest in escalated})
    told: dict[int, list[tuple[str, int, int]]] = defaultdict(list)  # person: (title, id, level)
    history: list[dict[str, Any]] = []
    for written, scanned, evaluation, level in escalated:
        people = _recipients(
            evaluation.outputs.get("notify") or [], written.owner_id, chain_of[written.owner_id]
        )
        history.append(
            {
                "loop_id": written.id,
                "at": now,
                "actor_id": None,
                "action": "escalated",
                "from_status": written.status,
                "to_status": written.status,
                "note": "",
                "details": {
                    "from_level": scanned.escalation_level,
                    "level": level,
                    "hours_overdue": evaluation.inputs.get("hours_overdue"),
                    "notified": people,
                    "ruleset": ESCALATION_RULESET,
                    "version": active.version,
                    "rules": evaluation.rules,
                },
            }
        )
        rules().record(evaluation, (SUBJECT_TABLE, written.id), active.version_id)
        for person in people:
            told[person].append((written.title, written.id, level))
    # The history in one multi-row INSERT (no ids needed back; SQLite would otherwise
    # insert ORM objects one statement each to return their keys in order).
    db.session.execute(sa.insert(LoopEvent), history)
    db.session.flush()
    for written, *_rest in escalated:
        emit(
            "core.loop_changed",
            actor_id=None,
            loop_id=written.id,
            type=written.type,
            action="escalated",
            from_status=written.status,
            to_status=written.status,
            subject_table=written.subject_table,
            subject_id=written.subject_id,
        )
    people = _people(told)
    notified = 0
    for person, entries in told.items():
        if len(entries) == 1:
            title_text, loop_id, level = entries[0]
            title = _l("Overdue (level %(level)s): %(title)s", level=level, title=title_text)
            body, link = "", loop_path(loop_id)
        else:
            title = _l("%(count)s overdue loop items were escalated", count=len(entries))
            body = _list_body([entry[0] for entry in entries])
            link = portal_path("loops.index", escalated=1)
        if notify(people.get(person, person), "core.loop_overdue", title, body, link):
            notified += 1
    return len(escalated), notified


def remind_due_soon(now: datetime | None = None, batch_size: int = 1000) -> dict[str, int]:
    """The daily reminder (job ``core.remind_due_loops``): owners of open items falling
    due within the notice ``loop_policy`` gives for the item's type and priority
    (``remind_hours``) are told once per item and due date (moving the due date earns a
    new reminder); one message per owner per batch."""
    now = _now(now)
    counts = {"checked": 0, "reminded": 0, "notified": 0}
    with acting_as("job:core.remind_due_loops"):
        kinds = db.session.execute(
            sa.select(LoopItem.type, LoopItem.priority)
            .where(LoopItem.status.in_(OPEN_STATUSES), LoopItem.due_at > now)
            .distinct()
            .limit(10_000)
        ).all()
        # Every notice first, before anything is written (see close()).
        notices: dict[tuple[str, str], int] = {}
        for type_name, priority in kinds:
            try:
                evaluation, _version = _evaluate(
                    POLICY_RULESET, {"type": type_name, "priority": priority}
                )
            except RuleInputError as error:
                log.error("loop_policy cannot judge %s/%s: %s", type_name, priority, error)
                continue
            notices[(type_name, priority)] = int(evaluation.outputs.get("remind_hours") or 0)
        for (type_name, priority), hours in notices.items():
            if hours <= 0:
                continue
            last_id, retries = 0, 0
            while True:
                batch = list(
                    db.session.scalars(
                        sa.select(LoopItem)
                        .where(
                            LoopItem.status.in_(OPEN_STATUSES),
                            LoopItem.type == type_name,
                            LoopItem.priority == priority,
                            LoopItem.due_at > now,
                            LoopItem.due_at <= now + timedelta(hours=hours),
                            sa.or_(
                                LoopItem.reminded_due_at.is_(None),
                                LoopItem.reminded_due_at != LoopItem.due_at,
                            ),
                            LoopItem.id > last_id,
                        )
                        .order_by(LoopItem.id)
                        .limit(batch_size)
                    )
                )
                if not batch:
                    break
                try:
                    reminded, notified = _remind_batch(batch, now, hours)
                    db.session.commit()
                except StaleDataError:
                    # Someone changed an item of the batch meanwhile: nothing of the
                    # batch was written; read it again (a busy batch is left for the
                    # next run rather than retried for ever).
                    db.session.rollback()
                    retries += 1
                    if retries < 3:
                        continue
                    log.warning("reminders after id %s skipped: items keep changing", last_id)
                    reminded = notified = 0
                retries = 0
                counts["checked"] += len(batch)
                counts["reminded"] += reminded
                counts["notified"] += notified
                if len(batch) < batch_size:
                    break
                last_id = batch[-1].id
    return counts


def _remind_batch(batch: Sequence[LoopItem], now: datetime, hours: int) -> tuple[int, int]:
    told: dict[int, list[LoopItem]] = defaultdict(list)
    history = []
    for item in batch:
        item.reminded_due_at = item.due_at
        history.append(
            {
                "loop_id": item.id,
                "at": now,
                "actor_id": None,
                "action": "reminded",
                "from_status": item.status,
                "to_status": item.status,
                "note": "",
                "details": {"due_at": as_utc(item.due_at).isoformat(), "notice_hours": hours},
            }
        )
        told[item.owner_id].append(item)
    # The items first (their lock versions are checked here), then the history in one
    # multi-row INSERT.
    db.session.flush()
    db.session.execute(sa.insert(LoopEvent), history)
    people = _people(told)
    notified = 0
    for owner_id, items in told.items():
        if len(items) == 1:
            due = _due_text(as_utc(items[0].due_at))
            title = _l("Due %(due)s: %(title)s", due=due, title=items[0].title)
            body, link = "", loop_path(items[0].id)
        else:
            title = _l("%(count)s loop items of yours fall due soon", count=len(items))
            body = _list_body([item.title for item in items])
            link = portal_path("loops.index", owner=owner_id, status="active")
        if notify(people.get(owner_id, owner_id), "core.loop_due_soon", title, body, link):
            notified += 1
    return len(batch), notified
