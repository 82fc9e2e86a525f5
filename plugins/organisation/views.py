"""The organisation chart, one's team, and the dashboard tile (P2.1)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, render_template
from flask_login import current_user

from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.org.models import OrgUnit
from portal.org.services import head_counts, subordinates, supervisor_of
from portal.settings import get_setting

bp = Blueprint("organisation", __name__, template_folder="templates")


def unit_trail(unit: OrgUnit | None) -> list[OrgUnit]:
    """The unit and its ancestors, top first (one query)."""
    if unit is None:
        return []
    ids = [int(part) for part in unit.path.strip("/").split("/") if part]
    units = {u.id: u for u in db.session.scalars(sa.select(OrgUnit).where(OrgUnit.id.in_(ids)))}
    return [units[i] for i in ids if i in units]


@bp.get("/")
@require_permission("organisation.view_chart")
def chart() -> Any:
    """Every active unit with its leader and head count (P2.1 structure)."""
    units = db.session.scalars(
        sa.select(OrgUnit).where(OrgUnit.active.is_(True)).order_by(OrgUnit.path).limit(2000)
    ).all()
    counts = head_counts()
    return render_template(
        "organisation/chart.html",
        units=units,
        counts=counts,
        show_counts=get_setting("organisation.chart_shows_headcount"),
    )


@bp.get("/team")
@require_permission("organisation.view_team")
def team() -> Any:
    """The people in the subtree of the units one leads (P2.3 guide and supervise)."""
    return render_template(
        "organisation/team.html", members=subordinates(current_user, viewer=current_user)
    )


@bp.get("/widgets/my-place")
def widget_my_place() -> Any:
    """Dashboard tile: one's unit, supervisor and team size."""
    return render_template(
        "organisation/_widget_my_place.html",
        trail=unit_trail(current_user.unit),
        supervisor=supervisor_of(current_user),
        team_size=len(subordinates(current_user, viewer=current_user)),
    )
