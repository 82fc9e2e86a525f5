"""Delivering the queued notification emails over SMTP.

Requests never talk to the mail server: ``notify()`` only writes an ``OutboundEmail``
row. When the request's transaction commits, an ``after_commit`` listener wakes one
background sender thread of this process, which calls ``send_queued`` in its own app
context (or puts that call on the RQ queue in the grown-up setup). The job
``core.send_emails`` catches whatever is left (after a crash, a restart, a retry delay).

``send_queued`` claims a batch with one conditional UPDATE (queued -> sending), so two
senders (threads, workers, cron runs) never send one email twice; it sends the batch
over one SMTP connection, retries failures with exponential backoff and gives up after
``MAIL_MAX_ATTEMPTS``. It never raises into its caller.
"""

from __future__ import annotations

import atexit
import logging
import secrets
import smtplib
import ssl
import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from time import monotonic
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..extensions import db
from ..models import as_utc, utcnow
from .models import OutboundEmail

log = logging.getLogger("portal.mailer")

# session.info key: this transaction queued at least one email (set by notify()).
QUEUED_FLAG = "portal_emails_queued"


def absolute_url(path: str) -> str:
    """A portal path as the absolute URL an email carries: PORTAL_BASE_URL + path. Never
    the Host header of the request that happened to queue the email: anyone can send
    any Host, and the link would then lead the recipient to the sender's site. Without
    a base URL the email carries the bare path (and a warning is logged)."""
    if not path:
        return path
    base = (current_app.config.get("PORTAL_BASE_URL") or "").rstrip("/")
    if not base:
        log.warning("PORTAL_BASE_URL is not set: emails carry paths, not links")
        return path
    return base + (path if path.startswith("/") else "/" + path)


def mail_enabled() -> bool:
    """Whether this installation sends email at all (MAIL_ENABLED)."""
    return bool(current_app.config.get("MAIL_ENABLED", True))


def deliverable(address: str | None) -> bool:
    """Whether an address can receive mail at all: not empty, and not in a domain that
    by definition never exists (``.invalid``, as demo people have; RFC 6761)."""
    if not address or "@" not in address:
        return False
    return not address.rstrip(".").lower().endswith(".invalid")


def _single_line(text: str) -> str:
    # A header value may not contain line breaks (header injection; EmailMessage refuses).
    return " ".join(str(text).split())


def build_message(to_address: str, subject: str, body: str) -> EmailMessage:
    """A plain-text UTF-8 email; non-ASCII subjects are encoded per RFC 2047."""
    config = current_app.config
    sender = config.get("MAIL_SENDER") or "salesloop@localhost"
    message = EmailMessage()
    message["Subject"] = _single_line(subject)
    message["From"] = sender
    message["To"] = _single_line(to_address)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # no out-of-office replies to the portal
    message.set_content(body, charset="utf-8")
    return message


def _connect() -> smtplib.SMTP:
    config = current_app.config
    host = config.get("MAIL_SERVER") or "localhost"
    port = int(config.get("MAIL_PORT") or 25)
    timeout = float(config.get("MAIL_TIMEOUT") or 10)
    if config.get("MAIL_USE_SSL"):
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
        if config.get("MAIL_USE_TLS"):
            smtp.starttls(context=ssl.create_default_context())
    if config.get("MAIL_USERNAME"):
        smtp.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
    return smtp


def retry_delay(attempts: int) -> timedelta:
    """Wait before the next try after ``attempts`` failed ones: doubling, capped."""
    config = current_app.config
    base = int(config.get("MAIL_RETRY_SECONDS", 60))
    cap = int(config.get("MAIL_RETRY_MAX_SECONDS", 6 * 3600))
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), cap))


def _claim(now: datetime, limit: int, token: str) -> list[Any]:
    """Claim up to ``limit`` due emails for this sender: one conditional UPDATE that only
    takes rows still due, so a concurrent sender that read the same ids gets none of
    them. Rows left "sending" by a sender that died are due again after
    MAIL_CLAIM_SECONDS (sent at least once, never silently dropped); a sender that is
    alive renews the claim of each email just before sending it (``_keep_claim``)."""
    due = sa.and_(
        OutboundEmail.status.in_(("queued", "sending")), OutboundEmail.next_attempt_at <= now
    )
    candidates = (
        sa.select(OutboundEmail.id)
        .where(due)
        .order_by(OutboundEmail.next_attempt_at, OutboundEmail.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL: skip rows another sender holds
    )
    ids = db.session.scalars(candidates).all()
    if not ids:
        db.session.commit()
        return []
    db.session.execute(
        sa.update(OutboundEmail)
        .where(OutboundEmail.id.in_(ids), due)
        .values(status="sending", claim_token=token, next_attempt_at=now + _claim_hold())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return db.session.execute(
        sa.select(
            OutboundEmail.id,
            OutboundEmail.to_address,
            OutboundEmail.subject,
            OutboundEmail.body,
            OutboundEmail.attempts,
        )
        .where(OutboundEmail.claim_token == token, OutboundEmail.status == "sending")
        .order_by(OutboundEmail.id)
    ).all()


def _claim_hold() -> timedelta:
    """How long a claim holds without renewal (then the sender is taken for dead)."""
    return timedelta(seconds=int(current_app.config.get("MAIL_CLAIM_SECONDS", 600)))


def _keep_claim(email_id: int, token: str, now: datetime) -> bool:
    """Renew this sender's claim on one email right before sending it; False when the
    claim was lost. A batch on a slow server may take longer than MAIL_CLAIM_SECONDS:
    without this, another sender would take its last emails as abandoned and both
    would send them. Now only one send taking that long could overlap."""
    result = db.session.execute(
        sa.update(OutboundEmail)
        .where(
            OutboundEmail.id == email_id,
            OutboundEmail.claim_token == token,
            OutboundEmail.status == "sending",
        )
        .values(next_attempt_at=now + _claim_hold())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def _mark_sent(email_id: int, token: str, now: datetime) -> None:
    db.session.execute(
        sa.update(OutboundEmail)
        .where(OutboundEmail.id == email_id, OutboundEmail.claim_token == token)
        .values(
            status="sent",
            sent_at=now,
            attempts=OutboundEmail.attempts + 1,
            last_error="",
            claim_token=None,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def permanent_failure(error: BaseException) -> bool:
    """A 5xx answer (unknown mailbox, refused content): retrying cannot help."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _message in error.recipients.values()]
        return bool(codes) and all(code >= 500 for code in codes)
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


def _mark_failed(
    row: Any, token: str, now: datetime, error: BaseException, permanent: bool = False
) -> str:
    """Record a failed attempt; returns the new status (queued again, or failed)."""
    attempts = row.attempts + 1
    gave_up = permanent or attempts >= int(current_app.config.get("MAIL_MAX_ATTEMPTS", 8))
    status = "failed" if gave_up else "queued"
    message = f"{type(error).__name__}: {error}"[:1000]
    db.session.execute(
        sa.update(OutboundEmail)
        .where(OutboundEmail.id == row.id, OutboundEmail.claim_token == token)
        .values(
            status=status,
            attempts=attempts,
            last_error=message,
            next_attempt_at=now if gave_up else now + retry_delay(attempts),
            claim_token=None,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if gave_up:
        log.error("email %s given up after %s attempt(s): %s", row.id, attempts, message)
    return status


def send_queued(limit: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Send the emails due at ``now`` over one SMTP connection; returns counts
    (claimed, sent, retrying, failed, lost: claimed but taken over by another sender
    meanwhile, and error when something unexpected happened).
    Never raises: a mail server that is down only postpones the emails. It commits as
    it goes, so call it outside a transaction of your own (jobs, the sender thread)."""
    counts: dict[str, Any] = {"claimed": 0, "sent": 0, "retrying": 0, "failed": 0, "lost": 0}
    if not mail_enabled():
        counts["disabled"] = True
        return counts
    moment = as_utc(now or utcnow()).astimezone(UTC)
    started = monotonic()
    batch = int(limit or current_app.config.get("MAIL_BATCH_SIZE", 100))
    token = secrets.token_hex(16)
    smtp: smtplib.SMTP | None = None
    try:
        rows = _claim(moment, batch, token)
        counts["claimed"] = len(rows)
        if not rows:
            return counts
        envelope_from = parseaddr(current_app.config.get("MAIL_SENDER") or "")[1] or None
        broken: BaseException | None = None
        for row in rows:
            if broken is None and smtp is None:
                try:
                    smtp = _connect()
                except (OSError, smtplib.SMTPException) as error:
                    broken = error
            if broken is not None:
                status = _mark_failed(row, token, moment, broken)
                counts["failed" if status == "failed" else "retrying"] += 1
                continue
            assert smtp is not None
            # The clock of this call (``now`` may be frozen), moved on by the time spent.
            elapsed = timedelta(seconds=monotonic() - started)
            if not _keep_claim(row.id, token, moment + elapsed):
                counts["lost"] += 1  # taken over as abandoned: the other sender sends it
                continue
            try:
                message = build_message(row.to_address, row.subject, row.body)
                smtp.send_message(message, from_addr=envelope_from, to_addrs=[row.to_address])
            except smtplib.SMTPServerDisconnected as error:
                broken = error
                status = _mark_failed(row, token, moment, error)
            except (smtplib.SMTPException, ValueError) as error:
                # This message was refused (address, content); the connection is fine.
                status = _mark_failed(row, token, moment, error, permanent_failure(error))
            except OSError as error:  # timeout, reset: the rest of the batch waits too
                broken = error
                status = _mark_failed(row, token, moment, error)
            else:
                _mark_sent(row.id, token, moment)
                status = "sent"
            key = {"sent": "sent", "failed": "failed"}.get(status, "retrying")
            counts[key] += 1
        if broken is not None:
            config = current_app.config
            log.warning("SMTP %s:%s: %s", config["MAIL_SERVER"], config["MAIL_PORT"], broken)
    except Exception as error:  # never into the caller: a request, the scheduler, a worker
        log.exception("sending queued emails failed")
        db.session.rollback()
        counts["error"] = f"{type(error).__name__}: {error}"
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()
    return counts


# -- waking the sender after a commit ---------------------------------------------------


class BackgroundSender:
    """One daemon thread per application and process that delivers queued emails when
    woken. Waking only flips a flag under a lock, so the request that queued the email
    never waits for the mail server, and a burst of commits costs one batch."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._condition = threading.Condition()
        self._pending = False
        self._busy = False
        self._thread: threading.Thread | None = None
        atexit.register(self._drain)

    def wake(self) -> None:
        """Ask the thread for a round (starting it the first time)."""
        with self._condition:
            self._pending = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="portal-mail-sender", daemon=True
                )
                self._thread.start()
            self._condition.notify()

    def _drain(self) -> None:
        # A short-lived process (a CLI command, cron's run-due) lets the round it started
        # finish before exiting, instead of leaving a claimed batch for the retry.
        if self._thread is None:
            return
        self.wait_idle(timeout=float(self.app.config.get("MAIL_TIMEOUT") or 10) * 3)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no round is pending or running (tests, orderly shutdown)."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending)
                self._pending = False
                self._busy = True
            try:
                with self.app.app_context():
                    deliver_now()
            except Exception:  # the thread must survive anything
                log.exception("background email sender failed")
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()


_senders_lock = threading.Lock()


def background_sender_enabled(app: Flask) -> bool:
    """MAIL_BACKGROUND_SENDER, where None means on except in tests."""
    setting = app.config.get("MAIL_BACKGROUND_SENDER")
    enabled = (not app.testing) if setting is None else bool(setting)
    return enabled and bool(app.config.get("MAIL_ENABLED", True))


def sender_for(app: Flask) -> BackgroundSender:
    """This process's sender of ``app`` (created on first use, so a forked gunicorn
    worker starts its own thread instead of inheriting a dead one)."""
    with _senders_lock:
        sender = app.extensions.get("portal_mailer")
        if sender is None:
            sender = app.extensions["portal_mailer"] = BackgroundSender(app)
        return sender


def deliver_now() -> dict[str, Any]:
    """One round of delivery: on the RQ queue when one is configured (falling back to
    this process when Redis cannot be reached), otherwise here and now."""
    from . import queue

    if queue.queue_configured():
        try:
            return {"enqueued": queue.enqueue_send_emails()}
        except Exception as error:
            log.warning("cannot enqueue email sending (%s); sending in this process", error)
    batch = int(current_app.config.get("MAIL_BATCH_SIZE", 100))
    totals: dict[str, Any] = {}
    for _round in range(50):  # a burst (a sweep notifying many) goes out batch by batch
        counts = send_queued(limit=batch)
        for key, value in counts.items():
            numeric = isinstance(value, int) and not isinstance(value, bool)
            totals[key] = totals.get(key, 0) + value if numeric else value
        if counts["claimed"] < batch or counts["retrying"] or counts["failed"] or "error" in counts:
            break
    return totals


def mark_emails_queued(session: Session) -> None:
    """Called by notify(): wake the sender once this transaction commits."""
    install_commit_hook()
    session.info[QUEUED_FLAG] = True


def _after_commit(session: Session) -> None:
    if not session.info.pop(QUEUED_FLAG, False) or not has_app_context():
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if background_sender_enabled(app):
        sender_for(app).wake()


def _after_rollback(session: Session) -> None:
    session.info.pop(QUEUED_FLAG, None)


def install_commit_hook() -> None:
    """Listen for commits of Flask-SQLAlchemy sessions (idempotent)."""
    from ..database import session_class

    target = session_class()
    if not event.contains(target, "after_commit", _after_commit):
        event.listen(target, "after_commit", _after_commit)
        event.listen(target, "after_rollback", _after_rollback)
