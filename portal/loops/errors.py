"""Errors the loop and approval services raise, mapped to status codes by the views
and the API: a bad field is 422 (``portal.org.services.ValidationFailed``), acting on
something already decided or changed meanwhile is 409, acting without the right is 403."""

from __future__ import annotations


class StateConflict(Exception):
    """The item or request is no longer in a state that allows this action (already
    decided, changed by someone else meanwhile). Nothing was written."""


class NotAllowed(Exception):
    """The person may see the item but may not take this action on it."""
