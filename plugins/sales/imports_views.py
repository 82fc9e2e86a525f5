"""Pages of the prospect import (P3.1.2): upload, the template, and the status of one
import with a progress bar that polls itself (htmx) until the import has finished.

The upload is a plain form post (a file does not need htmx); a file that cannot be
read comes back on the form with its message (422, or 413 over a limit). Imports are
scoped like every business record: the uploader sees theirs, leaders their team's.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from portal.auth.models import User
from portal.auth.permissions import require_permission
from portal.extensions import db
from portal.listing import paginate
from portal.org.services import ValidationFailed
from portal.web import is_htmx_request, vary_on_htmx

from . import imports
from .imports_forms import ImportUploadForm
from .models import CustomerImport

bp = Blueprint("sales_imports", __name__, template_folder="templates")


def _past_imports() -> tuple[Any, dict[int, str]]:
    """A page of the imports in the viewer's scope, and their uploaders' names (one
    more query, however long the page)."""
    page = paginate(
        imports.imports_for(current_user).order_by(
            CustomerImport.created_at.desc(), CustomerImport.id.desc()
        )
    )
    owner_ids = {record.owner_id for record in page.items}
    names: dict[int, str] = {}
    if owner_ids:
        statement = sa.select(User.id, User.display_name).where(User.id.in_(owner_ids))
        names = {row.id: row.display_name for row in db.session.execute(statement)}
    return page, names


@bp.route("/imports/", methods=["GET", "POST"])
@require_permission("sales.import")
def index() -> Any:
    """Upload a file of prospects; the imports so far below."""
    form = ImportUploadForm()
    status = 200
    if form.is_submitted():
        status = 422
        if form.validate():
            upload = form.file.data
            try:
                data = imports.read_upload(upload.stream)
                record = imports.start_import(data, upload.filename or "", current_user)
                db.session.commit()
            except imports.ImportTooLarge as error:
                db.session.rollback()
                error.show_on(form)
                status = 413
            except ValidationFailed as error:
                db.session.rollback()
                error.show_on(form)
            else:
                flash(_("The file was received; its rows are being checked."), "info")
                return redirect(url_for("sales_imports.status", import_id=record.id), 303)
    page, uploaders = _past_imports()
    return render_template(
        "sales/imports/index.html",
        form=form,
        page=page,
        uploaders=uploaders,
        fields=imports.header_help(),
        max_rows=imports.max_rows(),
        max_megabytes=round(imports.max_bytes() / (1024 * 1024), 1),
    ), status


@bp.get("/imports/template.csv")
@require_permission("sales.import")
def template() -> Response:
    """The CSV to fill in, with English (default) or Chinese (``?lang=zh``) headers."""
    language = "zh" if request.args.get("lang") == "zh" else "en"
    response = make_response(imports.template_csv(language))
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    filename = "prospects-template-zh.csv" if language == "zh" else "prospects-template.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/imports/<int:import_id>")
@require_permission("sales.view")
def status(import_id: int) -> Any:
    """One import: progress while it runs, then its problems or what was created.
    An htmx request (the poll) gets only the status block."""
    record = imports.get_import_or_404(import_id, current_user)
    imports.fail_if_stalled(record)
    uploader = db.session.get(User, record.owner_id)
    context = {
        "record": record,
        "uploader": uploader,
        "running": record.status in imports.RUNNING,
        "percent": _percent(record),
        **imports.split_errors(record),
    }
    partial = is_htmx_request(boosted=False)
    template = "sales/imports/_status.html" if partial else "sales/imports/status.html"
    response = vary_on_htmx(render_template(template, **context))
    response.headers["Cache-Control"] = "no-store"
    return response


def _percent(record: CustomerImport) -> int:
    if record.status in imports.FINISHED or record.status == "importing":
        return 100
    if not record.total_rows:
        return 0
    return max(0, min(100, round(100 * record.processed_rows / record.total_rows)))
