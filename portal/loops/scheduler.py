"""Scheduled jobs: what plugins declare with ``portal_jobs`` runs every ``every_seconds``,
once, however many processes ask.

Each job has a ``JobState`` row (next run, lease). Claiming a job is ONE conditional
UPDATE (due, and nobody holds an unexpired lease); the database decides who got it, so
the embedded scheduler thread of ``portal run``, several gunicorn workers, cron's
``portal jobs run-due`` and ``portal jobs worker`` may all call ``run_due`` at once on
SQLite or PostgreSQL and a job still runs once per period. While a job runs, a small
thread renews its lease (every third of SCHEDULER_LEASE_SECONDS), so a job slower than
the lease never runs twice at once; a process that dies stops renewing, and the job is
free again one lease later. A job that raises is logged and recorded in its row; the
other jobs still run. Jobs write as ``job:<name>`` in the audit log.

With a queue configured (PORTAL_QUEUE_URL, see ``portal/loops/queue.py``) a claimed job
is put on the RQ queue instead of being run here; an ``rq worker`` runs it by name.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from ..audit.recorder import acting_as
from ..extensions import db
from ..models import as_utc, utcnow
from ..plugins.types import Job
from .models import JobState

log = logging.getLogger("portal.scheduler")

# Statuses of a run, as stored in JobState.last_status and returned in JobResult.
OK, ERROR, QUEUED, BUSY, NOT_DUE = "ok", "error", "queued", "busy", "not_due"


class UnknownJob(LookupError):
    """A job name no enabled plugin declared; the message lists the known names."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown job '{name}'; known jobs: {', '.join(self.known) or '(none)'}")


class QueueNotConfigured(RuntimeError):
    """``--enqueue`` without PORTAL_QUEUE_URL."""


@dataclass(frozen=True)
class JobResult:
    """What one attempt to run a job did."""

    name: str
    status: str  # ok, error, queued (put on the RQ queue), busy (leased elsewhere), not_due
    detail: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def failed(self) -> bool:
        return self.status == ERROR


@dataclass(frozen=True)
class JobInfo:
    """A declared job with its stored state, for ``portal jobs list``."""

    name: str
    every_seconds: int
    description: str
    next_run_at: datetime | None
    last_status: str
    last_result: str
    last_started_at: datetime | None
    last_finished_at: datetime | None
    lease_owner: str | None
    lease_until: datetime | None
    run_count: int


def declared_jobs() -> dict[str, Job]:
    """Every job the enabled plugins declared, by name."""
    return dict(current_app.extensions["portal"].jobs)


def _lease() -> timedelta:
    return timedelta(seconds=int(current_app.config.get("SCHEDULER_LEASE_SECONDS", 3600)))


def _utc(now: datetime | None) -> datetime:
    """``now`` (or the clock) in UTC: SQLite compares stored UTC text, so every bound
    must be UTC, not merely aware."""
    return as_utc(now or utcnow()).astimezone(UTC)


def lease_owner_label() -> str:
    """Who holds a lease: host, process, thread and a random part (unique per claim)."""
    label = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{secrets.token_hex(4)}"
    return label[-120:]


def ensure_job_states(now: datetime, names: Iterable[str] | None = None) -> None:
    """Create the missing JobState rows (due at once). Concurrent callers may both try:
    the insert ignores a row that already exists instead of failing."""
    wanted = set(declared_jobs() if names is None else names)
    if not wanted:
        return
    existing = set(db.session.scalars(sa.select(JobState.name).where(JobState.name.in_(wanted))))
    missing = sorted(wanted - existing)
    if missing:
        dialect = db.session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        rows = [
            {"name": name, "next_run_at": now, "last_status": "", "run_count": 0}
            for name in missing
        ]
        db.session.execute(insert(JobState).values(rows).on_conflict_do_nothing())
    db.session.commit()


def claim(name: str, owner: str, now: datetime, force: bool = False) -> bool:
    """Take the lease of job ``name`` if it is due at ``now`` and nobody holds an
    unexpired lease: one conditional UPDATE, rowcount 1 means it is ours. ``force``
    drops the "due" condition (run now) but never the lease: a job never runs twice
    at the same time. Commits, so other claimants see the lease at once."""
    moment = _utc(now)
    conditions = [
        JobState.name == name,
        sa.or_(JobState.lease_until.is_(None), JobState.lease_until < moment),
    ]
    if not force:
        conditions.append(JobState.next_run_at <= moment)
    result = db.session.execute(
        sa.update(JobState)
        .where(*conditions)
        .values(lease_owner=owner, lease_until=moment + _lease())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def _finish(
    job: Job,
    owner: str,
    now: datetime,
    status: str,
    detail: str,
    started: datetime,
    finished: datetime,
    ran: bool,
) -> None:
    """Record the outcome, set the next run a period after ``now`` and free the lease
    (only if we still hold it: an expired lease may have passed to someone else)."""
    values: dict[str, Any] = {
        "lease_owner": None,
        "lease_until": None,
        "next_run_at": now + timedelta(seconds=job.every_seconds),
        "last_status": status,
        "last_result": detail[:4000],
    }
    if ran:
        values.update(
            last_started_at=started,
            last_finished_at=finished,
            run_count=JobState.run_count + 1,
        )
    db.session.execute(
        sa.update(JobState)
        .where(JobState.name == job.name, JobState.lease_owner == owner)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _release(name: str, owner: str, status: str, detail: str) -> None:
    """Free the lease without moving the next run (the job could not even be queued)."""
    db.session.execute(
        sa.update(JobState)
        .where(JobState.name == name, JobState.lease_owner == owner)
        .values(lease_owner=None, lease_until=None, last_status=status, last_result=detail[:4000])
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def renew_lease(name: str, owner: str, until: datetime) -> bool:
    """Extend ``owner``'s lease of job ``name`` to ``until``; False when the lease is no
    longer theirs (it ran out and someone else took the job, or the run finished)."""
    result = db.session.execute(
        sa.update(JobState)
        .where(JobState.name == name, JobState.lease_owner == owner)
        .values(lease_until=until)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


class _LeaseKeeper:
    """Renews a running job's lease every third of SCHEDULER_LEASE_SECONDS, from a
    thread with its own app context and session (the job's transaction stays its own).
    So a job that runs longer than the lease is never taken for abandoned and started a
    second time beside itself; a process that dies stops renewing, and its job is free
    again at most one lease later. The lease is reckoned on the clock of the claim
    (``now`` may be frozen), moved on by the time actually spent."""

    def __init__(self, name: str, owner: str, claimed_at: datetime) -> None:
        self.app = current_app._get_current_object()  # type: ignore[attr-defined]
        self.name, self.owner, self.claimed_at = name, owner, claimed_at
        self.lease = _lease()
        self.interval = max(self.lease.total_seconds() / 3, 0.1)
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"portal-lease:{name}"[:60], daemon=True
        )

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        # A renewal stuck on a lock must not hold up the run's end: once the run has
        # freed the lease, a late renewal matches no row (it checks the owner).
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            elapsed = timedelta(seconds=time.monotonic() - self._started)
            try:
                with self.app.app_context():
                    kept = renew_lease(
                        self.name, self.owner, self.claimed_at + elapsed + self.lease
                    )
            except Exception:  # a database hiccup: try again at the next interval
                log.exception("renewing the lease of job %s failed", self.name)
                continue
            if not kept:
                log.error("job %s lost its lease while running", self.name)
                return


def _execute(job: Job, owner: str, now: datetime) -> JobResult:
    """Run a claimed job in this process, in its own transaction, keeping its lease."""
    started = now
    clock = time.monotonic()
    try:
        with _LeaseKeeper(job.name, owner, now), acting_as(f"job:{job.name}"):
            outcome = job.func()
            db.session.commit()
    except Exception as error:
        db.session.rollback()
        log.exception("job %s failed", job.name)
        status, detail = ERROR, f"{type(error).__name__}: {error}"
    except BaseException:  # Ctrl-C, a worker shutting down: free it for the next round
        db.session.rollback()
        _release(job.name, owner, ERROR, "interrupted")
        raise
    else:
        status, detail = OK, "" if outcome is None else str(outcome)
    finished = started + timedelta(seconds=time.monotonic() - clock)
    _finish(job, owner, now, status, detail, started, finished, ran=True)
    return JobResult(job.name, status, detail, started, finished)


def _enqueue(job: Job, owner: str, now: datetime) -> JobResult:
    """Put a claimed job on the RQ queue; its next run moves a period on right away, so
    the queue never gets it twice in one period."""
    from . import queue

    try:
        rq_id = queue.enqueue_job(job.name)
    except Exception as error:
        detail = f"could not enqueue: {type(error).__name__}: {error}"
        log.error("job %s %s", job.name, detail)
        _release(job.name, owner, ERROR, detail)
        return JobResult(job.name, ERROR, detail, now, now)
    detail = f"queued as {rq_id}"
    _finish(job, owner, now, QUEUED, detail, now, now, ran=False)
    return JobResult(job.name, QUEUED, detail, now, now)


def wants_queue(enqueue: bool | None) -> bool:
    """Whether to enqueue: as asked, else when a queue is configured; asking for the
    queue without one configured raises QueueNotConfigured."""
    from . import queue

    if enqueue is None:
        return queue.queue_configured()
    if enqueue and not queue.queue_configured():
        raise QueueNotConfigured("no job queue is configured: set PORTAL_QUEUE_URL")
    return enqueue


def run_due(
    now: datetime | None = None,
    enqueue: bool | None = None,
    names: Iterable[str] | None = None,
) -> list[JobResult]:
    """Run (or, with a queue, enqueue) every job due at ``now`` that this caller can
    claim; ``names`` limits the jobs considered. Returns one result per claimed job;
    jobs claimed by someone else are simply not ours this time."""
    moment = _utc(now)
    use_queue = wants_queue(enqueue)
    jobs = declared_jobs()
    wanted = set(jobs) if names is None else set(names) & set(jobs)
    ensure_job_states(moment, wanted)
    due = db.session.scalars(
        sa.select(JobState.name)
        .where(
            JobState.name.in_(wanted),
            JobState.next_run_at <= moment,
            sa.or_(JobState.lease_until.is_(None), JobState.lease_until < moment),
        )
        .order_by(JobState.next_run_at, JobState.name)
    ).all()
    db.session.commit()  # end the read before claiming (SQLite: no stale snapshot)
    results = []
    for name in due:
        owner = lease_owner_label()
        if not claim(name, owner, moment):
            continue  # another worker, thread or cron run got it first
        job = jobs[name]
        results.append(_enqueue(job, owner, moment) if use_queue else _execute(job, owner, moment))
    return results


def run_job(
    name: str, force: bool = False, now: datetime | None = None, enqueue: bool = False
) -> JobResult:
    """Run one job by name: when due, or at once with ``force``; never while another
    run of it holds the lease (status busy). Unknown names raise UnknownJob."""
    jobs = declared_jobs()
    if name not in jobs:
        raise UnknownJob(name, jobs)
    moment = _utc(now)
    use_queue = wants_queue(enqueue)
    ensure_job_states(moment, [name])
    owner = lease_owner_label()
    if not claim(name, owner, moment, force=force):
        state = db.session.get(JobState, name)
        lease_owner, lease_until = state.lease_owner, as_utc(state.lease_until)
        next_run = as_utc(state.next_run_at)
        db.session.commit()
        if lease_until is not None and lease_until >= moment:
            holder = f"running elsewhere ({lease_owner})"
            return JobResult(name, BUSY, f"{holder} until {lease_until:%Y-%m-%d %H:%M:%S} UTC")
        return JobResult(name, NOT_DUE, f"next run at {next_run:%Y-%m-%d %H:%M:%S} UTC")
    job = jobs[name]
    return _enqueue(job, owner, moment) if use_queue else _execute(job, owner, moment)


def job_states() -> list[JobInfo]:
    """Every declared job with its state (None/empty fields before its first run)."""
    jobs = declared_jobs()
    states = {
        state.name: state
        for state in db.session.scalars(sa.select(JobState).where(JobState.name.in_(set(jobs))))
    }
    infos = []
    for name in sorted(jobs):
        job, state = jobs[name], states.get(name)
        infos.append(
            JobInfo(
                name=name,
                every_seconds=job.every_seconds,
                description=str(job.description),
                next_run_at=as_utc(state.next_run_at) if state else None,
                last_status=state.last_status if state else "",
                last_result=state.last_result if state else "",
                last_started_at=as_utc(state.last_started_at) if state else None,
                last_finished_at=as_utc(state.last_finished_at) if state else None,
                lease_owner=state.lease_owner if state else None,
                lease_until=as_utc(state.lease_until) if state else None,
                run_count=state.run_count if state else 0,
            )
        )
    return infos


# -- the embedded scheduler (`portal run`) ---------------------------------------------


class EmbeddedScheduler:
    """One thread that calls ``run_due`` every SCHEDULER_INTERVAL_SECONDS. Started by
    ``portal run`` only (never by create_app or in tests); with gunicorn, cron runs
    ``portal jobs run-due`` instead. Safe beside other schedulers: the lease decides."""

    def __init__(self, app: Flask, interval: float | None = None) -> None:
        self.app = app
        self.interval = float(interval or app.config.get("SCHEDULER_INTERVAL_SECONDS", 30))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="portal-scheduler", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def tick(self) -> list[JobResult]:
        """One round, in its own app context; never raises."""
        try:
            with self.app.app_context():
                return run_due()
        except Exception:
            log.exception("scheduler round failed")
            return []

    def _run(self) -> None:
        while not self._stop.is_set():
            for result in self.tick():
                log.info("job %s: %s %s", result.name, result.status, result.detail[:200])
            self._stop.wait(self.interval)


def start_embedded_scheduler(app: Flask) -> EmbeddedScheduler | None:
    """Start the one scheduler thread of this process unless SCHEDULER_EMBEDDED is off."""
    if not app.config.get("SCHEDULER_EMBEDDED", True):
        return None
    scheduler = app.extensions.get("portal_scheduler")
    if scheduler is None:
        scheduler = app.extensions["portal_scheduler"] = EmbeddedScheduler(app)
        scheduler.start()
        # On exit no new round starts, and a job just running may finish and free its
        # lease (a job cut off keeps it until the lease runs out).
        atexit.register(scheduler.stop)
        log.info("embedded scheduler started (every %ss)", scheduler.interval)
    return scheduler
