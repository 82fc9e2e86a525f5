"""Events: how the core and plugins tell each other what happened without importing
each other. ``emit`` delivers to every ``portal_on_event`` implementation in turn."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from .plugins.types import Event

log = logging.getLogger("portal.events")


class UnknownEventError(LookupError):
    """An event name no enabled plugin declared (a typo would otherwise reach nobody)."""


def emit(name: str, actor_id: int | None = None, **payload: Any) -> Event:
    """Deliver event ``name`` to every handler; a raising handler is logged and skipped."""
    state = current_app.extensions["portal"]
    if name not in state.event_types:
        raise UnknownEventError(f"event '{name}' is not declared by any enabled plugin")
    event = Event(name=name, payload=payload, actor_id=actor_id)
    state.host.call_each("portal_on_event", strict=False, event=event)
    return event
