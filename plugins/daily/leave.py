"""Leave: types, yearly balances and requests (P6.1 "leave is requested in advance
through the procedure").

Every write of the leave area goes through this module: the pages and the JSON API call
the same functions, so both meet the same checks and messages. Functions never commit
(the caller does, once) and raise ``ValidationFailed`` (per field, 422),
``StateConflict`` (409) or ``NotAllowed`` (403).

What the policy decides lives in ``rules/leave_approval.yaml``, never here: which leave
codes exist, how much notice each type needs (sick and bereavement leave may come
afterwards), whether the balance suffices, when a certificate is needed and who
approves. Leave is counted in working half days of the person's schedule
(``calendar.working_half_days``), so attendance and leave never disagree.

A request the rule file rejects at once (too late, over the balance, no certificate)
is **not saved at all**: the person gets the form back (422) with the rule's reason next
to the field to change. A saved request is always pending or decided by people.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.auth.models import RolePermission, User, user_roles
from portal.extensions import db
from portal.files import IMAGE_AND_PDF_TYPES, store_uploads
from portal.loops.errors import NotAllowed, StateConflict
from portal.models import utcnow
from portal.org.services import ValidationFailed
from portal.scoping import scoped

from .calendar import local_today, schedule_of, working_half_days
from .models import HALVES, REQUEST_STATUSES, LeaveBalance, LeaveDocument, LeaveRequest, LeaveType

RULESET = "leave_approval"
APPROVAL_KIND = "daily.leave"
SUBJECT_TABLE = "daily_leave_request"
UPLOAD_AREA = "daily_leave"
UPLOAD_FIELD = "documents"
LIVE_STATUSES = ("pending", "approved")  # what a new request may not overlap
MAX_REASON = 2000
MAX_DOCUMENTS = 5
MAX_HALF_DAYS_A_YEAR = 2 * 366
DEFAULT_MAX_BYTES = 10 * 1024 * 1024

# The defaults a first install starts from; HR changes them on the settings page. Only
# the codes the rule file in force knows are created.
DEFAULT_TYPES: tuple[dict[str, Any], ...] = (
    {"code": "annual", "name_en": "Annual leave", "name_zh": "年假", "uses_balance": True,
     "yearly_half_days": 20},
    {"code": "personal", "name_en": "Personal leave (unpaid)", "name_zh": "事假", "paid": False},
    {"code": "sick", "name_en": "Sick leave", "name_zh": "病假"},
    {"code": "compensatory", "name_en": "Time off in lieu", "name_zh": "调休",
     "uses_balance": True},
    {"code": "marriage", "name_en": "Marriage leave", "name_zh": "婚假"},
    {"code": "maternity", "name_en": "Maternity leave", "name_zh": "产假"},
    {"code": "paternity", "name_en": "Paternity leave", "name_zh": "陪产假"},
    {"code": "bereavement", "name_en": "Bereavement leave", "name_zh": "丧假"},
)  # fmt: skip

# The rule file's reasons in the reader's language (a reason the code does not know is
# shown as written).
RULE_TEXTS: dict[str, Any] = {
    "More days than the remaining balance": _l("More days than the remaining balance"),
    "Not requested far enough in advance": _l("Not requested far enough in advance"),
    "Sick leave of this length needs a hospital certificate": _l(
        "Sick leave of this length needs a hospital certificate"
    ),
}
# Which form field a rejecting rule's reason belongs next to.
RULE_FIELDS = {
    "insufficient-balance": "leave_type",
    "late-notice": "starts_on",
    "sick-certificate": UPLOAD_FIELD,
}
# The rule file's inputs as the form names them.
FACT_FIELDS = {
    "leave_type": "leave_type",
    "days": "ends_on",
    "days_in_advance": "starts_on",
    "balance_days": "leave_type",
    "has_medical_certificate": UPLOAD_FIELD,
}


def rule_text(text: str | None) -> Any:
    """A rule file's reason in the reader's language when the code knows it (lazy: a
    notification renders it in its recipient's language)."""
    if not text:
        return ""
    return RULE_TEXTS.get(text, text)


# -- types ----------------------------------------------------------------------------------


def rule_leave_codes() -> tuple[str, ...]:
    """The leave codes the rule file in force knows (its ``leave_type`` input)."""
    from portal.rules.service import rules

    spec = rules().active(RULESET).rule_file.inputs.get("leave_type")
    return tuple(spec.values) if spec is not None else ()


def ensure_leave_types() -> list[LeaveType]:
    """Create the default leave types when none exist yet (a first install, the demo);
    the caller commits. Called lazily by the leave pages, so nothing else must."""
    existing = list(db.session.scalars(sa.select(LeaveType).order_by(LeaveType.position)))
    if existing:
        return existing
    known = rule_leave_codes()
    for position, values in enumerate(DEFAULT_TYPES):
        if values["code"] in known:
            db.session.add(
                LeaveType(
                    paid=values.get("paid", True),
                    uses_balance=values.get("uses_balance", False),
                    yearly_half_days=values.get("yearly_half_days", 0),
                    position=(position + 1) * 10,
                    active=True,
                    **{k: values[k] for k in ("code", "name_en", "name_zh")},
                )
            )
    db.session.flush()
    return list(db.session.scalars(sa.select(LeaveType).order_by(LeaveType.position)))


def leave_types(active_only: bool = True) -> list[LeaveType]:
    """The leave types in their order (seeded on first use)."""
    found = ensure_leave_types()
    return [kind for kind in found if kind.active or not active_only]


def type_name(kind: LeaveType | None, locale: str | None = None) -> str:
    """A type's name in the reader's language (Chinese for zh*, English otherwise)."""
    if kind is None:
        return "—"
    if locale is None:
        from flask_babel import get_locale

        locale = str(get_locale() or "en")
    return kind.name_zh if locale.startswith("zh") and kind.name_zh else kind.name_en


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _whole(value: Any, field: str, errors: dict[str, list[str]], low: int, high: int) -> int:
    text = _text(value) or "0"
    try:
        number = int(text)
    except ValueError:
        errors[field] = [_("A whole number from %(low)s to %(high)s.", low=low, high=high)]
        return 0
    if not low <= number <= high:
        errors[field] = [_("A whole number from %(low)s to %(high)s.", low=low, high=high)]
    return number


def parse_days(value: Any, field: str, errors: dict[str, list[str]], signed: bool = False) -> int:
    """Days as typed (half days allowed: 2.5) to half days."""
    text = _text(value).replace(",", ".")
    try:
        days = Decimal(text or "0")
    except ArithmeticError:
        errors[field] = [_("Write a number of days, halves allowed (e.g. 2.5).")]
        return 0
    if days.is_finite() and days.adjusted() > 3:  # 1e999999999 would overflow below
        days = Decimal(1000).copy_sign(days)
    if not days.is_finite() or (days * 2) != (days * 2).to_integral_value():
        errors[field] = [_("Write a number of days, halves allowed (e.g. 2.5).")]
        return 0
    half_days = int(days * 2)
    if (half_days < 0 and not signed) or abs(half_days) > MAX_HALF_DAYS_A_YEAR:
        low = -366 if signed else 0
        errors[field] = [_("Between %(low)s and %(high)s days.", low=low, high=366)]
        return 0
    return half_days


def save_leave_type(kind: LeaveType | None, values: Mapping[str, Any]) -> LeaveType:
    """Add or change a leave type. A new code must be one the rule file in force knows:
    the rule file decides notice, balance and approvers per code, so a type it does not
    know could never be routed."""
    errors: dict[str, list[str]] = {}
    code = kind.code if kind is not None else _text(values.get("code")).lower()
    if kind is None:
        known = rule_leave_codes()
        if not code:
            errors["code"] = [_("Give the code.")]
        elif code not in known:
            errors["code"] = [
                _(
                    "Not a leave type of the rule file in force (leave_approval): use one of "
                    "%(codes)s, or add the code to the rule file first.",
                    codes=", ".join(known),
                )
            ]
        elif db.session.get(LeaveType, code) is not None:
            errors["code"] = [_("This leave type exists already.")]
    names = {}
    for name in ("name_en", "name_zh"):
        names[name] = _text(values.get(name))
        if not names[name]:
            errors[name] = [_("Give the name.")]
        elif len(names[name]) > 80:
            errors[name] = [_("At most %(n)s characters.", n=80)]
    yearly = parse_days(values.get("yearly_days"), "yearly_days", errors)
    position = _whole(values.get("position"), "position", errors, 0, 10_000)
    if errors:
        raise ValidationFailed(errors)
    if kind is None:
        kind = LeaveType(code=code)
        db.session.add(kind)
    kind.name_en, kind.name_zh = names["name_en"], names["name_zh"]
    kind.paid = bool(values.get("paid"))
    kind.uses_balance = bool(values.get("uses_balance"))
    kind.yearly_half_days = yearly
    kind.position = position
    kind.active = bool(values.get("active"))
    db.session.flush()
    return kind


# -- balances -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceLine:
    """One type's balance of one person and year, as shown (half days)."""

    kind: LeaveType
    balance: LeaveBalance | None
    granted: int
    used: int
    pending: int

    @property
    def available(self) -> int:
        return self.granted - self.used - self.pending


def balance_row(owner_id: int, code: str, year: int) -> LeaveBalance | None:
    return db.session.scalars(
        sa.select(LeaveBalance).where(
            LeaveBalance.owner_id == owner_id,
            LeaveBalance.leave_type == code,
            LeaveBalance.year == year,
        )
    ).first()


def pending_half_days(
    owner_ids: Iterable[int], year: int, exclude_id: int | None = None
) -> dict[tuple[int, str], int]:
    """Half days of pending requests per (person, type) starting in ``year``: reserved,
    so two requests together cannot overdraw a balance."""
    ids = list(owner_ids)
    if not ids:
        return {}
    statement = (
        sa.select(
            LeaveRequest.owner_id, LeaveRequest.leave_type, sa.func.sum(LeaveRequest.half_days)
        )
        .where(
            LeaveRequest.owner_id.in_(ids),
            LeaveRequest.status == "pending",
            LeaveRequest.starts_on.between(date(year, 1, 1), date(year, 12, 31)),
        )
        .group_by(LeaveRequest.owner_id, LeaveRequest.leave_type)
    )
    if exclude_id is not None:
        statement = statement.where(LeaveRequest.id != exclude_id)
    return {(owner, code): int(total or 0) for owner, code, total in db.session.execute(statement)}


def balances_for(owner_id: int, year: int) -> list[BalanceLine]:
    """The balances of the types that use one, for one person and year."""
    kinds = [kind for kind in leave_types() if kind.uses_balance]
    rows = {
        row.leave_type: row
        for row in db.session.scalars(
            sa.select(LeaveBalance).where(
                LeaveBalance.owner_id == owner_id, LeaveBalance.year == year
            )
        )
    }
    pending = pending_half_days([owner_id], year)
    lines = []
    for kind in kinds:
        row = rows.get(kind.code)
        lines.append(
            BalanceLine(
                kind,
                row,
                row.granted_half_days if row else 0,
                row.used_half_days if row else 0,
                pending.get((owner_id, kind.code), 0),
            )
        )
    return lines


def available_half_days(owner_id: int, code: str, year: int, exclude_id: int | None = None) -> int:
    """Granted less used less pending (other pending requests), never below 0."""
    row = balance_row(owner_id, code, year)
    pending = pending_half_days([owner_id], year, exclude_id).get((owner_id, code), 0)
    granted, used = (row.granted_half_days, row.used_half_days) if row else (0, 0)
    return max(0, granted - used - pending)


def employees() -> sa.Select:
    """Active people who may ask for leave (a role granting ``daily.attend``)."""
    holders = (
        sa.select(user_roles.c.user_id)
        .join(RolePermission, RolePermission.role_id == user_roles.c.role_id)
        .where(RolePermission.code == "daily.attend")
    )
    return sa.select(User).where(User.active.is_(True), User.id.in_(holders))


def grant_year(year: int) -> int:
    """Give every employee the year's entitlement of each balance type (HR, once a
    year): a balance that exists already is left as it is (adjustments stay), so
    running it twice grants nothing twice. Returns how many balances were created."""
    if not 2000 <= year <= 2100:
        raise ValidationFailed({"year": [_("Choose a year from 2000 to 2100.")]})
    kinds = [k for k in leave_types() if k.uses_balance and k.yearly_half_days > 0]
    if not kinds:
        raise ValidationFailed(
            {"year": [_("No active leave type has a yearly entitlement to grant.")]}
        )
    people = list(db.session.scalars(employees().with_only_columns(User.id)))
    existing = {
        (owner_id, code)
        for owner_id, code in db.session.execute(
            sa.select(LeaveBalance.owner_id, LeaveBalance.leave_type).where(
                LeaveBalance.year == year
            )
        )
    }
    created = 0
    for person_id in people:
        for kind in kinds:
            if (person_id, kind.code) in existing:
                continue
            db.session.add(
                LeaveBalance(
                    owner_id=person_id,
                    leave_type=kind.code,
                    year=year,
                    granted_half_days=kind.yearly_half_days,
                    used_half_days=0,
                )
            )
            created += 1
    db.session.flush()
    return created


def adjust_balance(
    owner: User,
    code: str,
    year: int,
    change_half_days: int,
    reason: str,
    expected_version: int | None = None,
) -> LeaveBalance:
    """Add to (or take from) one person's granted days with a reason; the reason is kept
    in the audit log next to the change. A grant may not go below what is used."""
    from portal.audit.recorder import record_access

    errors: dict[str, list[str]] = {}
    kind = db.session.get(LeaveType, code or "")
    if kind is None or not kind.uses_balance:
        errors["leave_type"] = [_("Choose a leave type that keeps a balance.")]
    if not 2000 <= year <= 2100:
        errors["year"] = [_("Choose a year from 2000 to 2100.")]
    if change_half_days == 0:
        errors["change_days"] = [_("Give the days to add, or a negative number to take away.")]
    reason = _text(reason)
    if not reason:
        errors["reason"] = [_("Say why the balance changes.")]
    elif len(reason) > 500:
        errors["reason"] = [_("At most %(n)s characters.", n=500)]
    if errors:
        raise ValidationFailed(errors)
    row = balance_row(owner.id, code, year)
    if row is None:
        row = LeaveBalance(
            owner_id=owner.id, leave_type=code, year=year, granted_half_days=0, used_half_days=0
        )
        db.session.add(row)
    elif expected_version is not None and row.version_id != expected_version:
        raise StateConflict(_("Someone changed this balance meanwhile. Reload and try again."))
    granted = row.granted_half_days + change_half_days
    if granted < 0 or granted < row.used_half_days:
        raise ValidationFailed(
            {"change_days": [_("The balance would fall below the days already used.")]}
        )
    if granted > MAX_HALF_DAYS_A_YEAR:
        raise ValidationFailed({"change_days": [_("More days than a year has.")]})
    before = row.granted_half_days
    row.granted_half_days = granted
    db.session.flush()
    record_access(
        "adjust",
        "daily_leave_balance",
        {
            "person": owner.username,
            "leave_type": code,
            "year": year,
            "granted_half_days_before": before,
            "granted_half_days_after": granted,
            "reason": reason,
        },
        record_id=str(row.id),
    )
    return row


def _use_balance(request: LeaveRequest, sign: int) -> None:
    """Count an approved request against its balance (sign 1) or give it back (-1)."""
    kind = db.session.get(LeaveType, request.leave_type)
    if kind is None or not kind.uses_balance:
        return
    year = request.starts_on.year
    row = balance_row(request.owner_id, request.leave_type, year)
    if row is None:
        row = LeaveBalance(
            owner_id=request.owner_id,
            leave_type=request.leave_type,
            year=year,
            granted_half_days=0,
            used_half_days=0,
        )
        db.session.add(row)
    row.used_half_days = max(0, row.used_half_days + sign * request.half_days)
    db.session.flush()  # the balance's optimistic lock: a concurrent change is a 409


# -- reading requests --------------------------------------------------------------------------


def sees_team(user: User) -> bool:
    """Whether ``user`` sees other people's leave (within their read scope)."""
    return user.can("daily.view_attendance")


def readable_requests(user: User) -> sa.Select:
    """Leave requests ``user`` may read: their own, and with ``daily.view_attendance``
    those of everyone in their read scope."""
    statement = sa.select(LeaveRequest)
    if sees_team(user):
        return scoped(statement, LeaveRequest, user)
    return statement.where(LeaveRequest.owner_id == user.id)


def get_request_or_404(request_id: Any, user: User) -> LeaveRequest:
    """One readable request, or 404 (its existence stays hidden)."""
    from flask import abort

    from portal.listing import id_arg

    wanted = id_arg(request_id)
    if wanted is None:
        abort(404)
    found = db.session.scalars(readable_requests(user).where(LeaveRequest.id == wanted)).first()
    if found is None:
        abort(404)
    return found


def my_requests(user: User, status: str = "") -> sa.Select:
    """The person's own requests, newest first."""
    statement = sa.select(LeaveRequest).where(LeaveRequest.owner_id == user.id)
    if status in REQUEST_STATUSES:
        statement = statement.where(LeaveRequest.status == status)
    return statement.order_by(LeaveRequest.starts_on.desc(), LeaveRequest.id.desc())


def team_requests(
    user: User,
    first: date,
    last: date,
    status: str = "",
    owner_id: int | None = None,
) -> sa.Select:
    """Requests in scope touching ``first``..``last`` (pending and approved unless a
    status is chosen), by first day: the team's calendar."""
    statement = readable_requests(user).where(
        LeaveRequest.starts_on <= last, LeaveRequest.ends_on >= first
    )
    if status in REQUEST_STATUSES:
        statement = statement.where(LeaveRequest.status == status)
    else:
        statement = statement.where(LeaveRequest.status.in_(LIVE_STATUSES))
    if owner_id:
        statement = statement.where(LeaveRequest.owner_id == owner_id)
    return statement.order_by(LeaveRequest.starts_on, LeaveRequest.id)


MAX_CALENDAR_ROWS = 5000


def away_by_day(
    user: User, first: date, last: date, owner_id: int | None = None
) -> dict[date, int]:
    """How many people in scope are on approved leave each day from ``first`` to
    ``last`` (one bounded query): the team calendar's planning row."""
    from datetime import timedelta

    statement = (
        team_requests(user, first, last, "approved", owner_id)
        .with_only_columns(LeaveRequest.owner_id, LeaveRequest.starts_on, LeaveRequest.ends_on)
        .limit(MAX_CALENDAR_ROWS)
    )
    people: dict[date, set[int]] = {}
    for person_id, starts_on, ends_on in db.session.execute(statement):
        day = max(starts_on, first)
        while day <= min(ends_on, last):
            people.setdefault(day, set()).add(person_id)
            day += timedelta(days=1)
    return {day: len(ids) for day, ids in people.items()}


def approval_of(request: LeaveRequest) -> Any:
    from portal.loops.models import ApprovalRequest

    if request.approval_id is None:
        return None
    return db.session.get(ApprovalRequest, request.approval_id)


def document_of(request: LeaveRequest, document_id: int) -> LeaveDocument | None:
    return next((doc for doc in request.documents if doc.id == document_id), None)


# -- asking for leave -------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """A checked request before it is written."""

    kind: LeaveType
    starts_on: date
    start_half: str
    ends_on: date
    end_half: str
    half_days: int
    reason: str


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(_text(value))
    except ValueError:
        return None


def _point(day: date, half: str) -> tuple[date, int]:
    return day, HALVES.index(half)


def overlapping(
    owner_id: int, starts_on: date, start_half: str, ends_on: date, end_half: str
) -> LeaveRequest | None:
    """A pending or approved request of the same person sharing a half day."""
    candidates = db.session.scalars(
        sa.select(LeaveRequest).where(
            LeaveRequest.owner_id == owner_id,
            LeaveRequest.status.in_(LIVE_STATUSES),
            LeaveRequest.starts_on <= ends_on,
            LeaveRequest.ends_on >= starts_on,
        )
    )
    start, end = _point(starts_on, start_half), _point(ends_on, end_half)
    for other in candidates:
        if _point(other.starts_on, other.start_half) <= end and start <= _point(
            other.ends_on, other.end_half
        ):
            return other
    return None


def check_request(values: Mapping[str, Any], owner: User) -> Draft:
    """Check the typed request (every message at once): an active type, the dates in
    order, working days covered, no overlap with the person's other leave."""
    errors: dict[str, list[str]] = {}
    code = _text(values.get("leave_type"))
    kind = db.session.get(LeaveType, code) if code else None
    if kind is None or not kind.active:
        errors["leave_type"] = [_("Choose a leave type from the list.")]
    starts_on = _as_date(values.get("starts_on"))
    ends_on = _as_date(values.get("ends_on"))
    if starts_on is None:
        errors["starts_on"] = [_("Give the first day (YYYY-MM-DD).")]
    if ends_on is None:
        errors["ends_on"] = [_("Give the last day (YYYY-MM-DD).")]
    start_half = _text(values.get("start_half")) or "am"
    end_half = _text(values.get("end_half")) or "pm"
    if start_half not in HALVES:
        errors["start_half"] = [_("Choose morning or afternoon.")]
    if end_half not in HALVES:
        errors["end_half"] = [_("Choose morning or afternoon.")]
    reason = _text(values.get("reason"))
    if len(reason) > MAX_REASON:
        errors["reason"] = [_("At most %(n)s characters.", n=MAX_REASON)]
    half_days = 0
    if starts_on and ends_on and not errors.keys() & {"start_half", "end_half"}:
        today = local_today()
        if (starts_on, HALVES.index(start_half)) > (ends_on, HALVES.index(end_half)):
            errors["ends_on"] = [_("The leave cannot end before it starts.")]
        elif abs((starts_on - today).days) > 400 or (ends_on - starts_on).days > 400:
            errors["ends_on"] = [_("Choose dates within a year of today.")]
        else:
            half_days = working_half_days(
                schedule_of(owner.id), starts_on, start_half, ends_on, end_half
            )
            if half_days == 0:
                errors["ends_on"] = [
                    _("These dates cover no working day: there is nothing to take off.")
                ]
            elif kind is not None and kind.uses_balance and starts_on.year != ends_on.year:
                errors["ends_on"] = [
                    _("Leave taken from a yearly balance ends in the same year: ask twice.")
                ]
            else:
                other = overlapping(owner.id, starts_on, start_half, ends_on, end_half)
                if other is not None:
                    errors["starts_on"] = [
                        _(
                            "You already asked for leave from %(first)s to %(last)s "
                            "(%(status)s): these dates overlap.",
                            first=other.starts_on.isoformat(),
                            last=other.ends_on.isoformat(),
                            status=_status_text(other.status),
                        )
                    ]
    if errors:
        raise ValidationFailed(errors)
    assert kind is not None and starts_on is not None and ends_on is not None
    return Draft(kind, starts_on, start_half, ends_on, end_half, half_days, reason)


def _status_text(status: str) -> str:
    from .vocabulary import label

    return label("request_status", status)


def leave_facts(draft: Draft, owner: User, has_certificate: bool) -> dict[str, Any]:
    """The facts ``rules/leave_approval.yaml`` decides on."""
    balance = 0
    if draft.kind.uses_balance:
        balance = available_half_days(owner.id, draft.kind.code, draft.starts_on.year)
    return {
        "leave_type": draft.kind.code,
        "days": Decimal(draft.half_days) / 2,
        "days_in_advance": (draft.starts_on - local_today()).days,
        "balance_days": Decimal(balance) / 2,
        "has_medical_certificate": has_certificate,
    }


def _refuse_by_rules(facts: Mapping[str, Any]) -> None:
    """Ask the rule file in force before anything is written: facts it refuses, or a
    rule that rejects, come back as per-field messages and nothing is saved."""
    from portal.rules.engine import RuleInputError
    from portal.rules.service import rules

    try:
        evaluation = rules().evaluate(RULESET, facts)
    except RuleInputError as error:
        fields: dict[str, list[str]] = {}
        for name, messages in error.fields.items():
            fields.setdefault(FACT_FIELDS.get(name, name), []).extend(str(m) for m in messages)
        raise ValidationFailed(fields) from None
    if evaluation.outputs.get("decision") == "reject":
        rule_id = evaluation.rules[0].split("#")[0] if evaluation.rules else ""
        field = RULE_FIELDS.get(rule_id, "starts_on")
        raise ValidationFailed({field: [str(rule_text(evaluation.outputs.get("reason")))]})


def upload_limit() -> int:
    return int(current_app.config.get("DAILY_UPLOAD_MAX_BYTES") or DEFAULT_MAX_BYTES)


def _store_documents(request: LeaveRequest, uploads: Sequence[Any], actor: User) -> None:
    from portal.files import chosen_uploads

    chosen = chosen_uploads(uploads)
    if len(chosen) + len(request.documents) > MAX_DOCUMENTS:
        raise ValidationFailed({UPLOAD_FIELD: [_("At most %(n)s files.", n=MAX_DOCUMENTS)]})
    stored = store_uploads(
        chosen, UPLOAD_AREA, types=IMAGE_AND_PDF_TYPES, max_bytes=upload_limit(), field=UPLOAD_FIELD
    )
    when = utcnow()
    for item in stored:
        db.session.add(
            LeaveDocument(
                request_id=request.id,
                **item.columns(),
                uploaded_by_id=actor.id,
                uploaded_at=when,
            )
        )
    db.session.flush()
    db.session.expire(request, ["documents"])


def request_title(request: LeaveRequest, owner: User) -> str:
    kind = db.session.get(LeaveType, request.leave_type)
    return _(
        "%(type)s for %(name)s: %(first)s to %(last)s (%(days)s days)",
        type=type_name(kind),
        name=owner.display_name,
        first=request.starts_on.isoformat(),
        last=request.ends_on.isoformat(),
        days=format(request.half_days / 2, "g"),
    )


def create_request(
    values: Mapping[str, Any], owner: User, uploads: Sequence[Any] = ()
) -> LeaveRequest:
    """Ask for leave: check it, let the rule file decide (a rejection saves nothing and
    answers per field), then write the request with its documents and send it into
    approval. The caller commits once (files of a rolled-back request are deleted)."""
    from portal.files import chosen_uploads
    from portal.loops import approvals
    from portal.loops.notifications import portal_path

    draft = check_request(values, owner)
    chosen = chosen_uploads(uploads)
    if len(chosen) > MAX_DOCUMENTS:
        raise ValidationFailed({UPLOAD_FIELD: [_("At most %(n)s files.", n=MAX_DOCUMENTS)]})
    facts = leave_facts(draft, owner, has_certificate=bool(chosen))
    _refuse_by_rules(facts)
    request = LeaveRequest(
        owner_id=owner.id,
        leave_type=draft.kind.code,
        starts_on=draft.starts_on,
        start_half=draft.start_half,
        ends_on=draft.ends_on,
        end_half=draft.end_half,
        half_days=draft.half_days,
        reason=draft.reason,
        status="pending",
    )
    db.session.add(request)
    db.session.flush()
    _store_documents(request, chosen, owner)  # checked and written, or nothing
    approval = approvals.submit(
        APPROVAL_KIND,
        request_title(request, owner),
        owner,
        facts,
        subject=(SUBJECT_TABLE, request.id),
        subject_link=portal_path("daily_leave.detail", request_id=request.id),
    )
    request.approval_id = approval.id
    if approval.status == "rejected":  # the rule file changed in between: same answer
        raise ValidationFailed({"starts_on": [str(rule_text(approval.reason))]})
    db.session.flush()
    return request


def add_documents(request: LeaveRequest, uploads: Sequence[Any], actor: User) -> LeaveRequest:
    """Attach documents later (a certificate an approver asked for, or one brought back
    from hospital): the requester, while the leave is pending or approved."""
    from portal.files import chosen_uploads

    if actor.id != request.owner_id:
        raise NotAllowed(_("Only the requester adds documents."))
    if request.status not in LIVE_STATUSES:
        raise StateConflict(_("This request is already closed."))
    if not chosen_uploads(uploads):
        raise ValidationFailed({UPLOAD_FIELD: [_("Choose a file.")]})
    _store_documents(request, uploads, actor)
    return request


# -- decisions and cancelling ---------------------------------------------------------------


def _reclassify(request: LeaveRequest) -> None:
    """Days already past are classified again (absent becomes on leave, or back)."""
    today = local_today()
    if request.starts_on > today:
        return
    from .attendance import reclassify

    reclassify(request.owner_id, request.starts_on, min(request.ends_on, today))


def on_leave_decided(approval: Any) -> None:
    """The approval kind's callback, in the deciding transaction: approved leave uses
    its balance and past days are classified again; rejected or withdrawn leave is
    closed. The requester is told (unless they did it themselves)."""
    from portal.loops.notifications import notify, portal_path

    if approval.subject_table != SUBJECT_TABLE or not approval.subject_id:
        return
    request = db.session.get(LeaveRequest, int(approval.subject_id))
    if request is None or request.status != "pending":
        return
    if request.approval_id not in (None, approval.id):
        return
    request.approval_id = approval.id
    if approval.status == "returned":
        # Back with the requester (a question, a missing certificate): the leave stays
        # pending and holds its days until they send the approval again or withdraw.
        pass
    elif approval.status == "approved":
        request.status = "approved"
        _use_balance(request, 1)
        _reclassify(request)
    elif approval.status == "cancelled":
        request.status = "cancelled"
    else:
        request.status = "rejected"
    if request.status != "pending":
        request.decided_at = approval.decided_at or utcnow()
    db.session.flush()
    if approval.status == "cancelled" or not approval.steps:
        return  # the requester withdrew it, or the rule file decided while they waited
    last = next((s for s in reversed(approval.steps) if s.acted_at is not None), None)
    body = (last.comment if last is not None else "") or rule_text(approval.reason)
    notify(
        request.owner_id,
        "daily.leave_decided",
        _decided_title(request),
        body or "",
        portal_path("daily_leave.detail", request_id=request.id),
    )


def _decided_title(request: LeaveRequest) -> Any:
    first, last = request.starts_on.isoformat(), request.ends_on.isoformat()
    if request.status == "approved":
        return _l("Leave approved: %(first)s to %(last)s", first=first, last=last)
    if request.status == "pending":
        return _l("Leave returned to you: %(first)s to %(last)s", first=first, last=last)
    return _l("Leave rejected: %(first)s to %(last)s", first=first, last=last)


def cancellable_by(request: LeaveRequest, user: User) -> bool:
    """Whether ``user`` may cancel: the requester while pending or before an approved
    leave starts; HR (``daily.manage_attendance``) an approved leave at any time."""
    if request.status == "pending":
        return user.id == request.owner_id
    if request.status != "approved":
        return False
    if user.id == request.owner_id and request.starts_on > local_today():
        return True
    return user.can("daily.manage_attendance")


def cancel_request(request: LeaveRequest, actor: User) -> LeaveRequest:
    """Withdraw a pending request (its approval is cancelled) or cancel an approved
    leave that has not started (the balance comes back). Leave that has started is
    cancelled by HR only (the requester was away: attendance is corrected with it)."""
    from portal.loops import approvals
    from portal.loops.notifications import notify, portal_path

    if request.status not in LIVE_STATUSES:
        raise StateConflict(_("This request is already closed."))
    if not cancellable_by(request, actor):
        if actor.id == request.owner_id:
            raise NotAllowed(_("Leave that has started can only be cancelled by HR."))
        raise NotAllowed(_("Only the requester can withdraw a pending request."))
    if request.status == "pending":
        approval = approval_of(request)
        if approval is not None and approval.status == "returned":
            # Returned to the requester: nobody is asked any more, so it simply closes.
            request.status = "cancelled"
            request.decided_at = utcnow()
            db.session.flush()
            return request
        if approval is None or approval.status != "pending":
            raise StateConflict(_("This request was decided meanwhile. Reload it."))
        approvals.cancel(approval, actor)  # on_leave_decided closes the request
        return request
    request.status = "cancelled"
    request.decided_at = utcnow()
    _use_balance(request, -1)
    _reclassify(request)
    db.session.flush()
    if actor.id != request.owner_id:
        notify(
            request.owner_id,
            "daily.leave_decided",
            _l(
                "Leave cancelled by HR: %(first)s to %(last)s",
                first=request.starts_on.isoformat(),
                last=request.ends_on.isoformat(),
            ),
            "",
            portal_path("daily_leave.detail", request_id=request.id),
        )
    return request
