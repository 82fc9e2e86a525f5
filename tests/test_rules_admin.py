"""The rule files in the browser (P1.3.4 continuous improvement: the rules themselves are
revised): list, read, edit with located errors, drafts, simulation on stored decisions,
publishing with tests as the gate, history with diffs and rollback, and "why?" pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.rules.models import RuleDecision, RuleVersion
from portal.rules.service import rules

DEFAULT = (Path(__file__).resolve().parent.parent / "rules" / "expenses.yaml").read_text(
    encoding="utf-8"
)
MEAL_ROWS = "rows: [[salesperson, 150], [supervisor, 250], [manager, 400]]"
RAISED = DEFAULT.replace(MEAL_ROWS, "rows: [[salesperson, 300], [supervisor, 250], [manager, 400]]")
# The first-tier hotel limit raised: the file's own test "over the first-tier limit" fails.
FAILING = DEFAULT.replace("- [salesperson, 1, 500]", "- [salesperson, 1, 600]")
TESTS = DEFAULT.count("\n  - name: ")
MEAL_LINE = DEFAULT.splitlines().index(f"      {MEAL_ROWS}") + 1
MEAL = {"category": "meal", "role": "salesperson", "city_tier": 1, "has_receipt": True}


@pytest.fixture
def instance_rules(tmp_path: Path) -> Path:
    return tmp_path / "instance-rules"


@pytest.fixture
def app(make_app: Any, instance_rules: Path) -> Any:
    """The portal with its company rule files in a throwaway folder, refreshing at once."""
    return make_app(RULES_INSTANCE_DIR=str(instance_rules), RULES_REFRESH_SECONDS=0)


def _published(app: Any, name: str = "expenses") -> list[RuleVersion]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(RuleVersion)
            .where(RuleVersion.ruleset == name, RuleVersion.status == "published")
            .order_by(RuleVersion.version)
        ).all()
        db.session.expunge_all()
        return list(rows)


def _decision(app: Any, amount: Any, role: str = "salesperson") -> str:
    with app.app_context():
        evaluation = rules().evaluate("expenses", {**MEAL, "role": role, "amount": amount})
        return evaluation.outputs["decision"]


def _edit(client: Any, action: str, source: str, **fields: Any) -> Any:
    return client.post(
        "/admin/rules/expenses/edit", data={"action": action, "source": source, **fields}
    )


def _base(app: Any) -> str:
    with app.app_context():
        return str(rules().active("expenses").version)


# -- reading -------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["admin", "auditor"])
def test_p1_3_4_list_and_detail_render_for_admin_and_auditor(
    client: Any, login: Any, org: dict[str, int], who: str
) -> None:
    login(client, who)
    listing = client.get("/admin/rules/")
    assert listing.status_code == 200
    page = listing.get_data(as_text=True)
    assert 'data-testid="ruleset-expenses"' in page
    assert "Expense limits and routing" in page and "P6.4" in page
    assert "v1" in page and "Default" in page
    assert "Rule files" in page  # the admin menu's entry

    detail = client.get("/admin/rules/expenses")
    assert detail.status_code == 200
    page = detail.get_data(as_text=True)
    line = DEFAULT.splitlines().index("    when: {category: meal}") + 1
    assert f'<li id="L{line}">    when: {{category: meal}}</li>' in page  # numbered lines
    assert "receipt_required_above" in page and "100.00" in page  # parameters, as money
    assert f"all {TESTS} pass" in page  # the file's test cases, run live
    assert "no receipt above the threshold is rejected" in page
    assert "/admin/rules/expenses/history" in page
    assert ("/admin/rules/expenses/edit" in page) is (who == "admin")
    assert client.get("/admin/rules/expenses/history").status_code == 200
    diff = client.get("/admin/rules/expenses/diff")
    assert diff.status_code == 200
    assert "uses the default file unchanged" in diff.get_data(as_text=True)


def test_p1_3_4_title_follows_the_readers_language(
    client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    client.post("/account/language", data={"locale": "zh_CN", "next": "/admin/rules/"})
    page = client.get("/admin/rules/").get_data(as_text=True)
    assert "费用报销标准与审批路线" in page
    for url in ("expenses", "expenses/edit", "expenses/history", "expenses/diff"):
        response = client.get(f"/admin/rules/{url}")
        assert response.status_code == 200, url
        assert '<html lang="zh-CN">' in response.get_data(as_text=True)
    assert "费用报销标准与审批路线" in client.get("/admin/rules/expenses").get_data(as_text=True)


def test_p1_3_4_people_without_the_permission_get_403(
    client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "li")
    for url in (
        "/admin/rules/",
        "/admin/rules/expenses",
        "/admin/rules/expenses/edit",
        "/admin/rules/expenses/history",
        "/admin/rules/expenses/diff",
        "/admin/rules/decisions/expense_claim/1",
    ):
        assert client.get(url).status_code == 403, url
    assert _edit(client, "publish", RAISED).status_code == 403
    assert client.post("/admin/rules/expenses/rollback/1").status_code == 403


def test_p1_3_4_the_auditor_reads_but_does_not_edit(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "auditor")
    assert client.get("/admin/rules/expenses").status_code == 200
    assert client.get("/admin/rules/expenses/edit").status_code == 403
    assert _edit(client, "publish", RAISED).status_code == 403
    assert (
        client.post("/admin/rules/expenses/rollback/1", data={"confirmed": "yes"}).status_code
        == 403
    )
    assert len(_published(app)) == 1


def test_p1_3_4_unknown_ruleset_is_404(client: Any, login: Any, org: dict[str, int]) -> None:
    login(client, "admin")
    for url in (
        "/admin/rules/nothing_here",
        "/admin/rules/nothing_here/edit",
        "/admin/rules/nothing_here/history",
        "/admin/rules/nothing_here/diff",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post("/admin/rules/nothing_here/rollback/1").status_code == 404
    assert (
        client.post("/admin/rules/expenses/rollback/99", data={"confirmed": "yes"}).status_code
        == 404
    )


def test_p1_3_4_a_broken_company_file_is_shown_with_its_location(
    make_app: Any, tmp_path: Path, make_person: Any, login: Any
) -> None:
    folder = tmp_path / "broken-rules"
    folder.mkdir()
    (folder / "expenses.yaml").write_text(
        DEFAULT.replace("when: {category: meal}", "when: {categroy: meal}"), encoding="utf-8"
    )
    app = make_app(RULES_INSTANCE_DIR=str(folder), RULES_REFRESH_SECONDS=0)
    with app.app_context():
        from portal.audit.recorder import acting_as
        from portal.org.services import create_user
        from portal.testing import DEMO_TEST_PASSWORD

        with acting_as("test"):
            create_user(
                username="boss", display_name="Boss", password=DEMO_TEST_PASSWORD, roles=["admin"]
            )
            db.session.commit()
    client = app.test_client()
    login(client, "boss")
    page = client.get("/admin/rules/").get_data(as_text=True)
    # Nothing valid was ever published: the broken file is reported, not put in force.
    assert 'data-testid="ruleset-error"' in page
    line = DEFAULT.splitlines().index("    when: {category: meal}") + 1
    assert f"expenses.yaml:{line}:" in page and "categroy" in page
    detail = client.get("/admin/rules/expenses").get_data(as_text=True)
    assert "categroy" in detail and 'data-testid="ruleset-error"' in detail


# -- editing -----------------------------------------------------------------------------


def test_p1_3_4_edit_starts_from_the_version_in_force(
    client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    response = client.get("/admin/rules/expenses/edit")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "rows: [[salesperson, 150]" in page
    assert 'name="base" type="hidden" value="1"' in page
    assert 'value="check"' in page and 'value="publish"' in page and 'name="since"' in page


def test_p1_3_4_check_shows_located_errors_and_keeps_the_text(
    client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    broken = DEFAULT.replace("when: {category: meal}", "when: {categroy: meal}")
    line = broken.splitlines().index("    when: {categroy: meal}") + 1
    response = _edit(client, "check", broken)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'data-testid="check-errors"' in page
    assert f"<code>{line}:" in page and "categroy" in page
    assert "when: {categroy: meal}" in page  # the textarea still holds the admin's text
    assert "<html" in page  # without JavaScript: the whole page

    # With htmx only the result panel comes back, with the same list.
    panel = client.post(
        "/admin/rules/expenses/edit",
        data={"action": "check", "source": broken},
        headers={"HX-Request": "true", "HX-Target": "rule-result"},
    )
    assert panel.status_code == 200
    fragment = panel.get_data(as_text=True)
    assert "<html" not in fragment and "<textarea" not in fragment
    assert f"<code>{line}:" in fragment

    failing = _edit(client, "check", FAILING).get_data(as_text=True)
    assert 'data-testid="check-failures"' in failing
    assert "salesperson hotel over the first-tier limit" in failing
    line = FAILING.splitlines().index("  - name: salesperson hotel over the first-tier limit") + 1
    assert f"line {line}" in failing

    ok = _edit(client, "check", RAISED).get_data(as_text=True)
    assert 'data-testid="check-ok"' in ok and f"all {TESTS} test cases pass" in ok


def test_p1_3_4_save_draft_keeps_even_an_invalid_text(
    app: Any, client: Any, login: Any, org: dict[str, int], make_person: Any
) -> None:
    login(client, "admin")
    broken = DEFAULT.replace("has_receipt: {type: bool}", "has_receipt: {type: boolean}")
    response = _edit(client, "save", broken, note="work in progress")
    assert response.status_code == 303
    assert response.location.endswith("/admin/rules/expenses/edit")
    with app.app_context():
        draft = db.session.scalars(
            sa.select(RuleVersion).where(RuleVersion.status == "draft")
        ).one()
        assert draft.source == broken and draft.author == "admin" and draft.version is None
        assert draft.note == "work in progress"
    page = client.get("/admin/rules/expenses/edit").get_data(as_text=True)
    assert "has_receipt: {type: boolean}" in page and 'data-testid="draft-notice"' in page
    fresh = client.get("/admin/rules/expenses/edit?start=current").get_data(as_text=True)
    assert "has_receipt: {type: bool}" in fresh
    assert len(_published(app)) == 1  # a draft is not in force

    # Another admin starts from the version in force, not from someone else's draft.
    make_person("second_admin", roles=["admin"])
    other = app.test_client()
    login(other, "second_admin")
    page = other.get("/admin/rules/expenses/edit").get_data(as_text=True)
    assert "has_receipt: {type: bool}" in page and "draft-notice" not in page

    # Once a newer version is published, the older draft no longer hides it.
    assert _edit(other, "publish", RAISED, base="1").status_code == 303
    page = client.get("/admin/rules/expenses/edit").get_data(as_text=True)
    assert "rows: [[salesperson, 300]" in page and "draft-notice" not in page


def test_p1_3_4_publish_with_a_failing_test_is_refused(
    app: Any, client: Any, login: Any, org: dict[str, int], instance_rules: Path
) -> None:
    login(client, "admin")
    response = _edit(client, "publish", FAILING, note="higher hotel limit", base=_base(app))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'data-testid="publish-refused"' in page
    assert "salesperson hotel over the first-tier limit" in page
    assert "- [salesperson, 1, 600]" in page  # nothing lost
    assert len(_published(app)) == 1
    assert not (instance_rules / "expenses.yaml").exists()

    broken = _edit(client, "publish", "ruleset: expenses\nrules: [", base=_base(app))
    assert broken.status_code == 422
    assert "not valid YAML" in broken.get_data(as_text=True)
    assert len(_published(app)) == 1


def test_p1_3_4_publishing_a_raised_limit_puts_it_in_force_at_once(
    app: Any, client: Any, login: Any, org: dict[str, int], instance_rules: Path
) -> None:
    login(client, "admin")
    assert _decision(app, 200) == "escalate"
    response = _edit(
        client,
        "publish",
        RAISED.replace("\n", "\r\n"),  # what a browser's textarea sends
        note="meal limit 300",
        base=_base(app),
    )
    assert response.status_code == 303
    assert response.location.endswith("/admin/rules/expenses")
    versions = _published(app)
    assert [v.version for v in versions] == [1, 2]
    assert versions[-1].origin == "browser" and versions[-1].author == "admin"
    assert versions[-1].note == "meal limit 300" and versions[-1].source == RAISED
    assert (instance_rules / "expenses.yaml").read_text(encoding="utf-8") == RAISED
    assert _decision(app, 200) == "approve"  # the next evaluation, same app, no restart
    assert _decision(app, 301) == "escalate"

    page = client.get("/admin/rules/expenses").get_data(as_text=True)
    assert "Version 2 of expenses is in force." in page
    assert 'data-testid="version">v2<' in page
    assert "Company override" in client.get("/admin/rules/").get_data(as_text=True)
    diff = client.get("/admin/rules/expenses/diff").get_data(as_text=True)
    assert '<span class="diff-add">+      rows: [[salesperson, 300]' in diff

    # The same text again is not a new version.
    again = _edit(client, "publish", RAISED, base="2")
    assert again.status_code == 422
    assert "version in force already" in again.get_data(as_text=True)
    assert len(_published(app)) == 2


def test_p1_3_4_publish_over_a_newer_version_asks_first(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    assert _base(app) == "1"
    with app.app_context():
        rules().publish("expenses", RAISED, "cli", note="from the command line")
    stale = _edit(client, "publish", FAILING.replace("600", "500").replace("150", "200"), base="1")
    assert stale.status_code == 422
    page = stale.get_data(as_text=True)
    assert "Version 2 was published while you were editing" in page
    assert 'name="base" type="hidden" value="2"' in page
    assert len(_published(app)) == 2
    text = DEFAULT.replace(
        MEAL_ROWS, "rows: [[salesperson, 200], [supervisor, 250], [manager, 400]]"
    )
    assert _edit(client, "publish", text, base="2").status_code == 303
    assert len(_published(app)) == 3


def test_p1_3_4_history_shows_diffs_and_rollback_publishes_the_old_text(
    app: Any, client: Any, login: Any, org: dict[str, int], instance_rules: Path
) -> None:
    login(client, "admin")
    assert _edit(client, "publish", RAISED, note="meal 300", base=_base(app)).status_code == 303
    page = client.get("/admin/rules/expenses/history").get_data(as_text=True)
    assert 'data-testid="version-2"' in page and 'data-testid="version-1"' in page
    assert '<span class="diff-del">-      rows: [[salesperson, 150]' in page
    assert '<span class="diff-add">+      rows: [[salesperson, 300]' in page
    assert "meal 300" in page and "hx-confirm=" in page
    assert 'data-testid="rollback-1"' in page and 'data-testid="rollback-2"' not in page

    # Without JavaScript (no hx-confirm) a confirmation page asks first.
    confirm = client.post("/admin/rules/expenses/rollback/1")
    assert confirm.status_code == 200
    assert 'name="confirmed" value="yes"' in confirm.get_data(as_text=True)
    assert len(_published(app)) == 2

    done = client.post("/admin/rules/expenses/rollback/1", data={"confirmed": "yes"})
    assert done.status_code == 303 and done.location.endswith("/admin/rules/expenses/history")
    versions = _published(app)
    assert [v.version for v in versions] == [1, 2, 3]
    assert versions[-1].source == DEFAULT and versions[-1].origin == "rollback"
    assert not (instance_rules / "expenses.yaml").exists()  # the default again
    assert _decision(app, 200) == "escalate"
    page = client.get("/admin/rules/expenses/history").get_data(as_text=True)
    assert "Version 1 is in force again, as version 3." in page
    assert "Back to version 1" in page

    # With htmx the hx-confirm dialog was the confirmation.
    hx = client.post("/admin/rules/expenses/rollback/2", headers={"HX-Request": "true"})
    assert hx.status_code == 303
    assert _published(app)[-1].source == RAISED


# -- simulation and decisions ------------------------------------------------------


def _store_meal_claims(app: Any, amounts: list[int]) -> None:
    with app.app_context():
        service = rules()
        for number, amount in enumerate(amounts, start=1):
            service.evaluate(
                "expenses", {**MEAL, "amount": amount}, subject=("expense_claim", number)
            )
        db.session.commit()


def test_p1_3_4_simulation_counts_the_stored_decisions_a_draft_changes(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    amounts = [120 + 10 * i for i in range(30)]  # 120 ... 410
    changed = [a for a in amounts if 150 < a <= 300]  # escalated before, approved after
    _store_meal_claims(app, amounts)
    login(client, "admin")
    response = _edit(client, "simulate", RAISED, since="2000-01-01")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'data-testid="sim-total">30<' in page
    assert f'data-testid="sim-changed">{len(changed)}<' in page
    assert f'data-testid="sim-unchanged">{30 - len(changed)}<' in page
    assert 'data-testid="sim-unusable">0<' in page
    assert "meal-over-limit#1 → within-limits" in page
    assert page.count("/admin/rules/decisions/expense_claim/") == len(changed)
    assert "rows: [[salesperson, 300]" in page  # the text is still there
    assert len(_published(app)) == 1  # simulating publishes nothing

    # The default start is 90 days ago; a future start finds nothing.
    panel = client.post(
        "/admin/rules/expenses/edit",
        data={"action": "simulate", "source": RAISED, "since": "2999-01-01"},
        headers={"HX-Request": "true", "HX-Target": "rule-result"},
    )
    assert panel.status_code == 200 and 'data-testid="sim-total">0<' in panel.get_data(as_text=True)
    assert 'data-testid="sim-total">30<' in _edit(client, "simulate", RAISED).get_data(as_text=True)
    bad_date = _edit(client, "simulate", RAISED, since="someday")
    assert bad_date.status_code == 422
    broken = _edit(client, "simulate", "ruleset: expenses\n", since="2000-01-01")
    assert broken.status_code == 422 and 'data-testid="check-errors"' in broken.get_data(
        as_text=True
    )


def test_p1_3_4_decisions_page_explains_a_record(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    _store_meal_claims(app, [90, 200])
    login(client, "auditor")
    response = client.get("/admin/rules/decisions/expense_claim/2")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "meal-over-limit#1" in page and "P6.4" in page
    assert (
        f"line {MEAL_LINE}" in page and "rows: [[salesperson, 150]" in page
    )  # the rule's source line
    assert "amount = 200" in page and "decision = escalate" in page
    assert "has_receipt = true" in page
    assert "approvers" in page and "supervisor, manager" in page
    assert "within-limits" not in page  # claim 1's decision belongs to another record
    empty = client.get("/admin/rules/decisions/expense_claim/404").get_data(as_text=True)
    assert "No decision was stored." in empty
    detail = client.get("/admin/rules/expenses").get_data(as_text=True)
    assert "/admin/rules/decisions/expense_claim/2" in detail  # recent decisions
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RuleDecision)) == 2


# -- what a browser should never be able to break -------------------------------------


def test_p1_3_4_absurd_posts_get_4xx_never_500(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    too_big_to_accept = "x" * (21 * 1024 * 1024)  # over MAX_CONTENT_LENGTH
    assert _edit(client, "check", too_big_to_accept).status_code == 413
    multipart = client.post(
        "/admin/rules/expenses/edit",
        data={"action": "check", "source": "x" * 600_000},
        content_type="multipart/form-data",
    )
    assert multipart.status_code == 413  # over MAX_FORM_MEMORY_SIZE
    assert _edit(client, "check", "x" * 600_000).status_code == 422
    big = "# " + "y" * 300_000
    response = _edit(client, "save", big)
    assert response.status_code == 422 and "larger than 256 KiB" in response.get_data(as_text=True)
    assert _edit(client, "check", "a\x00b").status_code == 422
    assert _edit(client, "save", "a\x00b").status_code == 422
    assert _edit(client, "explode", RAISED).status_code == 400
    assert client.post("/admin/rules/expenses/edit", data={}).status_code == 400
    assert _edit(client, "check", "").status_code == 422
    assert _edit(client, "save", RAISED, note="n" * 600).status_code == 422
    for text in ("[1, 2", "- - -", "ruleset: other\n", "{}", "ruleset: expenses\n" * 3):
        assert _edit(client, "check", text).status_code == 200, text
        assert _edit(client, "publish", text, base="1").status_code == 422, text
    raw = client.post(
        "/admin/rules/expenses/edit",
        data=b"action=check&source=%ff%fe%00",
        content_type="application/x-www-form-urlencoded",
    )
    assert raw.status_code in (200, 422)
    with app.app_context():
        drafts = sa.select(sa.func.count()).where(RuleVersion.status == "draft")
        assert db.session.scalar(drafts) == 0  # nothing saved
    assert len(_published(app)) == 1  # nothing published
