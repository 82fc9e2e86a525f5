"""Log in, log out, change password, choose the language."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.security import check_password_hash

from ..extensions import db
from ..i18n import _supported
from . import services
from .forms import LoginForm, PasswordChangeForm

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: an open redirect would help phishing."""
    if target:
        parts = urlsplit(target)
        if (
            not parts.scheme
            and not parts.netloc
            and target.startswith("/")
            and not target.startswith("//")
        ):
            return target
    return url_for("web.home")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login page. Throttled per username and per address."""
    if current_user.is_authenticated:
        return redirect(url_for("web.home"))
    form = LoginForm()
    status = 200
    if request.method == "POST":
        if not form.validate_on_submit():
            status = 422
        else:
            address = request.remote_addr or ""
            username = form.username.data.strip()  # the same name is throttled and tried
            if services.is_throttled(username, address):
                form.form_errors.append(
                    _("Too many failed attempts. Wait a few minutes and try again.")
                )
                status = 429
            else:
                user = services.authenticate(username, form.password.data, address)
                if user is None:
                    form.form_errors.append(_("Wrong username or password."))
                    status = 401
                else:
                    # A fresh session on login: nothing from before survives (fixation).
                    locale = session.get("locale")
                    session.clear()
                    if locale and not user.locale:
                        session["locale"] = locale
                    services.start_session(user, address, request.user_agent.string)
                    login_user(user, fresh=True)
                    session.permanent = True
                    return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout() -> Any:
    """Log out (POST only, with CSRF, so a link on another site cannot log you out). The
    login session ends on the server too: a copied cookie is worthless afterwards."""
    services.end_session(current_user.login_session_key)
    db.session.commit()
    logout_user()
    session.clear()
    flash(_("You have logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> Any:
    """Change one's own password; every other session of the person ends."""
    form = PasswordChangeForm()
    form._username = current_user.username
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            if not check_password_hash(current_user.password_hash, form.current_password.data):
                form.current_password.errors.append(_("That is not your current password."))
                status = 422
            else:
                services.set_password(current_user, form.new_password.data)
                db.session.commit()
                flash(
                    _("Your password has been changed. Other sessions were logged out."), "success"
                )
                return redirect(url_for("people.profile", user_id=current_user.id))
        else:
            status = 422
    return render_template("auth/password.html", form=form), status


@bp.post("/account/language")
def set_language() -> Any:
    """Switch language: stored on the person when logged in, in the session otherwise."""
    locale = _supported(request.form.get("locale"))
    if locale is None:
        abort(400, _("That language is not available."))
    session["locale"] = locale
    if current_user.is_authenticated:
        current_user.locale = locale
        db.session.commit()
    return redirect(_safe_next(request.form.get("next")), 303)
