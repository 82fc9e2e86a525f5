"""The core's spreadsheet writers (portal.exports), which every plugin's export uses:
the formula-injection guard, CSV with a BOM, .xlsx cells typed and never formulas, and
the download response. The plugins' own tests check their exports end to end (scope,
audit, their columns)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from openpyxl import load_workbook

from portal import exports
from portal.exports import Column

COLUMNS = [
    Column("Name", width=20),
    Column("Count", "int"),
    Column("Days", "number"),
    Column("Share", "percent"),
    Column("Amount", "money"),
    Column("Due", "date"),
    Column("Created", "datetime"),
]
ROW = (
    "=HYPERLINK(1)",
    3,
    Decimal("1.5"),
    Decimal("12.5"),
    123450,
    date(2024, 10, 31),
    datetime(2024, 10, 31, 16, 30, tzinfo=UTC),
)
EMPTY = ("021-5555", None, None, None, None, None, None)


@pytest.fixture
def shanghai() -> Any:
    """A bare application in the portal's usual time zone (the writers need no DB)."""
    app = Flask(__name__)
    app.config["BABEL_DEFAULT_TIMEZONE"] = "Asia/Shanghai"
    with app.test_request_context():
        yield app


def _csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


# -- the guard ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "=1+1",
        "+1",
        "-1",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "\n=1",
        " =1+1",
        "  +cmd|' /C calc'!A0",
        '\u3000=HYPERLINK("x")',
        "＝1+1",
        "＋1",
        "－1",
        "＠SUM(A1)",
    ],
)
def test_p6_3_export_cells_cannot_start_a_formula(text: str) -> None:
    """Spreadsheet programs trim leading spaces and (with a Chinese input method) read
    full-width ＝ ＋ － ＠ as their ASCII forms: those cells are quoted too."""
    assert exports.safe_text(text) == "'" + text
    assert exports.csv_cell("text", text) == "'" + text


def test_p6_3_ordinary_text_and_numbers_are_not_quoted() -> None:
    for text in ("上海电气", "021-5555-0101", "A-1", "Li = supervisor", ""):
        assert exports.safe_text(text) == text
    assert exports.csv_cell("money", -150) == "-1.50"  # a number, written as a number
    assert exports.csv_cell("int", -3) == "-3"
    assert exports.csv_cell("number", Decimal("-0.5")) == "-0.5"


def test_an_unknown_column_kind_is_refused_when_declared() -> None:
    with pytest.raises(ValueError, match="kind"):
        Column("Odd", "currency")


@pytest.mark.parametrize(
    ("title", "expected"),
    [("Sales/customers: 2024?", "Sales customers  2024 "), ("", "Sheet1"), ("x" * 40, "x" * 31)],
)
def test_sheet_titles_are_names_excel_accepts(title: str, expected: str) -> None:
    assert exports.sheet_title(title) == expected


# -- CSV ---------------------------------------------------------------------------------


def test_csv_starts_with_a_bom_and_writes_each_kind_plainly(shanghai: Any) -> None:
    data = exports.csv_bytes(COLUMNS, [ROW, EMPTY], trailer="-cut short at 2 rows")
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    assert data.count(b"\r\n") == 4  # Excel's line ends
    assert _csv(data) == [
        ["Name", "Count", "Days", "Share", "Amount", "Due", "Created"],
        ["'=HYPERLINK(1)", "3", "1.5", "12.5", "1234.50", "2024-10-31", "2024-11-01 00:30"],
        ["021-5555", "", "", "", "", "", ""],
        ["'-cut short at 2 rows"],  # the trailer is guarded like any cell
    ]


def test_csv_headings_are_guarded_and_chinese_survives(shanghai: Any) -> None:
    data = exports.csv_bytes([Column("=名称")], [("上海电气",)])
    assert _csv(data) == [["'=名称"], ["上海电气"]]


def test_csv_of_many_rows_comes_in_chunks_that_join_to_one_file(shanghai: Any) -> None:
    rows = [(f"customer {n}", n, None, None, n, None, None) for n in range(5000)]
    chunks = list(exports.csv_chunks(COLUMNS, iter(rows)))
    assert len(chunks) > 1 and chunks[0].startswith(b"\xef\xbb\xbf")
    assert b"".join(chunks) == exports.csv_bytes(COLUMNS, rows)
    assert len(_csv(b"".join(chunks))) == 5001


def test_a_row_of_the_wrong_length_fails_loudly(shanghai: Any) -> None:
    with pytest.raises(ValueError):
        exports.csv_bytes(COLUMNS, [("only a name",)])


# -- Excel -------------------------------------------------------------------------------


def test_xlsx_text_is_never_a_formula_and_numbers_and_dates_are_typed(shanghai: Any) -> None:
    handle = exports.xlsx_file(COLUMNS, [ROW, EMPTY], "Customers/2024", trailer="cut short")
    workbook = load_workbook(handle)
    sheet = workbook.active
    assert sheet.title == "Customers 2024"
    assert sheet.freeze_panes == "A2"
    assert [cell.value for cell in sheet[1]] == [column.heading for column in COLUMNS]
    assert all(cell.font.bold for cell in sheet[1])
    name, count, days, share, amount, due, created = sheet[2]
    assert name.value == "'=HYPERLINK(1)" and name.data_type == "s"
    assert count.value == 3 and days.value == 1.5
    assert share.value == 12.5 and share.number_format == "0.0"
    assert amount.value == 1234.5 and amount.number_format == "#,##0.00"
    assert due.value == datetime(2024, 10, 31) and due.number_format == "yyyy-mm-dd"
    assert created.value == datetime(2024, 11, 1, 0, 30)  # the portal's time zone
    assert sheet["A3"].value == "021-5555" and sheet["B3"].value is None
    assert sheet["A4"].value == "cut short" and sheet["A4"].font.bold
    assert not any(cell.data_type == "f" for row in sheet.iter_rows() for cell in row)
    assert sheet.column_dimensions["A"].width == 20


def test_xlsx_drops_characters_an_xml_file_cannot_hold(shanghai: Any) -> None:
    handle = exports.xlsx_file([Column("Name")], [("bell\x07 and\x1f nul\x00",)], "x")
    assert load_workbook(handle).active["A2"].value == "bell and nul"


# -- the download ------------------------------------------------------------------------


def test_a_csv_download_is_an_uncached_attachment(shanghai: Any) -> None:
    response = exports.download("csv", COLUMNS, [ROW], "report-2024-10.csv", title="Report")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="report-2024-10.csv"'
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.is_streamed
    assert _csv(b"".join(response.response))[1][0] == "'=HYPERLINK(1)"


def test_an_xlsx_download_is_an_uncached_attachment(shanghai: Any) -> None:
    response = exports.download("xlsx", COLUMNS, [ROW], "report.xlsx", title="Report")
    response.direct_passthrough = False
    assert response.mimetype == exports.XLSX_MIME
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "report.xlsx" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "private, no-store"
    assert load_workbook(io.BytesIO(response.get_data())).active.title == "Report"


def test_an_unknown_download_format_is_refused(shanghai: Any) -> None:
    with pytest.raises(ValueError, match="format"):
        exports.download("pdf", COLUMNS, [ROW], "report.pdf", title="Report")


def test_dated_filenames_use_the_portals_day(shanghai: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(exports, "local_today", lambda: date(2024, 10, 31))
    assert exports.dated_filename("sales-customers", "xlsx") == "sales-customers-2024-10-31.xlsx"
