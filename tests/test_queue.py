"""The grown-up setup: jobs and email sending on an RQ queue in Redis, worked by an RQ
worker that builds the portal itself (P1.3.2: sweeps and reminders still run once)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from test_notifications import TITLE, SmtpSink, mail_app, ping_li_from_a_page

from portal.auth.models import LoginAttempt
from portal.extensions import db
from portal.loops import mailer, queue, scheduler
from portal.loops.models import JobState, OutboundEmail
from portal.loops.notifications import notify
from portal.models import utcnow

# A Redis database of its own (flushed before and after), so nothing else is touched.
REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def redis_db() -> Iterator[Any]:
    redis = pytest.importorskip("redis")
    pytest.importorskip("rq")
    connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        connection.ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def worker_env(
    monkeypatch: pytest.MonkeyPatch, portal_database: str, tmp_path: Any, smtp: SmtpSink
) -> Iterator[None]:
    """What an `rq worker` on the portal host has: the PORTAL_* environment of the
    installation (here: the test database, an instance folder, the loopback SMTP)."""
    instance = tmp_path / "worker-instance"
    instance.mkdir()
    monkeypatch.setenv("PORTAL_DATABASE_URL", portal_database)
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(instance))
    monkeypatch.setenv("PORTAL_SECRET_KEY", "worker-test-secret")
    monkeypatch.setenv("PORTAL_QUEUE_URL", REDIS_URL)
    monkeypatch.setenv("PORTAL_MAIL_SERVER", "127.0.0.1")
    monkeypatch.setenv("PORTAL_MAIL_PORT", str(smtp.port))
    monkeypatch.setattr(queue, "_worker_app", None)
    yield
    if queue._worker_app is not None:
        with queue._worker_app.app_context():
            db.engine.dispose()


def work_burst(redis_db: Any) -> None:
    from rq import Queue, SimpleWorker

    SimpleWorker([Queue("salesloop", connection=redis_db)], connection=redis_db).work(burst=True)


def test_p1_3_2_run_due_enqueue_puts_jobs_on_rq_and_a_worker_runs_them(
    make_app: Any, make_person: Any, redis_db: Any, worker_env: None, smtp: SmtpSink
) -> None:
    from rq import Queue

    app = mail_app(make_app, smtp.port, PORTAL_QUEUE_URL=REDIS_URL)
    li = make_person("li", email="li@example.com")
    with app.app_context():
        notify(li, "ping.hello", TITLE)
        db.session.add(
            LoginAttempt(username="x", address="1.2.3.4", at=utcnow() - timedelta(days=400))
        )
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["jobs", "run-due", "--enqueue"])
    assert result.exit_code == 0, result.output
    assert "core.send_emails: queued" in result.output
    rq_queue = Queue("salesloop", connection=redis_db)
    functions = {job.func_name for job in rq_queue.jobs}
    assert functions == {"portal.loops.queue.run_job_task"}
    queued_names = {job.args[0] for job in rq_queue.jobs}
    assert {"core.send_emails", "core.purge_login_attempts"} <= queued_names
    with app.app_context():
        state = db.session.get(JobState, "core.send_emails")
        assert state.last_status == "queued" and state.run_count == 0
        assert state.lease_until is None  # the period is claimed; the lease is free
        # Not queued twice in one period, whoever asks.
        assert scheduler.run_due(enqueue=True) == []
    assert smtp.handler.envelopes == []  # nothing ran in the web process
    work_burst(redis_db)
    # The worker built the portal from its environment and ran the jobs by name.
    assert smtp.handler.wait_for(1, timeout=10)
    assert smtp.handler.messages()[0]["Subject"] == TITLE
    with app.app_context():
        state = db.session.get(JobState, "core.send_emails")
        assert state.last_status == "ok" and state.run_count == 1
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LoginAttempt)) == 0
        assert db.session.scalars(sa.select(OutboundEmail.status)).all() == ["sent"]
    assert queue._worker_app is not None and queue._worker_app.config["PORTAL_QUEUE_URL"]
    # No sender thread in a work horse that ends with os._exit (not set by the env here).
    assert queue._worker_app.config["MAIL_BACKGROUND_SENDER"] is False


def test_p1_3_2_with_a_queue_emails_are_sent_by_an_enqueued_task(
    make_app: Any, make_person: Any, login: Any, redis_db: Any, worker_env: None, smtp: SmtpSink
) -> None:
    from rq import Queue

    app = mail_app(make_app, smtp.port, PORTAL_QUEUE_URL=REDIS_URL, MAIL_BACKGROUND_SENDER=True)
    assert ping_li_from_a_page(app, make_person, login).status_code == 200
    assert mailer.sender_for(app).wait_idle(timeout=60)
    rq_queue = Queue("salesloop", connection=redis_db)
    assert [job.func_name for job in rq_queue.jobs] == ["portal.loops.queue.send_emails_task"]
    assert smtp.handler.envelopes == []  # the web process only enqueued
    work_burst(redis_db)
    assert smtp.handler.wait_for(1, timeout=10)
    with app.app_context():
        assert db.session.scalars(sa.select(OutboundEmail.status)).all() == ["sent"]


def test_p1_3_2_redis_down_is_recorded_and_emails_fall_back_to_this_process(
    make_app: Any, make_person: Any, smtp: SmtpSink
) -> None:
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    app = mail_app(make_app, smtp.port, PORTAL_QUEUE_URL=dead)
    li = make_person("li", email="li@example.com")
    now = utcnow()
    with app.app_context():
        [result] = scheduler.run_due(now=now, names=["core.purge_login_attempts"])
        assert result.status == "error" and "could not enqueue" in result.detail
        state = db.session.get(JobState, "core.purge_login_attempts")
        assert state.lease_until is None and state.last_status == "error"
        # The period was not used up: the next round tries again.
        assert scheduler.run_due(now=now, names=["core.purge_login_attempts"])
        notify(li, "ping.hello", TITLE)
        db.session.commit()
        outcome = mailer.deliver_now()
    assert outcome["sent"] == 1 and len(smtp.handler.envelopes) == 1
