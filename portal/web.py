"""The layout's mechanism: home page, vendor files, navigation, template slots, errors,
and htmx on the server side.

htmx: every view (core and plugins) tells an htmx request by ``is_htmx_request``, keeps
the full page and the fragment of one URL apart in caches by ``vary_on_htmx``, and
answers a refusal by ``refuse``: htmx does not swap an error answer (403, 409) into the
page, so to htmx the message is flashed and the browser sent to a page (``HX-Redirect``);
without htmx the answer carries the status and the message itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    make_response,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BuildError

from . import assets
from .i18n import current_locale, supported_locales
from .plugins.types import NavItem, Widget
from .scoping import SCOPE_LABELS

log = logging.getLogger("portal.web")

bp = Blueprint("web", __name__)


@bp.get("/")
def home() -> str:
    """The dashboard: tiles contributed by plugins, each loaded by htmx."""
    widgets = []
    for plugin, widget in current_app.extensions["portal"].host.contributions(
        "portal_dashboard_widgets", Widget, user=current_user
    ):
        if widget.permission is not None and not current_user.can(widget.permission):
            continue
        try:  # a tile whose endpoint does not exist is left out, like a nav item
            url_for(widget.endpoint)
        except BuildError:
            log.error("plugin %s: widget endpoint %s does not exist", plugin, widget.endpoint)
            continue
        widgets.append(widget)
    widgets.sort(key=lambda widget: widget.order)
    return render_template("home.html", widgets=widgets)


@bp.get("/vendor/<name>/<path:filename>")
def vendor(name: str, filename: str) -> Any:
    """A file from an installed front-end package (cached for a year; URLs carry the version)."""
    root = assets.vendor_root(name)
    if root is None:
        abort(404)
    return send_from_directory(root, filename, max_age=31536000)


@bp.get("/favicon.ico")
def favicon() -> Any:
    """Browsers ask for it on every site; answering avoids a console error."""
    return send_from_directory(
        current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )


@bp.get("/healthz")
def health() -> Any:
    """For load balancers and the start-up check: no data, no login."""
    return jsonify(status="ok")


def vendor_url(name: str, filename: str) -> str:
    """URL of a vendor file with the package version as cache buster."""
    return url_for("web.vendor", name=name, filename=filename, v=assets.vendor_version(name))


def nav_items(section: str = "main") -> list[dict[str, Any]]:
    """Navigation links of ``section`` the current user may see, in order."""
    if not current_user.is_authenticated:
        return []
    links = []
    contributions = current_app.extensions["portal"].host.contributions(
        "portal_nav_items", NavItem, user=current_user
    )
    for plugin, item in sorted(contributions, key=lambda pair: pair[1].order):
        if item.section != section:
            continue
        if item.permission and not current_user.can(item.permission):
            continue
        try:
            url = url_for(item.endpoint, **dict(item.url_kwargs or {}))
        except (BuildError, TypeError, ValueError):
            log.error("plugin %s: nav item endpoint %s does not exist", plugin, item.endpoint)
            continue
        active = request.endpoint == item.endpoint or (request.path.startswith(url) and url != "/")
        links.append({"url": url, "label": item.label, "active": active})
    return links


def slot(name: str, **context: Any) -> Markup:
    """HTML contributed to a named template slot; plain strings are escaped."""
    parts = current_app.extensions["portal"].host.call_each(
        "portal_template_slot", strict=False, slot=name, context=context
    )
    return Markup("").join(
        part if isinstance(part, Markup) else escape(part) for _plugin, part in parts
    )


def company_name() -> str:
    """The installation's company name (a core setting)."""
    from .settings import get_setting

    try:
        return str(get_setting("core.company_name"))
    except Exception:  # the settings table may not exist yet (fresh install, error page)
        return "Salesloop"


# -- htmx -----------------------------------------------------------------------------


def is_htmx_request(*, boosted: bool = True) -> bool:
    """Whether htmx sent this request (``HX-Request``). With ``boosted=False`` a boosted
    link or form (``HX-Boosted``: it wants the whole page, like a plain request) does
    not count, only htmx's own requests (``hx-get``, polling ...)."""
    if not request.headers.get("HX-Request"):
        return False
    return boosted or not request.headers.get("HX-Boosted")


def vary_on_htmx(response: Any, *, target: bool = False) -> Response:
    """``response`` (anything a view may return) as a Response that says it depends on
    ``HX-Request`` (the fragment and the full page of one URL), and on ``HX-Target``
    too when ``target`` (the fragment depends on which element asked)."""
    response = make_response(response)
    response.vary.add("HX-Request")
    if target:
        response.vary.add("HX-Target")
    return response


def refuse(status: int, message: str, page_url: str, page: Callable[[], Any] | None = None) -> Any:
    """A 403 or 409 the person understands. To htmx: the message flashed and the
    browser sent to ``page_url``. Without htmx: a 403 (or any status without ``page``)
    is the error page with the message; a 409 is ``page()``, the record's page rendered
    again with the message and the status."""
    if is_htmx_request():
        flash(message, "danger" if status == 403 else "warning")
        response = make_response("", status)
        response.headers["HX-Redirect"] = page_url
        return response
    if status == 403 or page is None:
        abort(status, description=message)
    return page()


def _wants_json() -> bool:
    return request.path.startswith("/api/")


ERROR_TITLES = {
    400: _l("Bad request"),
    401: _l("Please log in"),
    403: _l("Not allowed"),
    404: _l("Not found"),
    405: _l("Not possible here"),
    413: _l("Too large"),
    429: _l("Too many requests"),
}
ERROR_MESSAGES = {
    400: _l("The request could not be understood. Go back, reload the page and try again."),
    401: _l("Log in and try again."),
    403: _l("You do not have the permission for this."),
    404: _l("This page does not exist, or you may not see it."),
    405: _l("This action is not available at this address."),
    413: _l("What you sent is larger than the portal accepts."),
    429: _l("Too many requests in a short time. Wait a little and try again."),
}


def error_message(error: HTTPException) -> str:
    """The reader's-language text for an HTTP error: our own description when a view gave
    one (already translated), otherwise the portal's text for the status."""
    own = error.description and error.description != type(error).description
    if own and "CSRF" not in str(error.description):
        return str(error.description)
    if error.code == 400 and "CSRF" in str(error.description):
        return _("The form expired or was sent twice. Go back, reload the page and try again.")
    return str(ERROR_MESSAGES.get(error.code or 500, _("The request could not be handled.")))


def _http_error(error: HTTPException) -> Any:
    code = error.code or 500
    if _wants_json():
        from .api import error_response

        return error_response(code, error.name.lower().replace(" ", "_"), error_message(error))
    title = ERROR_TITLES.get(code, error.name)
    return render_template(
        "errors/error.html", error=error, title=title, message=error_message(error)
    ), code


def _unexpected_error(error: Exception) -> Any:
    log.exception("unhandled error on %s", request.path)
    if _wants_json():
        from .api import error_response

        return error_response(500, "internal_error", _("Something went wrong on our side."))
    return render_template("errors/error.html", error=None), 500


def install(app: Flask) -> None:
    """Template helpers and error pages."""
    from .listing import page_args

    app.jinja_env.globals.update(
        nav_items=nav_items,
        slot=slot,
        vendor_url=vendor_url,
        locales=supported_locales,
        page_args=page_args,
        company_name=company_name,
        get_locale=get_locale,
        current_locale=current_locale,
        scope_label=lambda level: SCOPE_LABELS.get(level, level),
    )
    app.register_error_handler(HTTPException, _http_error)
    if not app.testing:  # tests see the traceback instead of an error page
        app.register_error_handler(Exception, _unexpected_error)
