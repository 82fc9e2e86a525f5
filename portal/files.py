"""Uploaded files, one way for every plugin: closure evidence, receipts, meeting
materials. A file is checked by extension *and* by its first bytes (an executable
renamed to .jpg is refused), by size while it streams (a 50 MB upload is cut off, not
buffered), stored under ``instance/uploads/<area>`` with a random name (outside the web
root, never served by its own name), and deleted again when the transaction that wrote
it does not commit. Downloads go through a view that has checked scope first."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app, send_from_directory
from flask_babel import gettext as _

from .extensions import db
from .org.services import ValidationFailed

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# Accepted files by extension; the content must also look like that type (see _SIGNATURES).
DEFAULT_TYPES: dict[str, str] = {
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".doc": "application/msword",
    ".xls": "application/vnd.ms-excel",
}
# Pictures and PDFs only: what a receipt or a certificate is.
IMAGE_AND_PDF_TYPES: dict[str, str] = {
    suffix: kind
    for suffix, kind in DEFAULT_TYPES.items()
    if kind.startswith("image/") or kind == "application/pdf"
}
_ZIP = (b"PK\x03\x04",)
_OLE = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": _ZIP,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": _ZIP,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": _ZIP,
    "application/msword": _OLE,
    "application/vnd.ms-excel": _OLE,
}
_CHUNK = 64 * 1024
_NEW_FILES = "portal_new_files"
_OLD_FILES = "portal_old_files"


@dataclass(frozen=True)
class StoredFile:
    """A checked upload on disk: what a plugin's attachment row records."""

    filename: str  # the name the person gave it (cleaned), shown and used on download
    stored_name: str  # the random name on disk
    content_type: str
    size: int
    sha256: str  # the same file uploaded twice has the same digest (duplicate receipts)

    def columns(self) -> dict[str, Any]:
        """The attachment row's values for this file (``filename``, ``stored_name``,
        ``content_type``, ``size``, ``sha256``): ``Receipt(**stored.columns(), ...)``."""
        return asdict(self)


def upload_folder(area: str) -> Path:
    """Where ``area``'s files are kept: ``instance/uploads/<area>`` (outside static/)."""
    return Path(current_app.instance_path) / "uploads" / area


def display_name(filename: str) -> str:
    """The last path part of an uploaded name, without control or markup characters."""
    name = Path(filename.replace("\\", "/")).name
    name = "".join(char for char in name if ord(char) >= 32 and char not in '"<>')
    return name.strip()[:255] or "file"


def looks_like(content_type: str, head: bytes) -> bool:
    """The first bytes match the type the extension claims (a renamed .exe is refused)."""
    if content_type == "image/webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if content_type.startswith("text/"):
        return b"\x00" not in head
    signatures = _SIGNATURES.get(content_type)
    return signatures is None or any(head.startswith(s) for s in signatures)


def chosen_uploads(files: Sequence[Any] | None) -> list[Any]:
    """The uploads a form really carried (an empty file input sends a nameless part)."""
    return [
        upload for upload in files or () if upload is not None and getattr(upload, "filename", "")
    ]


def store_uploads(
    uploads: Sequence[Any],
    area: str,
    *,
    types: Mapping[str, str] | None = None,
    max_bytes: int | None = None,
    field: str = "files",
) -> list[StoredFile]:
    """Check and store every upload (objects with ``filename`` and ``stream``, like
    werkzeug's FileStorage), or none: any refused file raises ValidationFailed under
    ``field`` with one message per file, and the files already written are removed.
    Files of a transaction that does not commit are deleted when it ends."""
    uploads = chosen_uploads(uploads)
    if not uploads:
        return []
    _forget_files_on_rollback()
    allowed = dict(types or DEFAULT_TYPES)
    limit = int(max_bytes or DEFAULT_MAX_BYTES)
    folder = upload_folder(area)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    stored: list[StoredFile] = []
    problems: list[str] = []
    try:
        for upload in uploads:
            name = display_name(upload.filename)
            content_type = allowed.get(Path(name).suffix.lower())
            if content_type is None:
                problems.append(
                    _(
                        "%(name)s: this kind of file is not accepted (%(kinds)s).",
                        name=name,
                        kinds=", ".join(sorted(allowed)),
                    )
                )
                continue
            stored_name = secrets.token_hex(20)
            target = folder / stored_name
            digest, size, head = hashlib.sha256(), 0, b""
            stream = getattr(upload, "stream", upload)
            with target.open("xb") as out:
                written.append(target)
                while chunk := stream.read(_CHUNK):
                    if len(head) < 16:
                        head += chunk[: 16 - len(head)]
                    size += len(chunk)
                    if size > limit:
                        break
                    digest.update(chunk)
                    out.write(chunk)
            if size > limit:
                problems.append(
                    _("%(name)s is larger than %(size)s MB.", name=name, size=limit // 1048576 or 1)
                )
            elif size == 0:
                problems.append(_("%(name)s is empty.", name=name))
            elif not looks_like(content_type, head):
                problems.append(_("%(name)s does not contain what its name says.", name=name))
            else:
                stored.append(StoredFile(name, stored_name, content_type, size, digest.hexdigest()))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    if problems:
        for path in written:
            path.unlink(missing_ok=True)
        raise ValidationFailed({field: problems})
    db.session.info.setdefault(_NEW_FILES, []).extend(str(path) for path in written)
    return stored


def send_stored(area: str, stored_name: str, content_type: str, filename: str) -> Any:
    """A stored file as a download; the caller has checked who may read it. 404 when
    the file is gone from disk."""
    from flask import abort

    if not (upload_folder(area) / stored_name).is_file():
        abort(404)
    return send_from_directory(
        upload_folder(area),
        stored_name,
        mimetype=content_type,
        as_attachment=True,
        download_name=filename,
        max_age=0,
    )


def discard_stored(area: str, stored_names: Sequence[str]) -> None:
    """Delete stored files once the transaction that dropped their rows commits (a
    removed receipt must not stay on disk, unreachable and never cleaned); nothing is
    deleted if it rolls back."""
    names = [name for name in stored_names if name and Path(name).name == name]
    if not names:
        return
    _forget_files_on_rollback()
    folder = upload_folder(area)
    db.session.info.setdefault(_OLD_FILES, []).extend(str(folder / name) for name in names)


def _forget_files_on_rollback() -> None:
    """A file written for a transaction that does not commit is deleted again: a
    rollback, and a session closed without committing (an unexpected error ends the
    request). Installed once per session class."""
    from .database import session_class

    cls = session_class()
    if sa.event.contains(cls, "after_transaction_end", _drop_new_files):
        return
    sa.event.listen(cls, "after_commit", _keep_new_files)
    sa.event.listen(cls, "after_transaction_end", _drop_new_files)


def _drop_new_files(session: Any, transaction: Any) -> None:
    # after_commit has already taken the list of a committed transaction; whatever is
    # left when the outermost transaction ends was not committed.
    if transaction.parent is not None:
        return
    session.info.pop(_OLD_FILES, None)  # not committed: the rows still refer to them
    for path in session.info.pop(_NEW_FILES, []):
        Path(path).unlink(missing_ok=True)


def _keep_new_files(session: Any) -> None:
    session.info.pop(_NEW_FILES, None)
    for path in session.info.pop(_OLD_FILES, []):
        Path(path).unlink(missing_ok=True)
