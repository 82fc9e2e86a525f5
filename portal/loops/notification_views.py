"""Notifications in the browser: the bell, the list, marking read, email preferences.

Notifications are personal messages, not business records: each person sees only their
own (no team scope), and another person's id answers 404 like a page that does not exist.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..extensions import db
from ..listing import paginate
from ..models import utcnow
from .models import Notification, NotificationPreference
from .notification_forms import NotificationPreferencesForm
from .notifications import email_choices, is_portal_path

bp = Blueprint("notifications", __name__, url_prefix="/notifications")

FILTERS = ("all", "unread")


def unread_count(user_id: int) -> int:
    """The bell's number: one COUNT on the (user_id, read_at) index."""
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    )


def _own_or_404(notification_id: int) -> Notification:
    notification = db.session.scalars(
        sa.select(Notification).where(
            Notification.id == notification_id, Notification.user_id == current_user.id
        )
    ).first()
    if notification is None:
        abort(404)
    return notification


def _back_to_list() -> Any:
    """Back to the list the person acted from (same filter and page)."""
    show = request.form.get("show", "all")
    page = request.form.get("page", type=int) or 1
    args: dict[str, Any] = {"show": show if show in FILTERS else "all"}
    if page > 1:
        args["page"] = min(page, 1_000_000)
    return redirect(url_for("notifications.index", **args), 303)


@bp.get("/")
def index() -> Any:
    """The person's notifications, newest first; unread ones highlighted."""
    show = request.args.get("show", "all")
    if show not in FILTERS:
        show = "all"
    statement = sa.select(Notification).where(Notification.user_id == current_user.id)
    if show == "unread":
        statement = statement.where(Notification.read_at.is_(None))
    page = paginate(statement.order_by(Notification.created_at.desc(), Notification.id.desc()))
    return render_template(
        "notifications/index.html", page=page, show=show, unread=unread_count(current_user.id)
    )


@bp.get("/bell")
def bell() -> Any:
    """The navbar bell (an htmx fragment polled by every page): the unread count."""
    return render_template("notifications/_bell.html", unread=unread_count(current_user.id))


@bp.post("/<int:notification_id>/read")
def mark_read(notification_id: int) -> Any:
    """Mark one of one's notifications read."""
    notification = _own_or_404(notification_id)
    if notification.read_at is None:
        notification.read_at = utcnow()
        db.session.commit()
    return _back_to_list()


@bp.post("/<int:notification_id>/open")
def open_link(notification_id: int) -> Any:
    """Open what a notification is about; opening it marks it read."""
    notification = _own_or_404(notification_id)
    if notification.read_at is None:
        notification.read_at = utcnow()
        db.session.commit()
    # notify() stores only portal paths; checked again here, so a row written any other
    # way (a script, an old version) still never sends anyone elsewhere.
    if not is_portal_path(notification.link or ""):
        return _back_to_list()
    return redirect(notification.link, 303)


@bp.post("/read-all")
def mark_all_read() -> Any:
    """Mark all of one's unread notifications read (one indexed UPDATE)."""
    db.session.execute(
        sa.update(Notification)
        .where(Notification.user_id == current_user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    flash(_("All notifications are marked read."), "success")
    return _back_to_list()


def _kinds_by_plugin(kinds: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """Declared kinds grouped under their plugin's title, in plugin then label order."""
    records = current_app.extensions["portal"].host.records
    groups: dict[str, list[Any]] = defaultdict(list)
    for name, kind in kinds.items():
        groups[name.split(".", 1)[0]].append(kind)
    ordered = []
    for plugin in sorted(groups, key=lambda p: (p != "core", p)):
        record = records.get(plugin)
        title = str(record.title) if record is not None and record.title else plugin
        ordered.append((title, sorted(groups[plugin], key=lambda kind: str(kind.label))))
    return ordered


@bp.route("/preferences", methods=["GET", "POST"])
def preferences() -> Any:
    """Which kinds of notification also reach the person by email."""
    kinds = dict(current_app.extensions["portal"].notification_kinds)
    form = NotificationPreferencesForm(kinds)
    if request.method == "GET":
        form.email.data = sorted(email_choices(current_user, kinds))
    elif form.validate_on_submit():
        wanted = set(form.email.data or [])
        stored = {
            pref.kind: pref
            for pref in db.session.scalars(
                sa.select(NotificationPreference).where(
                    NotificationPreference.user_id == current_user.id
                )
            )
        }
        for name in kinds:
            choice = name in wanted
            pref = stored.get(name)
            if pref is None:
                db.session.add(
                    NotificationPreference(user_id=current_user.id, kind=name, email=choice)
                )
            elif pref.email != choice:
                pref.email = choice
        db.session.commit()
        flash(_("Your email choices are saved."), "success")
        return redirect(url_for("notifications.preferences"), 303)
    status = 422 if form.errors else 200
    return render_template(
        "notifications/preferences.html",
        form=form,
        groups=_kinds_by_plugin(kinds),
        selected=set(form.email.data or []),
        has_email=bool(current_user.email),
        mail_enabled=bool(current_app.config.get("MAIL_ENABLED", True)),
    ), status
