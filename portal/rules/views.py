"""The rule files in the browser (P1.3.4): list, read, edit, check, simulate, publish,
history with diffs and rollback, and the "why?" page of one record's decisions.

Everything the ``portal rules`` CLI does is offered here, through the same service. Each
page works without JavaScript (plain form posts with an ``action`` button); with htmx the
Check and Simulate results are swapped into the result panel only.
"""

from __future__ import annotations

import difflib
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from ..auth.models import User
from ..auth.permissions import require_permission
from ..extensions import db
from ..i18n import current_locale
from ..listing import paginate
from ..models import as_utc
from ..web import is_htmx_request
from .engine import RuleEngineError
from .model import RuleError
from .models import RuleDecision, RulesetStatus, RuleVersion
from .service import Active, Check, PublishRefused, RuleService, UnknownRuleset, rules
from .types import display
from .validate import MAX_BYTES

bp = Blueprint("rules", __name__, url_prefix="/admin/rules")

# Who published a version that no person published: where it came from.
ORIGIN_LABELS = {
    "default": _l("the default file"),
    "instance": _l("the company's file"),
    "cli": _l("the command line"),
    "browser": _l("the browser"),
    "rollback": _l("a rollback"),
}


@bp.app_template_global()
def published_by(row: Any) -> str:
    """The person who published a version, or where it came from."""
    return row.author or str(ORIGIN_LABELS.get(row.origin, row.origin))


ACTIONS = ("check", "save", "simulate", "publish")
# Which fields an action reads: a bad date does not stop a Check, a long note no Simulate.
ACTION_FIELDS = {
    "check": ("source",),
    "save": ("source", "note"),
    "simulate": ("source", "since"),
    "publish": ("source", "note"),
}
SIMULATION_EXAMPLES = 20
ORIGIN_LABELS = {
    "default": _l("default file"),
    "instance": _l("company file"),
    "browser": _l("browser"),
    "cli": _l("command line"),
    "rollback": _l("rollback"),
}


class RuleEditForm(FlaskForm):
    """The edit page: the file's text, a note for publishing, the simulation's start."""

    source = TextAreaField(_l("Rule file"), validators=[DataRequired()])
    note = StringField(
        _l("Note"),
        validators=[Optional(), Length(max=500)],
        description=_l("Why the change was made; kept in the history."),
    )
    since = DateField(_l("Simulate on decisions since"), validators=[Optional()])
    base = HiddenField()


# -- helpers -------------------------------------------------------------------


def _service() -> RuleService:
    return rules()


def _known(name: str) -> None:
    if name not in _service().names():
        abort(404)


def _active(name: str) -> Active | None:
    try:
        return _service().active(name)
    except UnknownRuleset:
        return None


def _published_row(active: Active | None) -> RuleVersion | None:
    if active is None or active.version_id is None:  # a file not published yet
        return None
    return db.session.get(RuleVersion, active.version_id)


def _normalized(text: str | None) -> str:
    """What the browser sent, with its CRLF line ends made LF (as the files have them)."""
    return (text or "").replace("\r\n", "\n").replace("\r", "\n")


def _origin_of(name: str) -> str:
    paths = _service().files().get(name, {})
    if "instance" in paths:
        return "instance"
    if "default" in paths:
        return "default"
    return ""


def _people(ids: set[int | None]) -> dict[int, User]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {u.id: u for u in db.session.scalars(sa.select(User).where(User.id.in_(wanted)))}


def _versions(ids: set[int | None]) -> dict[int, RuleVersion]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {
        v.id: v
        for v in db.session.scalars(sa.select(RuleVersion).where(RuleVersion.id.in_(wanted)))
    }


def _classify(lines: Any) -> list[tuple[str, str]]:
    """Lines of a unified diff as (css class, line) pairs for the template."""
    result = []
    for line in lines:
        if line.startswith(("+++", "---")):
            kind = "diff-file"
        elif line.startswith("@@"):
            kind = "diff-hunk"
        elif line.startswith("+"):
            kind = "diff-add"
        elif line.startswith("-"):
            kind = "diff-del"
        else:
            kind = "diff-same"
        result.append((kind, line))
    return result


def _diff_lines(
    before: str, after: str, before_name: str, after_name: str
) -> list[tuple[str, str]]:
    """The unified diff of two texts, classified for the template."""
    return _classify(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), before_name, after_name, lineterm=""
        )
    )


def _decision_rows(decisions: list[RuleDecision]) -> list[dict[str, Any]]:
    """Stored decisions with their version number, source line and who made the change."""
    versions = _versions({d.version_id for d in decisions})
    people = _people({d.actor_id for d in decisions})
    rows = []
    for decision in decisions:
        version = versions.get(decision.version_id or 0)
        source_line = ""
        if version is not None and decision.line:
            lines = version.source.splitlines()
            if 0 < decision.line <= len(lines):
                source_line = lines[decision.line - 1].strip()
        actor = people.get(decision.actor_id or 0)
        rows.append(
            {
                "decision": decision,
                "version": version.version if version is not None else None,
                "label": (
                    decision.rule if decision.row is None else f"{decision.rule}#{decision.row}"
                )
                or _("no rule matched"),
                "source_line": source_line,
                "actor": actor.display_name if actor is not None else "",
            }
        )
    return rows


def _spec_rows(rule_file: Any) -> list[dict[str, Any]]:
    """Inputs, outputs and parameters of a file, one row each, for the summary table."""
    rows = []
    for kind, label, specs in (
        ("input", _("Input"), rule_file.inputs),
        ("output", _("Output"), rule_file.outputs),
    ):
        for name, spec in specs.items():
            rows.append(
                {"kind": kind, "kind_label": label, "name": name, "spec": spec, "value": None}
            )
    for name, (spec, value) in rule_file.parameters.items():
        rows.append(
            {
                "kind": "parameter",
                "kind_label": _("Parameter"),
                "name": name,
                "spec": spec,
                "value": display(spec, value),
            }
        )
    return rows


# -- the list and one ruleset --------------------------------------------------


@bp.get("/")
@require_permission("core.rules.read")
def index() -> Any:
    """Every ruleset: title, clause, version in force, file, status, test cases."""
    service = _service()
    names = service.names()
    files = service.files()
    locale = current_locale()
    actives = {name: _active(name) for name in names}
    published = _versions({a.version_id for a in actives.values() if a is not None})
    statuses = {
        s.ruleset: s
        for s in db.session.scalars(
            sa.select(RulesetStatus).where(RulesetStatus.ruleset.in_(names))
        )
    }
    entries = []
    for name in names:
        active = actives[name]
        paths = files.get(name, {})
        status = statuses.get(name)
        entries.append(
            {
                "name": name,
                "title": active.rule_file.title_in(locale) if active else name,
                "clause": active.rule_file.clause if active else "",
                "active": active,
                "row": published.get(active.version_id) if active else None,
                "origin": "instance" if "instance" in paths else "default" if paths else "",
                "error": status.last_error if status is not None else "",
                "tests": len(active.rule_file.tests) if active else 0,
            }
        )
    return render_template("rules/index.html", entries=entries, origin_labels=ORIGIN_LABELS)


def _in_force(name: str) -> tuple[RuleService, Active | None, Any]:
    """The service, the version in force (or None) and its published row, for a ruleset
    that exists (404 otherwise)."""
    _known(name)
    active = _active(name)
    return _service(), active, _published_row(active)


@bp.get("/<name>")
@require_permission("core.rules.read")
def detail(name: str) -> Any:
    """The version in force with line numbers, its vocabulary, tests and decisions."""
    service, active, row = _in_force(name)
    check: Check | None = None
    if active is not None:
        check = _checked(service, active.rule_file.source, name)
    status = db.session.get(RulesetStatus, name)
    page = paginate(
        sa.select(RuleDecision)
        .where(RuleDecision.ruleset == name)
        .order_by(RuleDecision.at.desc(), RuleDecision.id.desc()),
        per_page=10,
    )
    file_text = None if active is not None else service.file_text(name)
    return render_template(
        "rules/detail.html",
        name=name,
        active=active,
        row=row,
        title=active.rule_file.title_in(current_locale()) if active else name,
        lines=(active.rule_file.source if active else (file_text or ("", ""))[1]).splitlines(),
        specs=_spec_rows(active.rule_file) if active else [],
        check=check,
        origin=_origin_of(name),
        error=status.last_error if status is not None else "",
        page=page,
        decisions=_decision_rows(list(page.items)),
        origin_labels=ORIGIN_LABELS,
    )


@bp.get("/<name>/diff")
@require_permission("core.rules.read")
def company_diff(name: str) -> Any:
    """What the company changed in instance/rules/NAME.yaml against the default."""
    _known(name)
    try:
        text = _service().diff(name)
    except UnknownRuleset:
        text = None  # published from the database only: there is no file to compare
    return render_template(
        "rules/diff.html",
        name=name,
        lines=_classify(text.splitlines()) if text else [],
        has_files=text is not None,
    )


# -- editing ---------------------------------------------------------------------


def _starting_text(name: str, active: Active | None, row: RuleVersion | None) -> tuple[str, Any]:
    """The admin's newest draft if it is newer than the version in force, else that version
    (or the file, when nothing was ever published)."""
    if request.args.get("start") != "current":
        draft = db.session.scalars(
            sa.select(RuleVersion)
            .where(
                RuleVersion.ruleset == name,
                RuleVersion.status == "draft",
                RuleVersion.author_id == current_user.id,
            )
            .order_by(RuleVersion.id.desc())
            .limit(1)
        ).first()
        published_at = as_utc(row.published_at) if row is not None and row.published_at else None
        if draft is not None and (published_at is None or as_utc(draft.created_at) > published_at):
            return draft.source, draft
    if active is not None:
        return active.rule_file.source, None
    found = _service().file_text(name)
    return (found[1] if found else ""), None


def _render_edit(
    name: str,
    form: RuleEditForm,
    active: Active | None,
    status: int = 200,
    **result: Any,
) -> Any:
    """The edit page, or only its result panel when htmx asked for that."""
    context = {
        "name": name,
        "form": form,
        "active": active,
        "title": active.rule_file.title_in(current_locale()) if active else name,
        "action": result.pop("action", None),
        "check": result.pop("check", None),
        "simulation": result.pop("simulation", None),
        "errors": result.pop("errors", []),
        "notice": result.pop("notice", ""),
        "draft": result.pop("draft", None),
    }
    if is_htmx_request() and request.headers.get("HX-Target") == "rule-result":
        return render_template("rules/_result.html", partial=True, **context), status
    return render_template("rules/edit.html", **context), status


def _checked(service: RuleService, text: str, name: str) -> Check:
    """The service's check; should durable_rules itself refuse the file while its tests
    run, that is one more problem of the file, not a server error."""
    try:
        return service.check(text, name)
    except RuleEngineError as error:
        return Check(None, [RuleError(f"{name}.yaml", 1, 1, str(error))])


def _size_error(name: str, text: str) -> RuleError | None:
    """Text no database column or rule file should hold (checked before anything else)."""
    if len(text.encode("utf-8")) > MAX_BYTES:
        return RuleError(f"{name}.yaml", 1, 1, _("the file is larger than 256 KiB"))
    if "\x00" in text:
        return RuleError(f"{name}.yaml", 1, 1, _("the text contains a NUL character"))
    return None


@bp.route("/<name>/edit", methods=["GET", "POST"])
@require_permission("core.rules.manage")
def edit(name: str) -> Any:
    """Edit the text; Check, Save draft, Simulate or Publish it."""
    service, active, row = _in_force(name)
    form = RuleEditForm()
    if request.method == "GET":
        text, draft = _starting_text(name, active, row)
        form.source.data = text
        form.since.data = datetime.now(UTC).date() - timedelta(days=90)
        form.base.data = str(active.version) if active else ""
        return _render_edit(name, form, active, draft=draft)

    action = request.form.get("action", "")
    if action not in ACTIONS:
        abort(400)
    form.validate()
    for field in form:
        if field.name not in (*ACTION_FIELDS[action], "csrf_token"):
            field.errors = []
    if form.since.data is None and not form.since.errors:
        form.since.data = datetime.now(UTC).date() - timedelta(days=90)
    text = _normalized(form.source.data)
    form.source.data = text
    if any(field.errors for field in form):
        return _render_edit(name, form, active, 422, action=action)
    too_big = _size_error(name, text)
    if too_big is not None:
        return _render_edit(name, form, active, 422, action=action, errors=[too_big])

    if action == "save":
        service.save_draft(name, text, author=current_user, note=form.note.data or "")
        db.session.commit()
        flash(_("Your draft of %(name)s was saved.", name=name), "success")
        return redirect(url_for("rules.edit", name=name), 303)

    check = _checked(service, text, name)
    if action == "check":
        return _render_edit(name, form, active, action=action, check=check)

    if action == "simulate":
        if check.rule_file is None:
            return _render_edit(name, form, active, 422, action=action, check=check)
        if active is None:
            return _render_edit(
                name,
                form,
                active,
                422,
                action=action,
                check=check,
                notice=_("No version is in force yet: there is nothing to compare with."),
            )
        since = datetime.combine(form.since.data, datetime.min.time(), tzinfo=UTC)
        from .simulate import simulate

        try:
            simulation = simulate(
                service, name, check.rule_file, since, examples=SIMULATION_EXAMPLES
            )
        except RuleEngineError as error:
            return _render_edit(
                name, form, active, 422, action=action, check=check, notice=str(error)
            )
        return _render_edit(name, form, active, action=action, check=check, simulation=simulation)

    # publish
    if active is not None and form.base.data != str(active.version):
        # Someone published meanwhile: show it instead of silently overwriting their change.
        form.base.data = str(active.version)
        return _render_edit(
            name,
            form,
            active,
            422,
            action=action,
            check=check,
            notice=_(
                "Version %(n)s was published while you were editing. Compare it in the "
                "history; publish again to replace it with your text.",
                n=active.version,
            ),
        )
    if (
        active is not None
        and check.rule_file is not None
        and check.rule_file.sha == active.rule_file.sha
    ):
        return _render_edit(
            name,
            form,
            active,
            422,
            action=action,
            check=check,
            notice=_("This is the version in force already: nothing to publish."),
        )
    if not check.ok:
        return _render_edit(name, form, active, 422, action=action, check=check)
    try:
        published = service.publish(
            name, text, "browser", author=current_user, note=form.note.data or ""
        )
    except (PublishRefused, RuleEngineError):
        db.session.rollback()
        return _render_edit(name, form, active, 422, action=action, check=check)
    except sa.exc.IntegrityError:  # another admin's version took the number a moment ago
        db.session.rollback()
        return _render_edit(
            name,
            form,
            active,
            422,
            action=action,
            check=check,
            notice=_("Another version was published at the same moment. Check the history."),
        )
    flash(_("Version %(n)s of %(name)s is in force.", n=published.version, name=name), "success")
    return redirect(url_for("rules.detail", name=name), 303)


# -- history and rollback --------------------------------------------------------


@bp.get("/<name>/history")
@require_permission("core.rules.read")
def history(name: str) -> Any:
    """Published versions, newest first, each with its diff against the one before."""
    _known(name)
    return _render_history(name)


def _render_history(name: str, status: int = 200, errors: list[str] | None = None) -> Any:
    versions = _service().history(name)
    people = _people({v.author_id for v in versions})
    entries = []
    for index, version in enumerate(versions):
        previous = versions[index + 1] if index + 1 < len(versions) else None
        entries.append(
            {
                "version": version,
                "author": people[version.author_id].display_name
                if version.author_id in people
                else version.author,
                "previous": previous,
                "diff": _diff_lines(
                    previous.source,
                    version.source,
                    f"{name}.yaml v{previous.version}",
                    f"{name}.yaml v{version.version}",
                )
                if previous is not None
                else [],
            }
        )
    return render_template(
        "rules/history.html",
        name=name,
        entries=entries,
        errors=errors or [],
        origin_labels=ORIGIN_LABELS,
    ), status


@bp.route("/<name>/rollback/<int:version>", methods=["POST"])
@require_permission("core.rules.manage")
def rollback(name: str, version: int) -> Any:
    """Publish an older version again as a new version. With htmx the button asked for
    confirmation (hx-confirm); without JavaScript a confirmation page asks first."""
    _known(name)
    service = _service()
    old = service.published_version(name, version)
    if old is None:
        abort(404)
    confirmed = is_htmx_request() or request.form.get("confirmed") == "yes"
    active = _active(name)
    if not confirmed:
        return render_template(
            "rules/rollback_confirm.html",
            name=name,
            old=old,
            active=active,
            changes=_diff_lines(
                active.rule_file.source if active else "",
                old.source,
                f"{name}.yaml v{active.version if active else 0}",
                f"{name}.yaml v{old.version}",
            ),
        )
    if active is not None and active.rule_file.sha == old.sha:
        flash(_("Version %(n)s is in force already.", n=version), "info")
        return redirect(url_for("rules.history", name=name), 303)
    try:
        published = service.rollback(name, version, author=current_user)
    except PublishRefused as refused:
        db.session.rollback()
        errors = [f"{e.line}:{e.column} {e.message}" for e in refused.errors] + [
            _(
                "test '%(name)s' (line %(line)s): %(problem)s",
                name=r.case.name,
                line=r.case.line,
                problem=r.problem,
            )
            for r in refused.failures
        ]
        return _render_history(name, 422, errors)
    except RuleEngineError as error:
        db.session.rollback()
        return _render_history(name, 422, [str(error)])
    except sa.exc.IntegrityError:  # another version took the number a moment ago
        db.session.rollback()
        return _render_history(
            name, 422, [_("Another version was published at the same moment. Try again.")]
        )
    flash(
        _(
            "Version %(old)s is in force again, as version %(n)s.",
            old=version,
            n=published.version,
        ),
        "success",
    )
    return redirect(url_for("rules.history", name=name), 303)


# -- why was this record treated so? ------------------------------------------------


@bp.get("/decisions/<subject_table>/<path:subject_id>")
@require_permission("core.rules.read")
def decisions(subject_table: str, subject_id: str) -> Any:
    """Every stored decision about one record, newest first."""
    found = _service().explain(subject_table[:120], subject_id[:120])
    return render_template(
        "rules/decisions.html",
        subject_table=subject_table,
        subject_id=subject_id,
        decisions=_decision_rows(found),
    )
