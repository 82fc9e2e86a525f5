"""Spreadsheet downloads (CSV and Excel) written one way for the whole portal.

Every export a plugin offers goes through here, so the formula-injection guard (a cell
that a spreadsheet program would run as a formula gets a leading quote) and the file
details Excel needs (a UTF-8 BOM in CSV, string cells that are never formulas, no XML
control characters in .xlsx) are fixed once for all of them. A plugin decides what to
export (its columns, rows in the viewer's scope, the audit event); this module only
writes the file. It holds no user-facing text: headings and values come translated.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from flask import Response, send_file, stream_with_context

from .loops.service import local_today, portal_zone
from .models import as_utc
from .money import yuan

FORMATS = ("csv", "xlsx")
CSV_MIME = "text/csv; charset=utf-8"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Excel reads a CSV file as the machine's code page (GBK on a Chinese Windows) unless it
# starts with this mark; with it, Chinese text opens correctly.
BOM = "\ufeff"
# A text cell starting with one of these is read as a formula by spreadsheet programs,
# also after leading spaces, and in their full-width forms (a Chinese input method
# types ＝ for =).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
# Characters an .xlsx file cannot hold (XML 1.0 control characters).
ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Characters a sheet's name may not contain, and its longest length.
SHEET_TITLE_UNSAFE = re.compile(r"[\[\]:*?/\\]")
SHEET_TITLE_MAX = 31
KINDS = ("text", "int", "number", "percent", "money", "date", "datetime")
CSV_CHUNK_BYTES = 64 * 1024
SPOOL_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Column:
    """One column of an export: its heading (may be a lazy translation), its kind, which
    decides how CSV and Excel write a value, and its width in Excel.

    Kinds: ``text`` (guarded, always a string cell), ``int``, ``number`` (plain
    number; ``Decimal`` allowed), ``percent`` (a number shown with one decimal),
    ``money`` (whole fen, written as yuan), ``date``, ``datetime`` (written in the
    portal's time zone, to the minute). ``None`` is an empty cell in every kind."""

    heading: Any
    kind: str = "text"
    width: int = 14

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown export column kind {self.kind!r}")


def safe_text(value: str) -> str:
    """Text a spreadsheet will not run: a leading =, +, -, @, tab or line break, after
    any spaces and in full width too, gets a single quote in front (OWASP's CSV
    injection advice). Other text, "021-5555" included, is left as it is."""
    if value.startswith(FORMULA_STARTS) or value.lstrip().startswith(FORMULA_STARTS):
        return "'" + value
    return value


def sheet_title(text: str) -> str:
    """A name Excel accepts for a sheet: no []:*?/\\ and at most 31 characters."""
    return SHEET_TITLE_UNSAFE.sub(" ", str(text))[:SHEET_TITLE_MAX] or "Sheet1"


def dated_filename(stem: str, fmt: str) -> str:
    """``stem-YYYY-MM-DD.fmt`` with today's date in the portal's time zone, so two
    downloads of one day sort together and a file says when it was taken."""
    return f"{stem}-{local_today().isoformat()}.{fmt}"


def _local(moment: datetime) -> datetime:
    return as_utc(moment).astimezone(portal_zone())  # type: ignore[union-attr]


def csv_cell(kind: str, value: Any) -> str:
    """One value as CSV text: numbers plain (1234.50), dates ISO, text made safe."""
    if value is None:
        return ""
    if kind == "money":
        return str(yuan(value))
    if kind in ("int", "number", "percent"):
        return str(value)
    if kind == "date":
        return value.isoformat()
    if kind == "datetime":
        return _local(value).strftime("%Y-%m-%d %H:%M")
    return safe_text(str(value))


def csv_chunks(
    columns: Sequence[Column], rows: Iterable[Sequence[Any]], trailer: str | None = None
) -> Iterator[bytes]:
    """The CSV file in chunks of about 64 KB (rows may be a lazy query): a UTF-8 BOM
    first, the headings, the rows, then ``trailer`` as a last line if given (say, that
    the row cap cut the file short)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerow([safe_text(str(column.heading)) for column in columns])
    kinds = [column.kind for column in columns]
    for row in rows:
        writer.writerow([csv_cell(kind, value) for kind, value in zip(kinds, row, strict=True)])
        if buffer.tell() > CSV_CHUNK_BYTES:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if trailer is not None:
        writer.writerow([safe_text(trailer)])
    yield buffer.getvalue().encode("utf-8")


def csv_bytes(
    columns: Sequence[Column], rows: Iterable[Sequence[Any]], trailer: str | None = None
) -> bytes:
    """The whole CSV file at once (for a job or an e-mail; pages stream ``csv_chunks``)."""
    return b"".join(csv_chunks(columns, rows, trailer))


def xlsx_file(
    columns: Sequence[Column],
    rows: Iterable[Sequence[Any]],
    title: str,
    trailer: str | None = None,
) -> IO[bytes]:
    """The workbook in a spooled temporary file at its start (openpyxl's write-only
    mode: rows go straight to disk, so a large export does not sit in memory). Headings
    bold, the heading row frozen; text is always a string cell, never a formula; numbers
    and dates are typed cells; ``trailer`` a bold last row if given."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_title(title))
    for index, column in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)

    def text(value: str, font: Any = None) -> Any:
        cell = WriteOnlyCell(sheet, value=ILLEGAL_XML.sub("", safe_text(value)))
        cell.data_type = "s"  # whatever it looks like, never a formula
        if font is not None:
            cell.font = font
        return cell

    def formatted(value: Any, number_format: str) -> Any:
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = number_format
        return cell

    def typed(kind: str, value: Any) -> Any:
        if value is None:
            return None
        if kind == "money":
            return formatted(yuan(value), "#,##0.00")
        if kind == "int":
            return value
        if kind == "number":
            return float(value) if isinstance(value, Decimal) else value
        if kind == "percent":
            return formatted(float(value), "0.0")
        if kind == "date":
            return formatted(value, "yyyy-mm-dd")
        if kind == "datetime":
            return formatted(_local(value).replace(tzinfo=None), "yyyy-mm-dd hh:mm")
        return text(str(value))

    sheet.append([text(str(column.heading), bold) for column in columns])
    kinds = [column.kind for column in columns]
    for row in rows:
        sheet.append([typed(kind, value) for kind, value in zip(kinds, row, strict=True)])
    if trailer is not None:
        sheet.append([text(trailer, bold)])
    handle = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    workbook.save(handle)
    handle.seek(0)
    return handle  # type: ignore[return-value]


def download(
    fmt: str,
    columns: Sequence[Column],
    rows: Iterable[Sequence[Any]],
    filename: str,
    *,
    title: str,
    trailer: str | None = None,
) -> Response:
    """An export as a download: ``fmt`` "csv" streamed in chunks (the rows are read
    while sending, inside the request's context), "xlsx" from a spooled file; never
    cached (it holds the viewer's data). Call it after committing the audit event, so
    the record exists even if the download is interrupted. ``title`` names the sheet."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    if fmt == "csv":
        # content_type, not mimetype: Werkzeug would add a second "; charset=utf-8".
        response = Response(
            stream_with_context(csv_chunks(columns, rows, trailer)), content_type=CSV_MIME
        )
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    else:
        response = send_file(
            xlsx_file(columns, rows, title, trailer),
            mimetype=XLSX_MIME,
            as_attachment=True,
            download_name=filename,
        )
    response.headers["Cache-Control"] = "private, no-store"
    return response
