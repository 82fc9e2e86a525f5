"""Scheduled sweeps (P1.3.2: overdue items escalate and reminders go out on time, once):
the database lease lets any number of threads, workers and cron runs share the jobs."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from portal.audit.models import AuditEvent
from portal.auth.models import User
from portal.extensions import db
from portal.loops import scheduler
from portal.loops.models import JobState
from portal.models import as_utc, utcnow
from portal.plugins import Job
from portal.testing import throwaway_plugin

HOUR = 3600


class Tick:
    """A plugin with a counting job, a failing job and one that writes a record."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.lock = threading.Lock()
        self.person_id: int | None = None
        self.gate: threading.Event | None = None  # when set: count waits for it

    def count(self) -> str:
        if self.gate is not None:
            self.gate.wait(30)
        with self.lock:
            self.runs.append("count")
            return f"run {len(self.runs)}"

    def explode(self) -> None:
        raise RuntimeError("boom: the sweep broke")

    def touch(self) -> None:
        if self.person_id is not None:
            db.session.get(User, self.person_id).title = "touched by a job"

    def plugin(self) -> Any:
        def jobs() -> list[Job]:
            return [
                Job("tick.count", self.count, every_seconds=HOUR, description="count"),
                Job("tick.explode", self.explode, every_seconds=HOUR, description="fails"),
                Job("tick.touch", self.touch, every_seconds=HOUR, description="writes"),
            ]

        return throwaway_plugin("tick", portal_jobs=jobs)


@pytest.fixture
def tick() -> Tick:
    return Tick()


@pytest.fixture
def tick_app(make_app: Any, tick: Tick) -> Any:
    return make_app(plugins=[("tick", tick.plugin())])


def state_of(app: Any, name: str) -> JobState:
    with app.app_context():
        state = db.session.get(JobState, name)
        db.session.expunge_all()
        return state


def test_p1_3_2_a_job_runs_once_when_two_threads_ask_at_the_same_moment(
    tick_app: Any, tick: Tick
) -> None:
    now = utcnow()
    barrier = threading.Barrier(2)
    results: list[list[Any]] = []
    # The job holds on until the other thread has had its go: the runs truly overlap.
    tick.gate = threading.Event()

    def worker() -> None:
        with tick_app.app_context():
            barrier.wait()
            results.append(scheduler.run_due(now=now, names=["tick.count"]))
            tick.gate.set()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert tick.runs == ["count"]
    assert sorted(len(batch) for batch in results) == [0, 1]  # one claimed, one did not
    state = state_of(tick_app, "tick.count")
    assert state.run_count == 1 and state.last_status == "ok" and state.last_result == "run 1"
    assert state.lease_owner is None and state.lease_until is None
    assert as_utc(state.next_run_at) == now + timedelta(seconds=HOUR)
    tick.gate = None
    with tick_app.app_context():
        # Not again before its period (frozen clock) ...
        assert scheduler.run_due(now=now + timedelta(minutes=59), names=["tick.count"]) == []
        assert tick.runs == ["count"]
        # ... and again once it has passed.
        [result] = scheduler.run_due(now=now + timedelta(minutes=61), names=["tick.count"])
    assert result.status == "ok" and tick.runs == ["count", "count"]


def test_p1_3_2_of_many_claims_at_the_same_moment_exactly_one_wins(tick_app: Any) -> None:
    now = utcnow()
    with tick_app.app_context():
        scheduler.ensure_job_states(now, ["tick.count"])
    barrier = threading.Barrier(6)
    won: list[str] = []

    def claimant(owner: str) -> None:
        with tick_app.app_context():
            barrier.wait()
            if scheduler.claim("tick.count", owner, now):
                won.append(owner)

    threads = [threading.Thread(target=claimant, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(won) == 1
    assert state_of(tick_app, "tick.count").lease_owner == won[0]


def test_p1_3_2_a_failing_job_records_its_error_and_the_others_still_run(
    tick_app: Any, tick: Tick
) -> None:
    now = utcnow()
    with tick_app.app_context():
        results = scheduler.run_due(now=now, names=["tick.explode", "tick.count"])
    by_name = {result.name: result for result in results}
    assert by_name["tick.explode"].status == "error"
    assert "boom: the sweep broke" in by_name["tick.explode"].detail
    assert by_name["tick.count"].status == "ok" and tick.runs == ["count"]
    failed = state_of(tick_app, "tick.explode")
    assert failed.last_status == "error" and "RuntimeError: boom" in failed.last_result
    assert failed.lease_until is None  # the lease is released after a failure too
    assert as_utc(failed.next_run_at) == now + timedelta(seconds=HOUR)


def test_p1_3_2_every_declared_job_is_considered_and_core_jobs_are_declared(
    tick_app: Any, tick: Tick
) -> None:
    with tick_app.app_context():
        results = scheduler.run_due()
        names = {info.name for info in scheduler.job_states()}
    assert {"core.send_emails", "core.escalate_overdue_loops", "core.remind_due_loops"} <= names
    assert {result.name for result in results} == names  # all due on a fresh database
    assert tick.runs == ["count"]
    with tick_app.app_context():
        assert scheduler.run_due() == []  # nothing is due a moment later


def test_p6_3_a_job_writes_in_the_audit_log_as_the_job(
    tick_app: Any, tick: Tick, make_person: Any
) -> None:
    tick.person_id = make_person("li")
    with tick_app.app_context():
        [result] = scheduler.run_due(names=["tick.touch"])
        assert result.status == "ok"
        event = db.session.scalars(
            sa.select(AuditEvent).where(
                AuditEvent.table_name == "core_user", AuditEvent.action == "update"
            )
        ).one()
    assert event.actor == "job:tick.touch" and event.after["title"] == "touched by a job"


def test_p1_3_2_run_job_runs_when_due_or_forced_but_never_beside_a_held_lease(
    tick_app: Any, tick: Tick
) -> None:
    now = utcnow()
    with tick_app.app_context():
        assert scheduler.run_job("tick.count", now=now).status == "ok"
        assert scheduler.run_job("tick.count", now=now).status == "not_due"
        assert scheduler.run_job("tick.count", force=True, now=now).status == "ok"
        assert tick.runs == ["count", "count"]
        # Someone else holds the lease (a long run in another worker).
        assert scheduler.claim("tick.count", "other-worker", now, force=True)
        busy = scheduler.run_job("tick.count", force=True, now=now)
        assert busy.status == "busy" and "other-worker" in busy.detail
        # Its lease ran out (the worker died): the job is free again.
        lease = timedelta(seconds=tick_app.config["SCHEDULER_LEASE_SECONDS"] + 1)
        assert scheduler.run_job("tick.count", force=True, now=now + lease).status == "ok"
    assert tick.runs == ["count", "count", "count"]


def test_p1_3_2_a_job_running_longer_than_its_lease_keeps_it_and_never_runs_twice(
    make_app: Any, tick: Tick
) -> None:
    app = make_app(plugins=[("tick", tick.plugin())], SCHEDULER_LEASE_SECONDS=1)
    lease = timedelta(seconds=1)
    now = utcnow()
    tick.gate = threading.Event()
    results: list[Any] = []

    def long_run() -> None:
        with app.app_context():
            results.extend(scheduler.run_due(now=now, names=["tick.count"]))

    thread = threading.Thread(target=long_run)
    thread.start()
    try:
        holder = None
        for _attempt in range(600):  # until the running job has renewed its lease once
            state = state_of(app, "tick.count")
            if state is not None and state.lease_until and as_utc(state.lease_until) > now + lease:
                holder = state.lease_owner
                break
            threading.Event().wait(0.05)
        assert holder is not None
        # The first lease has run out on the claim's clock, but the job is still
        # running: nobody may take it for abandoned.
        after_first_lease = now + lease + timedelta(milliseconds=1)
        with app.app_context():
            assert not scheduler.claim("tick.count", "other-worker", after_first_lease, force=True)
            busy = scheduler.run_job("tick.count", force=True, now=after_first_lease)
        assert busy.status == "busy"
    finally:
        tick.gate.set()
        thread.join(60)
    assert [result.status for result in results] == ["ok"] and tick.runs == ["count"]
    state = state_of(app, "tick.count")
    assert state.lease_owner is None and state.lease_until is None  # freed at the end
    with app.app_context():  # a late renewal cannot take the freed lease back
        assert not scheduler.renew_lease("tick.count", holder, now + lease)


def test_p1_3_2_a_job_interrupted_by_shutdown_frees_its_lease_and_stays_due(
    make_app: Any,
) -> None:
    calls: list[str] = []

    def stopped() -> None:
        calls.append("run")
        if len(calls) == 1:
            raise SystemExit("the worker is shutting down")

    plugin = throwaway_plugin(
        "tick", portal_jobs=lambda: [Job("tick.stopped", stopped, every_seconds=HOUR)]
    )
    app = make_app(plugins=[("tick", plugin)])
    now = utcnow()
    with app.app_context(), pytest.raises(SystemExit):
        scheduler.run_due(now=now, names=["tick.stopped"])
    state = state_of(app, "tick.stopped")
    assert state.lease_owner is None and state.last_result == "interrupted"
    assert as_utc(state.next_run_at) <= now  # not counted as this period's run
    with app.app_context():  # the next round (another worker) runs it at once
        [result] = scheduler.run_due(now=now, names=["tick.stopped"])
    assert result.status == "ok" and calls == ["run", "run"]


def test_p1_3_2_an_unknown_job_name_is_a_clear_error(tick_app: Any) -> None:
    with tick_app.app_context(), pytest.raises(scheduler.UnknownJob) as caught:
        scheduler.run_job("nosuch")
    assert "unknown job 'nosuch'" in str(caught.value) and "tick.count" in str(caught.value)


def test_p1_3_2_cli_run_nosuch_exits_2_with_the_known_names(tick_app: Any) -> None:
    result = tick_app.test_cli_runner().invoke(args=["jobs", "run", "nosuch"])
    assert result.exit_code == 2
    assert "unknown job 'nosuch'" in result.output
    assert "core.send_emails" in result.output and "tick.count" in result.output
    with tick_app.app_context():
        assert db.session.get(JobState, "nosuch") is None  # nothing half-written


def test_p1_3_2_cli_run_a_failing_job_exits_non_zero(tick_app: Any, tick: Tick) -> None:
    runner = tick_app.test_cli_runner()
    failed = runner.invoke(args=["jobs", "run", "tick.explode"])
    assert failed.exit_code == 1
    assert "boom: the sweep broke" in failed.output and "failed" in failed.output
    done = runner.invoke(args=["jobs", "run", "tick.count"])
    assert done.exit_code == 0 and "tick.count: ok" in done.output
    assert tick.runs == ["count"]


def test_p1_3_2_cli_list_and_run_due(tick_app: Any, tick: Tick) -> None:
    runner = tick_app.test_cli_runner()
    before = runner.invoke(args=["jobs", "list"])
    assert before.exit_code == 0
    lines = before.output.splitlines()
    assert lines[0].split()[:4] == ["name", "every", "next", "run"]
    row = next(line for line in lines if line.startswith("tick.count "))
    assert row.split()[1:3] == ["1h", "-"] and "never" in row
    assert any(line.startswith("core.send_emails ") and " 1min " in line for line in lines)
    due = runner.invoke(args=["jobs", "run-due"])
    assert due.exit_code == 1  # tick.explode failed: cron hears about it
    assert "tick.count: ok" in due.output and "tick.explode: error" in due.output
    after = runner.invoke(args=["jobs", "list"]).output.splitlines()
    row = next(line for line in after if line.startswith("tick.count "))
    assert " ok " in row and "UTC" in row
    row = next(line for line in after if line.startswith("tick.explode "))
    assert " error " in row
    again = runner.invoke(args=["jobs", "run-due"])
    assert again.exit_code == 0 and again.output == ""  # nothing due
    assert tick.runs == ["count"]


def test_p1_3_2_cli_enqueue_without_a_queue_is_a_usage_error(tick_app: Any) -> None:
    result = tick_app.test_cli_runner().invoke(args=["jobs", "run-due", "--enqueue"])
    assert result.exit_code == 2 and "PORTAL_QUEUE_URL" in result.output


def test_p1_3_2_the_embedded_scheduler_is_started_only_on_request(
    make_app: Any, tick: Tick
) -> None:
    ran = threading.Event()

    def signal() -> None:
        ran.set()

    plugin = throwaway_plugin(
        "tick", portal_jobs=lambda: [Job("tick.signal", signal, every_seconds=HOUR)]
    )
    app = make_app(plugins=[("tick", plugin)], SCHEDULER_INTERVAL_SECONDS=3600)
    assert "portal_scheduler" not in app.extensions  # create_app starts no thread
    assert not any(thread.name == "portal-scheduler" for thread in threading.enumerate())
    embedded = scheduler.start_embedded_scheduler(app)
    try:
        assert scheduler.start_embedded_scheduler(app) is embedded  # one per process
        assert ran.wait(60)
    finally:
        embedded.stop()
    assert state_of(app, "tick.signal").run_count == 1
    off = make_app(SCHEDULER_EMBEDDED=False)
    assert scheduler.start_embedded_scheduler(off) is None


def test_p1_3_2_portal_run_starts_one_scheduler_but_not_in_the_reloaders_watcher(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import click
    import flask.cli
    from click.testing import CliRunner

    from portal.cli import _run_with_scheduler

    served: list[dict[str, Any]] = []
    real = flask.cli.run_command
    # Flask's own `run` would serve forever: a stand-in with the same options records.
    stand_in = click.Command("run", params=list(real.params), callback=lambda **o: served.append(o))
    monkeypatch.setattr(flask.cli, "run_command", stand_in)
    command = _run_with_scheduler()
    assert [p.name for p in command.params] == [p.name for p in real.params]
    assert "SCHEDULER_EMBEDDED" in (command.help or "")

    app = make_app(SCHEDULER_INTERVAL_SECONDS=3600)
    info = flask.cli.ScriptInfo(create_app=lambda: app)
    # With the reloader, the watching parent starts no scheduler (its child does).
    watched = CliRunner().invoke(command, ["--reload"], obj=info)
    assert watched.exit_code == 0, watched.output
    assert "portal_scheduler" not in app.extensions and len(served) == 1
    plain = CliRunner().invoke(command, ["--no-reload", "--port", "5999"], obj=info)
    assert plain.exit_code == 0, plain.output
    embedded = app.extensions["portal_scheduler"]
    try:
        assert served[-1]["port"] == 5999  # Flask's options reach Flask's run
        assert embedded._thread is not None and embedded._thread.is_alive()
    finally:
        embedded.stop()
    assert not embedded._thread.is_alive()  # stops cleanly
