"""Telling people: one in-app notification per message (the bell), and an email queued
beside it when the person wants that kind by email. Requests only write rows; after the
request commits, the mailer's background sender (and the job ``core.send_emails``)
delivers the emails, so a slow mail server never slows a page."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app, has_request_context, url_for
from flask_babel import force_locale
from flask_babel import gettext as _

from ..auth.models import User
from ..extensions import db
from .mailer import absolute_url, deliverable, mail_enabled, mark_emails_queued
from .models import Notification, NotificationPreference, OutboundEmail


class UnknownNotificationKind(LookupError):
    """A kind no enabled plugin declared: a typo would otherwise reach nobody."""


def is_portal_path(link: str) -> bool:
    """Whether ``link`` is a path inside the portal: never another site (``//host``,
    ``/\\host``) and no control characters, which browsers drop, so that ``/<TAB>/host``
    would become ``//host``. Notification links, and the links plugins give to their
    records, are followed and emailed, so anything else would be an open redirect."""
    return (
        link.startswith("/")
        and not link.startswith("//")
        and "\\" not in link
        and not any(ord(char) < 32 or ord(char) == 127 for char in link)
    )


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


def email_choices(user: User, kinds: dict[str, Any] | None = None) -> set[str]:
    """The kinds that reach ``user`` by email (one query for all kinds: the preferences
    page must not ask once per kind)."""
    declared = kinds or current_app.extensions["portal"].notification_kinds
    stored = dict(
        db.session.execute(
            sa.select(NotificationPreference.kind, NotificationPreference.email).where(
                NotificationPreference.user_id == user.id
            )
        ).all()
    )
    return {
        name
        for name, kind in declared.items()
        if (kind.email_default if stored.get(name) is None else bool(stored[name]))
    }


def notify(
    user: User | int,
    kind: str,
    title: Any,
    body: Any = "",
    link: str = "",
) -> Notification | None:
    """Tell ``user`` something; the caller commits. ``title`` and ``body`` may be lazy
    strings: they are rendered in the recipient's language, not the sender's. ``link``
    is a path inside the portal (``portal_path``, ``url_for``); anything else raises
    ValueError, like an undeclared kind. A disabled person gets nothing. Returns the
    notification (None when nobody was told)."""
    if kind not in current_app.extensions["portal"].notification_kinds:
        raise UnknownNotificationKind(f"notification kind '{kind}' is not declared")
    if link and (len(link) > 500 or not is_portal_path(link)):
        raise ValueError(f"notification link must be a path inside the portal: {link[:80]!r}")
    person = db.session.get(User, user) if isinstance(user, int) else user
    if person is None or not person.active:
        return None
    with force_locale(recipient_locale(person)):
        title_text, body_text = str(title)[:200], str(body)
    notification = Notification(
        user_id=person.id, kind=kind, title=title_text, body=body_text, link=link
    )
    db.session.add(notification)
    if deliverable(person.email) and mail_enabled() and wants_email(person, kind):
        db.session.flush()
        with force_locale(recipient_locale(person)):
            text = email_text(kind, body_text, link)
        db.session.add(
            OutboundEmail(
                notification_id=notification.id,
                to_address=person.email,
                subject=title_text[:250],
                body=text,
            )
        )
        mark_emails_queued(db.session)
    return notification


def portal_path(endpoint: str, **values: Any) -> str:
    """The path of a portal page, also outside a request (jobs and the CLI notify
    people too): the link a notification carries."""
    if has_request_context():
        return url_for(endpoint, **values)
    root = current_app.config.get("APPLICATION_ROOT") or "/"
    return current_app.url_map.bind("localhost", script_name=root).build(endpoint, values)


def email_text(kind: str, body: str, link: str) -> str:
    """The plain-text email of a notification: its body, the absolute link into the
    portal, and why the person gets it (so they can turn it off). Only what the in-app
    notification shows goes out: no record data beyond its title and body (P6.3)."""
    declared = current_app.extensions["portal"].notification_kinds[kind]
    parts = [body.strip()] if body.strip() else []
    if link:
        parts.append(_("Open it in the portal: %(url)s", url=absolute_url(link)))
    parts.append(
        "-- \n"
        + _(
            "You get this email for notifications of the kind “%(kind)s”. "
            "Choose which kinds reach you by email: %(url)s",
            kind=str(declared.label),
            url=absolute_url(portal_path("notifications.preferences")),
        )
    )
    return "\n\n".join(parts) + "\n"
