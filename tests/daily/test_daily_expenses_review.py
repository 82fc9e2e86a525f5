"""P6.4 expenses and their analysis: regressions found in review (scope of linked
customers' names, input that gave a 500 or was silently changed, wrong JSON types).

Organisation (``org``): manager > sup_east (East) > Shanghai: li, wang;
sup_south (South) > Guangzhou: zhao; plus a finance officer "fin".
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from plugins.daily.models import ExpenseBudget, ExpenseClaim
from portal.audit.recorder import acting_as
from portal.extensions import db
from portal.loops import approvals
from tests.daily.test_daily_expenses import (
    JPEG,
    client_of,
    line,
    load,
    make_claim,
    person,
    staff,
    submit,
    today,
)

__all__ = ["staff"]  # the fixture, used by name

BUDGETS = "/daily/expenses/analysis/budgets/"
API_BUDGETS = "/api/v1/daily/expense-budgets"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _count(app: Any, model: Any) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(model)))


def test_p6_4_a_record_choice_that_is_not_an_id_is_refused_never_a_500(
    app: Any, staff: dict[str, int], login: Any
) -> None:
    # "²" is a digit to str.isdigit() but not to int(): the line form crashed on it.
    claim_id = make_claim(app, "li")
    client = client_of(app, login, "li")
    for link_id in ("²", "9" * 30, "-3"):
        response = client.post(
            f"/daily/expenses/{claim_id}/lines",
            data=line(link_kind="sales.customer", link_id=link_id),
        )
        assert response.status_code == 422, link_id
        assert "Choose a record from the search" in response.get_data(as_text=True)
    assert load(app, claim_id).lines == []


def test_p6_4_a_linked_customer_is_named_only_to_readers_who_may_see_it(
    app: Any, staff: dict[str, int], login: Any, api_token: Any
) -> None:
    from plugins.sales.models import Customer

    # sup_south approves for sup_east (delegation) but may not read li's customers.
    with app.test_request_context(), acting_as("test"):
        customer = Customer(owner_id=staff["li"], name="Donghai Machinery", name_key="donghai")
        db.session.add(customer)
        approvals.set_delegation(person("sup_east"), person("sup_south"), today(), today())
        db.session.commit()
        customer_id = customer.id
    claim_id = make_claim(app, "li", line(link_kind="sales.customer", link_id=str(customer_id)))
    submit(app, claim_id, "li")
    page = client_of(app, login, "sup_south").get(f"/daily/expenses/{claim_id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Donghai" not in text and 'data-testid="line-link-hidden"' in text
    api = app.test_client().get(
        f"/api/v1/daily/expense-claims/{claim_id}", headers=_auth(api_token("sup_south"))
    )
    assert api.status_code == 200 and api.get_json()["lines"][0]["link_label"] == ""
    # The claimant and a leader who may read the customer still see its name.
    assert "Donghai Machinery" in client_of(app, login, "li").get(
        f"/daily/expenses/{claim_id}"
    ).get_data(as_text=True)
    mine = app.test_client().get(
        f"/api/v1/daily/expense-claims/{claim_id}", headers=_auth(api_token("li"))
    )
    assert mine.get_json()["lines"][0]["link_label"] == "Donghai Machinery"


def test_p6_4_api_wrong_json_types_are_refused_per_field_nothing_written(
    app: Any, staff: dict[str, int], api_token: Any
) -> None:
    client = app.test_client()
    li = _auth(api_token("li"))
    url = "/api/v1/daily/expense-claims"
    title = client.post(url, json={"title": {"a": 1}, "lines": [line()]}, headers=li)
    assert title.status_code == 422 and "title" in title.get_json()["error"]["fields"]
    amount = client.post(url, json={"title": "Trip", "lines": [line(amount=[38])]}, headers=li)
    assert amount.status_code == 422
    assert "lines-0-amount" in amount.get_json()["error"]["fields"]
    flag = client.post(url, json={"title": "Trip", "lines": [line(vendor=True)]}, headers=li)
    assert flag.status_code == 422 and "lines-0-vendor" in flag.get_json()["error"]["fields"]
    assert _count(app, ExpenseClaim) == 0
    claim_id = make_claim(app, "li", line())
    request = submit(app, claim_id, "li")
    with app.test_request_context(), acting_as("test"):
        from portal.loops.models import ApprovalRequest

        approvals.act(db.session.get(ApprovalRequest, request.id), person("sup_east"), "approve")
        db.session.commit()
    fin = _auth(api_token("fin"))
    pay = client.post(f"{url}/{claim_id}/pay", json={"reference": ["R1"]}, headers=fin)
    assert pay.status_code == 422 and "reference" in pay.get_json()["error"]["fields"]
    assert load(app, claim_id).status == "approved"


def test_p6_4_a_budget_with_more_than_two_decimals_is_refused_not_rounded(
    app: Any, staff: dict[str, int], login: Any, api_token: Any
) -> None:
    body = {"unit": str(staff["east"]), "year": today().year, "month": 5, "amount": "800.005"}
    response = app.test_client().post(API_BUDGETS, json=body, headers=_auth(api_token("manager")))
    assert response.status_code == 422 and "amount" in response.get_json()["error"]["fields"]
    page = client_of(app, login, "manager").post(BUDGETS, data={**body, "category": ""})
    assert page.status_code == 422 and "At most two decimals" in page.get_data(as_text=True)
    assert _count(app, ExpenseBudget) == 0


def test_p6_4_budget_lists_with_an_impossible_year_or_team_are_empty_never_a_500(
    app: Any, staff: dict[str, int], login: Any, api_token: Any
) -> None:
    with app.app_context(), acting_as("test"):
        db.session.add(
            ExpenseBudget(
                unit_id=staff["east"], year=today().year, month=1, category="", amount_cents=100
            )
        )
        db.session.commit()
    huge = "9" * 20
    client = client_of(app, login, "manager")
    manager = _auth(api_token("manager"))
    for query in (f"?year={huge}", f"?unit={huge}", "?year=9999", f"?unit={staff['south']}0"):
        assert client.get(BUDGETS + query).status_code == 200, query
        listed = app.test_client().get(API_BUDGETS + query, headers=manager)
        assert listed.status_code == 200 and listed.get_json()["total"] == 0, query
    listed = app.test_client().get(f"{API_BUDGETS}?unit={staff['east']}", headers=manager)
    assert listed.get_json()["total"] == 1


def test_p6_4_a_removed_receipt_or_line_leaves_no_file_on_disk(
    app: Any, staff: dict[str, int], login: Any
) -> None:
    from plugins.daily import expenses
    from portal.files import upload_folder

    claim_id = make_claim(app, "li", line(), line(amount="12"), receipts={0: JPEG, 1: JPEG})
    claim = load(app, claim_id)
    first, second = (item.receipts[0] for item in claim.lines)
    with app.app_context():
        folder = upload_folder(expenses.RECEIPT_AREA)
    assert (folder / first.stored_name).is_file() and (folder / second.stored_name).is_file()
    client = client_of(app, login, "li")
    removed = client.post(f"/daily/expenses/{claim_id}/receipts/{first.id}/remove")
    assert removed.status_code == 303
    assert not (folder / first.stored_name).exists()
    # A removal that is not committed (a colleague's try, refused) deletes nothing.
    other = client_of(app, login, "wang")
    assert (
        other.post(f"/daily/expenses/{claim_id}/lines/{claim.lines[1].id}/remove").status_code
        == 404
    )
    assert (folder / second.stored_name).is_file()
    with app.test_request_context(), acting_as("test"):
        fresh = db.session.get(ExpenseClaim, claim_id)
        expenses.remove_line(fresh, fresh.lines[-1], person("li"))
        db.session.rollback()
    assert (folder / second.stored_name).is_file()
    assert (
        client.post(f"/daily/expenses/{claim_id}/lines/{claim.lines[1].id}/remove").status_code
        == 303
    )
    assert not (folder / second.stored_name).exists()
    assert [item.id for item in load(app, claim_id).lines] == [claim.lines[0].id]


def test_p6_4_linked_names_of_impossible_ids_are_nothing_never_an_error(
    app: Any, staff: dict[str, int]
) -> None:
    from plugins.sales.models import Customer
    from portal.links import describe_links

    with app.test_request_context(), acting_as("test"):
        customer = Customer(owner_id=staff["li"], name="Donghai Machinery", name_key="donghai")
        db.session.add(customer)
        db.session.commit()
        wanted = [customer.id, 10**30, -4, "²", "x", None]
        found = describe_links("sales.customer", wanted, user=person("li"))
        assert found == {customer.id: "Donghai Machinery"}


def test_p6_4_saving_a_line_over_a_change_made_meanwhile_is_a_conflict(
    app: Any, staff: dict[str, int], login: Any
) -> None:
    import re

    claim_id = make_claim(app, "li", line(amount="38"), line(amount="20"))
    first, second = (item.id for item in load(app, claim_id).lines)
    client = client_of(app, login, "li")
    base = f"/daily/expenses/{claim_id}/lines"
    page = client.get(f"{base}/{first}/edit").get_data(as_text=True)
    seen = re.search(r'name="version" type="hidden" value="(\d+)"', page)
    assert seen is not None
    # Another tab changes the other line, with the same total: still a new version.
    other = client.get(f"{base}/{second}/edit").get_data(as_text=True)
    version = re.search(r'name="version" type="hidden" value="(\d+)"', other).group(1)
    changed = line(amount="20", vendor="Didi", version=version)
    saved = client.post(f"{base}/{second}/edit", data=changed)
    assert saved.status_code == 303
    stale = client.post(f"{base}/{first}/edit", data=line(amount="99", version=seen.group(1)))
    assert stale.status_code == 409
    assert "Someone changed this claim meanwhile" in stale.get_data(as_text=True)
    claim = load(app, claim_id)
    assert [item.amount_cents for item in claim.lines] == [3800, 2000]
    assert claim.lines[1].vendor == "Didi" and claim.total_cents == 5800
