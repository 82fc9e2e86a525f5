"""P3.1.2 import of prospects from CSV and Excel: encodings (UTF-8, BOM, GBK), .xlsx,
refused files, per-row errors with nothing imported, progress, scope, the status page's
polling and the API."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.sales import imports
from plugins.sales.models import Customer, CustomerImport
from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.models import utcnow

ZH_HEADER = "客户名称,电话,统一社会信用代码,行业,规模,区域,城市,来源,需求,等级,备注\n"
ZH_ROWS = (
    "上海精工机械有限公司,021-6123 4567,91310000MA1FL0EX0A,机械,中型,华东,上海,展会,"
    "产线自动化改造,B,老客户介绍\n"
    "苏州明达电子有限公司,13800138000,,电子,大型,华东,苏州,,MES 系统,,\n"
)
EN_CSV = (
    "name,phone,tax_id,industry,size,region,city,source,need,grade,email,address,notes\n"
    "Harbour Logistics Ltd,+86 138 0013 8001,,logistics,large,east,Ningbo,referral,"
    "Fleet tracking,A,ops@harbour.example,1 Port Road,\n"
    "Greenfield Foods,021-5555 0101,,Food and beverage,Medium (100-499),South China,"
    "Guangzhou,Website,Cold chain,b,,,\n"
)


def person(username: str) -> User:
    return db.session.scalars(sa.select(User).where(User.username == username)).one()


def start(app: Any, username: str, data: bytes, filename: str) -> int:
    """Queue an import through the service, as the page does."""
    with app.test_request_context(), acting_as("test"):
        record = imports.start_import(data, filename, person(username))
        db.session.commit()
        return record.id


def run(app: Any, import_id: int) -> CustomerImport:
    with app.app_context():
        record = imports.run_import(import_id, locale="en")
        db.session.expunge(record)
        return record


def customers(app: Any) -> list[Customer]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(Customer).order_by(Customer.id)))
        db.session.expunge_all()
        return found


def upload(client: Any, data: bytes, filename: str) -> Any:
    return client.post(
        "/sales/imports/",
        data={"file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def logged_in(app: Any, login: Any, username: str) -> Any:
    client = app.test_client()
    login(client, username)
    return client


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def stored_files(app: Any) -> list[Path]:
    with app.app_context():
        folder = imports.upload_dir()
    return sorted(folder.iterdir()) if folder.exists() else []


# -- files that import --------------------------------------------------------------


def test_p3_1_2_import_gbk_csv_with_chinese_headers(app: Any, org: Any, login: Any) -> None:
    client = logged_in(app, login, "li")
    data = (ZH_HEADER + ZH_ROWS).encode("gbk")
    response = upload(client, data, "客户名单.csv")
    assert response.status_code == 303, response.text
    with app.app_context():
        record = db.session.scalars(sa.select(CustomerImport)).one()
        assert (record.status, record.total_rows, record.owner_id) == ("queued", 2, org["li"])
        import_id = record.id
    assert response.headers["Location"].endswith(f"/sales/imports/{import_id}")
    assert len(stored_files(app)) == 1
    finished = run(app, import_id)
    assert finished.status == "done", finished.errors
    assert (finished.created_count, finished.processed_rows) == (2, 2)
    first, second = customers(app)
    assert first.name == "上海精工机械有限公司"
    assert (first.industry, first.size, first.region, first.source, first.grade) == (
        "machinery",
        "medium",
        "east",
        "exhibition",
        "B",
    )
    assert first.tax_id == "91310000MA1FL0EX0A"
    assert first.notes == "老客户介绍"
    assert (second.owner_id, second.source, second.size) == (org["li"], "import", "large")
    assert stored_files(app) == []  # the upload is not kept once imported
    page = client.get(f"/sales/imports/{import_id}")
    assert page.status_code == 200
    assert 'data-testid="import-done"' in page.text
    assert "/sales/customers/" in page.text
    assert 'hx-trigger="every 1s"' not in page.text


def test_p3_1_2_import_utf8_with_bom_and_label_values(app: Any, org: Any) -> None:
    import_id = start(app, "li", ("\ufeff" + EN_CSV).encode("utf-8"), "prospects.csv")
    finished = run(app, import_id)
    assert finished.status == "done", finished.errors
    harbour, greenfield = customers(app)
    assert harbour.name == "Harbour Logistics Ltd"  # the BOM is not part of the header
    assert (harbour.phone_key, harbour.email, harbour.grade) == (
        "13800138001",
        "ops@harbour.example",
        "A",
    )
    # Labels in place of codes are understood.
    assert (greenfield.industry, greenfield.size, greenfield.region) == ("food", "medium", "south")
    assert (greenfield.source, greenfield.grade) == ("website", "B")


def test_p3_1_2_import_understands_the_words_the_customer_form_understands(
    app: Any, org: Any
) -> None:
    """One vocabulary: "工厂" and "浙江" are taken by the customer form and the API
    (customers.canonical_code), so a file saying them imports too."""
    data = "客户名称,行业,区域,规模,需求\n宁波精密工厂,工厂,浙江,中型,产线改造\n".encode()
    finished = run(app, start(app, "li", data, "zhejiang.csv"))
    assert finished.status == "done", finished.errors
    (customer,) = customers(app)
    assert (customer.industry, customer.region) == ("manufacturing", "east")


def test_p3_1_2_import_row_errors_do_not_name_a_colleagues_customer(app: Any, org: Any) -> None:
    """A duplicate row says the number is on file and whose, never whose customer it is
    (li may not read wang's file: P2 scope)."""
    from plugins.sales.customers import create_customer

    with app.test_request_context(), acting_as("test"):
        create_customer({"name": "Wang Secret Works", "phone": "13700137000"}, person("wang"))
        db.session.commit()
    data = b"name,phone\nLi New Co,137 0013 7000\n"
    finished = run(app, start(app, "li", data, "dup.csv"))
    assert finished.status == "failed"
    (error,) = [e for e in finished.errors if not e.get("warning")]
    assert (error["row"], error["field"]) == (2, "phone")
    assert "Wang" in error["message"] and "Wang Secret Works" not in error["message"]


def test_p3_1_2_import_xlsx_with_numbers_in_cells(app: Any, org: Any, login: Any) -> None:
    data = xlsx_bytes(
        [
            [],
            ["客户名称 *", "手机号", "行业", "规模", "需求", "Remarks"],
            ["杭州云帆科技", 13900139000, "IT", "小型", "数据平台", "from xlsx"],
            [None, None, None, None, None, None],
            ["Delta Motors", 13900139001.0, "automotive", "large", "Parts", None],
        ]
    )
    client = logged_in(app, login, "li")
    response = upload(client, data, "list.xlsx")
    assert response.status_code == 303, response.text
    import_id = int(response.headers["Location"].rsplit("/", 1)[1])
    finished = run(app, import_id)
    assert finished.status == "done", finished.errors
    yunfan, delta = customers(app)
    assert (yunfan.phone, yunfan.industry, yunfan.size, yunfan.notes) == (
        "13900139000",
        "it_services",
        "small",
        "from xlsx",
    )
    assert delta.phone == "13900139001"


# -- files that are refused at once -------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "filename", "words"),
    [
        ((ZH_HEADER + ZH_ROWS).encode("utf-16"), "utf16.csv", "UTF-16"),
        (b"name,phone\nAcme,1\n\xff\xfe\x80\x81\x82 junk \xff\n", "mixed.csv", "neither UTF-8"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" * 20, "setup.csv", "binary"),
        (bytes(range(256)) * 8, "random.csv", "binary"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.xls", ".xls"),
        (b"name\nAcme\n", "list.xls", ".xls"),
        (b"name,phone\nAcme,1\n", "list.xlsx", "not an Excel workbook"),
        (b"%PDF-1.7 ...", "list.pdf", "neither"),
        (b"", "empty.csv", "empty"),
        (b"phone,city\n123,Shanghai\n", "noname.csv", "one of them must be the customer"),
        (b"name,phone\n", "header-only.csv", "no rows"),
        (b"name,name\nA,B\n", "twice.csv", "both"),
    ],
)
def test_p3_1_2_import_refuses_unreadable_files_clearly(
    app: Any, org: Any, login: Any, data: bytes, filename: str, words: str
) -> None:
    client = logged_in(app, login, "li")
    response = upload(client, data, filename)
    assert response.status_code == 422
    assert words in response.text
    assert 'class="invalid-feedback"' in response.text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(CustomerImport.id))) == 0
    assert stored_files(app) == []


def test_p3_1_2_import_refuses_broken_workbooks(app: Any, org: Any, login: Any) -> None:
    client = logged_in(app, login, "li")
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("word/document.xml", "<w/>")
    assert "not an Excel workbook" in upload(client, packed.getvalue(), "doc.xlsx").text
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("xl/workbook.xml", "this is not xml")
    response = upload(client, broken.getvalue(), "broken.xlsx")
    assert response.status_code == 422
    assert "damaged" in response.text
    truncated = xlsx_bytes([["name"], ["Acme"]])[:200]
    assert upload(client, truncated, "cut.xlsx").status_code == 422
    # A workbook renamed .csv is not read as text.
    assert "name it .xlsx" in upload(client, xlsx_bytes([["name"], ["A"]]), "x.csv").text


def test_p3_1_2_import_limits_size_and_rows(make_app: Any, org: Any, login: Any) -> None:
    app = make_app(SALES_IMPORT_MAX_BYTES=2000, SALES_IMPORT_MAX_ROWS=3)
    client = logged_in(app, login, "li")
    big = ("name\n" + "Company number %05d\n" * 200 % tuple(range(200))).encode()
    response = upload(client, big, "big.csv")
    assert response.status_code == 413
    assert "larger than" in response.text
    many = b"name\nA\nB\nC\nD\n"
    response = upload(client, many, "many.csv")
    assert response.status_code == 413
    assert "more than 3 rows" in response.text
    assert upload(client, b"name\nA\n\nB\nC\n", "three.csv").status_code == 303
    # Without a file at all: a message on the field.
    response = client.post("/sales/imports/", data={}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Choose a CSV or Excel" in response.text


def test_p3_1_2_import_template_reads_back_in_both_languages(
    app: Any, org: Any, login: Any
) -> None:
    client = logged_in(app, login, "li")
    page = client.get("/sales/imports/")
    assert page.status_code == 200
    assert "统一社会信用代码" in page.text and "tax_id" in page.text
    outcomes = []
    for query, header in (("", "name"), ("?lang=zh", "客户名称")):
        response = client.get(f"/sales/imports/template.csv{query}")
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in response.headers["Content-Disposition"]
        assert response.data.startswith(b"\xef\xbb\xbf" + header.encode())
        with app.test_request_context():
            parsed = imports.parse_file(response.data, "template.csv")
        assert set(parsed.headers) == set(imports.FIELD_NAMES)
        assert parsed.unknown == []
        outcomes.append(run(app, start(app, "li", response.data, "template.csv")))
    # The English example imports; the Chinese one is the same company (phone, tax ID).
    assert outcomes[0].status == "done", outcomes[0].errors
    assert outcomes[1].status == "failed"
    assert {e["field"] for e in outcomes[1].errors} == {"phone", "tax_id"}
    assert [c.name for c in customers(app)] == ["Example Technology Co., Ltd."]


# -- rows that are wrong: nothing is imported -------------------------------------------------


def test_p3_1_2_import_broken_rows_give_messages_per_row_and_nothing_is_imported(
    app: Any, org: Any, login: Any
) -> None:
    from plugins.sales.customers import create_customer

    with app.test_request_context(), acting_as("test"):
        wang = person("wang")
        create_customer({"name": "Existing Works Ltd", "phone": "13700137000"}, wang)
        db.session.commit()
    csv_text = (
        "name,phone,tax_id,size,colour\n"  # row 1
        "Good Company,13600136000,,small,red\n"  # row 2: fine
        ",13600136001,,,\n"  # row 3: no name
        "Bad Phone Co,12ab,,,\n"  # row 4: not a phone
        "Bad Tax Co,,12345,,\n"  # row 5: not a tax ID
        "existing works ltd.,,,,\n"  # row 6: already a customer (wang's)
        "\n"  # row 7: blank, skipped
        "GOOD COMPANY,,,,\n"  # row 8: the same as row 2
        "Size Co,,,gigantic,\n"  # row 9: unknown size
    )
    import_id = start(app, "li", csv_text.encode(), "broken.csv")
    finished = run(app, import_id)
    assert finished.status == "failed"
    assert finished.created_count == 0
    assert finished.processed_rows == finished.total_rows == 7
    errors = [e for e in finished.errors if not e.get("warning")]
    found = {(e["row"], e["field"]) for e in errors}
    assert found == {
        (3, "name"),
        (4, "phone"),
        (5, "tax_id"),
        (6, "name"),
        (8, "name"),
        (9, "size"),
    }
    by_row = {e["row"]: e for e in errors}
    assert "row 2" in by_row[8]["message"]
    assert "Wang" in by_row[6]["message"]
    assert "gigantic" in by_row[9]["message"]
    warnings = [e for e in finished.errors if e.get("warning")]
    assert [w["column"] for w in warnings] == ["colour"]
    assert [c.name for c in customers(app)] == ["Existing Works Ltd"]  # nothing imported
    client = logged_in(app, login, "li")
    page = client.get(f"/sales/imports/{import_id}")
    assert page.status_code == 200
    assert 'data-testid="import-failed"' in page.text
    assert page.text.count("<tr data-row=") == 6
    assert 'data-row="9" data-field="size"' in page.text
    assert "colour" in page.text


def test_p3_1_2_import_caps_stored_errors_and_says_how_many_more(make_app: Any, org: Any) -> None:
    app = make_app(SALES_IMPORT_MAX_ERRORS=3)
    data = ("name,size\n" + "".join(f"Co {n},huge\n" for n in range(10))).encode()
    import_id = start(app, "li", data, "many-errors.csv")
    finished = run(app, import_id)
    assert finished.status == "failed"
    with app.app_context():
        record = db.session.get(CustomerImport, import_id)
        parts = imports.split_errors(record)
    assert len(parts["errors"]) == 3
    assert parts["more"] == 7


def test_p3_1_2_import_all_or_nothing_when_a_row_fails_at_the_end(
    app: Any, org: Any, monkeypatch: Any
) -> None:
    """A row that became a duplicate between the check and the write (someone typed
    the same customer meanwhile) fails the import: the rows written before it are
    rolled back with it."""
    data = b"name\nAlpha Ltd\nBeta Ltd\nGamma Ltd\n"
    import_id = start(app, "li", data, "race.csv")
    real = imports._create
    calls: list[bool] = []

    def create(values: Any, owner: Any, keep: bool) -> dict[str, list[str]]:
        calls.append(keep)
        if keep and values["name"] == "Gamma Ltd":
            return {"name": ["A customer with this name already exists."]}
        return real(values, owner, keep)

    monkeypatch.setattr(imports, "_create", create)
    finished = run(app, import_id)
    assert calls == [False, False, False, True, True, True]
    assert finished.status == "failed"
    assert [(e["row"], e["field"]) for e in finished.errors] == [(4, "name")]
    assert customers(app) == []


def test_p3_1_2_import_unexpected_error_fails_cleanly(app: Any, org: Any, monkeypatch: Any) -> None:
    import_id = start(app, "li", b"name\nAlpha Ltd\n", "boom.csv")

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(imports, "_create", explode)
    finished = run(app, import_id)
    assert finished.status == "failed"
    assert "unexpected error" in finished.errors[0]["message"]
    assert customers(app) == []
    assert stored_files(app) == []


# -- progress, the status page and the background thread ---------------------------------


def test_p3_1_2_import_progress_moves_in_separate_commits(
    make_app: Any, org: Any, monkeypatch: Any
) -> None:
    app = make_app(SALES_IMPORT_PROGRESS_EVERY=2)
    data = ("name\n" + "".join(f"Progress Co {n}\n" for n in range(5))).encode()
    import_id = start(app, "li", data, "progress.csv")
    seen: list[tuple[str, int]] = []
    real = imports._set_progress

    def spy(record_id: int, **values: Any) -> None:
        real(record_id, **values)
        # Read back on a connection of its own: the value is committed, not pending.
        with db.engine.connect() as other:
            status, processed = other.execute(
                sa.select(CustomerImport.status, CustomerImport.processed_rows).where(
                    CustomerImport.id == record_id
                )
            ).one()
        seen.append((status, processed))

    monkeypatch.setattr(imports, "_set_progress", spy)
    finished = run(app, import_id)
    assert finished.status == "done"
    assert seen == [
        ("checking", 0),
        ("checking", 2),
        ("checking", 4),
        ("checking", 5),
        ("importing", 5),
    ]


def test_p3_1_2_import_status_polls_while_running_and_stops_when_done(
    app: Any, org: Any, login: Any
) -> None:
    import_id = start(app, "li", b"name\nPoll Co\n", "poll.csv")
    client = logged_in(app, login, "li")
    page = client.get(f"/sales/imports/{import_id}")
    assert page.status_code == 200
    assert 'hx-trigger="every 1s"' in page.text
    assert "<html" in page.text
    assert "HX-Request" in page.headers["Vary"]
    fragment = client.get(f"/sales/imports/{import_id}", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text
    assert 'hx-trigger="every 1s"' in fragment.text
    assert 'width="0%"' in fragment.text
    run(app, import_id)
    fragment = client.get(f"/sales/imports/{import_id}", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 1s"' not in fragment.text  # finished: the polling stops
    assert 'width="100%"' in fragment.text
    assert 'data-status="done"' in fragment.text
    boosted = client.get(
        f"/sales/imports/{import_id}", headers={"HX-Request": "true", "HX-Boosted": "true"}
    )
    assert "<html" in boosted.text
    listing = client.get("/sales/imports/")
    assert "poll.csv" in listing.text


def test_p3_1_2_import_runs_in_a_background_thread_after_commit(
    make_app: Any, org: Any, login: Any
) -> None:
    app = make_app(SALES_IMPORT_BACKGROUND=True)
    client = logged_in(app, login, "li")
    response = upload(client, EN_CSV.encode(), "thread.csv")
    assert response.status_code == 303
    assert imports.wait_for_imports(app, timeout=60)
    with app.app_context():
        record = db.session.scalars(sa.select(CustomerImport)).one()
        assert (record.status, record.created_count) == ("done", 2), record.errors
    page = client.get(response.headers["Location"])
    assert 'data-status="done"' in page.text


def test_p3_1_2_import_that_stalled_is_ended(app: Any, org: Any, login: Any) -> None:
    import_id = start(app, "li", b"name\nStalled Co\n", "stalled.csv")
    with app.app_context():
        db.session.execute(
            sa.update(CustomerImport)
            .where(CustomerImport.id == import_id)
            .values(status="checking", updated_at=utcnow() - timedelta(hours=2))
        )
        db.session.commit()
    client = logged_in(app, login, "li")
    page = client.get(f"/sales/imports/{import_id}", headers={"HX-Request": "true"})
    assert 'data-status="failed"' in page.text
    assert "stopped without finishing" in page.text
    assert 'hx-trigger="every 1s"' not in page.text
    # A runner that comes late finds nothing to do.
    assert run(app, import_id).status == "failed"
    assert customers(app) == []


# -- scope and permissions -----------------------------------------------------------------


def test_p3_1_2_import_scope_li_cannot_read_wangs_import(
    app: Any, org: Any, login: Any, api_token: Any
) -> None:
    import_id = start(app, "wang", b"name\nWang's Secret Co\n", "wang.csv")
    li = logged_in(app, login, "li")
    assert li.get(f"/sales/imports/{import_id}").status_code == 404
    assert "wang.csv" not in li.get("/sales/imports/").text
    headers = {"Authorization": f"Bearer {api_token('li')}"}
    api = app.test_client()
    assert api.get(f"/api/v1/sales/imports/{import_id}", headers=headers).status_code == 404
    assert api.get("/api/v1/sales/imports", headers=headers).json["items"] == []
    assert logged_in(app, login, "zhao").get(f"/sales/imports/{import_id}").status_code == 404
    # wang's leader sees it; zhao's does not.
    assert logged_in(app, login, "sup_east").get(f"/sales/imports/{import_id}").status_code == 200
    sup_south = logged_in(app, login, "sup_south")
    assert sup_south.get(f"/sales/imports/{import_id}").status_code == 404
    # Without the import permission there is no upload page.
    assert logged_in(app, login, "auditor").get("/sales/imports/").status_code == 403


# -- the API --------------------------------------------------------------------------------


def test_p3_1_2_import_api_upload_and_status(app: Any, org: Any, api_token: Any) -> None:
    headers = {"Authorization": f"Bearer {api_token('li')}"}
    api = app.test_client()
    response = api.post(
        "/api/v1/sales/imports",
        data={"file": (io.BytesIO((ZH_HEADER + ZH_ROWS).encode("gb18030")), "gbk.csv")},
        content_type="multipart/form-data",
        headers=headers,
    )
    assert response.status_code == 202, response.json
    body = response.json
    assert (body["status"], body["total_rows"], body["finished"]) == ("queued", 2, False)
    assert response.headers["Location"] == f"/api/v1/sales/imports/{body['id']}"
    run(app, body["id"])
    status = api.get(f"/api/v1/sales/imports/{body['id']}", headers=headers).json
    assert (status["status"], status["created_count"], status["progress_pct"]) == ("done", 2, 100)
    assert status["errors"] == [] and status["finished"] is True

    broken = api.post(
        "/api/v1/sales/imports",
        data={"file": (io.BytesIO(b"name,phone\n,13600136001\nOk Co,x\n"), "b.csv")},
        content_type="multipart/form-data",
        headers=headers,
    )
    assert broken.status_code == 202
    run(app, broken.json["id"])
    status = api.get(f"/api/v1/sales/imports/{broken.json['id']}", headers=headers).json
    assert status["status"] == "failed"
    assert [(e["row"], e["field"]) for e in status["errors"]] == [(2, "name"), (3, "phone")]

    refused = api.post(
        "/api/v1/sales/imports",
        data={"file": (io.BytesIO("名称\n甲".encode("utf-16")), "u16.csv")},
        content_type="multipart/form-data",
        headers=headers,
    )
    assert refused.status_code == 422
    assert "UTF-16" in refused.json["error"]["fields"]["file"][0]
    missing = api.post("/api/v1/sales/imports", json={"file": "x"}, headers=headers)
    assert missing.status_code == 422
    assert "file" in missing.json["error"]["fields"]
    auditor = {"Authorization": f"Bearer {api_token('auditor')}"}
    forbidden = api.post(
        "/api/v1/sales/imports",
        data={"file": (io.BytesIO(b"name\nA\n"), "a.csv")},
        content_type="multipart/form-data",
        headers=auditor,
    )
    assert forbidden.status_code == 403


def test_p3_1_2_import_api_refuses_too_large(make_app: Any, org: Any, api_token: Any) -> None:
    app = make_app(SALES_IMPORT_MAX_BYTES=100)
    headers = {"Authorization": f"Bearer {api_token('li')}"}
    response = app.test_client().post(
        "/api/v1/sales/imports",
        data={"file": (io.BytesIO(b"name\n" + b"A company\n" * 50), "big.csv")},
        content_type="multipart/form-data",
        headers=headers,
    )
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_large"


def test_p3_1_2_import_list_has_no_n_plus_one(app: Any, org: Any, login: Any) -> None:
    from portal.testing import count_statements

    start(app, "li", b"name\nOne Co\n", "one.csv")
    client = logged_in(app, login, "sup_east")
    client.get("/sales/imports/")  # the first request loads the rule files
    app.config["RULES_REFRESH_SECONDS"] = 3600  # no periodic re-check between the counts
    few = count_statements(app, client, "/sales/imports/")
    for number in range(8):
        start(app, "wang" if number % 2 else "li", b"name\nMore Co\n", f"more{number}.csv")
    assert count_statements(app, client, "/sales/imports/") == few
    page = client.get("/sales/imports/")
    assert page.text.count("data-import-id=") == 9
    assert "Wang" in page.text and "Li" in page.text
