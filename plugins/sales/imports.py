"""Importing prospects from a CSV or Excel file (P3.1.2), all rows or none.

An upload is checked at once for what makes the whole file unreadable (its kind, its
encoding, its size, its header), stored outside the web root and queued. The rows are
then checked in a background thread (``run_import``, which tests and the CLI call
directly): every row goes through the customers area's ``create_customer`` (required
fields, the screening rule, duplicates of existing customers) in a transaction that is
rolled back, and against the rows above it in the same file. Progress is committed
every few rows so the status page can show it. If any row is broken the import fails
with its messages per row and field and nothing is written; otherwise every row is
created again in ONE transaction, so a half-imported file cannot exist.

Limits live in the app config (defaults below): ``SALES_IMPORT_MAX_BYTES``,
``SALES_IMPORT_MAX_ROWS``, ``SALES_IMPORT_MAX_ERRORS``, ``SALES_IMPORT_PROGRESS_EVERY``,
``SALES_IMPORT_MAX_UNPACKED_BYTES`` (an .xlsx is a zip: its unpacked size is bounded
too), ``SALES_IMPORT_STALE_SECONDS`` (an import without progress that long is ended)
and ``SALES_IMPORT_BACKGROUND`` (None: a thread per import, except in tests).
"""

from __future__ import annotations

import csv
import io
import logging
import re
import secrets
import threading
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _

from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.models import utcnow
from portal.org.services import ValidationFailed
from portal.scoping import get_scoped_or_404, scoped

from .models import COMPANY_SIZES, CUSTOMER_GRADES, CUSTOMER_SOURCES, CustomerImport
from .vocabulary import LABELS

log = logging.getLogger("sales.imports")

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_ROWS = 5000
DEFAULT_MAX_ERRORS = 500
DEFAULT_PROGRESS_EVERY = 50
DEFAULT_MAX_UNPACKED_BYTES = 100 * 1024 * 1024
DEFAULT_STALE_SECONDS = 1800
MAX_COLUMNS = 100  # columns read from a sheet; a header wider than this is refused
RUNNING = ("queued", "checking", "importing")
FINISHED = ("failed", "done")

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the old .xls (and .doc) container
TEXT_SUFFIXES = (".csv", ".txt")
EXCEL_SUFFIXES = (".xlsx",)
ACCEPTED_SUFFIXES = TEXT_SUFFIXES + EXCEL_SUFFIXES

# The customer fields a file may fill, in the template's column order, with the header
# written in the English and the Chinese template.
FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "客户名称"),
    ("phone", "电话"),
    ("tax_id", "统一社会信用代码"),
    ("industry", "行业"),
    ("size", "规模"),
    ("region", "区域"),
    ("city", "城市"),
    ("source", "来源"),
    ("need", "需求"),
    ("grade", "等级"),
    ("email", "邮箱"),
    ("address", "地址"),
    ("notes", "备注"),
)
FIELD_NAMES = tuple(name for name, _zh in FIELDS)

# Header names understood for each field, compared after ``header_key`` (lower case,
# without spaces, punctuation, a trailing "*" or a note in brackets).
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": (
        "name",
        "company",
        "companyname",
        "customer",
        "customername",
        "名称",
        "客户名称",
        "客户",
        "公司名称",
        "企业名称",
        "单位名称",
    ),
    "phone": (
        "phone",
        "telephone",
        "tel",
        "mobile",
        "phonenumber",
        "电话",
        "联系电话",
        "电话号码",
        "手机",
        "手机号",
        "手机号码",
    ),
    "tax_id": (
        "taxid",
        "taxnumber",
        "uscc",
        "税号",
        "统一社会信用代码",
        "社会信用代码",
        "信用代码",
        "纳税人识别号",
    ),
    "industry": ("industry", "行业", "所属行业"),
    "size": ("size", "companysize", "规模", "企业规模", "公司规模"),
    "region": ("region", "area", "区域", "地区", "大区"),
    "city": ("city", "城市"),
    "source": ("source", "leadsource", "来源", "客户来源"),
    "need": ("need", "needs", "requirement", "requirements", "需求", "客户需求"),
    "grade": ("grade", "level", "rating", "等级", "客户等级", "级别"),
    "email": ("email", "mail", "emailaddress", "邮箱", "电子邮箱", "电子邮件", "邮件"),
    "address": ("address", "地址", "详细地址", "公司地址"),
    "notes": ("notes", "note", "remark", "remarks", "comment", "comments", "备注", "说明"),
}
_HEADER_TO_FIELD = {alias: name for name, aliases in HEADER_ALIASES.items() for alias in aliases}

# Words people type for coded values, besides the codes and their labels in every
# language of the portal (Chinese exports rarely use the codes). Industries and regions
# take the customers area's words (``customers.canonical_code``), as the form and the
# API do, so a file and a person are understood alike.
VALUE_ALIASES: dict[str, dict[str, str]] = {
    "size": {
        "微型": "micro",
        "小型": "small",
        "中型": "medium",
        "大型": "large",
        "特大型": "enterprise",
        "集团": "enterprise",
    },
    "source": {
        "转介绍": "referral",
        "推荐": "referral",
        "展会": "exhibition",
        "网站": "website",
        "官网": "website",
        "电话陌拜": "cold_call",
        "陌拜": "cold_call",
        "电销": "cold_call",
        "合作伙伴": "partner",
        "渠道": "partner",
        "导入": "import",
        "其他": "other",
        "其它": "other",
    },
}

_FILES_TO_DROP = "sales_import_new_files"
_PENDING = "sales_import_pending"


# -- errors --------------------------------------------------------------------------


class ImportTooLarge(ValidationFailed):
    """The file is over the size or row limit (answered 413, not 422)."""


class ImportRefused(ValueError):
    """The file as a whole cannot be read; the message says why, for the uploader."""


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed({"file": [message]})


# -- limits ------------------------------------------------------------------------


def _config(key: str, default: int) -> int:
    return int(current_app.config.get(key) or default)


def max_bytes() -> int:
    return _config("SALES_IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES)


def max_rows() -> int:
    return _config("SALES_IMPORT_MAX_ROWS", DEFAULT_MAX_ROWS)


def max_errors() -> int:
    return _config("SALES_IMPORT_MAX_ERRORS", DEFAULT_MAX_ERRORS)


# -- reading a file -----------------------------------------------------------------------


@dataclass
class ParsedFile:
    """The rows of a file mapped to customer fields; row numbers are the file's own
    (the header counts as a row, the first row of the file is 1)."""

    header_row: int
    columns: dict[int, str]  # column position -> field
    headers: dict[str, str]  # field -> the header as written in the file
    unknown: list[str]  # headers that match no field (ignored)
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    encoding: str = ""


def header_key(text: Any) -> str:
    """A header reduced for comparison: "Customer name *" and "客户名称（必填）" match
    "customername" and "客户名称"."""
    value = str(text or "").replace("\ufeff", "").strip().lower()
    value = re.sub(r"[（(\[【].*?[)）\]】]", "", value)
    return re.sub(r"[\s_\-.:：*/#]+", "", value)


def field_for_header(text: Any) -> str | None:
    """The customer field a header names, or None."""
    return _HEADER_TO_FIELD.get(header_key(text))


def cell_text(value: Any) -> str:
    """A cell as text: whole numbers without ".0" (Excel keeps phone numbers as
    numbers), dates as ISO dates, everything stripped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e18:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).replace("\ufeff", "").strip()


def detect_kind(data: bytes, filename: str) -> str:
    """ "csv" or "xlsx" from the file's name AND its first bytes; anything else, or a
    name that lies about the content (an .exe renamed .csv), is refused."""
    suffix = Path(filename or "").suffix.lower()
    if suffix == ".xls" or data.startswith(OLE_MAGIC):
        raise ImportRefused(
            _(
                "Old Excel files (.xls) cannot be read. Open the file in Excel or WPS and "
                "save it as .xlsx or as CSV."
            )
        )
    if suffix not in ACCEPTED_SUFFIXES:
        raise ImportRefused(
            _(
                "Upload a CSV file (.csv) or an Excel workbook (.xlsx); %(name)s is neither.",
                name=Path(filename or "").name or "?",
            )
        )
    if not data.strip():
        raise ImportRefused(_("The file is empty."))
    if suffix in EXCEL_SUFFIXES:
        if not data.startswith(ZIP_MAGIC):
            raise ImportRefused(
                _("This file is not an Excel workbook, although its name ends in .xlsx.")
            )
        return "xlsx"
    if data.startswith(ZIP_MAGIC):
        raise ImportRefused(
            _("This file is an Excel workbook or another packed file, not CSV text: name it .xlsx.")
        )
    return "csv"


def decode_text(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and the encoding it was in: UTF-8 (with or without BOM)
    or GB18030, a superset of GBK (what Chinese Excel and WPS save "CSV" in)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportRefused(
            _(
                'The file is in UTF-16 (Excel\'s "Unicode text"), which cannot be read. '
                'Save it as "CSV UTF-8" or as .xlsx.'
            )
        )
    if b"\x00" in data:
        raise ImportRefused(
            _("This is not a text file (it contains binary data). Upload a CSV file or .xlsx.")
        )
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        controls = sum(1 for char in text if ord(char) < 32 and char not in "\t\r\n")
        if controls > max(2, len(text) // 200):
            break
        return text, "utf-8" if encoding == "utf-8-sig" else "gb18030"
    raise ImportRefused(
        _(
            "The file's characters cannot be read: it is neither UTF-8 nor GBK/GB18030 text. "
            'Save it as "CSV UTF-8" or as .xlsx and upload it again.'
        )
    )


def _csv_records(text: str) -> Iterator[list[str]]:
    first_line = text.split("\n", 1)[0]
    counts = {delimiter: first_line.count(delimiter) for delimiter in (",", ";", "\t")}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error as error:
        raise ImportRefused(
            _(
                "The CSV file is malformed near line %(line)s: %(problem)s",
                line=reader.line_num,
                problem=str(error),
            )
        ) from None


def _xlsx_records(data: bytes) -> Iterator[list[Any]]:
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ImportRefused(_("The workbook is damaged and cannot be opened.")) from None
    if "xl/workbook.xml" not in names:
        raise ImportRefused(_("This file is not an Excel workbook (.xlsx)."))
    limit = _config("SALES_IMPORT_MAX_UNPACKED_BYTES", DEFAULT_MAX_UNPACKED_BYTES)
    if unpacked > limit:
        raise ImportRefused(_("The workbook unpacks to too much data to be imported."))
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a broken file
        log.info("unreadable workbook", exc_info=True)
        raise ImportRefused(_("The workbook is damaged and cannot be opened.")) from None
    try:
        if not workbook.worksheets:
            raise ImportRefused(_("The workbook has no worksheet."))
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # a wrong stored size must not make us pad millions of rows
        try:
            for row in sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True):
                yield list(row)
        except ImportRefused:
            raise
        except Exception:
            log.info("unreadable worksheet", exc_info=True)
            raise ImportRefused(_("The first worksheet cannot be read.")) from None
    finally:
        workbook.close()


def parse_file(data: bytes, filename: str, row_limit: int | None = None) -> ParsedFile:
    """Read a whole upload into rows of customer values. Raises ImportRefused for a
    file that cannot be read at all, ImportTooLarge over the row limit."""
    kind = detect_kind(data, filename)
    encoding = "xlsx"
    if kind == "xlsx":
        records: Iterable[list[Any]] = _xlsx_records(data)
    else:
        text, encoding = decode_text(data)
        records = _csv_records(text)
    limit = row_limit or max_rows()
    # Blank rows are skipped, but not without end (a sheet padded to a million rows).
    scan_limit = limit * 2 + 1000
    parsed: ParsedFile | None = None
    for number, raw in enumerate(records, start=1):
        if number > scan_limit:
            raise _too_many_rows(limit)
        cells = [cell_text(value) for value in raw]
        if not any(cells):
            continue
        if parsed is None:
            parsed = _read_header(number, cells, encoding)
            continue
        values = {
            name: cells[position] if position < len(cells) else ""
            for position, name in parsed.columns.items()
        }
        if not any(values.values()):
            continue
        parsed.rows.append((number, values))
        if len(parsed.rows) > limit:
            raise _too_many_rows(limit)
    if parsed is None:
        raise ImportRefused(_("The file is empty."))
    if not parsed.rows:
        raise ImportRefused(_("The file has a header row but no rows of customers under it."))
    return parsed


def _too_many_rows(limit: int) -> ImportTooLarge:
    return ImportTooLarge(
        {
            "file": [
                _(
                    "The file has more than %(limit)s rows of customers. Split it into "
                    "smaller files.",
                    limit=limit,
                )
            ]
        }
    )


def _read_header(number: int, cells: list[str], encoding: str) -> ParsedFile:
    while cells and not cells[-1]:
        cells = cells[:-1]
    if len(cells) > MAX_COLUMNS:
        raise ImportRefused(_("The header has more than %(n)s columns.", n=MAX_COLUMNS))
    columns: dict[int, str] = {}
    headers: dict[str, str] = {}
    unknown: list[str] = []
    for position, text in enumerate(cells):
        if not text:
            continue
        name = field_for_header(text)
        if name is None:
            unknown.append(text)
            continue
        if name in headers:
            raise ImportRefused(
                _(
                    'The columns "%(first)s" and "%(second)s" are both the %(field)s.',
                    first=headers[name],
                    second=text,
                    field=field_label(name),
                )
            )
        columns[position] = name
        headers[name] = text
    if "name" not in headers:
        raise ImportRefused(
            _(
                "The first row must name the columns, and one of them must be the customer's "
                'name ("name" or "客户名称"). Download the template to see the headers.'
            )
        )
    return ParsedFile(number, columns, headers, unknown, encoding=encoding)


def field_label(name: str) -> str:
    """The reader's-language name of a customer field."""
    from .vocabulary import label

    return label("import_field", name)


# -- checking one row ---------------------------------------------------------------------


def duplicate_keys(values: Mapping[str, str]) -> dict[str, str]:
    """The name, phone and tax ID as the customers area compares them for duplicates,
    so a duplicate inside the file is found by the same keys as one in the database."""
    from .customers import name_key, normalize_tax_id, phone_key

    return {
        "name": name_key(values.get("name")) or "",
        "phone": phone_key(values.get("phone")) or "",
        "tax_id": normalize_tax_id(values.get("tax_id")) or "",
    }


def coded_fields() -> dict[str, tuple[str, ...]]:
    """The fields that take a code, with their codes (industries and regions are the
    screening rule file's, so an admin's new industry is importable at once)."""
    from .customers import screening_codes

    return {
        "industry": tuple(screening_codes("industry")),
        "region": tuple(screening_codes("region")),
        "size": COMPANY_SIZES,
        "source": CUSTOMER_SOURCES,
        "grade": CUSTOMER_GRADES,
    }


def _choice_lookup(group: str, codes: tuple[str, ...]) -> dict[str, str]:
    """Codes, their labels in every language of the portal, and common synonyms, all
    mapped to the code (compared without case, spaces or punctuation)."""
    lookup: dict[str, str] = {}
    for code in codes:
        lookup[header_key(code)] = code
    for locale in current_app.config.get("PORTAL_LOCALES") or ["en"]:
        with force_locale(locale):
            for code in codes:
                text = LABELS.get(group, {}).get(code)
                if text is not None:
                    lookup.setdefault(header_key(str(text)), code)
    for word, code in VALUE_ALIASES.get(group, {}).items():
        if code in codes:
            lookup.setdefault(header_key(word), code)
    return lookup


@dataclass
class RowChecker:
    """Checks rows one by one, remembering the keys of the rows above (duplicates
    inside the file)."""

    codes: dict[str, tuple[str, ...]]
    lookups: dict[str, dict[str, str]]
    seen: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"name": {}, "phone": {}, "tax_id": {}}
    )

    @classmethod
    def create(cls) -> RowChecker:
        codes = coded_fields()
        return cls(codes, {name: _choice_lookup(name, found) for name, found in codes.items()})

    def code_of(self, name: str, value: str) -> str | None:
        key = header_key(value)
        if name == "grade":
            match = re.fullmatch(r"([a-d])(级|类)?(客户)?", key)
            if match:
                return match.group(1).upper()
        found = self.lookups[name].get(key)
        if found is None and name in ("industry", "region"):
            from .customers import canonical_code

            found = canonical_code(name, value)
        return found

    def prepare(self, values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
        """The values as ``create_customer`` takes them (labels and synonyms of coded
        fields turned into codes), and the coded values that match nothing."""
        prepared = {name: value for name, value in values.items() if value != ""}
        problems: dict[str, list[str]] = {}
        for name, value in list(prepared.items()):
            if name not in self.codes:
                continue
            code = self.code_of(name, value)
            if code is None:
                problems.setdefault(name, []).append(
                    _(
                        'Unknown value "%(value)s"; use one of: %(allowed)s.',
                        value=value[:60],
                        allowed=", ".join(self.codes[name]),
                    )
                )
            else:
                prepared[name] = code
        prepared.setdefault("source", "import")
        return prepared, problems

    def in_file_duplicates(self, row: int, values: Mapping[str, str]) -> dict[str, list[str]]:
        """Rows above with the same name, phone or tax ID (then remember this row)."""
        problems: dict[str, list[str]] = {}
        for name, key in duplicate_keys(values).items():
            if not key:
                continue
            earlier = self.seen[name].get(key)
            if earlier is not None:
                problems.setdefault(name, []).append(
                    _("The same as row %(row)s of this file.", row=earlier)
                )
            else:
                self.seen[name][key] = row
        return problems


class RowUnsavable(RuntimeError):
    """The database refused a row while the import was being written (phase 2)."""


def _create(values: Mapping[str, str], owner: User, keep: bool) -> dict[str, list[str]]:
    """Run ``create_customer`` on one row; returns its problems (empty when good).

    Checking (``keep`` false): the row is written and flushed, then its transaction
    rolled back, so each check is a short transaction of its own and nothing stays.
    (No savepoints: on SQLite, pysqlite starts no transaction before SAVEPOINT, so
    releasing one would commit.) Writing (``keep`` true): the row stays in the
    session's one transaction; a database refusal raises RowUnsavable."""
    from .customers import create_customer

    problems: dict[str, list[str]] = {}
    try:
        create_customer(values, owner, owner=owner)
        db.session.flush()
    except ValidationFailed as error:
        problems = {name: [str(m) for m in messages] for name, messages in error.fields.items()}
    except sa.exc.SQLAlchemyError:
        log.warning("import row could not be written", exc_info=True)
        db.session.rollback()
        if keep:
            raise RowUnsavable from None
        problems = {"": [_("This row could not be saved (the database refused it).")]}
    if not keep:
        db.session.rollback()
    return problems


# -- errors of an import -------------------------------------------------------------------


@dataclass
class ErrorList:
    """Problems per row and field, the first ``cap`` of them kept."""

    cap: int
    items: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0

    def add(
        self,
        row: int | None,
        problems: Mapping[str, Iterable[str]],
        values: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        for name, messages in problems.items():
            for message in messages:
                self.count += 1
                if len(self.items) >= self.cap:
                    continue
                self.items.append(
                    {
                        "row": row,
                        "field": name,
                        "column": (headers or {}).get(name, ""),
                        "value": str((values or {}).get(name, ""))[:100],
                        "message": str(message),
                    }
                )

    def stored(self, warnings: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What goes into ``CustomerImport.errors``: warnings, errors, then how many
        more problems were not kept."""
        entries = list(warnings) + list(self.items)
        more = self.count - len(self.items)
        if more > 0:
            entries.append(
                {
                    "row": None,
                    "field": "",
                    "more": more,
                    "message": ngettext(
                        "%(num)s more problem is not listed.",
                        "%(num)s more problems are not listed.",
                        more,
                    ),
                }
            )
        return entries


def split_errors(record: CustomerImport) -> dict[str, Any]:
    """An import's stored problems as the pages and the API show them."""
    entries = list(record.errors or [])
    warnings = [entry for entry in entries if entry.get("warning")]
    more = sum(int(entry.get("more") or 0) for entry in entries)
    errors = [entry for entry in entries if not entry.get("warning") and not entry.get("more")]
    return {"errors": errors, "warnings": warnings, "more": more}


def _unknown_column_warnings(parsed: ParsedFile) -> list[dict[str, Any]]:
    return [
        {
            "row": parsed.header_row,
            "field": "",
            "column": text,
            "message": _('Unknown column "%(name)s": ignored.', name=text[:60]),
            "warning": True,
        }
        for text in parsed.unknown
    ]


# -- starting an import -----------------------------------------------------------------


def upload_dir() -> Path:
    """Where uploads wait for their import: under the instance folder, never served."""
    return Path(current_app.instance_path) / "uploads" / "sales_imports"


def stored_path(record: CustomerImport) -> Path:
    return upload_dir() / record.stored_name


def display_name(filename: str) -> str:
    """The uploaded file's name as shown (no folders, no control characters)."""
    name = Path((filename or "").replace("\\", "/")).name
    name = "".join(char for char in name if ord(char) >= 32 and char not in '"<>')
    return name.strip()[:200] or "upload"


def read_upload(stream: Any, limit: int | None = None) -> bytes:
    """Read an uploaded file, refusing it (413) as soon as it is over the limit."""
    cap = limit or max_bytes()
    data = stream.read(cap + 1)
    if len(data) > cap:
        raise _too_large(cap)
    return data


def _too_large(cap: int) -> ImportTooLarge:
    megabytes = f"{cap / (1024 * 1024):.1f}".rstrip("0").rstrip(".")
    message = _("The file is larger than %(size)s MB. Split it into smaller files.", size=megabytes)
    return ImportTooLarge({"file": [message]})


def start_import(data: bytes, filename: str, actor: User) -> CustomerImport:
    """Check that the file can be read, store it and queue its import (owned by the
    uploader). Raises ValidationFailed (``file``) for an unreadable file and
    ImportTooLarge over a limit. Never commits: the import starts after the caller's
    commit, in a background thread when enabled."""
    if len(data) > max_bytes():
        raise _too_large(max_bytes())
    name = display_name(filename)
    try:
        parsed = parse_file(data, name)
    except ImportRefused as error:
        raise _refuse(str(error)) from None
    folder = upload_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stored_name = secrets.token_hex(20)
    target = folder / stored_name
    _install_session_hooks()
    session = db.session()
    with target.open("xb") as out:
        session.info.setdefault(_FILES_TO_DROP, []).append(str(target))
        out.write(data)
    record = CustomerImport(
        owner_id=actor.id,
        filename=name,
        stored_name=stored_name,
        status="queued",
        total_rows=len(parsed.rows),
        processed_rows=0,
        created_count=0,
        errors=_unknown_column_warnings(parsed),
    )
    db.session.add(record)
    db.session.flush()
    session.info.setdefault(_PENDING, []).append((record.id, _current_locale()))
    return record


def _current_locale() -> str | None:
    try:
        from portal.i18n import current_locale

        return current_locale()
    except Exception:  # outside a request: the owner's or the default language
        return None


def imports_for(user: User) -> sa.Select:
    """A SELECT of the imports ``user`` may see (their own, their team's for leaders)."""
    return scoped(sa.select(CustomerImport), CustomerImport, user)


def get_import_or_404(import_id: int, user: User) -> CustomerImport:
    return get_scoped_or_404(CustomerImport, import_id, user)


# -- after the commit: the background thread ------------------------------------------


def _install_session_hooks() -> None:
    from portal.database import session_class

    target = session_class()
    if not sa.event.contains(target, "after_commit", _after_commit):
        sa.event.listen(target, "after_commit", _after_commit)
        sa.event.listen(target, "after_transaction_end", _after_transaction_end)


def _after_commit(session: Any) -> None:
    session.info.pop(_FILES_TO_DROP, None)  # committed: the files belong to their rows
    pending = session.info.pop(_PENDING, None)
    if not pending or not has_app_context():
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if background_enabled(app):
        for import_id, locale in pending:
            start_thread(app, import_id, locale)


def _after_transaction_end(session: Any, transaction: Any) -> None:
    # Whatever is still listed when the outermost transaction ends was not committed:
    # the import row does not exist, so its file goes too.
    if transaction.parent is not None:
        return
    session.info.pop(_PENDING, None)
    for path in session.info.pop(_FILES_TO_DROP, []):
        Path(path).unlink(missing_ok=True)


def background_enabled(app: Flask) -> bool:
    """SALES_IMPORT_BACKGROUND, where None means on except in tests (which call
    ``run_import`` themselves)."""
    setting = app.config.get("SALES_IMPORT_BACKGROUND")
    return (not app.testing) if setting is None else bool(setting)


_threads_lock = threading.Lock()


def start_thread(app: Flask, import_id: int, locale: str | None = None) -> threading.Thread:
    """Run one import in a daemon thread with its own app context and session."""

    def work() -> None:
        try:
            with app.app_context():
                run_import(import_id, locale=locale)
        except Exception:  # the thread must never take the process down
            log.exception("import %s failed in its thread", import_id)

    thread = threading.Thread(target=work, name=f"sales-import-{import_id}", daemon=True)
    with _threads_lock:
        threads = app.extensions.setdefault("sales_import_threads", [])
        threads[:] = [t for t in threads if t.is_alive()]
        threads.append(thread)
    thread.start()
    return thread


def wait_for_imports(app: Flask, timeout: float = 30) -> bool:
    """Block until the import threads of ``app`` finished (tests, orderly shutdown)."""
    with _threads_lock:
        threads = list(app.extensions.get("sales_import_threads", []))
    for thread in threads:
        thread.join(timeout)
    return not any(thread.is_alive() for thread in threads)


# -- running an import ------------------------------------------------------------------


def _set_progress(import_id: int, **values: Any) -> None:
    """Progress in its own small commit. A plain UPDATE: housekeeping, not a change
    worth an audit entry every fifty rows."""
    db.session.execute(
        sa.update(CustomerImport)
        .where(CustomerImport.id == import_id)
        .values(**values, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _locale_for(owner: User | None) -> str:
    supported = current_app.config.get("PORTAL_LOCALES") or ["en"]
    chosen = getattr(owner, "locale", None)
    if chosen:
        tag = chosen.replace("-", "_").lower()
        for code in supported:
            if tag == code.lower() or tag.split("_")[0] == code.lower().split("_")[0]:
                return code
    return current_app.config.get("BABEL_DEFAULT_LOCALE", "en")


def run_import(import_id: int, locale: str | None = None) -> CustomerImport | None:
    """Check and import one queued import; the thread calls it, tests and the CLI may
    too. Commits as it goes (progress), so call it outside a transaction of your own.
    An import already taken by another runner is left alone. Never raises for a bad
    file or row: the import ends ``failed`` with its messages."""
    claimed = db.session.execute(
        sa.update(CustomerImport)
        .where(CustomerImport.id == import_id, CustomerImport.status == "queued")
        .values(status="checking", processed_rows=0, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    record = db.session.get(CustomerImport, import_id)
    if record is None or claimed.rowcount != 1:
        return record
    owner = db.session.get(User, record.owner_id)
    path = stored_path(record)
    try:
        actor = f"import:{owner.username if owner else '?'}"
        with force_locale(locale or _locale_for(owner)), acting_as(actor, record.owner_id):
            try:
                _run(record, owner, path)
            except Exception:
                log.exception("import %s stopped on an unexpected error", import_id)
                db.session.rollback()
                message = _(
                    "The import stopped on an unexpected error; nothing was imported. "
                    "Try again, or tell the administrator."
                )
                _finish(import_id, "failed", [_file_error(message)], keep_warnings=True)
    finally:
        path.unlink(missing_ok=True)  # the rows are in the database or refused: not kept
    db.session.expire_all()
    return db.session.get(CustomerImport, import_id)


def _finish(
    import_id: int,
    status: str,
    errors: list[dict[str, Any]],
    created: int = 0,
    keep_warnings: bool = False,
) -> None:
    record = db.session.get(CustomerImport, import_id)
    if record is None:
        return
    if keep_warnings:
        errors = [e for e in (record.errors or []) if e.get("warning")] + errors
    record.status = status
    record.errors = errors
    record.created_count = created
    record.finished_at = utcnow()
    db.session.commit()


def _run(record: CustomerImport, owner: User | None, path: Path) -> None:
    import_id = record.id
    warnings = [entry for entry in (record.errors or []) if entry.get("warning")]
    if owner is None or not owner.active:
        _finish(import_id, "failed", [_file_error(_("The uploader's account is disabled."))])
        return
    try:
        data = path.read_bytes()
    except OSError:
        _finish(import_id, "failed", [_file_error(_("The uploaded file is no longer there."))])
        return
    try:
        parsed = parse_file(data, record.filename)
    except ImportRefused as error:
        _finish(import_id, "failed", [_file_error(str(error))])
        return
    except ValidationFailed as error:
        messages = [m for ms in error.fields.values() for m in ms]
        _finish(import_id, "failed", [_file_error(str(m)) for m in messages])
        return
    total = len(parsed.rows)
    every = _config("SALES_IMPORT_PROGRESS_EVERY", DEFAULT_PROGRESS_EVERY)
    _set_progress(import_id, total_rows=total, processed_rows=0)
    checker = RowChecker.create()
    errors = ErrorList(max_errors())
    good: list[dict[str, str]] = []

    # 1. Check every row; nothing is kept.
    for done, (row, values) in enumerate(parsed.rows, start=1):
        prepared, problems = checker.prepare(values)
        for name, messages in checker.in_file_duplicates(row, prepared).items():
            problems.setdefault(name, []).extend(messages)
        if not problems:
            problems = _create(prepared, owner, keep=False)
        if problems:
            errors.add(row, problems, values, parsed.headers)
        else:
            good.append(prepared)
        if done % every == 0 and done < total:
            _set_progress(import_id, processed_rows=done)
    _set_progress(import_id, processed_rows=total)
    if errors.count:
        _finish(import_id, "failed", errors.stored(warnings))
        return

    # 2. Every row is good: create them all in one transaction.
    _set_progress(import_id, status="importing")
    for (row, values), prepared in zip(parsed.rows, good, strict=True):
        try:
            problems = _create(prepared, owner, keep=True)
        except RowUnsavable:
            message = _("This row could not be saved (the database refused it).")
            errors.add(row, {"": [message]}, values, parsed.headers)
            break
        if problems:  # changed since the check (someone entered the same customer)
            errors.add(row, problems, values, parsed.headers)
    if errors.count:
        db.session.rollback()
        _finish(import_id, "failed", errors.stored(warnings))
        return
    record = db.session.get(CustomerImport, import_id)
    record.status = "done"
    record.created_count = total
    record.finished_at = utcnow()
    db.session.commit()


def fail_if_stalled(record: CustomerImport, now: datetime | None = None) -> bool:
    """End an import whose runner died (a restart mid-way): no progress for
    SALES_IMPORT_STALE_SECONDS. Its last transaction never committed, so nothing was
    imported; the page stops waiting and says so. Commits when it ends one."""
    if record.status not in RUNNING:
        return False
    limit = _config("SALES_IMPORT_STALE_SECONDS", DEFAULT_STALE_SECONDS)
    cutoff = (now or utcnow()) - timedelta(seconds=limit)
    message = _(
        "The import stopped without finishing (the server may have restarted); nothing "
        "was imported. Upload the file again."
    )
    warnings = [entry for entry in (record.errors or []) if entry.get("warning")]
    ended = db.session.execute(
        sa.update(CustomerImport)
        .where(
            CustomerImport.id == record.id,
            CustomerImport.status.in_(RUNNING),
            CustomerImport.updated_at < cutoff,
        )
        .values(
            status="failed",
            errors=[*warnings, _file_error(message)],
            finished_at=utcnow(),
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if ended.rowcount != 1:
        return False
    db.session.commit()
    stored_path(record).unlink(missing_ok=True)
    db.session.refresh(record)
    return True


def _file_error(message: str) -> dict[str, Any]:
    return {"row": None, "field": "", "message": str(message)}


# -- the template ---------------------------------------------------------------------


def template_csv(language: str = "en") -> bytes:
    """A CSV to fill in: the header in English or Chinese and one example row, UTF-8
    with BOM so Excel and WPS open it with the right characters."""
    headers = [zh if language == "zh" else name for name, zh in FIELDS]
    example = {
        "name": "上海示例科技有限公司" if language == "zh" else "Example Technology Co., Ltd.",
        "phone": "021-5555 0100",
        "tax_id": "91310000MA1FL0EX01",
        "industry": "制造业" if language == "zh" else "Manufacturing",
        "size": "中型" if language == "zh" else "medium",
        "region": "华东" if language == "zh" else "East",
        "city": "上海" if language == "zh" else "Shanghai",
        "source": "展会" if language == "zh" else "exhibition",
        "need": "生产线自动化" if language == "zh" else "Production line automation",
        "grade": "B",
        "email": "sales@example.com",
        "address": "上海市浦东新区示例路 1 号" if language == "zh" else "1 Example Road, Pudong",
        "notes": "",
    }
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerow([example[name] for name in FIELD_NAMES])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def header_help() -> list[dict[str, Any]]:
    """For the upload page: each field, the headers it is recognised by, whether it is
    required, and the values a coded field takes."""
    from .vocabulary import label

    coded = coded_fields()
    rows = []
    for name, zh in FIELDS:
        allowed: list[tuple[str, str]] = []
        if name in coded:
            allowed = [(code, label(name, code)) for code in coded[name]]
        aliases = [a for a in HEADER_ALIASES[name] if a not in (name, header_key(zh))]
        rows.append(
            {
                "name": name,
                "label": field_label(name),
                "english": name,
                "chinese": zh,
                "aliases": aliases,
                "required": name == "name",
                "allowed": allowed,
            }
        )
    return rows
