"""Team meetings (P6.2): weekly, monthly and quarterly meetings (and ad hoc ones) with an
agenda, materials prepared in advance, attendance, minutes and resolutions that are
carried out.

Who sees what: a meeting is owned by its organiser and read through ``portal.scoping``
(the organiser, their leaders, managers) *or* by being one of its attendees; nobody
else learns it exists (404). Only the organiser's write scope changes it, and only
with ``daily.run_meetings``. The numbers (when materials are due, whether a late file is
still taken, when a resolution is due) come from ``rules/meetings.yaml``.

The closed loop: each resolution is also a core loop item (type ``daily.resolution``)
owned by the person who carries it out. Until that item is done or verified, the
resolution comes back by itself on the agenda of the team's next meeting (once per
meeting); ``sync_from_loop`` follows the item wherever it is closed or reopened.

Services validate and add to the session; they never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import abort, current_app
from flask_babel import LazyString, format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.auth.models import User
from portal.extensions import db
from portal.files import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TYPES,
    chosen_uploads,
    discard_stored,
    store_uploads,
)
from portal.listing import id_arg
from portal.loops import service as loops
from portal.loops.errors import NotAllowed, StateConflict
from portal.loops.models import LoopItem
from portal.loops.notifications import notify, portal_path
from portal.models import as_utc, utcnow
from portal.org.models import OrgUnit
from portal.org.services import ValidationFailed
from portal.rules.service import rules
from portal.scoping import can_reach, led_unit_paths, people_in_scope, visible_owner_ids

from .calendar import local_today, portal_zone
from .models import (
    ATTENDEE_STATUSES,
    MEETING_CADENCES,
    AgendaItem,
    Meeting,
    MeetingAttendee,
    MeetingMaterial,
    Resolution,
)

RULESET = "meetings"
SUBJECT_TABLE = "daily_meeting"
RESOLUTION_TABLE = "daily_resolution"
LOOP_TYPE = "daily.resolution"
MATERIALS_AREA = "daily_meetings"
# Bounds of one meeting (what a form or an API call may send).
MAX_ATTENDEES = 300
MAX_AGENDA_ITEMS = 40
MAX_TITLE = 200
MAX_LOCATION = 200
MAX_MINUTES = 50_000
MAX_RESOLUTION = 2_000
MAX_FILES_PER_UPLOAD = 10
MAX_MATERIALS = 200
MAX_LENGTH = timedelta(hours=24)  # a meeting lasts at most a day
EARLIEST_START = timedelta(days=366)  # a past meeting may still be recorded within a year
LATEST_START = timedelta(days=2 * 366)
MAX_RESOLUTION_DUE_DAYS = 365
# What may happen to a meeting in each state.
EDITABLE = ("planned",)  # details, attendees and agenda
RUNNABLE = ("planned", "held")  # attendance, minutes, resolutions
MARKED = tuple(status for status in ATTENDEE_STATUSES if status != "invited")
DONE_LOOP_STATUSES = ("done", "verified")


def meeting_path(meeting_id: int) -> str:
    """The meeting's page, also outside a request (notifications, loop links)."""
    return portal_path("daily_meetings.detail", meeting_id=meeting_id)


# -- who sees what ----------------------------------------------------------------------


def readable_condition(user: User) -> Any:
    """Meetings ``user`` may read: the organiser in their read scope, or invited."""
    invited = sa.select(MeetingAttendee.meeting_id).where(MeetingAttendee.user_id == user.id)
    owners = visible_owner_ids(user, "read")
    if owners is None:
        return sa.true()
    return sa.or_(Meeting.owner_id.in_(owners), Meeting.id.in_(invited))


def meetings_for(user: User) -> sa.Select:
    """A SELECT of the meetings ``user`` may read."""
    return sa.select(Meeting).where(readable_condition(user))


def get_meeting_or_404(meeting_id: int, user: User, verb: str = "read") -> Meeting:
    """One meeting: 404 when ``user`` may not read it (its existence stays hidden), 403
    when they may read but not change it (``verb="write"``)."""
    meeting = db.session.scalars(
        meetings_for(user).where(Meeting.id == meeting_id).limit(1)
    ).first()
    if meeting is None:
        abort(404)
    if verb != "read" and not may_run(meeting, user):
        abort(403)
    return meeting


def may_run(meeting: Meeting, user: User) -> bool:
    """Whether ``user`` changes and runs ``meeting``: the right to run meetings and the
    organiser in their write scope."""
    return user.can("daily.run_meetings") and can_reach(meeting, user, "write")


def is_attendee(meeting: Meeting, user: User) -> bool:
    """Whether ``user`` is asked to ``meeting``."""
    return (
        db.session.get(MeetingAttendee, {"meeting_id": meeting.id, "user_id": user.id}) is not None
    )


def may_upload(meeting: Meeting, user: User) -> bool:
    """Attendees and whoever runs the meeting bring materials, until minutes are out."""
    if meeting.status not in RUNNABLE:
        return False
    return is_attendee(meeting, user) or may_run(meeting, user)


# -- choices -----------------------------------------------------------------------------


def unit_choices(user: User) -> list[tuple[int, str]]:
    """Units ``user`` may call a meeting for: the subtrees of the units they lead (every
    unit for a write scope over everyone), in tree order."""
    statement = sa.select(OrgUnit.id, OrgUnit.name, OrgUnit.path).where(OrgUnit.active.is_(True))
    if user.scope_for("write") != "all":
        paths = led_unit_paths(user)
        if not paths:
            return []
        statement = statement.where(
            sa.or_(*(OrgUnit.path.startswith(path, autoescape=True) for path in paths))
        )
    rows = db.session.execute(statement.order_by(OrgUnit.path, OrgUnit.id).limit(500))
    return [(row.id, "· " * max(row.path.count("/") - 2, 0) + row.name) for row in rows]


def unit_people(unit_id: int, limit: int = MAX_ATTENDEES) -> list[tuple[int, str]]:
    """(id, name) of the active people of a unit's whole subtree and its leader: the
    default attendees."""
    unit = db.session.get(OrgUnit, unit_id)
    if unit is None:
        return []
    in_subtree = sa.select(OrgUnit.id).where(OrgUnit.path.startswith(unit.path, autoescape=True))
    condition = User.unit_id.in_(in_subtree)
    if unit.leader_id is not None:
        condition = sa.or_(condition, User.id == unit.leader_id)
    rows = db.session.execute(
        sa.select(User.id, User.display_name)
        .where(User.active.is_(True), condition)
        .order_by(User.display_name, User.id)
        .limit(limit)
    )
    return [(row.id, row.display_name) for row in rows]


def attendee_choices(
    actor: User, unit_id: int | None, current: Iterable[int] = ()
) -> list[tuple[int, str]]:
    """Whom the organiser may ask: the unit's people, the people in their own scope and
    whoever is already asked, by name."""
    found: dict[int, str] = dict(people_in_scope(actor, "read", limit=1000))
    if unit_id and unit_id in {uid for uid, _name in unit_choices(actor)}:
        found.update(unit_people(unit_id))  # only a team one leads shows its people
    missing = [pid for pid in current if pid not in found]
    if missing:
        rows = db.session.execute(
            sa.select(User.id, User.display_name).where(User.id.in_(missing[:MAX_ATTENDEES]))
        )
        found.update({row.id: row.display_name for row in rows})
    return sorted(found.items(), key=lambda pair: (pair[1], pair[0]))


def default_attendee_ids(actor: User, unit_id: int) -> list[int]:
    """Everyone of the unit's subtree, and the organiser (just the organiser for a unit
    they do not lead: its people stay unknown to them)."""
    led = unit_id in {uid for uid, _name in unit_choices(actor)}
    ids = [pid for pid, _name in unit_people(unit_id)] if led else []
    if actor.id not in ids:
        ids.insert(0, actor.id)
    return ids[:MAX_ATTENDEES]


# -- the rule file -------------------------------------------------------------------------


@dataclass(frozen=True)
class MeetingRules:
    """What rules/meetings.yaml answers for one cadence."""

    materials_due_hours_before: int
    late_materials: str
    resolution_due_days: int
    remind_hours_before: int
    evaluation: Any
    version_id: int | None


def meeting_rules(cadence: str) -> MeetingRules:
    """Ask the rule file (before anything is written: publishing a changed file uses a
    session of its own that an open write of ours would block on SQLite)."""
    active = rules().active(RULESET)
    evaluation = rules().runtime.evaluate(
        active.rule_file, {"cadence": cadence}, version=active.version
    )
    outputs = evaluation.outputs
    return MeetingRules(
        materials_due_hours_before=int(outputs.get("materials_due_hours_before") or 0),
        late_materials=str(outputs.get("late_materials") or "accept"),
        resolution_due_days=int(outputs.get("resolution_due_days") or 7),
        remind_hours_before=int(outputs.get("remind_hours_before") or 0),
        evaluation=evaluation,
        version_id=active.version_id,
    )


def default_resolution_due(meeting: Meeting, now: datetime | None = None) -> date:
    """A resolution's default due date: the rule file's days after the meeting (never
    before tomorrow)."""
    days = meeting_rules(meeting.cadence).resolution_due_days
    held_on = as_utc(meeting.starts_at).astimezone(portal_zone()).date()
    return max(held_on + timedelta(days=days), local_today(now) + timedelta(days=1))


# -- calling a meeting ----------------------------------------------------------------------


def _moment(value: Any) -> datetime | None:
    """A datetime as UTC; a naive one is read in the portal's time zone."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=portal_zone())
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01 00:00 in Shanghai is before year 1 in UTC
        return None


def _ids(values: Any) -> list[int] | None:
    if values is None:
        return None
    found: list[int] = []
    for value in values:
        try:
            number = int(value)
        except (TypeError, ValueError):
            continue
        if number not in found:
            found.append(number)
    return found


def _clean(
    values: Mapping[str, Any], actor: User, now: datetime, current: Meeting | None = None
) -> dict[str, Any]:
    """Checked values of a meeting, or ValidationFailed with a message per field."""
    problems: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    units = dict(unit_choices(actor))
    unit_id = values.get("unit_id")
    try:
        unit_id = int(unit_id) if unit_id not in (None, "") else None
    except (TypeError, ValueError):
        unit_id = None
    keeps_unit = current is not None and unit_id == current.unit_id
    if unit_id is None:
        problems["unit_id"] = [_("Choose the team the meeting is for.")]
    elif unit_id not in units and not keeps_unit:
        problems["unit_id"] = [_("Choose one of the teams you lead.")]
    cleaned["unit_id"] = unit_id
    title = " ".join(str(values.get("title") or "").split())
    if not title:
        problems["title"] = [_("Give the meeting a title.")]
    elif len(title) > MAX_TITLE:
        problems["title"] = [_("At most %(n)s characters.", n=MAX_TITLE)]
    cleaned["title"] = title
    cadence = str(values.get("cadence") or "").strip()
    if cadence not in MEETING_CADENCES:
        problems["cadence"] = [_("Choose weekly, monthly, quarterly or ad hoc.")]
    cleaned["cadence"] = cadence
    location = " ".join(str(values.get("location") or "").split())
    if len(location) > MAX_LOCATION:
        problems["location"] = [_("At most %(n)s characters.", n=MAX_LOCATION)]
    cleaned["location"] = location
    starts_at = _moment(values.get("starts_at"))
    if starts_at is None:
        problems["starts_at"] = [_("Give the date and time the meeting starts.")]
    elif starts_at < now - EARLIEST_START:
        problems["starts_at"] = [_("The start is more than a year ago.")]
    elif starts_at > now + LATEST_START:
        problems["starts_at"] = [_("The start is more than two years ahead.")]
    ends_at = _moment(values.get("ends_at"))
    if values.get("ends_at") not in (None, "") and ends_at is None:
        problems["ends_at"] = [_("Give a date and time, e.g. 2026-03-01 14:30.")]
    elif ends_at is not None and starts_at is not None:
        if ends_at <= starts_at:
            problems["ends_at"] = [_("The meeting must end after it starts.")]
        elif ends_at - starts_at > MAX_LENGTH:
            problems["ends_at"] = [_("A meeting lasts at most a day.")]
    cleaned["starts_at"], cleaned["ends_at"] = starts_at, ends_at
    attendee_ids = _ids(values.get("attendee_ids"))
    if attendee_ids is None and unit_id is not None and "unit_id" not in problems:
        attendee_ids = default_attendee_ids(actor, unit_id)
    attendee_ids = attendee_ids or []
    current_ids = [a.user_id for a in _attendees(current)] if current is not None else []
    allowed = {pid for pid, _name in attendee_choices(actor, unit_id, current_ids)}
    if not attendee_ids:
        problems["attendee_ids"] = [_("Ask at least one person.")]
    elif len(attendee_ids) > MAX_ATTENDEES:
        problems["attendee_ids"] = [_("At most %(n)s attendees.", n=MAX_ATTENDEES)]
    elif any(pid not in allowed for pid in attendee_ids):
        problems["attendee_ids"] = [_("Choose attendees from the people offered.")]
    cleaned["attendee_ids"] = attendee_ids
    agenda: list[tuple[str, int | None]] = []
    agenda_problems: list[str] = []
    for number, row in enumerate(values.get("agenda") or (), start=1):
        row_title = " ".join(str(row.get("title") or "").split())
        presenter = row.get("presenter_id")
        try:
            presenter = int(presenter) if presenter not in (None, "", 0, "0") else None
        except (TypeError, ValueError):
            presenter = -1
        if not row_title:
            if presenter:
                agenda_problems.append(_("Item %(n)s: give it a title.", n=number))
            continue
        if len(row_title) > MAX_TITLE:
            agenda_problems.append(_("Item %(n)s: at most %(max)s characters.", n=number, max=200))
        if presenter is not None and presenter not in attendee_ids:
            agenda_problems.append(_("Item %(n)s: the presenter must be an attendee.", n=number))
        agenda.append((row_title, presenter))
    if len(agenda) > MAX_AGENDA_ITEMS:
        agenda_problems.append(_("At most %(n)s agenda items.", n=MAX_AGENDA_ITEMS))
    if agenda_problems:
        problems["agenda"] = agenda_problems
    cleaned["agenda"] = agenda
    if problems:
        raise ValidationFailed(problems)
    return cleaned


def _attendees(meeting: Meeting | None) -> list[MeetingAttendee]:
    if meeting is None or meeting.id is None:
        return []
    return list(
        db.session.scalars(
            sa.select(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting.id)
        )
    )


def attendees_of(meeting: Meeting) -> list[MeetingAttendee]:
    """Who is asked, by name (the person is loaded with each row)."""
    return sorted(_attendees(meeting), key=lambda row: (row.user.display_name.lower(), row.user_id))


def _notify_called(meeting: Meeting, user_ids: Iterable[int], actor: User) -> None:
    for user_id in user_ids:
        if user_id == actor.id:
            continue
        notify(
            user_id,
            "daily.meeting_called",
            _l("Meeting: %(title)s", title=meeting.title),
            _l(
                "%(organiser)s asks you to the meeting on %(when)s. Bring your materials.",
                organiser=actor.display_name,
                when=_when_text(meeting.starts_at),
            ),
            link=meeting_path(meeting.id),
        )


def _when_text(moment: datetime) -> LazyString:
    """The time in the reader's language and time zone, rendered when shown."""
    return LazyString(lambda: format_datetime(as_utc(moment), "short"))


def create_meeting(values: Mapping[str, Any], actor: User, now: datetime | None = None) -> Meeting:
    """Call a meeting: the organiser owns it, the attendees are told, the materials
    deadline comes from the rule file and the team's unfinished resolutions go on the
    agenda."""
    now = as_utc(now) or utcnow()
    if not actor.can("daily.run_meetings"):
        raise NotAllowed(_("You may not call meetings."))
    cleaned = _clean(values, actor, now)
    answer = meeting_rules(cleaned["cadence"])
    meeting = Meeting(
        owner_id=actor.id,
        unit_id=cleaned["unit_id"],
        cadence=cleaned["cadence"],
        title=cleaned["title"],
        starts_at=cleaned["starts_at"],
        ends_at=cleaned["ends_at"],
        location=cleaned["location"],
        status="planned",
        materials_due_at=cleaned["starts_at"] - timedelta(hours=answer.materials_due_hours_before),
    )
    db.session.add(meeting)
    db.session.flush()
    rules().record(answer.evaluation, (SUBJECT_TABLE, meeting.id), answer.version_id)
    for user_id in cleaned["attendee_ids"]:
        db.session.add(MeetingAttendee(meeting_id=meeting.id, user_id=user_id))
    for position, (title, presenter) in enumerate(cleaned["agenda"]):
        db.session.add(
            AgendaItem(
                meeting_id=meeting.id, position=position, title=title, presenter_id=presenter
            )
        )
    db.session.flush()
    carry_open_resolutions(meeting)
    _notify_called(meeting, cleaned["attendee_ids"], actor)
    db.session.refresh(meeting)
    return meeting


def update_meeting(
    meeting: Meeting, values: Mapping[str, Any], actor: User, now: datetime | None = None
) -> Meeting:
    """Change a planned meeting (the caller checked the write scope). Newly asked people
    are told; people taken off are dropped with their attendance; the topics are
    replaced, carried resolutions stay."""
    now = as_utc(now) or utcnow()
    if meeting.status not in EDITABLE:
        raise StateConflict(_("Only a planned meeting can be changed."))
    cleaned = _clean(values, actor, now, meeting)
    answer = meeting_rules(cleaned["cadence"])
    before = {row.user_id: row for row in _attendees(meeting)}
    for name in ("unit_id", "cadence", "title", "starts_at", "ends_at", "location"):
        setattr(meeting, name, cleaned[name])
    due_at = cleaned["starts_at"] - timedelta(hours=answer.materials_due_hours_before)
    if as_utc(meeting.materials_due_at) != due_at:
        meeting.materials_due_at, meeting.reminded_at = due_at, None  # remind again
    wanted = cleaned["attendee_ids"]
    for user_id, row in before.items():
        if user_id not in wanted:
            db.session.delete(row)
    added = [user_id for user_id in wanted if user_id not in before]
    for user_id in added:
        db.session.add(MeetingAttendee(meeting_id=meeting.id, user_id=user_id))
    topics = [item for item in meeting.agenda if item.source == "topic"]
    carried = [item for item in meeting.agenda if item.source != "topic"]
    if carried:  # moved to another team: the old team's resolutions leave its agenda
        units = dict(
            db.session.execute(
                sa.select(Resolution.id, Resolution.unit_id).where(
                    Resolution.id.in_([item.resolution_id for item in carried])
                )
            ).all()
        )
        for item in [i for i in carried if units.get(i.resolution_id) != meeting.unit_id]:
            db.session.execute(
                sa.update(MeetingMaterial)
                .where(MeetingMaterial.agenda_item_id == item.id)
                .values(agenda_item_id=None)
            )
            db.session.delete(item)
            carried.remove(item)
    kept_ids = set()
    for position, (title, presenter) in enumerate(cleaned["agenda"]):
        if position < len(topics):
            item = topics[position]
            item.title, item.presenter_id, item.position = title, presenter, position
            kept_ids.add(item.id)
        else:
            db.session.add(
                AgendaItem(
                    meeting_id=meeting.id, position=position, title=title, presenter_id=presenter
                )
            )
    for item in topics:
        if item.id not in kept_ids:
            db.session.execute(
                sa.update(MeetingMaterial)
                .where(MeetingMaterial.agenda_item_id == item.id)
                .values(agenda_item_id=None)
            )
            db.session.delete(item)
    for offset, item in enumerate(carried):
        item.position = len(cleaned["agenda"]) + offset
    meeting.updated_at = now
    db.session.flush()
    rules().record(answer.evaluation, (SUBJECT_TABLE, meeting.id), answer.version_id)
    carry_open_resolutions(meeting)
    _notify_called(meeting, added, actor)
    db.session.expire(meeting, ["agenda"])
    return meeting


def cancel_meeting(meeting: Meeting, actor: User) -> Meeting:
    """Call a planned meeting off; the attendees are told."""
    if meeting.status not in EDITABLE:
        raise StateConflict(_("Only a planned meeting can be cancelled."))
    meeting.status = "cancelled"
    db.session.flush()
    for row in _attendees(meeting):
        if row.user_id != actor.id:
            notify(
                row.user_id,
                "daily.meeting_called",
                _l("Cancelled: %(title)s", title=meeting.title),
                _l(
                    "The meeting on %(when)s will not take place.",
                    when=_when_text(meeting.starts_at),
                ),
                link=meeting_path(meeting.id),
            )
    return meeting


# -- carrying unfinished resolutions --------------------------------------------------------


def carry_open_resolutions(meeting: Meeting) -> int:
    """Put every open resolution of the team's earlier meetings on a planned meeting's
    agenda, once (the unique key on meeting and resolution guards a race); returns how
    many were added."""
    if meeting.status != "planned" or meeting.unit_id is None:
        return 0
    already = sa.select(AgendaItem.resolution_id).where(
        AgendaItem.meeting_id == meeting.id, AgendaItem.resolution_id.is_not(None)
    )
    earlier = sa.select(Meeting.id).where(
        Meeting.unit_id == meeting.unit_id,
        Meeting.id != meeting.id,
        Meeting.starts_at < meeting.starts_at,
    )
    found = list(
        db.session.scalars(
            sa.select(Resolution)
            .where(
                Resolution.unit_id == meeting.unit_id,
                Resolution.closed.is_(False),
                Resolution.meeting_id.in_(earlier),
                Resolution.id.not_in(already),
            )
            .order_by(Resolution.due_on, Resolution.id)
            .limit(MAX_AGENDA_ITEMS)
        )
    )
    if not found:
        return 0
    position = (
        db.session.scalar(
            sa.select(sa.func.max(AgendaItem.position)).where(AgendaItem.meeting_id == meeting.id)
        )
        or 0
    )
    for offset, resolution in enumerate(found, start=1):
        db.session.add(
            AgendaItem(
                meeting_id=meeting.id,
                position=position + offset,
                title=" ".join(resolution.text.split())[:MAX_TITLE],
                presenter_id=resolution.owner_id,
                source="carried",
                resolution_id=resolution.id,
            )
        )
    db.session.flush()
    db.session.expire(meeting, ["agenda"])
    return len(found)


def resolutions_by_id(ids: Iterable[int]) -> dict[int, Resolution]:
    """The resolutions of carried agenda items, in one query."""
    wanted = sorted({rid for rid in ids if rid})
    if not wanted:
        return {}
    return {
        row.id: row
        for row in db.session.scalars(sa.select(Resolution).where(Resolution.id.in_(wanted)))
    }


def sync_from_loop(loop_id: int) -> None:
    """Follow a resolution's loop item (``core.loop_changed``): done or verified closes
    the resolution (it leaves later agendas), reopened opens it again."""
    item = db.session.get(LoopItem, loop_id)
    if item is None:
        return
    closed = item.status in DONE_LOOP_STATUSES
    for resolution in db.session.scalars(
        sa.select(Resolution).where(Resolution.loop_id == loop_id)
    ):
        if resolution.closed != closed:
            resolution.closed = closed
    db.session.flush()


# -- materials -----------------------------------------------------------------------------


def materials_of(meeting: Meeting) -> list[MeetingMaterial]:
    """The meeting's files, oldest first (uploader loaded with each)."""
    return list(
        db.session.scalars(
            sa.select(MeetingMaterial)
            .where(MeetingMaterial.meeting_id == meeting.id)
            .order_by(MeetingMaterial.uploaded_at, MeetingMaterial.id)
            .limit(MAX_MATERIALS)
        )
    )


def upload_materials(
    meeting: Meeting,
    actor: User,
    files: Sequence[Any],
    agenda_item_id: int | None = None,
    now: datetime | None = None,
) -> list[MeetingMaterial]:
    """Store files prepared for the meeting (all or none). After the deadline the rule
    file decides: kept and marked late, or refused."""
    now = as_utc(now) or utcnow()
    if meeting.status not in RUNNABLE:
        raise StateConflict(_("The minutes are published: materials can no longer be added."))
    if not (is_attendee(meeting, actor) or may_run(meeting, actor)):
        raise NotAllowed(_("Only the attendees and the organiser bring materials."))
    uploads = chosen_uploads(files)
    if not uploads:
        raise ValidationFailed({"files": [_("Choose a file to upload.")]})
    if len(uploads) > MAX_FILES_PER_UPLOAD:
        raise ValidationFailed(
            {"files": [_("Upload at most %(n)s files at a time.", n=MAX_FILES_PER_UPLOAD)]}
        )
    count = db.session.scalar(
        sa.select(sa.func.count()).where(MeetingMaterial.meeting_id == meeting.id)
    )
    if count + len(uploads) > MAX_MATERIALS:
        raise ValidationFailed(
            {"files": [_("A meeting keeps at most %(n)s files.", n=MAX_MATERIALS)]}
        )
    if agenda_item_id is not None and agenda_item_id not in {item.id for item in meeting.agenda}:
        raise ValidationFailed({"agenda_item_id": [_("Choose an item of this agenda.")]})
    due = as_utc(meeting.materials_due_at)
    late = due is not None and now > due
    if late and meeting_rules(meeting.cadence).late_materials == "refuse":
        raise ValidationFailed(
            {"files": [_("The deadline for materials has passed: files are no longer taken.")]}
        )
    stored = store_uploads(
        uploads,
        MATERIALS_AREA,
        types=current_app.config.get("DAILY_MEETING_FILE_TYPES") or DEFAULT_TYPES,
        max_bytes=int(current_app.config.get("DAILY_UPLOAD_MAX_BYTES", DEFAULT_MAX_BYTES)),
        field="files",
    )
    rows = [
        MeetingMaterial(
            meeting_id=meeting.id,
            agenda_item_id=agenda_item_id,
            **file.columns(),
            uploaded_by_id=actor.id,
            uploaded_at=now,
            late=late,
        )
        for file in stored
    ]
    db.session.add_all(rows)
    db.session.flush()
    return rows


def get_material_or_404(meeting: Meeting, material_id: int) -> MeetingMaterial:
    """One file of a meeting the caller may read."""
    material = db.session.get(MeetingMaterial, material_id)
    if material is None or material.meeting_id != meeting.id:
        abort(404)
    return material


def delete_material(meeting: Meeting, material: MeetingMaterial, actor: User) -> None:
    """Remove a file: its uploader or the organiser, until minutes are published."""
    if meeting.status not in RUNNABLE:
        raise StateConflict(_("The minutes are published: materials are kept as they are."))
    if material.uploaded_by_id != actor.id and not may_run(meeting, actor):
        raise NotAllowed(_("Only who uploaded a file or the organiser removes it."))
    discard_stored(MATERIALS_AREA, [material.stored_name])  # off the disk once committed
    db.session.delete(material)
    db.session.flush()


# -- running the meeting -------------------------------------------------------------------


def _check_runnable(meeting: Meeting) -> None:
    if meeting.status not in RUNNABLE:
        raise StateConflict(
            _("The minutes are published: the meeting cannot be changed any more.")
            if meeting.status == "closed"
            else _("The meeting was cancelled.")
        )


def _held(meeting: Meeting) -> None:
    if meeting.status == "planned":
        meeting.status = "held"


def mark_attendance(
    meeting: Meeting, actor: User, user_id: int, status: str, note: str = ""
) -> MeetingAttendee:
    """Record whether an attendee came (present, late, absent, excused)."""
    _check_runnable(meeting)
    row = db.session.get(MeetingAttendee, {"meeting_id": meeting.id, "user_id": user_id})
    if row is None:
        raise ValidationFailed({"user_id": [_("This person is not asked to the meeting.")]})
    problems: dict[str, list[str]] = {}
    if status not in MARKED:
        problems["status"] = [_("Choose present, late, absent or excused.")]
    note = " ".join(str(note or "").split())
    if len(note) > 200:
        problems["note"] = [_("At most %(n)s characters.", n=200)]
    if problems:
        raise ValidationFailed(problems)
    row.status, row.note = status, note
    _held(meeting)
    db.session.flush()
    return row


def save_minutes(
    meeting: Meeting, actor: User, minutes: str, item_notes: Mapping[int, str]
) -> Meeting:
    """Write the minutes, overall and per agenda item (locked once published)."""
    _check_runnable(meeting)
    problems: dict[str, list[str]] = {}
    minutes = str(minutes or "").strip()
    if len(minutes) > MAX_MINUTES:
        problems["minutes"] = [_("At most %(n)s characters.", n=MAX_MINUTES)]
    items = {item.id: item for item in meeting.agenda}
    for item_id, text in item_notes.items():
        if item_id not in items:
            problems.setdefault("agenda", []).append(_("An agenda item is not of this meeting."))
        elif len(str(text or "")) > MAX_MINUTES:
            problems.setdefault("agenda", []).append(
                _("%(title)s: at most %(n)s characters.", title=items[item_id].title, n=MAX_MINUTES)
            )
    if problems:
        raise ValidationFailed(problems)
    meeting.minutes = minutes
    for item_id, text in item_notes.items():
        items[item_id].notes = str(text or "").strip()
    _held(meeting)
    db.session.flush()
    return meeting


def resolution_owner_allowed(meeting: Meeting, actor: User, owner_id: int) -> bool:
    """A resolution is carried out by an attendee or by someone in the organiser's
    write scope."""
    if db.session.get(MeetingAttendee, {"meeting_id": meeting.id, "user_id": owner_id}):
        return True
    person = db.session.get(User, owner_id)
    return person is not None and loops.in_write_scope(actor, person)


def add_resolution(
    meeting: Meeting,
    actor: User,
    text: str,
    owner_id: int | None,
    due_on: date | None = None,
    now: datetime | None = None,
) -> Resolution:
    """Record a resolution: a row of the meeting and a loop item (``daily.resolution``)
    owned by who carries it out, told twice over (the loop's own notice and
    ``daily.resolution_assigned``). The due date defaults from the rule file."""
    now = as_utc(now) or utcnow()
    _check_runnable(meeting)
    problems: dict[str, list[str]] = {}
    text = str(text or "").strip()
    if not text:
        problems["text"] = [_("Write what was resolved.")]
    elif len(text) > MAX_RESOLUTION:
        problems["text"] = [_("At most %(n)s characters.", n=MAX_RESOLUTION)]
    owner_id = id_arg(owner_id)  # 2**70 is no person (and no database integer)
    owner = db.session.get(User, owner_id) if owner_id else None
    if owner is None or not owner.active:
        problems["owner_id"] = [_("Choose who carries it out.")]
    elif not resolution_owner_allowed(meeting, actor, owner.id):
        problems["owner_id"] = [_("Choose an attendee or someone of your team.")]
    today = local_today(now)
    if due_on is None:
        due_on = default_resolution_due(meeting, now)
    elif due_on < today:
        problems["due_on"] = [_("The due date cannot be in the past.")]
    elif due_on > today + timedelta(days=MAX_RESOLUTION_DUE_DAYS):
        problems["due_on"] = [_("The due date is more than a year ahead.")]
    if problems:
        raise ValidationFailed(problems)
    resolution = Resolution(
        meeting_id=meeting.id,
        unit_id=meeting.unit_id,
        text=text,
        owner_id=owner.id,
        due_on=due_on,
        closed=False,
        created_at=now,
    )
    db.session.add(resolution)
    db.session.flush()
    title = " ".join(text.split())
    item = loops.raise_loop(
        LOOP_TYPE,
        title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…",
        owner,
        raised_by=actor,
        due_at=loops.due_at_from_date(due_on),
        subject=(RESOLUTION_TABLE, resolution.id),
        subject_link=meeting_path(meeting.id),
        description=_("Resolution of the meeting %(title)s.", title=meeting.title) + "\n\n" + text,
        clause="P6.2",
        now=now,
    )
    resolution.loop_id = item.id
    _held(meeting)
    db.session.flush()
    notify(
        owner,
        "daily.resolution_assigned",
        _l("Resolution for you: %(title)s", title=title[:120]),
        _l("From the meeting %(meeting)s.", meeting=meeting.title),
        link=meeting_path(meeting.id),
    )
    return resolution


def resolutions_of(meeting: Meeting) -> list[Resolution]:
    """The resolutions taken in the meeting, in order."""
    return list(
        db.session.scalars(
            sa.select(Resolution)
            .where(Resolution.meeting_id == meeting.id)
            .order_by(Resolution.id)
            .limit(500)
        )
    )


def close_meeting(meeting: Meeting, actor: User, now: datetime | None = None) -> Meeting:
    """Publish the minutes: the meeting is locked and the attendees are told. The
    overall minutes are required."""
    _check_runnable(meeting)
    if not (meeting.minutes or "").strip():
        raise ValidationFailed({"minutes": [_("Write the minutes before publishing them.")]})
    meeting.status = "closed"
    meeting.updated_at = as_utc(now) or utcnow()
    db.session.flush()
    for row in _attendees(meeting):
        if row.user_id != actor.id:
            notify(
                row.user_id,
                "daily.minutes_published",
                _l("Minutes published: %(title)s", title=meeting.title),
                _l("The minutes and resolutions of the meeting are ready to read."),
                link=meeting_path(meeting.id),
            )
    return meeting


# -- the reminder job -----------------------------------------------------------------------

REMINDER_BATCH = 500


def send_meeting_reminders(now: datetime | None = None) -> dict[str, int]:
    """The job ``daily.meeting_reminders``: tell the attendees of each planned meeting
    whose materials deadline is less than the rule file's ``remind_hours_before`` away
    (once: ``reminded_at``). The scheduler commits."""
    now = as_utc(now) or utcnow()
    reminded = told = 0
    for cadence in MEETING_CADENCES:
        hours = meeting_rules(cadence).remind_hours_before
        if hours <= 0:
            continue
        due = db.session.scalars(
            sa.select(Meeting)
            .where(
                Meeting.status == "planned",
                Meeting.cadence == cadence,
                Meeting.reminded_at.is_(None),
                Meeting.materials_due_at > now,
                Meeting.materials_due_at <= now + timedelta(hours=hours),
            )
            .order_by(Meeting.materials_due_at, Meeting.id)
            .limit(REMINDER_BATCH)
        ).all()
        for meeting in due:
            meeting.reminded_at = now
            for row in _attendees(meeting):
                notify(
                    row.user_id,
                    "daily.meeting_reminder",
                    _l("Materials due: %(title)s", title=meeting.title),
                    _l(
                        "Upload your materials for the meeting by %(due)s.",
                        due=_when_text(meeting.materials_due_at),
                    ),
                    link=meeting_path(meeting.id),
                )
                told += 1
            reminded += 1
        db.session.flush()
    return {"reminded": reminded, "notified": told}


# -- lists ---------------------------------------------------------------------------------


def filter_meetings(statement: sa.Select, args: Mapping[str, Any], now: datetime) -> sa.Select:
    """Filters of the list and the API: unit, cadence, status, when (upcoming/past)."""
    try:
        unit_id = int(args.get("unit_id") or 0)
    except (TypeError, ValueError):
        unit_id = 0
    if 0 < unit_id < 2**62:
        statement = statement.where(Meeting.unit_id == unit_id)
    cadence = str(args.get("cadence") or "")
    if cadence in MEETING_CADENCES:
        statement = statement.where(Meeting.cadence == cadence)
    status = str(args.get("status") or "")
    if status in ("planned", "held", "closed", "cancelled"):
        statement = statement.where(Meeting.status == status)
    when = str(args.get("when") or "")
    if when == "upcoming":
        statement = statement.where(Meeting.starts_at >= now - timedelta(hours=12)).order_by(
            Meeting.starts_at, Meeting.id
        )
    elif when == "past":
        statement = statement.where(Meeting.starts_at < now).order_by(
            Meeting.starts_at.desc(), Meeting.id.desc()
        )
    else:
        statement = statement.order_by(Meeting.starts_at.desc(), Meeting.id.desc())
    return statement


def unit_names(unit_ids: Iterable[int | None]) -> dict[int, str]:
    """Names of units, in one query (the list shows each meeting's team)."""
    wanted = sorted({uid for uid in unit_ids if uid})
    if not wanted:
        return {}
    rows = db.session.execute(sa.select(OrgUnit.id, OrgUnit.name).where(OrgUnit.id.in_(wanted)))
    return {row.id: row.name for row in rows}


def my_statuses(meeting_ids: Iterable[int], user: User) -> dict[int, str]:
    """The viewer's own attendance per meeting of a page, in one query."""
    wanted = list(meeting_ids)
    if not wanted:
        return {}
    rows = db.session.execute(
        sa.select(MeetingAttendee.meeting_id, MeetingAttendee.status).where(
            MeetingAttendee.user_id == user.id, MeetingAttendee.meeting_id.in_(wanted)
        )
    )
    return {row.meeting_id: row.status for row in rows}


def people_names(ids: Iterable[int | None]) -> dict[int, str]:
    """Display names by id, in one query."""
    wanted = sorted({pid for pid in ids if pid})
    if not wanted:
        return {}
    rows = db.session.execute(sa.select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {row.id: row.display_name for row in rows}
