"""P6.3 Sales data management: orders, money collected, receivables aging, pipeline and
win rate per person, team and period, checked against a hand-computed data set for a
salesperson, a supervisor and the manager; charts and exports in the same scope;
exports safe against formula injection, capped and audited."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from plugins.sales import reports
from plugins.sales.models import (
    Contract,
    Customer,
    Opportunity,
    PaymentInstalment,
    Quotation,
)
from portal import exports
from portal.audit.models import AuditEvent
from portal.audit.recorder import acting_as
from portal.auth.models import Role, RolePermission, User
from portal.extensions import db
from portal.loops.service import local_today, portal_zone
from portal.testing import count_statements

_sequence = itertools.count(1)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _today(app: Any) -> date:
    with app.app_context():
        return local_today()


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=portal_zone())


def grant(app: Any, role: str, *codes: str) -> None:
    """Give a role extra permissions (as an admin would on the roles page)."""
    with app.app_context(), acting_as("test"):
        found = db.session.scalars(sa.select(Role).where(Role.code == role)).one()
        for code in codes:
            if code not in found.permission_codes:
                db.session.add(RolePermission(role_id=found.id, code=code))
        db.session.commit()


def revoke(app: Any, role: str, code: str) -> None:
    with app.app_context(), acting_as("test"):
        found = db.session.scalars(sa.select(Role).where(Role.code == role)).one()
        db.session.execute(
            sa.delete(RolePermission).where(
                RolePermission.role_id == found.id, RolePermission.code == code
            )
        )
        db.session.commit()


# -- a data set written directly with the models -----------------------------------------------


def add_customer(owner: int | None, name: str, **values: Any) -> Customer:
    customer = Customer(
        owner_id=owner,
        name=name,
        name_key=f"{name.lower()}-{next(_sequence)}",
        stage=values.pop("stage", "customer"),
        **values,
    )
    db.session.add(customer)
    db.session.flush()
    return customer


def add_opportunity(
    owner: int,
    customer: Customer,
    *,
    amount: int = 0,
    status: str = "open",
    probability: int = 10,
    closed_on: date | None = None,
) -> Opportunity:
    stage = {"open": "proposal", "won": "won", "lost": "lost"}[status]
    opportunity = Opportunity(
        owner_id=owner,
        customer_id=customer.id,
        name=f"Deal {next(_sequence)}",
        stage=stage,
        status=status,
        probability_pct=probability,
        amount_cents=amount,
        closed_at=_noon(closed_on) if closed_on else None,
        lost_reason="price" if status == "lost" else "",
    )
    db.session.add(opportunity)
    db.session.flush()
    return opportunity


def add_contract(
    owner: int,
    customer: Customer,
    amount: int,
    signed_on: date,
    instalments: list[dict[str, Any]],
    status: str = "signed",
) -> Contract:
    """A contract (with the opportunity and quotation it needs) and its payment plan:
    instalments given as {"due": date, "amount": fen, "paid": fen, "paid_on": date}."""
    number = next(_sequence)
    opportunity = add_opportunity(owner, customer, status="won", probability=100)
    opportunity.closed_at = None  # not a closed deal of the period: only the contract counts
    quotation = Quotation(
        owner_id=owner,
        number=f"QT-T-{number:05d}",
        opportunity_id=opportunity.id,
        customer_id=customer.id,
        status="accepted",
        valid_until=signed_on + timedelta(days=30),
        total_cents=amount,
    )
    db.session.add(quotation)
    db.session.flush()
    contract = Contract(
        owner_id=owner,
        number=f"CT-T-{number:05d}",
        title=f"Contract {number}",
        customer_id=customer.id,
        opportunity_id=opportunity.id,
        quotation_id=quotation.id,
        status=status,
        amount_cents=amount,
        signed_on=signed_on,
    )
    db.session.add(contract)
    db.session.flush()
    for position, plan in enumerate(instalments, start=1):
        db.session.add(
            PaymentInstalment(
                contract_id=contract.id,
                sequence=position,
                due_on=plan["due"],
                amount_cents=plan["amount"],
                paid_cents=plan.get("paid", 0),
                paid_at=_noon(plan["paid_on"]) if plan.get("paid_on") else None,
            )
        )
    db.session.flush()
    return contract


def build_data(app: Any, org: dict[str, int]) -> date:
    """The known data set (amounts in fen, days relative to today):

    li:   contract signed today-10, 100,000.11, instalments 30,000 paid today-5,
          20,000 due today-45 unpaid, 50,000.11 due today+30; an older contract
          (today-200, 50,000, executing) with 40,000 unpaid since today-100; pipeline
          200,000 at 50 %; one deal won and one lost in the period.
    wang: contract today-5, 80,000.22, due today-10 unpaid; pipeline 10,000 at 20 %;
          one deal won.
    zhao: contract today-1, 70,123.45, due today-70, 35,000 paid today-2; two deals
          lost; a cancelled contract that counts nowhere.
    """
    li, wang, zhao = org["li"], org["wang"], org["zhao"]
    with app.app_context(), acting_as("test"):
        today = local_today()
        d = lambda days: today + timedelta(days=days)  # noqa: E731
        li_customer = add_customer(li, "上海电气 Li Customer", phone="021-5555")
        add_customer(li, '=HYPERLINK("http://evil.example","click")')
        add_customer(li, "+cmd|' /C calc'!A0")
        add_contract(
            li,
            li_customer,
            10_000_011,
            d(-10),
            [
                {"due": d(-40), "amount": 3_000_000, "paid": 3_000_000, "paid_on": d(-5)},
                {"due": d(-45), "amount": 2_000_000},
                {"due": d(30), "amount": 5_000_011},
            ],
        )
        add_contract(
            li,
            li_customer,
            5_000_000,
            d(-200),
            [{"due": d(-100), "amount": 5_000_000, "paid": 1_000_000, "paid_on": d(-150)}],
            status="executing",
        )
        add_opportunity(li, li_customer, amount=20_000_000, probability=50)
        add_opportunity(li, li_customer, amount=10_000_000, status="won", closed_on=d(-10))
        add_opportunity(li, li_customer, amount=3_000_000, status="lost", closed_on=d(-20))

        wang_customer = add_customer(wang, "Wang Customer Ltd")
        add_contract(wang, wang_customer, 8_000_022, d(-5), [{"due": d(-10), "amount": 8_000_022}])
        add_opportunity(wang, wang_customer, amount=1_000_000, probability=20)
        add_opportunity(wang, wang_customer, amount=8_000_022, status="won", closed_on=d(-3))

        zhao_customer = add_customer(zhao, "Zhao Customer Co")
        add_contract(
            zhao,
            zhao_customer,
            7_012_345,
            d(-1),
            [{"due": d(-70), "amount": 7_012_345, "paid": 3_500_000, "paid_on": d(-2)}],
        )
        add_contract(
            zhao,
            zhao_customer,
            99_900,
            d(-3),
            [{"due": d(-1), "amount": 99_900}],
            status="cancelled",
        )
        add_opportunity(zhao, zhao_customer, amount=500_000, status="lost", closed_on=d(-4))
        add_opportunity(zhao, zhao_customer, amount=600_000, status="lost", closed_on=d(-6))
        db.session.commit()
    return today


def period_args(today: date) -> str:
    since = (today - timedelta(days=89)).isoformat()
    return f"period=custom&since={since}&until={today.isoformat()}&bucket=month"


EXPECTED = {
    "li": {
        "orders": (1, "100000.11"),
        "collected": "30000.00",
        "outstanding": "110000.11",
        "overdue": "60000.00",
        "aging": {
            "not_due": "50000.11",
            "days_0_30": "0.00",
            "days_31_60": "20000.00",
            "days_61_90": "0.00",
            "days_over_90": "40000.00",
        },
        "pipeline": (1, "200000.00", "100000.00"),
        "win": (1, 1, 0.5),
    },
    "sup_east": {
        "orders": (2, "180000.33"),
        "collected": "30000.00",
        "outstanding": "190000.33",
        "overdue": "140000.22",
        "aging": {
            "not_due": "50000.11",
            "days_0_30": "80000.22",
            "days_31_60": "20000.00",
            "days_61_90": "0.00",
            "days_over_90": "40000.00",
        },
        "pipeline": (2, "210000.00", "102000.00"),
        "win": (2, 1, 0.6667),
    },
    "manager": {
        "orders": (3, "250123.78"),
        "collected": "65000.00",
        "outstanding": "225123.78",
        "overdue": "175123.67",
        "aging": {
            "not_due": "50000.11",
            "days_0_30": "80000.22",
            "days_31_60": "20000.00",
            "days_61_90": "35123.45",
            "days_over_90": "40000.00",
        },
        "pipeline": (2, "210000.00", "102000.00"),
        "win": (2, 3, 0.4),
    },
}


def assert_figures(figures: dict[str, Any], expected: dict[str, Any]) -> None:
    assert (figures["orders"]["count"], figures["orders"]["amount"]) == expected["orders"]
    assert figures["collected"] == expected["collected"]
    assert figures["receivables"]["outstanding"] == expected["outstanding"]
    assert figures["receivables"]["overdue"] == expected["overdue"]
    assert figures["receivables"]["aging"] == expected["aging"]
    pipeline = figures["pipeline"]
    assert (pipeline["count"], pipeline["amount"], pipeline["weighted"]) == expected["pipeline"]
    win = figures["win_rate"]
    assert (win["won"], win["lost"], win["rate"]) == expected["win"]


# -- periods ---------------------------------------------------------------------------------


def test_p6_3_periods_are_calendar_months_quarters_years_cut_in_buckets(app: Any) -> None:
    with app.app_context():
        today = date(2026, 5, 20)
        month = reports.make_period("month", "week", today)
        assert month.start == date(2026, 5, 1) and month.end == date(2026, 6, 1)
        # weeks from Monday, the first and last cut at the month's edges
        assert month.days[:3] == (date(2026, 5, 1), date(2026, 5, 4), date(2026, 5, 11))
        assert month.days[-2:] == (date(2026, 5, 25), date(2026, 6, 1))
        quarter = reports.make_period("quarter", "month", today)
        assert quarter.days == (
            date(2026, 4, 1),
            date(2026, 5, 1),
            date(2026, 6, 1),
            date(2026, 7, 1),
        )
        assert reports.make_period("last_quarter", "month", today).start == date(2026, 1, 1)
        assert reports.make_period("last_month", "month", date(2026, 1, 9)).start == date(
            2025, 12, 1
        )
        year = reports.make_period("last_year", "month", today)
        assert (year.start, year.end, len(year.days)) == (date(2025, 1, 1), date(2026, 1, 1), 13)
        custom = reports.make_period("custom", "month", today, date(2026, 2, 10), date(2026, 3, 5))
        assert custom.days == (date(2026, 2, 10), date(2026, 3, 1), date(2026, 3, 6))
        assert [custom.bucket_label(i) for i in range(2)] == ["2026-02", "2026-03"]
        assert reports.aging_bucket(today, today) == "days_0_30"
        assert reports.aging_bucket(today - timedelta(days=31), today) == "days_31_60"
        assert reports.aging_bucket(today - timedelta(days=91), today) == "days_over_90"
        assert reports.aging_bucket(today + timedelta(days=1), today) == "not_due"


# -- the numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize("viewer", ["li", "sup_east", "manager"])
def test_p6_3_figures_of_a_known_data_set_in_each_scope(
    app: Any, client: Any, org: dict[str, int], api_token: Any, viewer: str
) -> None:
    today = build_data(app, org)
    grant(app, "salesperson", "sales.view_reports")
    summary = client.get(
        f"/api/v1/sales/reports/summary?{period_args(today)}", headers=_auth(api_token(viewer))
    )
    assert summary.status_code == 200, summary.json
    body = summary.json
    assert_figures(body["totals"], EXPECTED[viewer])
    people = {row["name"] for row in body["people"]}
    assert (
        people
        == {"li": {"Li"}, "sup_east": {"Li", "Wang"}, "manager": {"Li", "Wang", "Zhao"}}[viewer]
    )
    if viewer != "li":
        by_name = {row["name"]: row for row in body["people"]}
        assert_figures(by_name["Li"], EXPECTED["li"])
        assert by_name["Wang"]["receivables"]["aging"]["days_0_30"] == "80000.22"
    # The month series adds up to the period's totals.
    assert sum(row["orders"]["count"] for row in body["series"]) == EXPECTED[viewer]["orders"][0]
    assert len(body["series"]) in (3, 4)  # 90 days cut at month boundaries
    teams = {row["name"]: row for row in body["teams"]}
    if viewer == "manager":
        assert set(teams) == {"Company", "East", "South", "Shanghai", "Guangzhou"}
        assert teams["East"]["orders"] == {"count": 2, "amount": "180000.33"}
        assert teams["South"]["collected"] == "35000.00"
        assert teams["Company"]["orders"]["amount"] == "250123.78"
    elif viewer == "sup_east":
        assert set(teams) == {"East", "Shanghai"}
        assert teams["Shanghai"]["receivables"]["overdue"] == "140000.22"
    else:
        assert set(teams) == {"Shanghai"}
        assert teams["Shanghai"]["orders"]["count"] == 1


def test_p6_3_report_page_shows_the_figures_and_a_team_filter(
    app: Any, client: Any, org: dict[str, int], login: Any
) -> None:
    today = build_data(app, org)
    login(client, "manager")
    page = client.get(f"/sales/reports/?{period_args(today)}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "250,123.78" in html and "65,000.00" in html and "40 %" in html
    assert 'data-testid="export-button"' in html
    # Narrowed to the East region: Zhao's numbers are gone.
    with app.app_context():
        east = org["east"]
    narrowed = client.get(f"/sales/reports/?{period_args(today)}&unit={east}")
    text = narrowed.get_data(as_text=True)
    assert narrowed.status_code == 200
    assert "180,000.33" in text and "Zhao" not in text and "70,123.45" not in text


def test_p6_3_bad_filters_get_per_field_messages_never_a_500(
    app: Any, client: Any, org: dict[str, int], login: Any, api_token: Any
) -> None:
    login(client, "sup_east")
    for query, field in [
        ("since=2026-13-45", "since"),
        ("period=custom&since=2026-03-01&until=2026-02-01", "until"),
        ("period=custom", "since"),
        ("since=1900-01-01", "since"),
        ("period=decade", "period"),
        (f"unit={org['south']}", "unit"),  # a unit outside the supervisor's subtree
        ("since=2020-01-01&until=2026-01-01", "since"),  # longer than three years
    ]:
        page = client.get(f"/sales/reports/?{query}")
        assert page.status_code == 422, query
        assert f'data-testid="error-{field}"' in page.get_data(as_text=True), query
        assert client.get(f"/sales/reports/chart/trend.svg?{query}").status_code == 422
        api = client.get(
            f"/api/v1/sales/reports/summary?{query}", headers=_auth(api_token("sup_east"))
        )
        assert api.status_code == 422 and field in api.json["error"]["fields"], query
    assert client.get("/sales/reports/chart/nothing.svg").status_code == 404
    bad_export = client.post("/sales/reports/export", data={"dataset": "secrets", "format": "csv"})
    assert bad_export.status_code == 422
    report_without_period = client.post(
        "/sales/reports/export", data={"dataset": "report", "format": "csv", "period": "all"}
    )
    assert report_without_period.status_code == 422
    api_unknown = client.get("/api/v1/sales/exports/secrets", headers=_auth(api_token("sup_east")))
    assert api_unknown.status_code == 404


# -- charts ----------------------------------------------------------------------------------


def test_p6_3_charts_are_svg_images_in_the_viewers_scope(
    app: Any, client: Any, org: dict[str, int], login: Any
) -> None:
    today = build_data(app, org)
    login(client, "sup_east")
    svgs = {}
    for name in reports.CHARTS:
        response = client.get(f"/sales/reports/chart/{name}.svg?{period_args(today)}")
        assert response.status_code == 200 and response.mimetype == "image/svg+xml"
        assert b"<script" not in response.data
        svgs[name] = response.get_data(as_text=True)
    assert "Wang" in svgs["people"] and "Li" in svgs["people"]
    assert "Zhao" not in svgs["people"] and "70,123.45" not in svgs["people"]
    assert "80,000.22" in svgs["people"]
    assert "35,123.45" not in svgs["aging"]  # zhao's 61-90 days
    manager = client.application.test_client()
    login(manager, "manager")
    people = manager.get(f"/sales/reports/chart/people.svg?{period_args(today)}")
    assert "Zhao" in people.get_data(as_text=True)
    assert "70,123.45" in people.get_data(as_text=True)
    assert "35,123.45" in manager.get(
        f"/sales/reports/chart/aging.svg?{period_args(today)}"
    ).get_data(as_text=True)


# -- exports ---------------------------------------------------------------------------------


def _csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_p6_3_csv_export_has_a_bom_chinese_and_is_scoped_to_the_salesperson(
    app: Any, client: Any, org: dict[str, int], login: Any
) -> None:
    build_data(app, org)
    grant(app, "salesperson", "sales.export")
    login(client, "li")
    for dataset in ("customers", "opportunities", "contracts", "receivables"):
        response = client.post(
            "/sales/reports/export", data={"dataset": dataset, "format": "csv", "period": "all"}
        )
        assert response.status_code == 200, dataset
        assert response.mimetype == "text/csv"
        assert f"sales-{dataset}-" in response.headers["Content-Disposition"]
        text = "\n".join(",".join(row) for row in _csv_rows(response.data))
        assert "Wang" not in text and "Zhao" not in text, dataset
    customers = _csv_rows(
        client.post("/sales/reports/export", data={"dataset": "customers", "format": "csv"}).data
    )
    names = [row[1] for row in customers[1:]]
    assert "上海电气 Li Customer" in names
    assert len(names) == 3


def test_p6_3_supervisor_export_never_holds_another_teams_records(
    app: Any, client: Any, org: dict[str, int], login: Any
) -> None:
    build_data(app, org)
    login(client, "sup_east")
    contracts = client.post("/sales/reports/export", data={"dataset": "contracts", "format": "csv"})
    rows = _csv_rows(contracts.data)
    owners = {row[3] for row in rows[1:]}
    assert owners == {"Li", "Wang"}
    assert not any("Zhao" in cell for row in rows for cell in row)
    # Filtering by a person outside the scope is refused, not widened.
    refused = client.post(
        "/sales/reports/export",
        data={"dataset": "customers", "format": "csv", "owner": str(org["zhao"])},
    )
    assert refused.status_code == 422
    only_wang = client.post(
        "/sales/reports/export",
        data={"dataset": "customers", "format": "csv", "owner": str(org["wang"])},
    )
    assert [row[1] for row in _csv_rows(only_wang.data)[1:]] == ["Wang Customer Ltd"]


def test_p6_3_formula_injection_is_neutralised_in_csv_and_xlsx(
    app: Any, client: Any, org: dict[str, int], login: Any
) -> None:
    build_data(app, org)
    login(client, "manager")
    csv_rows = _csv_rows(
        client.post("/sales/reports/export", data={"dataset": "customers", "format": "csv"}).data
    )
    names = {row[1] for row in csv_rows[1:]}
    assert '\'=HYPERLINK("http://evil.example","click")' in names
    assert "'+cmd|' /C calc'!A0" in names
    assert not any(name.startswith(("=", "+", "-", "@")) for name in names)
    assert "021-5555" in {row[5] for row in csv_rows[1:]}  # only formula starts get a quote
    response = client.post("/sales/reports/export", data={"dataset": "customers", "format": "xlsx"})
    assert response.status_code == 200
    assert response.mimetype == exports.XLSX_MIME
    sheet = load_workbook(io.BytesIO(response.data)).active
    cells = {cell.value: cell for row in sheet.iter_rows(min_row=2) for cell in row}
    formula = cells['\'=HYPERLINK("http://evil.example","click")']
    assert formula.data_type == "s"
    assert cells["'+cmd|' /C calc'!A0"].data_type == "s"
    assert not any(cell.data_type == "f" for cell in cells.values())
    assert "上海电气 Li Customer" in cells
    # Numbers stay numbers: the contracts' amounts are numeric cells.
    contracts = client.post(
        "/sales/reports/export", data={"dataset": "contracts", "format": "xlsx"}
    )
    sheet = load_workbook(io.BytesIO(contracts.data)).active
    amounts = [row[5] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert 100000.11 in amounts and all(isinstance(value, int | float) for value in amounts)


def test_p6_3_every_export_is_audited_with_its_row_count(
    app: Any, client: Any, org: dict[str, int], login: Any, api_token: Any
) -> None:
    today = build_data(app, org)
    login(client, "sup_east")
    client.post("/sales/reports/export", data={"dataset": "customers", "format": "xlsx"})
    client.get(
        f"/api/v1/sales/exports/report?format=csv&{period_args(today)}",
        headers=_auth(api_token("manager")),
    )
    with app.app_context():
        events = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "export").order_by(AuditEvent.id)
        ).all()
        assert len(events) == 2
        page, api = events
        assert page.actor == "sup_east" and page.actor_id == org["sup_east"]
        assert page.table_name == "sales_customer"
        assert page.after["rows"] == 4  # li's three customers and wang's one
        assert page.after["format"] == "xlsx" and page.after["capped"] is False
        assert page.after["filters"]["period"] == "all"
        assert api.actor == "api:manager" and api.table_name == "sales_report"
        assert api.after["filters"]["since"] == (today - timedelta(days=89)).isoformat()
        assert api.after["rows"] > 3


def test_p6_3_exports_stop_at_the_configured_cap_and_say_so(
    make_app: Any, org: dict[str, int], login: Any
) -> None:
    app = make_app(SALES_EXPORT_MAX_ROWS=2)
    client = app.test_client()
    build_data(app, org)
    login(client, "manager")
    response = client.post("/sales/reports/export", data={"dataset": "customers", "format": "csv"})
    rows = _csv_rows(response.data)
    assert len(rows) == 1 + 2 + 1  # headings, two rows, the message
    assert "2" in rows[-1][0] and "limit" in rows[-1][0]
    assert response.headers["X-Export-Capped"] == "2"
    xlsx = client.post("/sales/reports/export", data={"dataset": "customers", "format": "xlsx"})
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    assert sheet.max_row == 4 and "limit" in sheet.cell(row=4, column=1).value
    with app.app_context():
        event = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "export").order_by(AuditEvent.id)
        ).first()
        assert event.after["rows"] == 2 and event.after["capped"] is True


def test_p6_3_api_token_of_a_salesperson_gets_only_their_rows(
    app: Any, client: Any, org: dict[str, int], api_token: Any
) -> None:
    build_data(app, org)
    grant(app, "salesperson", "sales.export", "sales.view_reports")
    token = api_token("li")
    for dataset in ("customers", "opportunities", "contracts", "receivables"):
        response = client.get(f"/api/v1/sales/exports/{dataset}?format=csv", headers=_auth(token))
        assert response.status_code == 200, dataset
        text = response.data.decode("utf-8-sig")
        assert "Wang" not in text and "Zhao" not in text, dataset
    xlsx = client.get("/api/v1/sales/exports/customers?format=xlsx", headers=_auth(token))
    values = {
        cell for row in load_workbook(io.BytesIO(xlsx.data)).active.values for cell in row if cell
    }
    assert "Wang Customer Ltd" not in values and "上海电气 Li Customer" in values
    # Asking for another's rows by filter is refused, not answered.
    other = client.get(f"/api/v1/sales/exports/customers?owner={org['wang']}", headers=_auth(token))
    assert other.status_code == 422
    summary = client.get("/api/v1/sales/reports/summary", headers=_auth(token)).json
    assert {row["name"] for row in summary["people"]} <= {"Li"}


def test_p6_3_without_the_permissions_pages_exports_and_api_answer_403(
    app: Any, client: Any, org: dict[str, int], login: Any, api_token: Any
) -> None:
    build_data(app, org)
    login(client, "li")  # a salesperson: neither sales.view_reports nor sales.export
    assert client.get("/sales/reports/").status_code == 403
    assert client.get("/sales/reports/chart/trend.svg").status_code == 403
    assert client.get("/sales/reports/export").status_code == 403
    assert client.post("/sales/reports/export", data={"dataset": "customers"}).status_code == 403
    token = api_token("li")
    assert client.get("/api/v1/sales/exports/customers", headers=_auth(token)).status_code == 403
    assert client.get("/api/v1/sales/reports/summary", headers=_auth(token)).status_code == 403
    # A supervisor who may see the report but not export: no button, 403 on export.
    revoke(app, "supervisor", "sales.export")
    supervisor = app.test_client()
    login(supervisor, "sup_east")
    page = supervisor.get("/sales/reports/")
    assert page.status_code == 200
    assert 'data-testid="export-button"' not in page.get_data(as_text=True)
    assert supervisor.get("/sales/reports/export").status_code == 403
    assert (
        supervisor.post("/sales/reports/export", data={"dataset": "customers"}).status_code == 403
    )
    sup_token = api_token("sup_east")
    assert (
        client.get("/api/v1/sales/exports/customers", headers=_auth(sup_token)).status_code == 403
    )
    with app.app_context():
        assert (
            db.session.scalar(sa.select(sa.func.count()).where(AuditEvent.action == "export")) == 0
        )


def test_p6_3_export_page_is_prefilled_from_the_report(
    app: Any, client: Any, org: dict[str, int], login: Any
) -> None:
    today = build_data(app, org)
    login(client, "manager")
    page = client.get(f"/sales/reports/export?dataset=report&{period_args(today)}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="csrf_token"' in html
    assert f'value="{(today - timedelta(days=89)).isoformat()}"' in html
    assert '<option selected value="report">' in html or 'value="report" selected' in html
    since = (today - timedelta(days=89)).isoformat()
    form = {"dataset": "report", "format": "csv", "period": "custom", "since": since}
    rows = _csv_rows(client.post("/sales/reports/export", data=form).data)
    assert rows[1][:4] == ["Total", "All", "3", "250123.78"]
    assert rows[[r[1] for r in rows].index("Zhao")][:4] == ["Person", "Zhao", "1", "70123.45"]


def test_p6_3_statement_counts_stay_flat_as_data_grows(
    app: Any, client: Any, org: dict[str, int], login: Any, make_person: Any
) -> None:
    today = build_data(app, org)
    login(client, "manager")
    urls = [
        f"/sales/reports/?{period_args(today)}",
        f"/sales/reports/chart/people.svg?{period_args(today)}",
    ]
    for url in urls:  # warm caches (rule files, translations)
        count_statements(app, client, url)
    few = {url: count_statements(app, client, url) for url in urls}
    extra = [
        make_person(f"seller{i}", roles=["salesperson"], unit=org["guangzhou"]) for i in range(4)
    ]
    with app.app_context(), acting_as("test"):
        for index, owner in enumerate(extra * 5):
            customer = add_customer(owner, f"Bulk {index}")
            due = today - timedelta(days=index)
            plan = [{"due": due, "amount": 100_000, "paid": 5, "paid_on": today}]
            add_contract(owner, customer, 100_000 + index, today - timedelta(days=index % 80), plan)
            add_opportunity(owner, customer, amount=1_000, status="lost", closed_on=today)
        db.session.commit()
    many = {url: count_statements(app, client, url) for url in urls}
    assert many == few


def test_p6_3_export_form_needs_its_csrf_token(
    make_app: Any, org: dict[str, int], login: Any
) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    build_data(app, org)
    page = client.get("/login")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    client.post(
        "/login", data={"username": "manager", "password": "correct-horse-42", "csrf_token": token}
    )
    form = client.get("/sales/reports/export").get_data(as_text=True)
    token = form.split('name="csrf_token" value="')[1].split('"')[0]
    refused = client.post("/sales/reports/export", data={"dataset": "customers", "format": "csv"})
    assert refused.status_code in (400, 422)
    with app.app_context():
        assert not db.session.scalar(
            sa.select(sa.func.count()).where(AuditEvent.action == "export")
        )
    accepted = client.post(
        "/sales/reports/export",
        data={"dataset": "customers", "format": "csv", "csrf_token": token},
    )
    assert accepted.status_code == 200 and "Zhao Customer Co" in accepted.data.decode("utf-8-sig")


def test_p6_3_a_salesperson_given_the_report_sees_only_their_own_numbers(
    app: Any, client: Any, org: dict[str, int], login: Any
) -> None:
    today = build_data(app, org)
    grant(app, "salesperson", "sales.view_reports")
    login(client, "li")
    page = client.get(f"/sales/reports/?{period_args(today)}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "My sales numbers" in html
    assert "100,000.11" in html and "Wang" not in html and "80,000.22" not in html
    assert 'data-testid="export-button"' not in html  # salespeople do not export by default


# -- found in review -------------------------------------------------------------------------------


def test_p6_3_the_weighted_pipeline_rounds_half_a_fen_up_in_the_report_and_the_export(
    app: Any, client: Any, org: dict[str, int], login: Any
) -> None:
    """2.50 yuan at 1 % is 2.5 fen: 3 fen (half up), not Python's round() to even (2)."""
    with app.test_request_context(), acting_as("test"):
        customer = add_customer(org["li"], "Half Fen Ltd")
        add_opportunity(org["li"], customer, amount=250, probability=1)
        db.session.commit()
        li = db.session.get(User, org["li"])
        assert reports.build_report(li, reports.make_period("month")).total.weighted_cents == 3
    login(client, "manager")
    exported = client.post(
        "/sales/reports/export", data={"dataset": "opportunities", "format": "csv"}
    )
    rows = _csv_rows(exported.data)
    column = rows[0].index("Weighted amount")
    assert [row[column] for row in rows[1:]] == ["0.03"]
