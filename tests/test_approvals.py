"""Approvals (P1.3.2 closed loop; P6.1 leave, P3.3 discounts, P6.4 expenses): one
mechanism for every chapter, routed by rule files, explained, delegated, raced.

A throwaway plugin declares approval kinds over the shipped rule files; its
``on_decided`` writes a row of its own so the tests see that it runs inside the same
transaction as the decision.

Organisation (``org`` fixture): manager leads Company > sup_east leads East > Shanghai
(li, wang); sup_south leads South > Guangzhou (zhao); hr1 (hr) and fin (finance) sit
in Company."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from portal.auth.models import User
from portal.extensions import db
from portal.loops import approvals
from portal.loops.errors import NotAllowed, StateConflict
from portal.loops.models import ApprovalRequest, Delegation, Notification
from portal.org.services import ValidationFailed
from portal.plugins.types import ApprovalKind
from portal.rules.models import RuleDecision
from portal.rules.service import rules
from portal.settings import Setting
from portal.testing import log_in_page, throwaway_plugin

NOW = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Monday
TODAY = date(2025, 3, 10)

decided_log: list[tuple[int, str]] = []
event_log: list[tuple[str, dict[str, Any]]] = []


def _on_decided(request: ApprovalRequest) -> None:
    """The plugin's own record of the outcome, written in the caller's transaction."""
    decided_log.append((request.id, request.status))
    db.session.add(
        Setting(key=f"appr.outcome.{request.id}.{request.round}", value=f'"{request.status}"')
    )
    db.session.flush()
    if request.title.startswith("BOOM"):  # written, then failing: the rollback undoes all
        raise RuntimeError("the plugin failed while recording the outcome")


def _on_event(event: Any) -> None:
    if event.name == "core.approval_decided":
        event_log.append((event.name, dict(event.payload)))


KINDS = [
    ApprovalKind("appr.leave", "Leave", ruleset="leave_approval", on_decided=_on_decided),
    ApprovalKind("appr.discount", "Discount", ruleset="discount_approval", on_decided=_on_decided),
    ApprovalKind("appr.expense", "Expense", ruleset="expenses", on_decided=_on_decided),
    ApprovalKind("appr.contract", "Contract", ruleset="contract_review", on_decided=_on_decided),
]
PLUGIN = throwaway_plugin("appr", portal_approval_kinds=lambda: KINDS, portal_on_event=_on_event)

SHORT_LEAVE = {"leave_type": "annual", "days": 2, "days_in_advance": 7, "balance_days": 10}
MEDIUM_LEAVE = {"leave_type": "annual", "days": 5, "days_in_advance": 14, "balance_days": 10}
LONG_LEAVE = {"leave_type": "personal", "days": "10.5", "days_in_advance": 14}


def discount(percent: int) -> dict[str, Any]:
    """A salesperson's discount of ``percent`` on a deal of 80,000 at 30 % margin."""
    return {
        "requested_by": "salesperson",
        "discount_pct": percent,
        "deal_amount": 80000,
        "gross_margin_pct": 30,
    }


@pytest.fixture
def app(make_app: Any) -> Any:
    decided_log.clear()
    event_log.clear()
    return make_app(plugins=[("appr", PLUGIN)])


@pytest.fixture
def people(org: dict[str, int], make_person: Any) -> dict[str, int]:
    ids = dict(org)
    ids["hr1"] = make_person("hr1", roles=["hr"], unit=org["company"])
    ids["fin"] = make_person("fin", roles=["finance"], unit=org["company"])
    return ids


def user(name: str) -> User:
    return db.session.scalars(sa.select(User).where(User.username == name)).one()


def submit_leave(requester: str = "li", facts: dict[str, Any] | None = None, **kw: Any) -> int:
    request = approvals.submit(
        "appr.leave",
        kw.pop("title", "Leave in March"),
        user(requester),
        facts or SHORT_LEAVE,
        subject=("appr_leave", 7),
        subject_link="/appr/leave/7",
        now=NOW,
        **kw,
    )
    db.session.commit()
    return request.id


def load(request_id: int) -> ApprovalRequest:
    db.session.expire_all()
    return db.session.get(ApprovalRequest, request_id)


def route_of(request: ApprovalRequest) -> list[tuple[str | None, str | None, str]]:
    """(approver username or None, role pool or None, status) per step."""
    return [
        (step.approver.username if step.approver else None, step.role_code, step.status)
        for step in request.steps
    ]


def notes_of(username: str, kind: str) -> list[Notification]:
    return list(
        db.session.scalars(
            sa.select(Notification)
            .join(User, User.id == Notification.user_id)
            .where(User.username == username, Notification.kind == kind)
            .order_by(Notification.id)
        )
    )


def count(model: Any) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


# -- routing by the rule files -------------------------------------------------------


def test_p6_1_short_leave_goes_to_the_supervisor_only_and_is_explained(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        request_id = submit_leave()
        request = load(request_id)
        assert request.status == "pending"
        assert route_of(request) == [("sup_east", None, "pending")]
        assert request.routes == ["supervisor"]
        # Explained: which rule file version routed it and which rule matched.
        active = rules().active("leave_approval")
        assert (request.ruleset, request.rule_version) == ("leave_approval", active.version)
        assert request.rule_sha == active.rule_file.sha
        assert request.rule_id == "by-length#2"
        stored = db.session.scalars(
            sa.select(RuleDecision).where(
                RuleDecision.subject_table == "core_approval_request",
                RuleDecision.subject_id == str(request_id),
            )
        ).all()
        assert [(d.ruleset, d.rule, d.row) for d in stored] == [("leave_approval", "by-length", 2)]
        assert stored[0].outputs["approvers"] == ["supervisor"]
        # The supervisor is told, with a link to the request.
        (note,) = notes_of("sup_east", "core.approval_waiting")
        assert note.link == f"/approvals/{request_id}"
        assert "Leave in March" in note.title
        assert request.subject_table == "appr_leave" and request.subject_id == "7"
        assert decided_log == []


def test_p6_1_long_leave_goes_to_supervisor_manager_then_the_hr_pool_in_order(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        request_id = submit_leave(facts=LONG_LEAVE)
        request = load(request_id)
        assert request.rule_id == "long-leave"
        assert route_of(request) == [
            ("sup_east", None, "pending"),
            ("manager", None, "waiting"),
            (None, "hr", "waiting"),
        ]
        # Only the step in turn can be acted on: the manager cannot skip ahead.
        assert not approvals.can_act(request, user("manager"), NOW)
        with pytest.raises(NotAllowed):
            approvals.act(request, user("manager"), "approve", now=NOW)
        db.session.rollback()

        approvals.act(load(request_id), user("sup_east"), "approve", "fine", now=NOW)
        db.session.commit()
        request = load(request_id)
        assert route_of(request)[:2] == [
            ("sup_east", None, "approved"),
            ("manager", None, "pending"),
        ]
        assert len(notes_of("manager", "core.approval_waiting")) == 1

        approvals.act(request, user("manager"), "approve", now=NOW)
        db.session.commit()
        request = load(request_id)
        assert route_of(request)[2] == (None, "hr", "pending")
        # The pool: any hr holder whose scope reaches li is told and may act.
        assert len(notes_of("hr1", "core.approval_waiting")) == 1
        assert approvals.can_act(request, user("hr1"), NOW)
        assert not approvals.can_act(request, user("fin"), NOW)

        approvals.act(request, user("hr1"), "approve", now=NOW)
        db.session.commit()
        request = load(request_id)
        assert request.status == "approved" and request.current_position == 0
        assert request.decided_at is not None
        assert decided_log == [(request_id, "approved")]
        assert db.session.get(Setting, f"appr.outcome.{request_id}.1").value == '"approved"'
        assert event_log == [
            (
                "core.approval_decided",
                {
                    "request_id": request_id,
                    "kind": "appr.leave",
                    "status": "approved",
                    "subject_table": "appr_leave",
                    "subject_id": "7",
                },
            )
        ]
        (told,) = notes_of("li", "core.approval_decided")
        assert told.link == f"/approvals/{request_id}"


def test_p3_3_discount_within_authority_is_approved_at_once(
    app: Any, people: dict[str, int]
) -> None:
    facts = discount(5)
    with app.app_context():
        request = approvals.submit("appr.discount", "Quote 12", user("li"), facts, now=NOW)
        db.session.commit()
        request = load(request.id)
        assert request.status == "approved" and request.steps == []
        assert request.rule_id == "within-authority#1"
        assert request.routes == []
        assert decided_log == [(request.id, "approved")]
        assert notes_of("sup_east", "core.approval_waiting") == []


def test_p3_3_discount_above_authority_goes_to_supervisor_manager_and_finance_pool(
    app: Any, people: dict[str, int]
) -> None:
    facts = discount(25)
    with app.app_context():
        request = approvals.submit("appr.discount", "Quote 13", user("li"), facts, now=NOW)
        db.session.commit()
        assert route_of(load(request.id)) == [
            ("sup_east", None, "pending"),
            ("manager", None, "waiting"),
            (None, "finance", "waiting"),
        ]


def test_p6_4_expense_without_receipt_is_rejected_at_once_with_the_reason(
    app: Any, people: dict[str, int]
) -> None:
    facts = {
        "category": "taxi",
        "role": "salesperson",
        "city_tier": 1,
        "amount": "120",
        "has_receipt": False,
    }
    with app.app_context():
        request = approvals.submit("appr.expense", "Taxi", user("li"), facts, now=NOW)
        db.session.commit()
        request = load(request.id)
        assert request.status == "rejected" and request.steps == []
        assert request.rule_id == "receipt-required"
        assert request.reason == "A receipt is required above the threshold"
        assert request.facts["amount"] == "120"
        assert decided_log == [(request.id, "rejected")]


def test_p7_3_contract_reviewers_route_like_approvers(app: Any, people: dict[str, int]) -> None:
    facts = {
        "contract_amount": "200000.01",
        "payment_terms_days": 30,
        "non_standard_clauses": False,
        "new_customer": False,
        "credit_risk": "low",
    }
    with app.app_context():
        request = approvals.submit("appr.contract", "Contract 9", user("li"), facts, now=NOW)
        db.session.commit()
        request = load(request.id)
        assert request.routes == ["supervisor", "manager"]
        assert request.rule_id == "supervisor-review, manager-review, defaults"
        assert route_of(request) == [("sup_east", None, "pending"), ("manager", None, "waiting")]


def test_p1_3_2_facts_the_rule_file_refuses_are_reported_per_field_and_nothing_is_written(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        with pytest.raises(ValidationFailed) as refused:
            approvals.submit(
                "appr.leave", "Leave", user("li"), {"leave_type": "holiday", "days": 2}, now=NOW
            )
        assert {"leave_type", "days_in_advance"} <= set(refused.value.fields)
        with pytest.raises(ValidationFailed) as unknown:
            approvals.submit("appr.nothing", "X", user("li"), SHORT_LEAVE, now=NOW)
        assert "kind" in unknown.value.fields
        with pytest.raises(ValidationFailed) as untitled:
            approvals.submit("appr.leave", "  ", user("li"), SHORT_LEAVE, now=NOW)
        assert "title" in untitled.value.fields
        db.session.commit()
        assert count(ApprovalRequest) == 0 and count(RuleDecision) == 0


# -- resolving route names -----------------------------------------------------------


def test_p2_routes_resolve_levels_pools_and_collapse_without_dropping_a_step(
    app: Any, people: dict[str, int], make_person: Any, make_unit: Any
) -> None:
    with app.app_context():
        li = user("li")
        plan = approvals.plan_steps(li, ["supervisor_2", "supervisor_3", "hr"])
        # supervisor_2 is the manager; there is no third level: it goes to the pool of
        # the highest role in the route and collapses with the hr step (routes kept).
        assert [(p.approver.username if p.approver else None, p.role_code) for p in plan] == [
            ("manager", None),
            (None, "hr"),
        ]
        assert plan[1].routes == ["supervisor_3", "hr"]
        assert "No supervisor at level 3" in " ".join(plan[1].notes)

        # Someone right below the manager: supervisor and manager are the same person.
        admin = user("admin")
        plan = approvals.plan_steps(admin, ["supervisor", "manager"])
        assert [(p.approver.username, p.routes) for p in plan] == [
            ("manager", ["supervisor", "manager"])
        ]

        # hr1 asks for long leave: nobody else holds hr, so that step is not dropped but
        # escalated; the manager approves once for all three route names.
        plan = approvals.plan_steps(user("hr1"), ["supervisor", "manager", "hr"])
        assert [(p.approver.username, p.routes) for p in plan] == [
            ("manager", ["supervisor", "manager", "hr"])
        ]
        assert plan[0].notes

        # An unknown route name is escalated, never skipped.
        plan = approvals.plan_steps(li, ["treasurer"])
        assert [p.approver.username for p in plan] == ["sup_east"]
        assert "neither a level nor a role" in plan[0].notes[0]

    # A unit's own leader never approves their own request: the next one up does.
    lead = make_person("north_lead", roles=["supervisor"])
    north = make_unit("North", "region", parent=people["company"], leader=lead)
    with app.app_context():
        person = user("north_lead")
        person.unit_id = north
        db.session.commit()
        plan = approvals.plan_steps(user("north_lead"), ["supervisor"])
        assert [p.approver.username for p in plan] == ["manager"]

    # Someone outside every unit: nobody above, so the head of the organisation.
    make_person("floater", roles=["salesperson"])
    with app.app_context():
        plan = approvals.plan_steps(user("floater"), ["supervisor"])
        assert [p.approver.username for p in plan] == ["manager"]
        assert "head of the organisation" in " ".join(plan[0].notes)


def test_p2_a_pool_step_is_only_for_holders_whose_scope_reaches_the_requester(
    app: Any, people: dict[str, int], make_person: Any
) -> None:
    make_person("clerk", roles=["salesperson", "finance"], unit=people["guangzhou"])
    with app.app_context():
        from portal.auth.models import Role

        # Finance now reads only its own records: no finance holder reaches li.
        db.session.scalars(sa.select(Role).where(Role.code == "finance")).one().read_scope = "own"
        db.session.commit()
        facts = discount(25)
        request = approvals.submit("appr.discount", "Quote", user("li"), facts, now=NOW)
        db.session.commit()
        request = load(request.id)
        # The finance step is not dropped: it goes up, to the manager, who then approves
        # once for both route names; the route as the rule gave it stays visible.
        assert request.routes == ["supervisor", "manager", "finance"]
        assert [(s.approver.username, s.route) for s in request.steps] == [
            ("sup_east", "supervisor"),
            ("manager", "manager, finance"),
        ]
        assert "finance" in request.steps[1].note
        assert not approvals.can_act(request, user("fin"), NOW)

        # The manager asks: nobody at all is left who could approve. Refused with a
        # message, nothing written, never approved by default.
        facts["requested_by"] = "manager"
        with pytest.raises(ValidationFailed) as refused:
            approvals.submit("appr.discount", "Quote", user("manager"), facts, now=NOW)
        assert "Nobody can approve" in refused.value.fields["approvers"][0]
        db.session.rollback()
        assert count(ApprovalRequest) == 1


# -- acting ----------------------------------------------------------------------------


def test_p1_3_2_comment_is_required_to_reject_or_return(app: Any, people: dict[str, int]) -> None:
    with app.app_context():
        request_id = submit_leave()
        for action in ("reject", "return"):
            with pytest.raises(ValidationFailed) as refused:
                approvals.act(load(request_id), user("sup_east"), action, "  ", now=NOW)
            assert list(refused.value.fields) == ["comment"]
            db.session.rollback()
        with pytest.raises(ValidationFailed) as unknown:
            approvals.act(load(request_id), user("sup_east"), "maybe", now=NOW)
        assert list(unknown.value.fields) == ["action"]
        db.session.rollback()
        assert route_of(load(request_id)) == [("sup_east", None, "pending")]


def test_p1_3_2_reject_ends_the_request_and_tells_the_requester(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        request_id = submit_leave(facts=MEDIUM_LEAVE)
        approvals.act(load(request_id), user("sup_east"), "reject", "Busy season", now=NOW)
        db.session.commit()
        request = load(request_id)
        assert request.status == "rejected"
        assert route_of(request) == [("sup_east", None, "rejected"), ("manager", None, "skipped")]
        assert request.steps[0].comment == "Busy season"
        assert decided_log == [(request_id, "rejected")]
        (told,) = notes_of("li", "core.approval_decided")
        assert "Rejected" in told.title and told.body == "Busy season"
        assert notes_of("manager", "core.approval_waiting") == []


def test_p1_3_2_approving_something_already_decided_is_a_conflict(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        request_id = submit_leave()
        approvals.act(load(request_id), user("sup_east"), "approve", now=NOW)
        db.session.commit()
        with pytest.raises(StateConflict):
            approvals.act(load(request_id), user("sup_east"), "approve", now=NOW)
        db.session.rollback()
        assert decided_log == [(request_id, "approved")]


def test_p1_3_2_only_the_person_in_turn_may_act(app: Any, people: dict[str, int]) -> None:
    with app.app_context():
        request_id = submit_leave()
        for name in ("li", "wang", "sup_south", "manager", "hr1", "admin"):
            assert not approvals.can_act(load(request_id), user(name), NOW), name
            with pytest.raises(NotAllowed):
                approvals.act(load(request_id), user(name), "approve", now=NOW)
            db.session.rollback()
        assert route_of(load(request_id)) == [("sup_east", None, "pending")]


def test_p1_3_2_not_a_delegates_delegate_a_disabled_approver_or_someone_not_in_turn(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        request_id = submit_leave()
        approvals.set_delegation(user("sup_east"), user("sup_south"), TODAY, TODAY, "", NOW)
        approvals.set_delegation(user("sup_south"), user("zhao"), TODAY, TODAY, "", NOW)
        db.session.commit()
        # Delegation does not chain: zhao stands in for sup_south, not for sup_east.
        assert approvals.can_act(load(request_id), user("sup_south"), NOW)
        assert not approvals.can_act(load(request_id), user("zhao"), NOW)
        assert not approvals.can_read(load(request_id), user("zhao"), NOW)
        # Someone not in turn hears "not allowed", even for a decision they could not
        # word right (no comment): what a decision needs is the approver's business.
        with pytest.raises(NotAllowed):
            approvals.act(load(request_id), user("manager"), "reject", "", now=NOW)
        db.session.rollback()
        # A disabled approver (or delegate) acts no more.
        for name in ("sup_east", "sup_south"):
            user(name).active = False
            db.session.flush()
            assert not approvals.can_act(load(request_id), user(name), NOW), name
            with pytest.raises(NotAllowed):
                approvals.act(load(request_id), user(name), "approve", now=NOW)
            db.session.rollback()
        assert route_of(load(request_id)) == [("sup_east", None, "pending")]


def test_p6_3_a_subject_link_outside_the_portal_is_refused_and_nothing_written(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        for link in ("https://evil.example/", "//evil.example", "/\t/evil.example", "javascript:x"):
            with pytest.raises(ValidationFailed) as refused:
                approvals.submit(
                    "appr.leave", "Leave", user("li"), SHORT_LEAVE, subject_link=link, now=NOW
                )
            assert list(refused.value.fields) == ["subject_link"], link
        db.session.commit()
        assert count(ApprovalRequest) == 0 and count(RuleDecision) == 0


def test_p1_3_2_on_decided_runs_in_the_same_transaction_and_a_failure_writes_nothing(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        request_id = submit_leave(title="BOOM leave")
        with pytest.raises(RuntimeError):
            approvals.act(load(request_id), user("sup_east"), "approve", "ok", now=NOW)
        db.session.rollback()
        request = load(request_id)
        assert request.status == "pending"
        assert route_of(request) == [("sup_east", None, "pending")]
        assert request.steps[0].acted_by_id is None and request.steps[0].comment == ""
        assert notes_of("li", "core.approval_decided") == []
        assert db.session.get(Setting, f"appr.outcome.{request_id}.1") is None
        assert count(Notification) == 1  # only the supervisor's, from the submission
        # The plugin was called exactly once, with the final status.
        assert decided_log == [(request_id, "approved")]


def test_p1_3_2_return_and_resubmit_routes_again_with_old_steps_kept(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        request_id = submit_leave(facts=MEDIUM_LEAVE)
        approvals.act(load(request_id), user("sup_east"), "approve", now=NOW)
        approvals.act(load(request_id), user("manager"), "return", "Split it in two", now=NOW)
        db.session.commit()
        request = load(request_id)
        assert request.status == "returned"
        assert decided_log == [(request_id, "returned")]
        (told,) = notes_of("li", "core.approval_decided")
        assert "Returned" in told.title and told.body == "Split it in two"
        # Only the requester sends it again, and only while it is returned.
        with pytest.raises(NotAllowed):
            approvals.resubmit(request, user("sup_east"), now=NOW)
        approvals.resubmit(request, user("li"), facts=SHORT_LEAVE, now=NOW)
        db.session.commit()
        request = load(request_id)
        assert request.status == "pending" and request.round == 2
        assert request.facts["days"] == 2
        assert [(s.round, s.position, s.status) for s in request.steps] == [
            (1, 1, "approved"),
            (1, 2, "returned"),
            (2, 3, "pending"),
        ]
        assert request.current_position == 3
        with pytest.raises(StateConflict):
            approvals.resubmit(request, user("li"), now=NOW)
        db.session.rollback()
        approvals.act(load(request_id), user("sup_east"), "approve", now=NOW)
        db.session.commit()
        assert load(request_id).status == "approved"
        assert decided_log == [(request_id, "returned"), (request_id, "approved")]
        entries = approvals.timeline(load(request_id))
        assert [e.status for e in entries] == ["approved", "returned", "approved"]
        assert entries[1].comment == "Split it in two" and entries[1].acted_by.username == "manager"


def test_p1_3_2_the_requester_cancels_while_pending(app: Any, people: dict[str, int]) -> None:
    with app.app_context():
        request_id = submit_leave()
        with pytest.raises(NotAllowed):
            approvals.cancel(load(request_id), user("wang"), now=NOW)
        approvals.cancel(load(request_id), user("li"), now=NOW)
        db.session.commit()
        request = load(request_id)
        assert request.status == "cancelled"
        assert route_of(request) == [("sup_east", None, "skipped")]
        assert decided_log == [(request_id, "cancelled")]
        assert db.session.scalars(approvals.waiting_for(user("sup_east"), NOW)).all() == []
        with pytest.raises(StateConflict):
            approvals.act(load(request_id), user("sup_east"), "approve", now=NOW)
        db.session.rollback()
        with pytest.raises(StateConflict):
            approvals.cancel(load(request_id), user("li"), now=NOW)


# -- what waits for whom ---------------------------------------------------------------


def test_p1_3_2_waiting_for_is_one_query_for_personal_delegated_and_pool_steps(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        short_id = submit_leave()
        long_id = submit_leave("zhao", facts=LONG_LEAVE, title="Long leave")
        approvals.act(load(long_id), user("sup_south"), "approve", now=NOW)
        approvals.act(load(long_id), user("manager"), "approve", now=NOW)
        db.session.commit()
        approvals.set_delegation(user("sup_east"), user("sup_south"), TODAY, TODAY, "trip", NOW)
        db.session.commit()

        def ids(name: str, now: datetime = NOW) -> list[int]:
            statement = approvals.waiting_for(user(name), now).order_by(ApprovalRequest.created_at)
            return [request.id for request in db.session.scalars(statement)]

        assert ids("sup_east") == [short_id]
        assert ids("sup_south") == [short_id]  # standing in for sup_east today
        assert ids("sup_south", NOW + timedelta(days=1)) == []
        assert ids("hr1") == [long_id]  # the hr pool
        assert ids("li") == [] and ids("manager") == [] and ids("fin") == []

        def statements_for(name: str) -> tuple[int, int]:
            """(statements to find the rows, statements to load them with their steps)."""
            select = approvals.waiting_for(user(name), NOW).order_by(ApprovalRequest.created_at)
            seen: list[str] = []

            def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                seen.append(statement)

            db.session.expire_all()
            sa.event.listen(db.engine, "before_cursor_execute", record)
            try:
                db.session.execute(select.with_only_columns(ApprovalRequest.id)).all()
                found = len(seen)
                for request in db.session.scalars(select):
                    [step.approver for step in request.steps]
            finally:
                sa.event.remove(db.engine, "before_cursor_execute", record)
            return found, len(seen) - found

        one_query, loading_one = statements_for("sup_south")
        assert one_query == 1
        # More requests waiting: still the same number of statements (no N+1).
        for number in range(3):
            submit_leave("wang", title=f"More {number}")
        assert ids("sup_south") == [short_id] + ids("sup_east")[1:]
        assert len(ids("sup_south")) == 4
        assert statements_for("sup_south") == (1, loading_one)


def test_p1_3_2_delegation_lets_the_delegate_act_and_records_for_whom(
    app: Any, people: dict[str, int], client: Any, login: Any
) -> None:
    with app.app_context():
        request_id = submit_leave()
        assert not approvals.can_act(load(request_id), user("sup_south"), NOW)
        delegation = approvals.set_delegation(
            user("sup_east"), user("sup_south"), TODAY, TODAY + timedelta(days=4), "Leave", NOW
        )
        db.session.commit()
        assert approvals.can_act(load(request_id), user("sup_south"), NOW)
        assert not approvals.can_act(load(request_id), user("sup_south"), NOW - timedelta(days=1))
        # The delegate reads the request while standing in (not otherwise in scope).
        assert approvals.can_read(load(request_id), user("sup_south"), NOW)
        approvals.act(load(request_id), user("sup_south"), "approve", "For sup_east", now=NOW)
        db.session.commit()
        (step,) = load(request_id).steps
        assert step.acted_by.username == "sup_south" and step.on_behalf_of_id == people["sup_east"]
        entry = approvals.timeline(load(request_id))[0]
        assert entry.on_behalf_of.username == "sup_east"

        # A new request while sup_east is away: both are told.
        other_id = submit_leave("wang", title="Wang leave")
        assert len(notes_of("sup_east", "core.approval_waiting")) == 2
        assert [n.link for n in notes_of("sup_south", "core.approval_waiting")] == [
            f"/approvals/{other_id}"
        ]
        # Back early: the delegation ends and sup_south no longer acts.
        with pytest.raises(NotAllowed):
            approvals.end_delegation(db.session.get(Delegation, delegation.id), user("sup_south"))
        approvals.end_delegation(
            db.session.get(Delegation, delegation.id), user("sup_east"), now=NOW
        )
        db.session.commit()
        assert not approvals.can_act(load(other_id), user("sup_south"), NOW)
        with pytest.raises(StateConflict):
            approvals.end_delegation(
                db.session.get(Delegation, delegation.id), user("sup_east"), now=NOW
            )
        db.session.rollback()


def test_p1_3_2_a_requester_never_approves_their_own_request_as_a_delegate(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        request_id = submit_leave()
        approvals.set_delegation(user("sup_east"), user("li"), TODAY, TODAY, "", NOW)
        db.session.commit()
        assert not approvals.can_act(load(request_id), user("li"), NOW)
        assert db.session.scalars(approvals.waiting_for(user("li"), NOW)).all() == []


def test_p1_3_2_bad_delegations_are_refused_per_field(app: Any, people: dict[str, int]) -> None:
    with app.app_context():
        sup_east, sup_south = user("sup_east"), user("sup_south")

        def refused(**kw: Any) -> set[str]:
            args = {
                "user": sup_east,
                "delegate": sup_south,
                "starts_on": TODAY,
                "ends_on": TODAY + timedelta(days=2),
                "reason": "",
                "now": NOW,
            }
            args.update(kw)
            with pytest.raises(ValidationFailed) as error:
                approvals.set_delegation(**args)
            db.session.rollback()
            return set(error.value.fields)

        assert refused(delegate=sup_east) == {"delegate_id"}
        assert refused(delegate=None) == {"delegate_id"}
        assert refused(ends_on=TODAY - timedelta(days=1), starts_on=TODAY) == {"ends_on"}
        assert refused(starts_on=TODAY + timedelta(days=3)) == {"ends_on"}
        assert refused(reason="x" * 201) == {"reason"}
        manager = user("manager")
        manager.active = False
        assert refused(delegate=manager) == {"delegate_id"}
        db.session.rollback()
        approvals.set_delegation(sup_east, sup_south, TODAY, TODAY + timedelta(days=2), "", NOW)
        db.session.commit()
        assert refused(starts_on=TODAY + timedelta(days=2), ends_on=TODAY + timedelta(days=5)) == {
            "starts_on"
        }
        # sup_east is away then: nobody may hand their approvals to sup_east.
        with pytest.raises(ValidationFailed) as away:
            approvals.set_delegation(sup_south, sup_east, TODAY, TODAY, "", NOW)
        assert set(away.value.fields) == {"delegate_id"}


# -- a rule file change, no code change ------------------------------------------------


def _hr_also_approves_short_leave(text: str) -> str:
    changed = text.replace("- [~, [supervisor]]", "- [~, [supervisor, hr]]").replace(
        "approvers: [supervisor]}", "approvers: [supervisor, hr]}"
    )
    assert changed != text
    return changed


def test_p1_3_4_publishing_a_changed_rule_file_reroutes_without_a_code_change(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        before_id = submit_leave()
        version = load(before_id).rule_version
        source = rules().active("leave_approval").rule_file.source
        rules().publish("leave_approval", _hr_also_approves_short_leave(source), "cli")
        after_id = submit_leave()
        before, after = load(before_id), load(after_id)
        assert route_of(before) == [("sup_east", None, "pending")]
        assert route_of(after) == [("sup_east", None, "pending"), (None, "hr", "waiting")]
        assert after.rule_version == version + 1 and before.rule_version == version
        assert after.rule_sha != before.rule_sha
        assert after.routes == ["supervisor", "hr"]


def test_p1_3_4_a_company_rule_file_in_the_instance_folder_reroutes(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        service = rules()
        default_text = service.file_text("leave_approval")
        text = (
            default_text[1]
            if isinstance(default_text, tuple)
            else service.active("leave_approval").rule_file.source
        )
        version = service.active("leave_approval").version
        target = service.instance_dir() / "leave_approval.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_hr_also_approves_short_leave(text), encoding="utf-8")
        service.refresh(force=True)
        request = load(submit_leave())
        assert request.rule_version == version + 1
        assert route_of(request) == [("sup_east", None, "pending"), (None, "hr", "waiting")]


def test_p1_3_4_a_returned_request_is_rerouted_by_the_rule_file_in_force_now(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        request_id = submit_leave()
        approvals.act(load(request_id), user("sup_east"), "return", "Dates?", now=NOW)
        db.session.commit()
        source = rules().active("leave_approval").rule_file.source
        rules().publish("leave_approval", _hr_also_approves_short_leave(source), "cli")
        approvals.resubmit(load(request_id), user("li"), now=NOW)
        db.session.commit()
        request = load(request_id)
        assert [(s.round, s.route, s.status) for s in request.steps] == [
            (1, "supervisor", "returned"),
            (2, "supervisor", "pending"),
            (2, "hr", "waiting"),
        ]
        assert request.rule_version == rules().active("leave_approval").version


# -- pages -----------------------------------------------------------------------------


def test_p1_3_2_pages_show_the_boxes_the_explanation_and_the_timeline(
    app: Any, people: dict[str, int], client: Any, login: Any
) -> None:
    with app.app_context():
        request_id = submit_leave()
    login(client, "sup_east")
    page = client.get("/approvals/").get_data(as_text=True)
    assert "Leave in March" in page and 'data-testid="waiting-count"' in page
    detail = client.get(f"/approvals/{request_id}")
    assert detail.status_code == 200
    text = detail.get_data(as_text=True)
    assert "leave_approval" in text and "by-length#2" in text
    assert 'data-testid="action-form"' in text
    assert 'href="/appr/leave/7"' in text
    assert 'data-testid="why-link"' not in text  # no core.rules.read
    # The requester sees where it stands but gets no decision form.
    requester = app.test_client()
    login(requester, "li")
    mine = requester.get("/approvals/?box=mine&status=pending").get_data(as_text=True)
    assert "Leave in March" in mine
    assert "Leave in March" not in requester.get("/approvals/?box=mine&status=approved").get_data(
        as_text=True
    )
    own = requester.get(f"/approvals/{request_id}").get_data(as_text=True)
    assert 'data-testid="action-form"' not in own and 'data-testid="cancel"' in own
    # An admin may follow the link to the stored decisions.
    admin = app.test_client()
    login(admin, "admin")
    admin_view = admin.get(f"/approvals/{request_id}").get_data(as_text=True)
    assert f"/admin/rules/decisions/core_approval_request/{request_id}" in admin_view
    why = admin.get(f"/admin/rules/decisions/core_approval_request/{request_id}")
    assert why.status_code == 200 and "by-length" in why.get_data(as_text=True)


def statements_of(app: Any, client: Any, url: str) -> list[str]:
    """The SQL statements one page costs (its status must be 200)."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(url).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return seen


def test_p1_3_2_approval_pages_cost_the_same_statements_for_one_request_or_many(
    app: Any, people: dict[str, int], client: Any, login: Any
) -> None:
    """No N+1: the boxes and a request's page with its timeline (approvers, who acted,
    for whom, pools, rounds) cost as many statements for one row or step as for many."""

    def decided_by_sup_east(title: str) -> int:
        """A request sup_east approved the first step of (the manager's turn now)."""
        request_id = submit_leave("wang", facts=LONG_LEAVE, title=title)
        approvals.act(load(request_id), user("sup_east"), "approve", now=NOW)
        db.session.commit()
        return request_id

    with app.app_context():
        decided_by_sup_east("Decided 0")
        submit_leave("li", title="Waiting 0")
        submit_leave("sup_east", title="Mine 0")
        approvals.set_delegation(user("sup_east"), user("sup_south"), TODAY, TODAY, "", NOW)
        db.session.commit()
        shown = submit_leave("wang", facts=LONG_LEAVE, title="Shown")
        approvals.act(load(shown), user("sup_south"), "approve", "for sup_east", now=NOW)
        db.session.commit()
    login(client, "sup_east")
    urls = ["/approvals/", "/approvals/?box=mine", "/approvals/?box=decided"]

    def costs() -> list[int]:
        return [len(statements_of(app, client, url)) for url in [*urls, f"/approvals/{shown}"]]

    def rows(url: str) -> int:
        return client.get(url).get_data(as_text=True).count('data-testid="approval-row"')

    assert [rows(url) for url in urls] == [1, 1, 1]
    before = costs()
    with app.app_context():
        for number in range(1, 6):
            decided_by_sup_east(f"Decided {number}")
            submit_leave("li", title=f"Waiting {number}")
            submit_leave("sup_east", title=f"Mine {number}")
        # More steps, rounds and people on the one request's page.
        approvals.act(load(shown), user("manager"), "return", "Too long", now=NOW)
        db.session.commit()
        approvals.resubmit(load(shown), user("wang"), now=NOW)
        approvals.act(load(shown), user("sup_east"), "approve", now=NOW)
        approvals.act(load(shown), user("manager"), "approve", now=NOW)
        db.session.commit()
        assert [s.status for s in load(shown).steps] == [
            "approved",
            "returned",
            "skipped",
            "approved",
            "approved",
            "pending",
        ]
    assert [rows(url) for url in urls] == [6, 6, 7]  # sup_east decided "Shown" too
    assert costs() == before


def test_p1_3_2_the_bell_is_one_count(app: Any, people: dict[str, int], login: Any) -> None:
    client = app.test_client()
    login(client, "li")
    with app.app_context():
        for number in range(5):
            approvals.notify(people["li"], "core.loop_assigned", f"n{number}")
        db.session.commit()
    seen = statements_of(app, client, "/notifications/bell")
    about_notifications = [sql for sql in seen if "core_notification" in sql]
    assert len(about_notifications) == 1 and "count(" in about_notifications[0].lower()


def test_p1_3_2_web_actions_redirect_and_a_second_click_is_409(
    app: Any, people: dict[str, int], client: Any, login: Any
) -> None:
    with app.app_context():
        request_id = submit_leave()
    login(client, "sup_east")
    done = client.post(f"/approvals/{request_id}/act", data={"action": "approve"})
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/approvals/{request_id}")
    again = client.post(f"/approvals/{request_id}/act", data={"action": "approve"})
    assert again.status_code == 409
    assert "already decided" in again.get_data(as_text=True)
    boosted = client.post(
        f"/approvals/{request_id}/act", data={"action": "approve"}, headers={"HX-Request": "true"}
    )
    assert boosted.status_code == 409 and boosted.headers["HX-Location"].endswith(
        f"/approvals/{request_id}"
    )
    decided = client.get("/approvals/?box=decided").get_data(as_text=True)
    assert decided.count('data-testid="approval-row"') == 1 and "Leave in March" in decided
    assert "Leave in March" not in client.get("/approvals/").get_data(as_text=True)
    with app.app_context():
        assert decided_log == [(request_id, "approved")]


def test_p1_3_2_web_reject_without_comment_is_422_with_the_field_message(
    app: Any, people: dict[str, int], client: Any, login: Any
) -> None:
    with app.app_context():
        request_id = submit_leave()
    login(client, "sup_east")
    refused = client.post(f"/approvals/{request_id}/act", data={"action": "reject", "comment": ""})
    assert refused.status_code == 422
    assert "a comment is required" in refused.get_data(as_text=True)
    with app.app_context():
        assert load(request_id).status == "pending"
    rejected = client.post(
        f"/approvals/{request_id}/act", data={"action": "reject", "comment": "No cover"}
    )
    assert rejected.status_code == 303


def test_p2_web_out_of_scope_is_404_and_not_your_step_is_403(
    app: Any, people: dict[str, int], client: Any, login: Any
) -> None:
    with app.app_context():
        request_id = submit_leave()
    for name in ("sup_south", "wang"):
        other = app.test_client()
        login(other, name)
        assert other.get(f"/approvals/{request_id}").status_code == 404
        assert (
            other.post(f"/approvals/{request_id}/act", data={"action": "approve"}).status_code
            == 404
        )
    manager = app.test_client()
    login(manager, "manager")  # reads everything, but the step is sup_east's
    assert manager.get(f"/approvals/{request_id}").status_code == 200
    assert (
        manager.post(f"/approvals/{request_id}/act", data={"action": "approve"}).status_code == 403
    )
    # Not their step: 403 before any complaint about the missing comment (API alike).
    assert (
        manager.post(f"/approvals/{request_id}/act", data={"action": "reject"}).status_code == 403
    )
    assert (
        manager.post(f"/approvals/{request_id}/own", data={"action": "cancel"}).status_code == 403
    )
    assert manager.get("/approvals/999999").status_code == 404
    with app.app_context():
        assert load(request_id).status == "pending"


def test_p1_3_2_web_requester_cancels_and_resubmits(
    app: Any, people: dict[str, int], client: Any, login: Any
) -> None:
    with app.app_context():
        request_id = submit_leave()
        approvals.act(load(request_id), user("sup_east"), "return", "Which days?", now=NOW)
        db.session.commit()
    login(client, "li")
    page = client.get(f"/approvals/{request_id}").get_data(as_text=True)
    assert 'data-testid="resubmit"' in page and "Which days?" in page
    assert (
        client.post(f"/approvals/{request_id}/own", data={"action": "resubmit"}).status_code == 303
    )
    with app.app_context():
        assert load(request_id).status == "pending" and load(request_id).round == 2
    assert client.post(f"/approvals/{request_id}/own", data={"action": "cancel"}).status_code == 303
    with app.app_context():
        assert load(request_id).status == "cancelled"
    assert client.post(f"/approvals/{request_id}/own", data={"action": "cancel"}).status_code == 409


def test_p1_3_2_delegation_page_creates_refuses_and_ends(
    app: Any, people: dict[str, int], client: Any, login: Any
) -> None:
    login(client, "sup_east")
    page = client.get("/approvals/delegations")
    assert page.status_code == 200 and 'data-testid="delegation-form"' in page.get_data(
        as_text=True
    )
    start = date.today() + timedelta(days=1)
    refused = client.post(
        "/approvals/delegations",
        data={
            "delegate_id": people["sup_east"],
            "starts_on": start.isoformat(),
            "ends_on": (start - timedelta(days=1)).isoformat(),
        },
    )
    assert refused.status_code == 422
    for garbage in (
        {"delegate_id": "abc", "starts_on": "2025-13-45", "ends_on": "tomorrow"},
        {"delegate_id": str(10**30), "starts_on": "9999-12-31", "ends_on": "9999-12-31"},
        {"delegate_id": people["zhao"], "starts_on": start.isoformat()},  # not a choice
    ):
        assert client.post("/approvals/delegations", data=garbage).status_code == 422, garbage
    created = client.post(
        "/approvals/delegations",
        data={
            "delegate_id": people["li"],
            "starts_on": start.isoformat(),
            "ends_on": (start + timedelta(days=3)).isoformat(),
            "reason": "Annual leave",
        },
    )
    assert created.status_code == 303
    with app.app_context():
        (delegation,) = db.session.scalars(sa.select(Delegation)).all()
        delegation_id = delegation.id
    listed = client.get("/approvals/delegations").get_data(as_text=True)
    assert "Annual leave" in listed and 'data-testid="end-delegation"' in listed
    stranger = app.test_client()
    login(stranger, "zhao")
    assert stranger.post(f"/approvals/delegations/{delegation_id}/end").status_code == 404
    standin = app.test_client()
    login(standin, "li")
    assert "Sup_East" in standin.get("/approvals/delegations").get_data(as_text=True)
    ended = client.post(f"/approvals/delegations/{delegation_id}/end")
    assert ended.status_code == 303
    with app.app_context():
        assert db.session.get(Delegation, delegation_id).ended_at is not None


# -- API -------------------------------------------------------------------------------


def test_p1_3_2_api_lists_shows_and_acts_with_the_same_rules(
    app: Any, people: dict[str, int], api_token: Any
) -> None:
    with app.app_context():
        request_id = submit_leave(facts=MEDIUM_LEAVE)
    client = app.test_client()
    sup = {"Authorization": f"Bearer {api_token('sup_east')}"}
    mgr = {"Authorization": f"Bearer {api_token('manager')}"}
    south = {"Authorization": f"Bearer {api_token('sup_south')}"}

    listed = client.get("/api/v1/approvals", headers=sup).get_json()
    assert [item["id"] for item in listed["items"]] == [request_id] and listed["total"] == 1
    one = client.get(f"/api/v1/approvals/{request_id}", headers=sup).get_json()
    assert one["can_act"] is True
    assert one["explanation"]["ruleset"] == "leave_approval"
    assert one["explanation"]["rule"] == "by-length#1"
    assert [s["status"] for s in one["steps"]] == ["pending", "waiting"]
    assert client.get(f"/api/v1/approvals/{request_id}", headers=south).status_code == 404

    url = f"/api/v1/approvals/{request_id}/actions"
    not_yet = client.post(url, json={"action": "approve"}, headers=mgr)
    assert not_yet.status_code == 403 and not_yet.get_json()["error"]["code"] == "forbidden"
    assert client.post(url, json={"action": "reject"}, headers=mgr).status_code == 403
    no_comment = client.post(url, json={"action": "reject"}, headers=sup)
    assert no_comment.status_code == 422
    assert "comment" in no_comment.get_json()["error"]["fields"]
    bad = client.post(url, json={"action": "approve", "extra": 1}, headers=sup)
    assert bad.status_code == 400
    for wrong in ({"action": 1}, {"action": ["approve"]}, {"action": "maybe"}, {"action": None}):
        assert client.post(url, json=wrong, headers=sup).status_code == 422, wrong
    wrong_comment = client.post(url, json={"action": "reject", "comment": {"a": 1}}, headers=sup)
    assert wrong_comment.status_code == 422
    assert (
        client.post(url, data="[]", headers=sup | {"Content-Type": "application/json"}).status_code
        == 400
    )
    assert client.post(url, json={"action": "approve"}, headers=south).status_code == 404

    approved = client.post(url, json={"action": "approve", "comment": "ok"}, headers=sup)
    assert approved.status_code == 200
    assert [s["status"] for s in approved.get_json()["steps"]] == ["approved", "pending"]
    twice = client.post(url, json={"action": "approve"}, headers=sup)
    assert twice.status_code == 403  # no longer their step
    done = client.post(url, json={"action": "approve"}, headers=mgr)
    assert done.status_code == 200 and done.get_json()["status"] == "approved"
    again = client.post(url, json={"action": "approve"}, headers=mgr)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"

    mine = client.get(
        "/api/v1/approvals?box=mine",
        headers={"Authorization": f"Bearer {api_token('li')}"},
    ).get_json()
    assert [item["status"] for item in mine["items"]] == ["approved"]
    assert client.get("/api/v1/approvals?box=everything", headers=sup).status_code == 400
    decided = client.get("/api/v1/approvals?box=decided", headers=mgr).get_json()
    assert [item["id"] for item in decided["items"]] == [request_id]

    spec = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "get" in spec["/api/v1/approvals"]
    assert "post" in spec["/api/v1/approvals/{request_id}/actions"]
    body = spec["/api/v1/approvals/{request_id}/actions"]["post"]["requestBody"]
    assert "action" in body["content"]["application/json"]["schema"]["properties"]


# -- in a real browser -----------------------------------------------------------------


@pytest.fixture
def approvals_server(make_live_server: Any, people: dict[str, int]) -> Any:
    """The portal with the approval kinds, served with CSRF on and the strict CSP."""
    return make_live_server(plugins=[("appr", PLUGIN)])


@pytest.mark.browser
def test_p1_3_2_browser_return_needs_a_comment_then_the_requester_sends_it_again(
    approvals_server: Any, page: Any
) -> None:
    import tempfile
    from pathlib import Path

    expect = pytest.importorskip("playwright.sync_api").expect
    with approvals_server.app.app_context():
        request_id = submit_leave(facts=MEDIUM_LEAVE)

    def log_in(username: str) -> None:
        # Leave the page first: a bell poll still in flight would set the cookie again.
        page.goto("about:blank")
        page.context.clear_cookies()
        log_in_page(page, approvals_server, username)

    log_in("sup_east")
    page.goto(approvals_server.url + "/approvals/")
    expect(page.get_by_test_id("waiting-count")).to_have_text("1")
    page.get_by_role("link", name="Leave in March").click()
    expect(page.get_by_test_id("explanation")).to_contain_text("by-length#1")
    expect(page.get_by_test_id("step")).to_have_count(2)

    # Returning without a comment: htmx posts (CSRF header), the 422 shows the message.
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_test_id("return").click()
    assert posted.value.status == 422
    assert posted.value.request.headers.get("x-csrftoken")
    expect(page.locator("#comment ~ .invalid-feedback")).to_contain_text("a comment is required")
    page.locator("#comment").fill("Please split it in two")
    page.get_by_test_id("return").click()
    expect(page.get_by_test_id("request-status")).to_have_text("Returned for changes")
    expect(page.get_by_role("status")).to_contain_text("You returned it for changes.")
    expect(page.get_by_test_id("action-form")).to_have_count(0)

    log_in("li")
    page.goto(approvals_server.url + f"/approvals/{request_id}")
    expect(page.get_by_test_id("timeline")).to_contain_text("Please split it in two")
    page.get_by_test_id("resubmit").click()
    expect(page.get_by_test_id("request-status")).to_have_text("Pending")
    expect(page.get_by_test_id("step")).to_have_count(4)  # round 1 kept, round 2 added
    shots = Path(tempfile.gettempdir()) / "salesloop-screenshots"
    page.screenshot(path=shots / "approval-detail.png", full_page=True)
    expected_422 = "the server responded with a status of 422"
    assert [e for e in page.console_errors if expected_422 not in e] == []
