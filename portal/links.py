"""Links from one plugin's record to another plugin's (an expense line's customer or
opportunity), without either importing the other.

A plugin declares what may be linked to with ``portal_link_targets`` (``LinkTarget``:
a kind such as ``sales.customer``, a scoped ``search`` and ``describe``, the record's
page). Everything here answers for the *current user*: a search lists only what they
may read, ``describe_links`` leaves out what they may not, so a stored link is shown
as a link only to readers who may open it. A target that raises is logged and treated
as having nothing to offer: a broken plugin never breaks the page that links to it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app, g, has_request_context, url_for

from .listing import id_arg
from .plugins.types import LinkTarget

log = logging.getLogger(__name__)

MAX_RESULTS = 20  # a search box shows a handful, never a list to page through
MAX_TEXT = 100


@contextmanager
def _as_user(user: Any) -> Iterator[None]:
    """Answer for ``user`` instead of the logged-in person (the JSON API's caller, whom
    flask-login does not know): targets read ``flask_login.current_user``."""
    if user is None or not has_request_context():
        yield
        return
    user = getattr(user, "_get_current_object", lambda: user)()  # never the proxy itself
    missing = object()
    before = g.get("_login_user", missing)
    g._login_user = user
    try:
        yield
    finally:
        if before is missing:
            g.pop("_login_user", None)
        else:
            g._login_user = before


def link_targets() -> dict[str, LinkTarget]:
    """The declared targets by kind, in declaration order."""
    return dict(current_app.extensions["portal"].link_targets)


def link_target(kind: str | None) -> LinkTarget | None:
    """The target of ``kind``, or None for an unknown (or empty) kind."""
    if not kind:
        return None
    return link_targets().get(kind)


def search_links(kind: str, text: str, limit: int = 10, user: Any = None) -> list[tuple[int, str]]:
    """Up to ``limit`` (at most ``MAX_RESULTS``) records of ``kind`` the current user (or
    ``user``) may read whose label matches ``text``: ``[(id, label)]``; unknown kind:
    nothing."""
    target = link_target(kind)
    if target is None:
        return []
    limit = max(1, min(int(limit), MAX_RESULTS))
    try:
        with _as_user(user):
            found = target.search((text or "").strip()[:MAX_TEXT], limit)
    except Exception:  # noqa: BLE001 - another plugin's failure stays its own
        log.exception("link target %s: search failed", kind)
        return []
    return [(int(record_id), str(label)) for record_id, label in list(found)[:limit]]


def describe_links(kind: str | None, ids: Iterable[int | None], user: Any = None) -> dict[int, str]:
    """``{id: label}`` of the records of ``kind`` among ``ids`` the current user (or
    ``user``) may read; the others (gone, out of scope, unknown kind) are left out."""
    target = link_target(kind)
    # Ids the database can hold only: a bigger one fails the query (and, on PostgreSQL,
    # the request's transaction with it) instead of matching nothing.
    wanted = sorted({number for number in map(id_arg, ids) if number is not None})
    if target is None or not wanted:
        return {}
    try:
        with _as_user(user):
            found = target.describe(wanted)
    except Exception:  # noqa: BLE001 - another plugin's failure stays its own
        log.exception("link target %s: describe failed", kind)
        return {}
    return {int(key): str(value) for key, value in dict(found).items() if int(key) in wanted}


def link_url(kind: str | None, record_id: int | None) -> str | None:
    """The page of one linked record (whether the reader may open it is
    ``describe_links``'s question), or None for an unknown kind."""
    target = link_target(kind)
    if target is None or not record_id:
        return None
    return url_for(target.endpoint, **{target.id_arg: record_id})


def kind_label(kind: str | None) -> str:
    """The target's label in the reader's language; an unknown kind as written."""
    target = link_target(kind)
    return str(target.label) if target is not None else (kind or "")
