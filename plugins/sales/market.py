"""Market research (P3.1.1): notes on the market, competitors, policy and prices by
industry and region, and a supervisor's summary of them.

Notes are owned by whoever wrote them and scoped like every business record: a
salesperson reads their own, a supervisor their team's, a manager everyone's. The
summary counts in one grouped query per table it shows, inside the viewer's scope.
Services validate and add to the session; they never commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from portal.auth.models import User
from portal.extensions import db
from portal.listing import like_pattern
from portal.loops.service import local_today
from portal.org.services import ValidationFailed
from portal.scoping import get_scoped_or_404, scoped

from .models import MARKET_NOTE_KINDS, MarketNote

# How far back the summary may look, in days; the first is the default.
SUMMARY_PERIODS = (90, 30, 180, 365)
# Bounds of the summary's tables: the largest groups are shown, the rest counted.
TOP_REGIONS = 12
TOP_INDUSTRIES = 30
TOP_COMPETITORS = 30
LATEST_PER_COMPETITOR = 3
EARLIEST_OBSERVED = date(2000, 1, 1)
MAX_BODY = 20000
TEXT_FIELDS = {"industry": 80, "region": 80, "competitor": 200, "title": 200}


def notes_for(user: User, verb: str = "read") -> sa.Select:
    """A SELECT of the notes ``user`` may reach."""
    return scoped(sa.select(MarketNote), MarketNote, user, verb)


def get_note_or_404(note_id: int, user: User, verb: str = "read") -> MarketNote:
    """One note in scope: 404 outside it, 403 when it may be read but not changed."""
    return get_scoped_or_404(MarketNote, note_id, user, verb)


def filter_notes(statement: sa.Select, args: Mapping[str, Any]) -> sa.Select:
    """Filters of the list and the API: kind, industry, region (codes), competitor
    (exact, without case), q (words of the title, body or competitor), since/until."""
    kind = (args.get("kind") or "").strip()
    if kind in MARKET_NOTE_KINDS:
        statement = statement.where(MarketNote.kind == kind)
    for name in ("industry", "region", "competitor"):
        value = " ".join(str(args.get(name) or "").split())[:200]
        if value:
            column = getattr(MarketNote, name)
            statement = statement.where(sa.func.lower(column) == value.lower())
    text = " ".join(str(args.get("q") or "").split())[:200]
    if text:
        pattern = like_pattern(text)
        statement = statement.where(
            sa.or_(
                MarketNote.title.ilike(pattern, escape="\\"),
                MarketNote.body.ilike(pattern, escape="\\"),
                MarketNote.competitor.ilike(pattern, escape="\\"),
            )
        )
    since = _date_arg(args.get("since"))
    if since is not None:
        statement = statement.where(MarketNote.observed_on >= since)
    until = _date_arg(args.get("until"))
    if until is not None:
        statement = statement.where(MarketNote.observed_on <= until)
    return statement


def _date_arg(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value or "").strip()) if value else None
    except ValueError:
        return None


def area_codes() -> dict[str, tuple[str, ...]]:
    """The industries and regions notes are filed under: the same codes as the
    customer file (the screening rule file declares them), so notes and customers
    group alike. Empty when no screening file is in force (then any text goes)."""
    from .customers import screening_codes

    return {
        "industry": tuple(screening_codes("industry")),
        "region": tuple(screening_codes("region")),
    }


def _clean(
    values: Mapping[str, Any], today: date, current: MarketNote | None = None
) -> dict[str, Any]:
    """Checked values of a note, or ValidationFailed with a message per field. A note
    being changed may keep an industry or region an admin has since removed."""
    problems: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    kind = str(values.get("kind") or "market").strip()
    if kind not in MARKET_NOTE_KINDS:
        problems["kind"] = [_("Choose one of the kinds offered.")]
    cleaned["kind"] = kind
    for name, limit in TEXT_FIELDS.items():
        text = " ".join(str(values.get(name) or "").split())
        if len(text) > limit:
            problems.setdefault(name, []).append(_("At most %(n)s characters.", n=limit))
        cleaned[name] = text
    if not cleaned["title"]:
        problems.setdefault("title", []).append(_("Give the note a title."))
    if kind == "competitor" and not cleaned["competitor"]:
        problems.setdefault("competitor", []).append(_("Name the competitor this note is about."))
    for name, allowed in area_codes().items():
        kept = current is not None and cleaned[name] == getattr(current, name)
        unknown = cleaned[name] and allowed and cleaned[name] not in allowed
        if unknown and not kept and name not in problems:
            problems[name] = [_("Choose one of the values offered.")]
    body = str(values.get("body") or "").strip()
    if len(body) > MAX_BODY:
        problems["body"] = [_("At most %(n)s characters.", n=MAX_BODY)]
    cleaned["body"] = body
    observed = values.get("observed_on")
    if isinstance(observed, datetime):
        observed = observed.date()
    if isinstance(observed, str):
        observed = _date_arg(observed)
        if observed is None:
            problems["observed_on"] = [_("Enter a date as YYYY-MM-DD.")]
    if observed is None and "observed_on" not in problems:
        problems["observed_on"] = [_("Say when this was observed.")]
    elif isinstance(observed, date):
        if observed > today:
            problems["observed_on"] = [_("The date cannot be in the future.")]
        elif observed < EARLIEST_OBSERVED:
            problems["observed_on"] = [_("The date is too far in the past.")]
    cleaned["observed_on"] = observed
    if problems:
        raise ValidationFailed(problems)
    return cleaned


def create_note(values: Mapping[str, Any], actor: User, now: datetime | None = None) -> MarketNote:
    """Record a market note owned by ``actor`` (added to the session, not committed)."""
    cleaned = _clean(values, local_today(now))
    note = MarketNote(owner_id=actor.id, **cleaned)
    db.session.add(note)
    db.session.flush()
    return note


def update_note(
    note: MarketNote, values: Mapping[str, Any], actor: User, now: datetime | None = None
) -> MarketNote:
    """Change a note (the caller checked the write scope)."""
    cleaned = _clean(values, local_today(now), note)
    for name, value in cleaned.items():
        setattr(note, name, value)
    db.session.flush()
    return note


def delete_note(note: MarketNote, actor: User) -> None:
    """Remove a note (the caller checked the write scope; the audit log keeps it)."""
    db.session.delete(note)
    db.session.flush()


def competitor_names(user: User, limit: int = 100) -> list[str]:
    """Competitors already named in the viewer's scope, most noted first: offered
    while typing so the same company is written the same way."""
    statement = scoped(
        sa.select(MarketNote.competitor)
        .where(MarketNote.competitor != "")
        .group_by(MarketNote.competitor)
        .order_by(sa.func.count().desc(), MarketNote.competitor)
        .limit(limit),
        MarketNote,
        user,
    )
    return list(db.session.scalars(statement))


# -- the supervisor's summary ---------------------------------------------------------


@dataclass
class Summary:
    """What the summary page and the API show for one period."""

    since: date
    until: date
    days: int
    total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    industries: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    other_regions: bool = False
    matrix: dict[tuple[str, str], int] = field(default_factory=dict)
    industry_totals: dict[str, int] = field(default_factory=dict)
    region_totals: dict[str, int] = field(default_factory=dict)
    competitors: list[dict[str, Any]] = field(default_factory=list)
    latest: dict[str, list[MarketNote]] = field(default_factory=dict)

    def cell(self, industry: str, region: str) -> int:
        return self.matrix.get((industry, region), 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "days": self.days,
            "total": self.total,
            "by_kind": self.by_kind,
            "by_industry_region": [
                {"industry": industry, "region": region, "count": count}
                for (industry, region), count in sorted(self.matrix.items())
            ],
            "by_competitor": [
                {
                    **row,
                    "last_observed_on": row["last_observed_on"].isoformat()
                    if row["last_observed_on"]
                    else None,
                    "latest": [
                        {"id": n.id, "title": n.title, "observed_on": n.observed_on.isoformat()}
                        for n in self.latest.get(row["competitor"], [])
                    ],
                }
                for row in self.competitors
            ],
        }


OTHER = "\x00other"  # the column of the regions beyond the largest ones


def period_days(value: Any) -> int:
    """The summary's period from ``?days=``: one of SUMMARY_PERIODS, else the default."""
    try:
        days = int(str(value))
    except (TypeError, ValueError):
        return SUMMARY_PERIODS[0]
    return days if days in SUMMARY_PERIODS else SUMMARY_PERIODS[0]


def summary(user: User, days: int = SUMMARY_PERIODS[0], today: date | None = None) -> Summary:
    """Counts of the notes observed in the last ``days`` days within ``user``'s scope:
    by kind, by industry x region, by competitor with its latest notes."""
    until = today or local_today()
    since = until - timedelta(days=days - 1)
    result = Summary(since=since, until=until, days=days)

    def in_period(statement: sa.Select) -> sa.Select:
        return scoped(
            statement.where(MarketNote.observed_on >= since, MarketNote.observed_on <= until),
            MarketNote,
            user,
        )

    count = sa.func.count(MarketNote.id)
    for kind, number in db.session.execute(
        in_period(sa.select(MarketNote.kind, count).group_by(MarketNote.kind))
    ):
        result.by_kind[kind] = number
    result.total = sum(result.by_kind.values())

    cells = db.session.execute(
        in_period(
            sa.select(MarketNote.industry, MarketNote.region, count).group_by(
                MarketNote.industry, MarketNote.region
            )
        )
    ).all()
    for industry, region, number in cells:
        result.industry_totals[industry] = result.industry_totals.get(industry, 0) + number
        result.region_totals[region] = result.region_totals.get(region, 0) + number
    by_size = sorted(result.region_totals.items(), key=lambda item: (-item[1], item[0]))
    result.regions = [region for region, _n in by_size[:TOP_REGIONS]]
    result.other_regions = len(by_size) > TOP_REGIONS
    shown = set(result.regions)
    industries = sorted(result.industry_totals.items(), key=lambda item: (-item[1], item[0]))
    result.industries = [industry for industry, _n in industries[:TOP_INDUSTRIES]]
    for industry, region, number in cells:
        key = (industry, region if region in shown else OTHER)
        result.matrix[key] = result.matrix.get(key, 0) + number

    last = sa.func.max(MarketNote.observed_on)
    rows = db.session.execute(
        in_period(
            sa.select(MarketNote.competitor, count, last)
            .where(MarketNote.competitor != "")
            .group_by(MarketNote.competitor)
            .order_by(count.desc(), last.desc(), MarketNote.competitor)
            .limit(TOP_COMPETITORS)
        )
    ).all()
    result.competitors = [
        {"competitor": name, "count": number, "last_observed_on": _as_date(latest)}
        for name, number, latest in rows
    ]
    names = [row["competitor"] for row in result.competitors]
    if names:
        position = (
            sa.func.row_number()
            .over(
                partition_by=MarketNote.competitor,
                order_by=(MarketNote.observed_on.desc(), MarketNote.id.desc()),
            )
            .label("position")
        )
        ranked = in_period(
            sa.select(MarketNote.id, position).where(MarketNote.competitor.in_(names))
        ).subquery()
        latest_notes = db.session.scalars(
            sa.select(MarketNote)
            .join(ranked, ranked.c.id == MarketNote.id)
            .where(ranked.c.position <= LATEST_PER_COMPETITOR)
            .order_by(MarketNote.competitor, MarketNote.observed_on.desc(), MarketNote.id.desc())
        ).unique()
        for note in latest_notes:
            result.latest.setdefault(note.competitor, []).append(note)
    return result


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
