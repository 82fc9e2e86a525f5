"""JSON resources of the prospect import (P3.1.2): upload a file, follow its import.

``POST /api/v1/sales/imports`` takes a multipart upload (field ``file``) and answers
202 with the queued import; ``GET /api/v1/sales/imports/<id>`` tells its status,
progress and problems per row and field. Same checks, limits and scope as the pages:
422 for an unreadable file, 413 over a limit, 404 outside one's scope.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request, url_for
from flask_babel import gettext as _

from portal.api import ApiError, current_api_user, iso_time, page_response
from portal.extensions import db
from portal.listing import paginate
from portal.org.services import ValidationFailed
from portal.plugins import ApiRoute

from . import imports
from .models import IMPORT_STATUSES, CustomerImport

_ENTRY = {
    "type": "object",
    "properties": {
        "row": {"type": ["integer", "null"]},
        "field": {"type": "string"},
        "column": {"type": "string"},
        "value": {"type": "string"},
        "message": {"type": "string"},
    },
}
IMPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "filename": {"type": "string"},
        "owner_id": {"type": "integer"},
        "status": {"type": "string", "enum": list(IMPORT_STATUSES)},
        "finished": {"type": "boolean"},
        "total_rows": {"type": "integer"},
        "processed_rows": {"type": "integer"},
        "progress_pct": {"type": "integer"},
        "created_count": {"type": "integer"},
        "errors": {"type": "array", "items": _ENTRY},
        "more_errors": {"type": "integer"},
        "warnings": {"type": "array", "items": _ENTRY},
        "created_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
        "page": {"type": "string"},
    },
}


def import_json(record: CustomerImport) -> dict[str, Any]:
    """An import as the API shows it."""
    parts = imports.split_errors(record)
    if record.status in imports.FINISHED or record.status == "importing":
        percent = 100
    elif record.total_rows:
        percent = round(100 * record.processed_rows / record.total_rows)
    else:
        percent = 0
    return {
        "id": record.id,
        "filename": record.filename,
        "owner_id": record.owner_id,
        "status": record.status,
        "finished": record.status in imports.FINISHED,
        "total_rows": record.total_rows,
        "processed_rows": record.processed_rows,
        "progress_pct": percent,
        "created_count": record.created_count,
        "errors": [_entry(e) for e in parts["errors"]],
        "more_errors": parts["more"],
        "warnings": [_entry(e) for e in parts["warnings"]],
        "created_at": iso_time(record.created_at),
        "finished_at": iso_time(record.finished_at),
        "page": url_for("sales_imports.status", import_id=record.id),
    }


def _entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "row": entry.get("row"),
        "field": entry.get("field") or "",
        "column": entry.get("column") or "",
        "value": entry.get("value") or "",
        "message": entry.get("message") or "",
    }


def create_import() -> Any:
    """Upload a CSV or .xlsx file of prospects (multipart, field ``file``); it is
    checked and imported in the background: follow it with GET."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        message = _('Send the file as multipart/form-data in the field "file".')
        raise ApiError(422, "validation_failed", message, {"file": [message]})
    try:
        data = imports.read_upload(upload.stream)
        record = imports.start_import(data, upload.filename, current_api_user())
        db.session.commit()
    except imports.ImportTooLarge as error:
        raise ApiError(413, "too_large", str(error.fields["file"][0]), error.fields) from None
    except ValidationFailed as error:
        raise ApiError(
            422, "validation_failed", _("The file cannot be imported."), error.fields
        ) from None
    response = jsonify(import_json(record))
    response.status_code = 202
    response.headers["Location"] = f"/api/v1/sales/imports/{record.id}"
    return response


def list_imports() -> Any:
    """Imports in your scope, newest first."""
    statement = imports.imports_for(current_api_user()).order_by(
        CustomerImport.created_at.desc(), CustomerImport.id.desc()
    )
    return page_response(paginate(statement, api=True), import_json)


def get_import(import_id: int) -> Any:
    """One import: status, progress, problems per row and field."""
    record = imports.get_import_or_404(import_id, current_api_user())
    imports.fail_if_stalled(record)
    return jsonify(import_json(record))


def routes() -> list[ApiRoute]:
    """The imports resources, mounted under /api/v1/sales."""
    return [
        ApiRoute(
            "/imports",
            list_imports,
            ("GET",),
            summary="Imports of prospects in your scope",
            permission="sales.view",
            schema=IMPORT_SCHEMA,
            paginated=True,
            tag="sales",
        ),
        ApiRoute(
            "/imports",
            create_import,
            ("POST",),
            summary="Upload a CSV or .xlsx file of prospects (multipart field 'file')",
            permission="sales.import",
            schema=IMPORT_SCHEMA,
            tag="sales",
        ),
        ApiRoute(
            "/imports/<int:import_id>",
            get_import,
            ("GET",),
            summary="Status, progress and per-row problems of one import",
            permission="sales.view",
            schema=IMPORT_SCHEMA,
            tag="sales",
        ),
    ]
