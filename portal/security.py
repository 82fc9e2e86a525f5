"""Deny by default: every route needs a login unless it is listed as public; strict
CSP and security headers on every response."""

from __future__ import annotations

from flask import Flask, Response, abort, current_app, flash, redirect, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from .extensions import login_manager
from .web import is_htmx_request, vary_on_htmx

# Core endpoints reachable without a login. Plugins list theirs on the blueprint
# (``public_endpoints``); the API authenticates with bearer tokens in its own guard.
PUBLIC_ENDPOINTS = {
    "static",
    "web.vendor",
    "web.favicon",
    "web.health",
    "auth.login",
    "auth.set_language",
}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def is_public(endpoint: str | None) -> bool:
    """Whether ``endpoint`` may be reached without logging in."""
    if endpoint is None:
        return True  # no route matched: the 404 handler answers
    if endpoint in PUBLIC_ENDPOINTS or endpoint.startswith("api."):
        return True
    return endpoint in current_app.extensions["portal"].public_endpoints


def _refuse_failed_plugins() -> None:
    """A plugin that failed after its blueprints were registered (in portal_startup) is
    out of the portal: its pages answer 404 like any page that does not exist."""
    state = current_app.extensions["portal"]
    owner = state.blueprint_owner.get(request.blueprint or "")
    if owner is not None and not state.host.records[owner].loaded:
        abort(404)


def _require_login() -> Response | None:
    if is_public(request.endpoint) or current_user.is_authenticated:
        return None
    return login_manager.unauthorized()


def _unauthorized() -> Response:
    if is_htmx_request():
        # htmx cannot follow a redirect into a full page; tell it to navigate.
        response = Response(status=401)
        response.headers["HX-Redirect"] = url_for("auth.login")
        return response
    flash(_l("Please log in to continue."), "warning")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _headers(response: Response) -> Response:
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY  # no view may loosen it
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(self)")
    if response.mimetype == "text/html":
        # One URL serves a full page or an htmx fragment; caches must tell them apart.
        vary_on_htmx(response)
        headers.setdefault("Cache-Control", "no-store")
    return response


def install(app: Flask) -> None:
    """Attach the login guard, the unauthorized handler and the headers."""
    login_manager.session_protection = "strong"
    login_manager.login_view = "auth.login"
    login_manager.unauthorized_handler(_unauthorized)
    app.before_request(_refuse_failed_plugins)
    app.before_request(_require_login)
    app.after_request(_headers)
