"""Permission checks for views: deny with 403 unless the person holds the code."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user

F = TypeVar("F", bound=Callable[..., Any])


def require_permission(*codes: str) -> Callable[[F], F]:
    """Allow the view only to people holding any of ``codes``."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated or not any(current_user.can(c) for c in codes):
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_permissions = codes  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator
