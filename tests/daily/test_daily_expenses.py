"""P6.4 "control sales expenses; reimburse by company standards and procedure; genuine,
lawful receipts; approval before payment": claims and lines checked against
rules/expenses.yaml (limits per category, role, city tier, per day and per trip; a
receipt above an amount), city tiers from rules/expense_city_tiers.yaml, duplicates
flagged, routing by rules/expense_approval.yaml through the core approvals, payment
once, scope of claims and receipts, bad input per field, the API, linked customers.

Organisation (``org``): manager > sup_east (East) > Shanghai: li, wang;
sup_south (South) > Guangzhou: zhao; admin; auditor; plus a finance officer "fin".
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from plugins.daily import expenses
from plugins.daily.models import ExpenseClaim, ExpenseLine, ExpenseReceipt
from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.files import upload_folder
from portal.loops import approvals
from portal.loops.errors import StateConflict
from portal.loops.models import ApprovalRequest, Notification
from portal.org.services import ValidationFailed
from portal.rules.service import rules
from portal.testing import count_statements

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
OTHER_JPEG = JPEG + b"another photo"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64


def person(name: str) -> User:
    return db.session.scalars(sa.select(User).where(User.username == name)).one()


def today() -> Any:
    """The portal's today (Asia/Shanghai) even outside an app context, where
    ``local_today`` answers in UTC: between 16:00 and 24:00 UTC they differ by a day."""
    from zoneinfo import ZoneInfo

    from portal import config

    return datetime.now(ZoneInfo(config.BABEL_DEFAULT_TIMEZONE)).date()


class Upload:
    """What a form upload looks like to portal.files (a name and a stream)."""

    def __init__(self, filename: str, data: bytes) -> None:
        self.filename = filename
        self.stream = io.BytesIO(data)


def line(**values: Any) -> dict[str, Any]:
    base = {"spent_on": today().isoformat(), "category": "taxi", "amount": "38", "city": "上海"}
    return {**base, **values}


def make_claim(
    app: Any, owner: str, *lines: dict[str, Any], receipts: dict[int, bytes] | None = None
) -> int:
    """A draft claim of ``owner`` with lines (``receipts``: line index -> file bytes)."""
    with app.test_request_context(), acting_as("test"):
        user = person(owner)
        claim = expenses.create_claim(user, "Trip")
        for index, values in enumerate(lines):
            data = (receipts or {}).get(index)
            uploads = [Upload("receipt.jpg", data)] if data else None
            expenses.add_line(claim, values, uploads, user)
        db.session.commit()
        return claim.id


def load(app: Any, claim_id: int) -> ExpenseClaim:
    with app.app_context():
        claim = db.session.get(ExpenseClaim, claim_id)
        for item in claim.lines:
            _ = list(item.receipts)
        db.session.expunge_all()
        return claim


def submit(app: Any, claim_id: int, owner: str) -> ApprovalRequest:
    with app.test_request_context(), acting_as("test"):
        claim = db.session.get(ExpenseClaim, claim_id)
        request = expenses.submit_claim(claim, person(owner))
        db.session.commit()
        db.session.refresh(request)
        _ = list(request.steps)
        db.session.expunge_all()
        return request


def act(app: Any, request_id: int, who: str, action: str = "approve", comment: str = "") -> str:
    with app.test_request_context(), acting_as("test"):
        request = db.session.get(ApprovalRequest, request_id)
        approvals.act(request, person(who), action, comment or "ok")
        db.session.commit()
        return request.status


@pytest.fixture
def staff(org: dict[str, int], make_person: Any) -> dict[str, int]:
    ids = dict(org)
    ids["fin"] = make_person("fin", roles=["finance"], unit=org["company"])
    return ids


def client_of(app: Any, login: Any, username: str) -> Any:
    client = app.test_client()
    login(client, username)
    return client


def publish(app: Any, name: str, old: str, new: str) -> None:
    """An admin publishes a changed rule file (no code change)."""
    with app.app_context(), acting_as("test"):
        text = rules().file_text(name)[1]
        assert text.count(old) == 1, old
        text = text.replace(old, new).split("\ntests:")[0] + "\n"
        rules().publish(name, text, "cli", note="changed by a test")


# -- limits from the rule file --------------------------------------------------------------


def test_p6_4_each_line_shows_its_decision_a_meal_over_the_limit_escalates(
    app: Any, staff: dict[str, int]
) -> None:
    claim_id = make_claim(
        app, "li", line(), line(category="meal", amount="200"), receipts={1: JPEG}
    )
    taxi, meal = load(app, claim_id).lines
    assert (taxi.decision, taxi.decision_reason) == ("approve", "")
    assert (meal.decision, meal.decision_reason) == ("escalate", "Meal over the limit")
    assert load(app, claim_id).total_cents == 23800
    # A supervisor's meal limit is higher (the role comes from the person's roles).
    sup_claim = make_claim(
        app, "sup_east", line(category="meal", amount="200"), receipts={0: JPEG + b"s"}
    )
    assert load(app, sup_claim).lines[0].decision == "approve"


def test_p6_4_a_published_meal_limit_changes_behaviour_without_code(
    make_app: Any, staff: dict[str, int], tmp_path: Any
) -> None:
    app = make_app(RULES_INSTANCE_DIR=str(tmp_path / "rules"), RULES_REFRESH_SECONDS=0)
    before = make_claim(
        app, "li", line(category="meal", amount="200", vendor="A"), receipts={0: JPEG}
    )
    assert load(app, before).lines[0].decision == "escalate"
    publish(
        app,
        "expenses",
        "rows: [[salesperson, 150], [supervisor, 250], [manager, 400]]",
        "rows: [[salesperson, 250], [supervisor, 250], [manager, 400]]",
    )
    yesterday = (today() - timedelta(days=1)).isoformat()
    after = make_claim(
        app,
        "li",
        line(category="meal", amount="200", vendor="B", spent_on=yesterday),
        receipts={0: OTHER_JPEG},
    )
    assert load(app, after).lines[0].decision == "approve"


def test_p6_4_a_receipt_is_required_above_the_threshold_and_blocks_submission(
    app: Any, staff: dict[str, int]
) -> None:
    claim_id = make_claim(app, "li", line(amount="150"))
    (item,) = load(app, claim_id).lines
    assert (item.decision, item.decision_reason) == (
        "reject",
        "A receipt is required above the threshold",
    )
    with pytest.raises(ValidationFailed) as refused:
        submit(app, claim_id, "li")
    assert refused.value.fields["lines"] == ["Line 1: A receipt is required above the threshold"]
    assert load(app, claim_id).status == "draft"
    with app.test_request_context(), acting_as("test"):
        claim = db.session.get(ExpenseClaim, claim_id)
        expenses.update_line(
            claim, claim.lines[0], line(amount="150"), [Upload("r.jpg", JPEG)], person("li")
        )
        db.session.commit()
    assert load(app, claim_id).lines[0].decision == "approve"
    assert submit(app, claim_id, "li").status == "pending"


def test_p6_4_meals_are_limited_per_day_across_claims_cancelled_ones_left_out(
    app: Any, staff: dict[str, int]
) -> None:
    first = make_claim(
        app, "li", line(category="meal", amount="140", vendor="Noodles"), receipts={0: JPEG}
    )
    second = make_claim(
        app,
        "li",
        line(category="meal", amount="140", vendor="Dumplings"),
        line(category="meal", amount="40", vendor="Tea"),
        receipts={0: OTHER_JPEG},
    )
    # 140 + 140 + 40 = 320 on one day: above the salesperson's 300 a day.
    assert [item.decision for item in load(app, second).lines] == ["escalate", "escalate"]
    assert load(app, second).lines[1].decision_reason == "Meals of the day over the daily limit"
    # Another day, or another person, does not count.
    yesterday = (today() - timedelta(days=1)).isoformat()
    other = make_claim(app, "wang", line(category="meal", amount="99", vendor="X"))
    assert load(app, other).lines[0].decision == "approve"
    with app.test_request_context(), acting_as("test"):
        expenses.cancel_claim(db.session.get(ExpenseClaim, first), person("li"))
        claim = db.session.get(ExpenseClaim, second)
        expenses.add_line(
            claim, line(category="meal", amount="10", spent_on=yesterday), None, person("li")
        )
        db.session.commit()
    # Submitting checks every line again: the cancelled claim no longer counts.
    request = submit(app, second, "li")
    assert [item.decision for item in load(app, second).lines] == ["approve"] * 3
    assert request.routes == ["supervisor"]


def test_p6_4_hotel_limits_follow_the_city_tier_file(app: Any, staff: dict[str, int]) -> None:
    assert (
        expenses.city_key(" 上海市 ") == "上海" and expenses.city_key("Shanghai City") == "shanghai"
    )
    claim_id = make_claim(
        app,
        "li",
        line(category="hotel", amount="450", city="上海市", vendor="H1"),
        line(
            category="hotel",
            amount="450",
            city="Shaoxing",
            vendor="H2",
            spent_on=(today() - timedelta(days=1)).isoformat(),
        ),
        receipts={0: JPEG, 1: OTHER_JPEG},
    )
    shanghai, shaoxing = load(app, claim_id).lines
    assert (shanghai.city_tier, shanghai.decision) == (1, "approve")
    assert (shaoxing.city_tier, shaoxing.decision) == (3, "escalate")


def test_p6_4_travel_is_limited_per_trip(app: Any, staff: dict[str, int]) -> None:
    claim_id = make_claim(
        app,
        "li",
        line(category="travel", amount="1600", vendor="Rail"),
        line(category="travel", amount="1600", vendor="Air"),
        receipts={0: JPEG, 1: OTHER_JPEG},
    )
    assert {item.decision_reason for item in load(app, claim_id).lines} == {
        "Travel of the trip over the limit"
    }


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", "-5", "more than zero"),
        ("amount", "0", "more than zero"),
        ("amount", "1" + "0" * 15, "too large"),
        ("amount", "12.345", "two decimals"),
        ("amount", "abc", "Write an amount"),
        ("spent_on", "future", "future"),
        ("spent_on", "old", "no longer be reimbursed"),
        ("category", "yacht", "Unknown category"),
    ],
)
def test_p6_4_bad_input_is_refused_per_field_and_nothing_is_saved(
    app: Any, staff: dict[str, int], login: Any, field: str, value: str, message: str
) -> None:
    claim_id = make_claim(app, "li")
    client = client_of(app, login, "li")
    if value == "future":
        value = (today() + timedelta(days=1)).isoformat()
    elif value == "old":
        value = (today() - timedelta(days=91)).isoformat()
    response = client.post(f"/daily/expenses/{claim_id}/lines", data=line(**{field: value}))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'data-testid="error-{field}"' in page and message in page
    assert load(app, claim_id).lines == []


def test_p6_4_an_executable_renamed_to_jpg_is_refused_and_no_file_is_kept(
    app: Any, staff: dict[str, int], login: Any
) -> None:
    claim_id = make_claim(app, "li")
    client = client_of(app, login, "li")
    response = client.post(
        f"/daily/expenses/{claim_id}/lines",
        data={**line(), "receipts": (io.BytesIO(EXE), "taxi.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "does not contain what its name says" in response.get_data(as_text=True)
    assert load(app, claim_id).lines == []
    with app.app_context():
        folder = upload_folder(expenses.RECEIPT_AREA)
        assert not folder.exists() or list(folder.iterdir()) == []


def test_p6_4_uploads_over_the_caps_get_a_clear_message_never_a_500(
    make_app: Any, staff: dict[str, int], login: Any
) -> None:
    app = make_app(DAILY_UPLOAD_MAX_BYTES=1024)
    client = client_of(app, login, "li")
    # Over the receipt cap but under the request cap: the field says so (422).
    response = client.post(
        "/daily/expenses/quick",
        data={**line(), "receipts": (io.BytesIO(JPEG + b"\x00" * 2048), "taxi.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "larger than 1 MB" in response.get_data(as_text=True)
    # 50 MB is over MAX_CONTENT_LENGTH: a 413 page that says what to do.
    response = client.post(
        "/daily/expenses/quick",
        data={**line(), "receipts": (io.BytesIO(JPEG + b"\x00" * (50 * 1048576)), "big.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert "The upload is too large" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ExpenseClaim)) == 0


# -- duplicates ----------------------------------------------------------------------------------


def test_p6_4_duplicate_receipts_are_flagged_and_sent_to_finance(
    app: Any, staff: dict[str, int], login: Any
) -> None:
    first = make_claim(app, "li", line(vendor="Didi"), receipts={0: JPEG})
    # The same photo in a colleague's claim, and the same fare, day and vendor again.
    same_file = make_claim(app, "wang", line(amount="21", vendor="Other"), receipts={0: JPEG})
    same_fare = make_claim(app, "li", line(vendor="Didi"))
    original = load(app, first).lines[0]
    assert load(app, same_file).lines[0].duplicate_of_id == original.id
    assert load(app, same_fare).lines[0].duplicate_of_id == original.id
    assert original.duplicate_of_id is None
    page = client_of(app, login, "wang").get(f"/daily/expenses/{same_file}")
    assert 'data-testid="line-duplicate"' in page.get_data(as_text=True)
    request = submit(app, same_file, "wang")
    assert request.facts["has_duplicates"] is True
    assert request.routes == ["supervisor", "manager", "finance"]
    # A cancelled claim's receipt is no longer a duplicate.
    with app.test_request_context(), acting_as("test"):
        expenses.cancel_claim(db.session.get(ExpenseClaim, first), person("li"))
        db.session.commit()
        claim = db.session.get(ExpenseClaim, same_fare)
        expenses.update_line(claim, claim.lines[0], line(vendor="Didi"), None, person("li"))
        db.session.commit()
    assert load(app, same_fare).lines[0].duplicate_of_id is None


# -- approval and payment ----------------------------------------------------------------------


def test_p6_4_a_small_claim_goes_to_the_supervisor_then_finance_pays_once(
    app: Any, staff: dict[str, int], login: Any
) -> None:
    claim_id = make_claim(app, "li", line())
    request = submit(app, claim_id, "li")
    claim = load(app, claim_id)
    assert claim.status == "pending" and request.status == "pending"
    assert claim.number == f"BX{today().year}{claim_id:06d}"
    assert request.routes == ["supervisor"] and request.steps[0].approver_id == staff["sup_east"]
    page = client_of(app, login, "li").get(f"/daily/expenses/{claim_id}")
    assert f"/approvals/{request.id}" in page.get_data(as_text=True)
    assert act(app, request.id, "sup_east") == "approved"
    assert load(app, claim_id).status == "approved"
    fin = client_of(app, login, "fin")
    assert claim.number in fin.get("/daily/expenses/").get_data(as_text=True)
    empty = fin.post(f"/daily/expenses/{claim_id}/pay", data={"reference": ""})
    assert empty.status_code == 422
    paid = fin.post(f"/daily/expenses/{claim_id}/pay", data={"reference": "TX-881"})
    assert paid.status_code == 303
    assert (
        fin.post(f"/daily/expenses/{claim_id}/pay", data={"reference": "TX-882"}).status_code == 409
    )
    claim = load(app, claim_id)
    assert (claim.status, claim.payment_reference) == ("paid", "TX-881")
    with app.app_context():
        kinds = set(
            db.session.scalars(
                sa.select(Notification.kind).where(Notification.user_id == staff["li"])
            )
        )
    assert {"daily.claim_decided", "daily.claim_paid"} <= kinds


def test_p6_4_over_a_limit_or_large_claims_route_higher(app: Any, staff: dict[str, int]) -> None:
    meal = make_claim(app, "li", line(category="meal", amount="200"), receipts={0: JPEG})
    request = submit(app, meal, "li")
    assert request.routes == ["supervisor", "manager"]
    assert request.facts["any_escalated"] is True and request.facts["needs_manager"] is True
    assert act(app, request.id, "sup_east") == "pending"
    assert act(app, request.id, "manager") == "approved"
    big = make_claim(
        app,
        "li",
        line(
            category="travel",
            amount="2500",
            vendor="A",
            spent_on=(today() - timedelta(days=2)).isoformat(),
        ),
        line(category="office", amount="2600", vendor="B"),
        receipts={0: OTHER_JPEG, 1: JPEG + b"2"},
    )
    assert submit(app, big, "li").routes == ["supervisor", "manager", "finance"]


def test_p6_4_a_rejected_claim_is_changed_and_sent_again_returned_goes_back_to_draft(
    app: Any, staff: dict[str, int]
) -> None:
    claim_id = make_claim(app, "li", line())
    first = submit(app, claim_id, "li")
    assert act(app, first.id, "sup_east", "reject", "No customer named") == "rejected"
    assert load(app, claim_id).status == "rejected"
    with app.test_request_context(), acting_as("test"):
        claim = db.session.get(ExpenseClaim, claim_id)
        expenses.update_line(
            claim, claim.lines[0], line(purpose="Visit Donghai"), None, person("li")
        )
        db.session.commit()
    second = submit(app, claim_id, "li")
    assert second.id != first.id and load(app, claim_id).status == "pending"
    assert act(app, second.id, "sup_east", "return", "Add the city") == "returned"
    assert load(app, claim_id).status == "draft"
    third = submit(app, claim_id, "li")
    assert third.id == second.id and third.round == 2  # the same request, sent again


def test_p6_4_cancel_a_pending_claim_and_its_approval(app: Any, staff: dict[str, int]) -> None:
    claim_id = make_claim(app, "li", line())
    request = submit(app, claim_id, "li")
    with app.test_request_context(), acting_as("test"):
        claim = db.session.get(ExpenseClaim, claim_id)
        expenses.cancel_claim(claim, person("li"))
        db.session.commit()
        assert db.session.get(ApprovalRequest, request.id).status == "cancelled"
        assert claim.status == "cancelled"
        with pytest.raises(StateConflict):
            expenses.cancel_claim(claim, person("li"))


# -- scope ---------------------------------------------------------------------------------


def test_p6_4_claims_and_receipts_only_in_scope(
    app: Any, staff: dict[str, int], login: Any
) -> None:
    claim_id = make_claim(app, "li", line(), receipts={0: JPEG})
    receipt_id = load(app, claim_id).lines[0].receipts[0].id
    detail = f"/daily/expenses/{claim_id}"
    file_url = f"/daily/expenses/receipts/{receipt_id}"
    li = client_of(app, login, "li")
    assert li.get(file_url).data == JPEG
    for outsider in ("wang", "zhao", "sup_south"):
        client = client_of(app, login, outsider)
        assert client.get(detail).status_code == 404
        assert client.get(file_url).status_code == 404
    assert client_of(app, login, "sup_east").get(file_url).status_code == 200  # the leader
    # Finance may read claims to pay; a colleague may not change li's draft.
    wang = client_of(app, login, "wang")
    assert wang.post(f"{detail}/lines", data=line()).status_code == 404
    sup = client_of(app, login, "sup_east")
    assert sup.post(f"{detail}/lines", data=line()).status_code == 403
    request = submit(app, claim_id, "li")
    act(app, request.id, "sup_east")
    assert client_of(app, login, "fin").get(file_url).status_code == 200
    assert client_of(app, login, "wang").get("/daily/expenses/999999").status_code == 404


def test_p6_4_an_approver_outside_the_scope_reads_the_claim_and_its_receipt(
    app: Any, staff: dict[str, int], login: Any
) -> None:
    # sup_east is away: sup_south (another region, no read scope over li) approves for them.
    with app.test_request_context(), acting_as("test"):
        approvals.set_delegation(person("sup_east"), person("sup_south"), today(), today())
        db.session.commit()
    claim_id = make_claim(app, "li", line(), receipts={0: JPEG})
    receipt_id = load(app, claim_id).lines[0].receipts[0].id
    south = client_of(app, login, "sup_south")
    assert south.get(f"/daily/expenses/{claim_id}").status_code == 404  # not yet theirs
    submit(app, claim_id, "li")
    assert south.get(f"/daily/expenses/{claim_id}").status_code == 200
    assert south.get(f"/daily/expenses/receipts/{receipt_id}").data == JPEG
    # Still not theirs to change.
    assert south.post(f"/daily/expenses/{claim_id}/cancel").status_code == 403


# -- pages -----------------------------------------------------------------------------------


def test_p6_4_quick_claim_from_the_phone_in_one_post(
    app: Any, staff: dict[str, int], login: Any
) -> None:
    client = client_of(app, login, "li")
    page = client.get("/daily/expenses/")
    assert page.status_code == 200 and 'capture="environment"' in page.get_data(as_text=True)
    response = client.post(
        "/daily/expenses/quick",
        data={**line(), "submit_now": "y", "receipts": (io.BytesIO(JPEG), "taxi.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    with app.app_context():
        claim = db.session.scalars(sa.select(ExpenseClaim)).one()
        assert claim.status == "pending" and claim.lines[0].receipts[0].filename == "taxi.jpg"


def test_p6_4_lines_are_added_and_removed_with_htmx(
    app: Any, staff: dict[str, int], login: Any
) -> None:
    claim_id = make_claim(app, "li")
    client = client_of(app, login, "li")
    hx = {"HX-Request": "true"}
    added = client.post(
        f"/daily/expenses/{claim_id}/lines",
        data={**line(category="meal", amount="200"), "receipts": (io.BytesIO(JPEG), "m.jpg")},
        content_type="multipart/form-data",
        headers=hx,
    )
    assert added.status_code == 200
    body = added.get_data(as_text=True)
    assert body.lstrip().startswith("<section") and 'data-decision="escalate"' in body
    assert "Meal over the limit" in body
    bad = client.post(f"/daily/expenses/{claim_id}/lines", data=line(amount="-1"), headers=hx)
    assert bad.status_code == 422 and 'data-testid="error-amount"' in bad.get_data(as_text=True)
    line_id = load(app, claim_id).lines[0].id
    removed = client.post(f"/daily/expenses/{claim_id}/lines/{line_id}/remove", headers=hx)
    assert removed.status_code == 200 and load(app, claim_id).lines == []


def test_p6_4_the_claim_page_has_no_n_plus_1(app: Any, staff: dict[str, int], login: Any) -> None:
    few = make_claim(app, "li", line(vendor="a"), receipts={0: JPEG})
    many = make_claim(
        app,
        "li",
        *[line(vendor=f"v{n}", amount=str(10 + n)) for n in range(8)],
        receipts={n: JPEG + bytes([n]) for n in range(8)},
    )
    client = client_of(app, login, "li")
    small = count_statements(app, client, f"/daily/expenses/{few}")
    large = count_statements(app, client, f"/daily/expenses/{many}")
    assert large <= small + 2
    assert count_statements(app, client, "/daily/expenses/") < 30


# -- linked customers (the core's link targets, the sales plugin's scope) ------------------------


def test_p6_4_a_line_links_a_customer_the_claimant_may_read(
    app: Any, staff: dict[str, int], login: Any
) -> None:
    from plugins.sales.models import Customer

    with app.app_context(), acting_as("test"):
        mine = Customer(owner_id=staff["li"], name="Donghai Machinery", name_key="donghaimachinery")
        theirs = Customer(owner_id=staff["zhao"], name="Donghua Steel", name_key="donghuasteel")
        db.session.add_all([mine, theirs])
        db.session.commit()
        mine_id, theirs_id = mine.id, theirs.id
    claim_id = make_claim(app, "li")
    client = client_of(app, login, "li")
    found = client.get(
        "/daily/expenses/links?link_kind=sales.customer&link_q=dong",
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    assert "Donghai Machinery" in found and "Donghua Steel" not in found
    url = f"/daily/expenses/{claim_id}/lines"
    refused = client.post(url, data=line(link_kind="sales.customer", link_id=str(theirs_id)))
    assert refused.status_code == 422 and "Choose a record you may see" in refused.get_data(
        as_text=True
    )
    assert (
        client.post(url, data=line(link_kind="sales.customer", link_id=str(mine_id))).status_code
        == 303
    )
    saved = load(app, claim_id).lines[0]
    assert (saved.link_kind, saved.link_id, saved.link_label) == (
        "sales.customer",
        mine_id,
        "Donghai Machinery",
    )
    page = client.get(f"/daily/expenses/{claim_id}").get_data(as_text=True)
    assert f'href="/sales/customers/{mine_id}"' in page
    # Without JavaScript, "Find" fills the record list and saves nothing.
    found = client.post(
        "/daily/expenses/quick",
        data=line(link_kind="sales.customer", link_q="donghai", action="find"),
    )
    assert found.status_code == 200
    assert f'<option value="{mine_id}">Donghai Machinery</option>' in found.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ExpenseClaim)) == 1


# -- the API ---------------------------------------------------------------------------------


def test_p6_4_api_claims_lines_receipts_submit_and_pay(
    app: Any, staff: dict[str, int], api_token: Any
) -> None:
    client = app.test_client()
    li = {"Authorization": f"Bearer {api_token('li')}"}
    fin = {"Authorization": f"Bearer {api_token('fin')}"}
    bad = client.post(
        "/api/v1/daily/expense-claims",
        json={"title": "Trip", "lines": [line(), line(amount="-3")]},
        headers=li,
    )
    assert bad.status_code == 422 and "lines-1-amount" in bad.get_json()["error"]["fields"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ExpenseClaim)) == 0
    created = client.post(
        "/api/v1/daily/expense-claims", json={"title": "Trip", "lines": [line()]}, headers=li
    )
    assert created.status_code == 201
    claim = created.get_json()
    assert claim["lines"][0]["decision"] == "approve" and claim["total"] == "38.00"
    upload = client.post(
        f"/api/v1/daily/expense-claims/{claim['id']}/lines",
        data={**line(category="meal", amount="120"), "receipts": (io.BytesIO(JPEG), "m.jpg")},
        content_type="multipart/form-data",
        headers=li,
    )
    assert upload.status_code == 201 and upload.get_json()["receipts"][0]["filename"] == "m.jpg"
    other = {"Authorization": f"Bearer {api_token('wang')}"}
    assert (
        client.get(f"/api/v1/daily/expense-claims/{claim['id']}", headers=other).status_code == 404
    )
    submitted = client.post(f"/api/v1/daily/expense-claims/{claim['id']}/submit", headers=li)
    assert submitted.status_code == 200 and submitted.get_json()["status"] == "pending"
    act(app, submitted.get_json()["approval_request_id"], "sup_east")
    pay = f"/api/v1/daily/expense-claims/{claim['id']}/pay"
    assert client.post(pay, json={"reference": "R1"}, headers=li).status_code == 403
    assert client.post(pay, json={"reference": "R1"}, headers=fin).get_json()["status"] == "paid"
    assert client.post(pay, json={"reference": "R2"}, headers=fin).status_code == 409
    listed = client.get("/api/v1/daily/expense-claims?mine=1", headers=li).get_json()
    assert [item["id"] for item in listed["items"]] == [claim["id"]]


def test_p6_4_line_facts_pass_the_day_and_trip_totals(app: Any, staff: dict[str, int]) -> None:
    claim_id = make_claim(app, "li", line(category="meal", amount="100", vendor="a"))
    with app.test_request_context():
        claim = db.session.get(ExpenseClaim, claim_id)
        facts = expenses.line_facts(claim.lines[0], "salesperson", {}, 0, today())
        assert facts["day_total"] == Decimal("100.00") and facts["days_old"] == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ExpenseReceipt)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ExpenseLine)) == 1
