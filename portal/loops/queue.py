"""The grown-up setup's job queue: RQ on Redis, not a home-made one.

With PORTAL_QUEUE_URL set (``redis://127.0.0.1:6379/0``), ``run_due`` (cron's
``portal jobs run-due --enqueue``) puts every job it claimed on the RQ queue
QUEUE_NAME ("salesloop") and the mailer's sender puts one "send the queued emails" task
there, instead of doing the work inside a web worker. ``rq worker salesloop --url
redis://...``, started where the portal is installed, imports the task functions below
by name; each builds the portal with ``create_app()`` (instance config and PORTAL_*
environment, as every ``portal`` command does) and runs the job by name. The database
lease still guards every run, so a task delivered twice or a cron run beside the
embedded scheduler never runs a job twice at once.

``rq`` and ``redis`` come with ``pip install 'salesloop[queue]'``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from flask import Flask, current_app


class JobFailed(RuntimeError):
    """A job run by an RQ worker raised: RQ marks the task failed (its registry shows it)
    and the job's JobState row holds the error."""


def queue_url() -> str | None:
    """The configured Redis URL of the job queue, or None (in-process jobs)."""
    return current_app.config.get("PORTAL_QUEUE_URL") or None


def queue_configured() -> bool:
    """Whether jobs and email sending go onto the RQ queue."""
    return queue_url() is not None


def get_queue(url: str | None = None) -> Any:
    """The RQ queue (short socket timeouts: a dead Redis must fail fast, not hang)."""
    try:
        from redis import Redis
        from rq import Queue
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "the job queue needs rq and redis: pip install 'salesloop[queue]'"
        ) from error
    target = url or queue_url()
    if not target:
        raise RuntimeError("no job queue is configured: set PORTAL_QUEUE_URL")
    connection = Redis.from_url(target, socket_connect_timeout=5, socket_timeout=30)
    return Queue(
        current_app.config.get("QUEUE_NAME", "salesloop"),
        connection=connection,
        default_timeout=int(current_app.config.get("QUEUE_JOB_TIMEOUT", 3600)),
    )


def enqueue_job(name: str) -> str:
    """Put "run job ``name``" on the queue; returns the RQ job id."""
    task = get_queue().enqueue_call(
        "portal.loops.queue.run_job_task",
        args=(name,),
        description=f"portal job {name}",
        result_ttl=86400,
        failure_ttl=7 * 86400,
    )
    return str(task.id)


def enqueue_send_emails() -> str:
    """Put "send the queued emails" on the queue; returns the RQ job id. Enqueuing it
    twice is harmless: each sender only sends the emails it claimed."""
    task = get_queue().enqueue_call(
        "portal.loops.queue.send_emails_task",
        description="portal: send queued emails",
        result_ttl=3600,
        failure_ttl=7 * 86400,
    )
    return str(task.id)


# -- what the RQ worker runs ------------------------------------------------------------

_worker_app: Flask | None = None
_worker_lock = threading.Lock()


def worker_app() -> Flask:
    """The portal inside an RQ worker, built once per worker process by ``create_app()``
    from the instance config and PORTAL_* environment. PORTAL_INSTANCE_PATH points it
    at another instance folder (tests, several installations on one host). It starts
    no background email sender: RQ runs each task in a work horse that ends with
    ``os._exit``, which would cut such a thread off mid-round; emails a job queued go out
    with the next ``core.send_emails`` run instead."""
    global _worker_app
    with _worker_lock:
        if _worker_app is None:
            from .. import create_app

            config: dict[str, Any] = {"MAIL_BACKGROUND_SENDER": False}
            instance = os.environ.get("PORTAL_INSTANCE_PATH")
            if instance:
                config["INSTANCE_PATH"] = instance
            _worker_app = create_app(config)
        return _worker_app


def run_job_task(name: str) -> str:
    """RQ task: run job ``name`` now (the enqueuer already claimed its period)."""
    from .scheduler import run_job

    with worker_app().app_context():
        result = run_job(name, force=True)
    if result.failed:
        raise JobFailed(f"job {name} failed: {result.detail}")
    return f"{result.status} {result.detail}".strip()


def send_emails_task() -> dict[str, Any]:
    """RQ task: send the queued emails that are due."""
    from .mailer import send_queued

    with worker_app().app_context():
        return send_queued()
