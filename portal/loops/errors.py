"""Errors the loop and approval services raise, mapped to status codes by the views
and the API: a bad field is 422 (``portal.org.services.ValidationFailed``), acting on
something already decided or changed meanwhile is 409, acting without the right is 403.
``refusal_of`` is that mapping, for pages and the API alike."""

from __future__ import annotations

from sqlalchemy.orm.exc import StaleDataError


class StateConflict(Exception):
    """The item or request is no longer in a state that allows this action (already
    decided, changed by someone else meanwhile). Nothing was written."""


class NotAllowed(Exception):
    """The person may see the item but may not take this action on it."""


# What a change may be refused with besides bad fields: ``except REFUSALS as error``.
REFUSALS = (NotAllowed, StateConflict, StaleDataError)


def refusal_of(error: Exception, stale_message: str) -> tuple[int, str]:
    """The status and message answering one of ``REFUSALS``: 403 with the reason when
    the person may not (``NotAllowed``), 409 with the reason when the record is not in a
    state for it (``StateConflict``), 409 with ``stale_message`` when someone changed it
    meanwhile (``StaleDataError``: the optimistic lock, which carries no message)."""
    if isinstance(error, NotAllowed):
        return 403, str(error)
    if isinstance(error, StaleDataError):
        return 409, stale_message
    return 409, str(error)
