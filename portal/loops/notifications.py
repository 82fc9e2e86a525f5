"""Telling people: one in-app notification per message (the bell), and an email queued
beside it when the person wants that kind by email. Requests only write rows; the
sender job delivers the emails after the request has committed."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale

from ..auth.models import User
from ..extensions import db
from .models import Notification, NotificationPreference, OutboundEmail


class UnknownNotificationKind(LookupError):
    """A kind no enabled plugin declared: a typo would otherwise reach nobody."""


def recipient_locale(user: User) -> str:
    """The language a person reads their notifications in."""
    supported = current_app.config.get("PORTAL_LOCALES", ["en"])
    if user.locale in supported:
        return user.locale
    return current_app.config.get("BABEL_DEFAULT_LOCALE", supported[0])


def wants_email(user: User, kind: str) -> bool:
    """Whether ``kind`` also reaches ``user`` by email: their choice, else the kind's default."""
    declared = current_app.extensions["portal"].notification_kinds[kind]
    choice = db.session.scalar(
        sa.select(NotificationPreference.email).where(
            NotificationPreference.user_id == user.id, NotificationPreference.kind == kind
        )
    )
    return declared.email_default if choice is None else bool(choice)


def notify(
    user: User | int,
    kind: str,
    title: Any,
    body: Any = "",
    link: str = "",
) -> Notification | None:
    """Tell ``user`` something; the caller commits. ``title`` and ``body`` may be lazy
    strings: they are rendered in the recipient's language, not the sender's. A disabled
    person gets nothing. Returns the notification (None when nobody was told)."""
    if kind not in current_app.extensions["portal"].notification_kinds:
        raise UnknownNotificationKind(f"notification kind '{kind}' is not declared")
    person = db.session.get(User, user) if isinstance(user, int) else user
    if person is None or not person.active:
        return None
    with force_locale(recipient_locale(person)):
        title_text, body_text = str(title)[:200], str(body)
    notification = Notification(
        user_id=person.id, kind=kind, title=title_text, body=body_text, link=link[:500]
    )
    db.session.add(notification)
    if person.email and wants_email(person, kind):
        db.session.flush()
        db.session.add(
            OutboundEmail(
                notification_id=notification.id,
                to_address=person.email,
                subject=title_text[:250],
                body=body_text,
            )
        )
    return notification
