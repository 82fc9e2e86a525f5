"""P3.1.1 market research: notes by industry, region and competitor, their scope,
validation (pages and API) and the supervisor's summary."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.sales import market
from plugins.sales.models import MarketNote
from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.loops.service import local_today
from portal.testing import count_statements


def add_note(app: Any, username: str, **values: Any) -> int:
    """A note recorded by ``username`` through the service."""
    values.setdefault("kind", "market")
    values.setdefault("title", "Steel prices up")
    with app.test_request_context(), acting_as("test"):
        user = db.session.scalars(sa.select(User).where(User.username == username)).one()
        values.setdefault("observed_on", local_today())
        note = market.create_note(values, user)
        db.session.commit()
        return note.id


def client_of(app: Any, login: Any, username: str) -> Any:
    client = app.test_client()
    login(client, username)
    return client


def auth(api_token: Any, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(username)}"}


def test_p3_1_1_salesperson_records_a_note_and_finds_it(app: Any, org: Any, login: Any) -> None:
    client = client_of(app, login, "li")
    assert client.get("/sales/market/new").status_code == 200
    response = client.post(
        "/sales/market/new",
        data={
            "kind": "competitor",
            "title": "Huali cuts prices by 8%",
            "industry": "manufacturing",
            "region": "east",
            "competitor": "Huali",
            "observed_on": local_today().isoformat(),
            "body": "Heard from two customers in Suzhou.",
        },
    )
    assert response.status_code == 303
    with app.app_context():
        note = db.session.scalars(sa.select(MarketNote)).one()
        assert (note.owner_id, note.kind, note.competitor) == (org["li"], "competitor", "Huali")
    page = client.get("/sales/market/")
    assert page.status_code == 200
    assert "Huali cuts prices by 8%" in page.text
    assert client.get(response.headers["Location"]).status_code == 200


def test_p3_1_1_future_date_and_missing_title_are_refused_per_field(
    app: Any, org: Any, login: Any
) -> None:
    client = client_of(app, login, "li")
    tomorrow = (local_today() + timedelta(days=1)).isoformat()
    response = client.post(
        "/sales/market/new",
        data={"kind": "market", "title": "", "observed_on": tomorrow},
    )
    assert response.status_code == 422
    assert "Give the note a title." in response.text
    assert "The date cannot be in the future." in response.text
    response = client.post(
        "/sales/market/new",
        data={"kind": "competitor", "title": "Rumour", "observed_on": local_today().isoformat()},
    )
    assert response.status_code == 422
    assert "Name the competitor" in response.text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(MarketNote.id))) == 0


def test_p3_1_1_service_refuses_a_future_date(app: Any, org: Any) -> None:
    from portal.org.services import ValidationFailed

    with app.test_request_context():
        li = db.session.get(User, org["li"])
        with pytest.raises(ValidationFailed) as refused:
            market.create_note(
                {"kind": "price", "title": "x", "observed_on": date.today() + timedelta(days=3)},
                li,
            )
        assert set(refused.value.fields) == {"observed_on"}
        with pytest.raises(ValidationFailed) as refused:
            market.create_note({"kind": "gossip", "title": "", "observed_on": "2020-13-01"}, li)
        assert set(refused.value.fields) == {"kind", "title", "observed_on"}


def test_p3_1_1_api_creates_and_validates(app: Any, org: Any, api_token: Any) -> None:
    client = app.test_client()
    headers = auth(api_token, "li")
    created = client.post(
        "/api/v1/sales/market-notes",
        json={
            "kind": "policy",
            "title": "New subsidy for automation",
            "industry": "manufacturing",
            "region": "east",
            "observed_on": local_today().isoformat(),
        },
        headers=headers,
    )
    assert created.status_code == 201, created.json
    assert created.json["owner_id"] == org["li"]
    missing = client.post(
        "/api/v1/sales/market-notes",
        json={"kind": "market", "observed_on": "2099-01-01"},
        headers=headers,
    )
    assert missing.status_code == 422
    assert set(missing.json["error"]["fields"]) == {"title", "observed_on"}
    wrong_area = client.post(
        "/api/v1/sales/market-notes",
        json={"kind": "market", "title": "x", "observed_on": "2024-01-01", "industry": "mining"},
        headers=headers,
    )
    assert wrong_area.status_code == 422
    assert set(wrong_area.json["error"]["fields"]) == {"industry"}
    bare = client.post(
        "/api/v1/sales/market-notes",
        json={"kind": "market", "title": "Bare", "observed_on": "2024-01-01"},
        headers=headers,
    )
    assert bare.status_code == 201, bare.json
    assert (bare.json["industry"], bare.json["region"]) == ("", "")
    unknown = client.post(
        "/api/v1/sales/market-notes",
        json={"kind": "market", "title": "x", "observed_on": "2024-01-01", "secret": 1},
        headers=headers,
    )
    assert unknown.status_code == 400
    listed = client.get("/api/v1/sales/market-notes", headers=headers)
    assert listed.status_code == 200
    assert [item["title"] for item in listed.json["items"]] == [
        "New subsidy for automation",
        "Bare",
    ]


def test_p3_1_1_scope_li_never_sees_zhaos_note(
    app: Any, org: Any, login: Any, api_token: Any
) -> None:
    mine = add_note(app, "li", title="Li's note", industry="retail", region="east")
    theirs = add_note(
        app, "zhao", title="Zhao's secret", industry="retail", region="south", competitor="Acme"
    )
    client = client_of(app, login, "li")
    page = client.get("/sales/market/")
    assert "Li&#39;s note" in page.text or "Li's note" in page.text
    assert "Zhao" not in page.text
    assert client.get(f"/sales/market/{theirs}").status_code == 404
    assert client.get(f"/sales/market/{theirs}/edit").status_code == 404
    assert client.post(f"/sales/market/{theirs}/delete").status_code == 404
    assert client.get("/sales/market/?competitor=Acme").text.count("data-note-id") == 0
    # The summary is for leaders only.
    assert client.get("/sales/market/summary").status_code == 403
    headers = auth(api_token, "li")
    api = app.test_client()
    listed = api.get("/api/v1/sales/market-notes", headers=headers).json
    assert [item["id"] for item in listed["items"]] == [mine]
    assert api.get(f"/api/v1/sales/market-notes/{theirs}", headers=headers).status_code == 404
    assert api.delete(f"/api/v1/sales/market-notes/{theirs}", headers=headers).status_code == 404
    assert api.get("/api/v1/sales/market-notes/summary", headers=headers).status_code == 403
    # sup_east leads li's team, not zhao's: the summary counts li's note only.
    sup = auth(api_token, "sup_east")
    summary = api.get("/api/v1/sales/market-notes/summary", headers=sup).json
    assert summary["total"] == 1
    assert summary["by_competitor"] == []
    boss = client_of(app, login, "sup_east")
    assert "Acme" not in boss.get("/sales/market/summary").text
    assert boss.get(f"/sales/market/{theirs}").status_code == 404


def test_p3_1_1_summary_counts_the_team_by_industry_region_and_competitor(
    app: Any, org: Any, login: Any
) -> None:
    today = local_today()
    add_note(app, "li", industry="retail", region="east", competitor="Acme", kind="competitor")
    add_note(app, "li", industry="retail", region="east", kind="price")
    add_note(app, "wang", industry="retail", region="north", competitor="Acme", kind="competitor")
    add_note(
        app,
        "wang",
        industry="energy",
        region="east",
        competitor="Brightco",
        kind="competitor",
        title="Brightco opens an office",
    )
    old = add_note(
        app,
        "wang",
        industry="energy",
        region="east",
        competitor="Acme",
        kind="competitor",
        observed_on=today - timedelta(days=120),
    )
    add_note(app, "zhao", industry="retail", region="east", competitor="Acme", kind="competitor")

    with app.test_request_context():
        sup = db.session.get(User, org["sup_east"])
        result = market.summary(sup, 90, today=today)
        assert result.total == 4
        assert result.by_kind == {"competitor": 3, "price": 1}
        assert result.cell("retail", "east") == 2
        assert result.cell("retail", "north") == 1
        assert result.cell("energy", "east") == 1
        assert result.industry_totals == {"retail": 3, "energy": 1}
        assert [(row["competitor"], row["count"]) for row in result.competitors] == [
            ("Acme", 2),
            ("Brightco", 1),
        ]
        assert [n.title for n in result.latest["Brightco"]] == ["Brightco opens an office"]
        assert old not in [n.id for n in result.latest["Acme"]]
        longer = market.summary(sup, 180, today=today)
        assert longer.total == 5
        assert dict((r["competitor"], r["count"]) for r in longer.competitors)["Acme"] == 3
        manager = db.session.get(User, org["manager"])
        assert market.summary(manager, 90, today=today).total == 5
        assert market.summary(db.session.get(User, org["sup_south"]), 90, today=today).total == 1

    client = client_of(app, login, "sup_east")
    page = client.get("/sales/market/summary")
    assert page.status_code == 200
    assert 'data-testid="summary-total">4<' in page.text
    assert client.get("/sales/market/summary?days=180").text.count('data-competitor="Acme"') == 1
    assert 'data-testid="summary-total">5<' in client.get("/sales/market/summary?days=180").text
    # A period that is not offered falls back to the default, never a 500.
    assert client.get("/sales/market/summary?days=abc").status_code == 200


def test_p3_1_1_filters_narrow_the_list(app: Any, org: Any, login: Any) -> None:
    add_note(app, "li", title="Alpha", kind="price", industry="retail", region="east")
    add_note(app, "li", title="Beta", kind="policy", industry="energy", region="east")
    add_note(app, "li", title="Gamma 100%", kind="competitor", competitor="Acme")
    client = client_of(app, login, "li")

    def titles(query: str) -> list[str]:
        text = client.get(f"/sales/market/?{query}").text
        return [t for t in ("Alpha", "Beta", "Gamma") if f">{t}" in text]

    assert titles("") == ["Alpha", "Beta", "Gamma"]
    assert titles("kind=price") == ["Alpha"]
    assert titles("industry=energy") == ["Beta"]
    assert titles("competitor=ACME") == ["Gamma"]
    assert titles("q=100%25") == ["Gamma"]
    assert titles("q=nothing") == []
    assert titles("since=not-a-date&kind=bogus") == ["Alpha", "Beta", "Gamma"]


def test_p3_1_1_owner_edits_and_deletes_a_note(app: Any, org: Any, login: Any) -> None:
    note_id = add_note(app, "li", title="Draft title")
    other = client_of(app, login, "wang")
    assert other.get(f"/sales/market/{note_id}/edit").status_code == 404
    client = client_of(app, login, "li")
    assert client.get(f"/sales/market/{note_id}/edit").status_code == 200
    response = client.post(
        f"/sales/market/{note_id}/edit",
        data={"kind": "market", "title": "Better title", "observed_on": "2024-05-01"},
    )
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(MarketNote, note_id).title == "Better title"
    assert client.post(f"/sales/market/{note_id}/delete").status_code == 303
    with app.app_context():
        assert db.session.get(MarketNote, note_id) is None


def test_p3_1_1_a_note_keeps_an_industry_the_screening_file_no_longer_lists(
    app: Any, org: Any, login: Any
) -> None:
    """An admin took "mining" out of the industries (rules/prospect_screening.yaml):
    the old note still reads and its title can be corrected without refiling it."""
    note_id = add_note(app, "li", title="Old titel", industry="machinery")
    with app.app_context(), acting_as("test"):
        db.session.get(MarketNote, note_id).industry = "mining"  # as filed back then
        db.session.commit()
    client = client_of(app, login, "li")
    form = client.get(f"/sales/market/{note_id}/edit").text
    assert '<option selected value="mining">' in form
    data = {"kind": "market", "title": "Old title", "industry": "mining"}
    response = client.post(
        f"/sales/market/{note_id}/edit", data={**data, "observed_on": "2024-05-01"}
    )
    assert response.status_code == 303, response.text
    with app.app_context():
        note = db.session.get(MarketNote, note_id)
        assert (note.title, note.industry) == ("Old title", "mining")
    # A new note still takes only the industries in force.
    refused = client.post(
        "/sales/market/new", data={**data, "observed_on": local_today().isoformat()}
    )
    assert refused.status_code == 422


def test_p3_1_1_auditor_reads_but_cannot_record(app: Any, org: Any, login: Any) -> None:
    add_note(app, "li", title="Visible to the auditor")
    client = client_of(app, login, "auditor")
    assert "Visible to the auditor" in client.get("/sales/market/").text
    assert client.get("/sales/market/new").status_code == 403


def test_p3_1_1_list_and_summary_have_no_n_plus_one(app: Any, org: Any, login: Any) -> None:
    for number in range(2):
        add_note(
            app, "li", title=f"n{number}", competitor=f"C{number}", industry="retail", region="east"
        )
    client = client_of(app, login, "sup_east")
    client.get("/sales/market/")  # the first request loads the rule files
    app.config["RULES_REFRESH_SECONDS"] = 3600  # no periodic re-check between the counts
    few_list = count_statements(app, client, "/sales/market/")
    few_summary = count_statements(app, client, "/sales/market/summary")
    for number in range(2, 14):
        owner = "li" if number % 2 else "wang"
        add_note(
            app,
            owner,
            title=f"n{number}",
            competitor=f"C{number}",
            industry=("food", "energy", "finance")[number % 3],
        )
    assert count_statements(app, client, "/sales/market/") == few_list
    assert count_statements(app, client, "/sales/market/summary") == few_summary
