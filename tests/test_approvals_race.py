"""The double-approval race (P1.3.2: "concurrent clicks by two approvers can never
approve twice or skip a step").

Two approvers act on the same pending step at the same moment, each with a session of
its own: exactly one succeeds, the other gets StateConflict, the request moves on by
exactly one step and the plugin hears of the outcome once. Threads on whichever
database the suite runs on; separate processes on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from portal.auth.models import User
from portal.extensions import db
from portal.loops import approvals
from portal.loops.errors import StateConflict
from portal.loops.models import ApprovalRequest, Notification
from portal.plugins.types import ApprovalKind
from portal.settings import Setting
from portal.testing import base_config, throwaway_plugin

NOW = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)
TODAY = date(2025, 3, 10)
MEDIUM_LEAVE = {"leave_type": "annual", "days": 5, "days_in_advance": 14, "balance_days": 10}
LONG_LEAVE = {"leave_type": "personal", "days": "10.5", "days_in_advance": 14}
ROUNDS = 5


def _on_decided(request: ApprovalRequest) -> None:
    # A row per call (never a clash), so a second call would show as a second row.
    db.session.add(Setting(key=f"race.outcome.{request.id}.{uuid.uuid4().hex}", value="1"))


PLUGIN = throwaway_plugin(
    "race",
    portal_approval_kinds=lambda: [
        ApprovalKind("race.leave", "Leave", ruleset="leave_approval", on_decided=_on_decided)
    ],
)


@pytest.fixture
def app(make_app: Any) -> Any:
    return make_app(plugins=[("race", PLUGIN)])


@pytest.fixture
def people(org: dict[str, int], make_person: Any) -> dict[str, int]:
    ids = dict(org)
    ids["hr1"] = make_person("hr1", roles=["hr"], unit=org["company"])
    ids["hr2"] = make_person("hr2", roles=["hr"], unit=org["company"])
    return ids


def user(name: str) -> User:
    return db.session.scalars(sa.select(User).where(User.username == name)).one()


def submit(facts: dict[str, Any], title: str = "Leave") -> int:
    request = approvals.submit("race.leave", title, user("li"), facts, now=NOW)
    db.session.commit()
    return request.id


def outcome_rows(request_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Setting)
        .where(Setting.key.startswith(f"race.outcome.{request_id}.", autoescape=True))
    )


def told(person: int, request_id: int, kind: str) -> int:
    """How many notifications of ``kind`` about the request ``person`` got."""
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Notification)
        .where(
            Notification.user_id == person,
            Notification.kind == kind,
            Notification.link == f"/approvals/{request_id}",
        )
    )


def steps_of(request_id: int) -> list[tuple[str, int | None]]:
    db.session.expire_all()
    request = db.session.get(ApprovalRequest, request_id)
    return [(step.status, step.acted_by_id) for step in request.steps]


def click(
    app: Any, request_id: int, who: str, barrier: Any, results: list[str], action: str = "approve"
) -> None:
    """One person's click, in a thread with its own app context and session: an
    approver's decision, or the requester's ``cancel`` or ``resubmit``."""
    with app.app_context():
        try:
            request = db.session.get(ApprovalRequest, request_id)
            actor = user(who)
            # Both saw it open: pending, or returned for the requester to send again.
            assert request.status in ("pending", "returned") and request.steps
            barrier.wait(timeout=30)
            if action == "cancel":
                approvals.cancel(request, actor, now=NOW)
            elif action == "resubmit":
                approvals.resubmit(request, actor, now=NOW)
            else:
                approvals.act(request, actor, action, "mine", now=NOW)
            db.session.commit()
            results.append(action)
        except StateConflict:
            db.session.rollback()
            results.append("conflict")
        except Exception as error:  # anything else is a failure of the test
            db.session.rollback()
            results.append(f"{type(error).__name__}: {error}")
        finally:
            db.session.remove()


def race(
    app: Any, request_id: int, first: str, second: str, actions: tuple[str, str] = ("approve",) * 2
) -> list[str]:
    barrier = threading.Barrier(2)
    results: list[str] = []
    threads = [
        threading.Thread(target=click, args=(app, request_id, name, barrier, results, action))
        for name, action in zip((first, second), actions, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(results)


def test_p1_3_2_approver_and_delegate_clicking_at_once_advance_one_step(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        approvals.set_delegation(user("sup_east"), user("sup_south"), TODAY, TODAY, "", NOW)
        db.session.commit()
        ids = [submit(MEDIUM_LEAVE, f"Leave {n}") for n in range(ROUNDS)]
    for request_id in ids:
        assert race(app, request_id, "sup_east", "sup_south") == ["approve", "conflict"]
        with app.app_context():
            (first, by), second = steps_of(request_id)
            assert first == "approved" and by in (people["sup_east"], people["sup_south"])
            # Exactly one step further: the manager's turn, not skipped, not approved.
            assert second == ("pending", None)
            request = db.session.get(ApprovalRequest, request_id)
            assert request.status == "pending" and request.current_position == 2
            assert outcome_rows(request_id) == 0
            assert told(people["manager"], request_id, "core.approval_waiting") == 1


def test_p1_3_2_two_pool_members_on_the_last_step_approve_once(
    app: Any, people: dict[str, int]
) -> None:
    with app.app_context():
        ids = []
        for number in range(ROUNDS):
            request_id = submit(LONG_LEAVE, f"Long {number}")
            for name in ("sup_east", "manager"):
                approvals.act(
                    db.session.get(ApprovalRequest, request_id), user(name), "approve", now=NOW
                )
                db.session.commit()
            ids.append(request_id)
    for request_id in ids:
        assert race(app, request_id, "hr1", "hr2") == ["approve", "conflict"]
        with app.app_context():
            request = db.session.get(ApprovalRequest, request_id)
            assert request.status == "approved"
            assert [s for s, _ in steps_of(request_id)] == ["approved"] * 3
            assert outcome_rows(request_id) == 1  # on_decided ran once
            assert told(people["li"], request_id, "core.approval_decided") == 1


def test_p1_3_2_return_against_approve_and_cancel_against_approve_one_outcome_each(
    app: Any, people: dict[str, int]
) -> None:
    """Different actions on the same step at once: exactly one wins, the request ends in
    the winner's state and the plugin hears of a final outcome at most once."""
    with app.app_context():
        approvals.set_delegation(user("sup_east"), user("sup_south"), TODAY, TODAY, "", NOW)
        db.session.commit()
        returned = [submit(MEDIUM_LEAVE, f"Return {n}") for n in range(ROUNDS)]
        cancelled = [submit(MEDIUM_LEAVE, f"Cancel {n}") for n in range(ROUNDS)]
    for request_id in returned:
        outcome = race(app, request_id, "sup_east", "sup_south", ("return", "approve"))
        assert outcome in (["approve", "conflict"], ["conflict", "return"])
        with app.app_context():
            request = db.session.get(ApprovalRequest, request_id)
            if outcome[0] == "approve":
                assert (request.status, request.current_position) == ("pending", 2)
                assert [s for s, _ in steps_of(request_id)] == ["approved", "pending"]
                assert outcome_rows(request_id) == 0
            else:
                assert request.status == "returned"
                assert [s for s, _ in steps_of(request_id)] == ["returned", "skipped"]
                assert outcome_rows(request_id) == 1
    for request_id in cancelled:
        outcome = race(app, request_id, "li", "sup_east", ("cancel", "approve"))
        assert outcome in (["approve", "conflict"], ["cancel", "conflict"])
        with app.app_context():
            request = db.session.get(ApprovalRequest, request_id)
            if outcome[0] == "approve":
                assert request.status == "pending"
                assert [s for s, _ in steps_of(request_id)] == ["approved", "pending"]
                assert outcome_rows(request_id) == 0
            else:
                assert request.status == "cancelled"
                assert [s for s, _ in steps_of(request_id)] == ["skipped", "skipped"]
                assert outcome_rows(request_id) == 1


def test_p1_3_2_sending_a_returned_request_again_twice_at_once_opens_one_round(
    app: Any, people: dict[str, int]
) -> None:
    """A double click (two tabs) on "send again": one new round, the other a conflict."""
    with app.app_context():
        ids = []
        for number in range(ROUNDS):
            request_id = submit(MEDIUM_LEAVE, f"Again {number}")
            request = db.session.get(ApprovalRequest, request_id)
            approvals.act(request, user("sup_east"), "return", "Dates?", now=NOW)
            db.session.commit()
            ids.append(request_id)
    for request_id in ids:
        assert race(app, request_id, "li", "li", ("resubmit", "resubmit")) == [
            "conflict",
            "resubmit",
        ]
        with app.app_context():
            request = db.session.get(ApprovalRequest, request_id)
            assert (request.status, request.round) == ("pending", 2)
            assert [(s.round, s.status) for s in request.steps] == [
                (1, "returned"),
                (1, "skipped"),
                (2, "pending"),
                (2, "waiting"),
            ]


def test_p1_3_2_a_page_loaded_before_someone_else_decided_gets_a_conflict(
    app: Any, people: dict[str, int]
) -> None:
    """Deterministic interleaving: both sessions load the pending request; one commits
    its approval; the other's click is a conflict (not 'not allowed'), nothing written."""
    with app.app_context():
        approvals.set_delegation(user("sup_east"), user("sup_south"), TODAY, TODAY, "", NOW)
        db.session.commit()
        request_id = submit(MEDIUM_LEAVE)
    with app.app_context():
        late = db.session.get(ApprovalRequest, request_id)
        late_actor = user("sup_south")
        assert approvals.can_act(late, late_actor, NOW)
        with app.app_context():  # another session: the first click wins
            approvals.act(
                db.session.get(ApprovalRequest, request_id), user("sup_east"), "approve", now=NOW
            )
            db.session.commit()
        with pytest.raises(StateConflict):
            approvals.act(late, late_actor, "approve", now=NOW)
        db.session.rollback()
    with app.app_context():
        assert steps_of(request_id) == [("approved", people["sup_east"]), ("pending", None)]


# -- two processes on PostgreSQL -----------------------------------------------------


def _is_postgres() -> bool:
    return "postgresql" in os.environ.get("TEST_DATABASE_URL", "")


def _process_click(
    url: str,
    instance: str,
    request_id: int,
    username: str,
    start: Any,
    acted: Any,
    commit_now: Any,
    results: Any,
) -> None:
    """One approver in a process of its own: its own app, engine and connection."""
    from portal import create_app

    config = base_config(url, Path(instance))
    config["PORTAL_EXTRA_PLUGINS"] = [("race", PLUGIN)]
    app = create_app(config)
    outcome = "not run"
    with app.app_context():
        try:
            request = db.session.get(ApprovalRequest, request_id)
            actor = user(username)
            assert request.status == "pending"
            if start is not None:
                start.wait(timeout=60)
            approvals.act(request, actor, "approve", now=NOW)
            if acted is not None:
                acted.set()  # the step is claimed; the transaction is still open
            if commit_now is not None:
                commit_now.wait(timeout=60)
            db.session.commit()
            outcome = "approve"
        except StateConflict:
            db.session.rollback()
            outcome = "conflict"
        except Exception as error:
            db.session.rollback()
            outcome = f"{type(error).__name__}: {error}"
        finally:
            db.session.remove()
            db.engine.dispose()
    results.put((username, outcome))


def _run(processes: list[Any]) -> None:
    for process in processes:
        process.start()


def _join(processes: list[Any], results: Any) -> list[str]:
    outcomes = dict(results.get(timeout=90) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    return sorted(outcomes.values())


@pytest.mark.postgres_only
def test_p1_3_2_two_processes_on_postgresql_approve_exactly_once(
    app: Any, people: dict[str, int], tmp_path: Path
) -> None:
    if not _is_postgres():
        pytest.skip("needs TEST_DATABASE_URL=postgresql://...")
    url = os.environ["TEST_DATABASE_URL"]
    with app.app_context():
        approvals.set_delegation(user("sup_east"), user("sup_south"), TODAY, TODAY, "", NOW)
        db.session.commit()
        ids = [submit(MEDIUM_LEAVE, f"Leave {n}") for n in range(ROUNDS)]
        db.engine.dispose()  # children must not inherit open connections
    context = multiprocessing.get_context("fork")
    for request_id in ids:
        start, results = context.Barrier(2), context.Queue()
        processes = [
            context.Process(
                target=_process_click,
                args=(url, str(tmp_path), request_id, name, start, None, None, results),
            )
            for name in ("sup_east", "sup_south")
        ]
        _run(processes)
        assert _join(processes, results) == ["approve", "conflict"]
        with app.app_context():
            (first, _by), second = steps_of(request_id)
            assert first == "approved" and second == ("pending", None)
            assert db.session.get(ApprovalRequest, request_id).current_position == 2


@pytest.mark.postgres_only
def test_p1_3_2_on_postgresql_the_second_click_waits_for_the_first_and_conflicts(
    app: Any, people: dict[str, int], tmp_path: Path
) -> None:
    """The second process really runs into the first's open transaction: it waits on
    the step's row lock (seen in pg_stat_activity) and, once the first commits, finds
    the step no longer pending."""
    if not _is_postgres():
        pytest.skip("needs TEST_DATABASE_URL=postgresql://...")
    url = os.environ["TEST_DATABASE_URL"]
    with app.app_context():
        approvals.set_delegation(user("sup_east"), user("sup_south"), TODAY, TODAY, "", NOW)
        db.session.commit()
        request_id = submit(MEDIUM_LEAVE)
        db.engine.dispose()
    context = multiprocessing.get_context("fork")
    acted, commit_now, results = context.Event(), context.Event(), context.Queue()
    first = context.Process(
        target=_process_click,
        args=(url, str(tmp_path), request_id, "sup_east", None, acted, commit_now, results),
    )
    second = context.Process(
        target=_process_click,
        args=(url, str(tmp_path), request_id, "sup_south", None, None, None, results),
    )
    first.start()
    assert acted.wait(timeout=60)
    second.start()
    with app.app_context():
        waiting = 0
        for _attempt in range(600):  # until the second process blocks on the row lock
            waiting = db.session.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            )
            db.session.rollback()
            if waiting:
                break
            time.sleep(0.05)
        assert waiting == 1
        commit_now.set()
        assert _join([first, second], results) == ["approve", "conflict"]
        assert steps_of(request_id) == [("approved", people["sup_east"]), ("pending", None)]
        db.engine.dispose()
