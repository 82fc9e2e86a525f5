"""Translated labels of the daily-management vocabulary (codes live in models.py;
numbers in rule files). A code an admin adds in a rule file and that has no label here
is shown as the code itself, with underscores as spaces."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

LABELS: dict[str, dict[str, object]] = {
    "schedule_kind": {
        "standard": _l("Standard hours"),
        "flexible": _l("Flexible hours"),
        "field": _l("Field staff"),
    },
    "punch_kind": {"in": _l("Check-in"), "out": _l("Check-out")},
    "day_status": {
        "open": _l("Not yet classified"),
        "normal": _l("Normal"),
        "rest_day": _l("Rest day"),
        "on_leave": _l("On leave"),
        "late": _l("Late"),
        "seriously_late": _l("Seriously late"),
        "left_early": _l("Left early"),
        "missed_punch": _l("Missed punch"),
        "half_day_absence": _l("Half a day absent"),
        "absent": _l("Absent"),
    },
    "severity": {
        "none": _l("None"),
        "minor": _l("Minor"),
        "major": _l("Major"),
        "serious": _l("Serious"),
    },
    "period_status": {"open": _l("Open"), "reviewed": _l("Reviewed"), "locked": _l("Locked")},
    "request_status": {
        "pending": _l("Waiting for approval"),
        "approved": _l("Approved"),
        "rejected": _l("Rejected"),
        "cancelled": _l("Cancelled"),
    },
    "half": {"am": _l("Morning"), "pm": _l("Afternoon")},
    "attendance_follow_up": {
        "talk": _l("A talk with the supervisor"),
        "written_warning": _l("A written warning"),
        "hr_review": _l("An HR review"),
    },
    "leave_type": {
        "annual": _l("Annual leave"),
        "personal": _l("Personal leave (unpaid)"),
        "sick": _l("Sick leave"),
        "compensatory": _l("Time off in lieu"),
        "marriage": _l("Marriage leave"),
        "maternity": _l("Maternity leave"),
        "paternity": _l("Paternity leave"),
        "bereavement": _l("Bereavement leave"),
    },
    "cadence": {
        "weekly": _l("Weekly"),
        "monthly": _l("Monthly"),
        "quarterly": _l("Quarterly"),
        "ad_hoc": _l("Ad hoc"),
    },
    "meeting_status": {
        "planned": _l("Planned"),
        "held": _l("Held"),
        "closed": _l("Minutes published"),
        "cancelled": _l("Cancelled"),
    },
    "attendee_status": {
        "invited": _l("Invited"),
        "present": _l("Present"),
        "late": _l("Came late"),
        "absent": _l("Did not come"),
        "excused": _l("Excused"),
    },
    "agenda_source": {"topic": _l("Topic"), "carried": _l("Unfinished resolution")},
    "claim_status": {
        "draft": _l("Draft"),
        "pending": _l("Waiting for approval"),
        "approved": _l("Approved, to be paid"),
        "rejected": _l("Rejected"),
        "paid": _l("Paid out"),
        "cancelled": _l("Cancelled"),
    },
    "expense_category": {
        "meal": _l("Meals"),
        "hotel": _l("Hotel"),
        "taxi": _l("Taxi and local transport"),
        "travel": _l("Train and air travel"),
        "entertainment": _l("Customer entertainment"),
        "office": _l("Office supplies"),
        "other": _l("Other"),
    },
    "line_decision": {
        "approve": _l("Within the limits"),
        "reject": _l("Refused by the rules"),
        "escalate": _l("Over a limit: a higher approver"),
    },
}


def label(group: str, code: str | None) -> str:
    """The label of ``code`` in ``group`` in the reader's language; an unknown code as
    written (underscores as spaces); an empty code as a dash."""
    if not code:
        return "—"
    found = LABELS.get(group, {}).get(code)
    return str(found) if found is not None else code.replace("_", " ")


def choices(group: str, codes: tuple[str, ...] | list[str] | None = None) -> list[tuple[str, str]]:
    """(code, label) pairs for a select field, in the order given (or the labels')."""
    names = codes if codes is not None else tuple(LABELS.get(group, {}))
    return [(code, label(group, code)) for code in names]
