"""Notifications: the bell, the list, email preferences and delivery through a real SMTP
server on loopback (P1.3.2: what is raised reaches its owner; P6.3: messages stay with
the person they are for)."""

from __future__ import annotations

import asyncio
import email
import re
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask import Blueprint, request

from portal.extensions import db
from portal.loops import mailer
from portal.loops.models import Notification, NotificationPreference, OutboundEmail
from portal.loops.notifications import notify
from portal.models import as_utc, utcnow
from portal.plugins import NotificationKind
from portal.testing import DEMO_TEST_PASSWORD, throwaway_plugin

TITLE = "跟进事项已逾期：华东区季度复盘"
BODY = "请在本周五前关闭。\nSecond line."
BASE_URL = "https://salesloop.intranet.example"


# -- a real SMTP server on loopback ---------------------------------------------------


class Collector:
    """aiosmtpd handler keeping every envelope it receives."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.peers: list[Any] = []  # the client end of the connection of each message
        self.received = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.received:
            self.envelopes.append(envelope)
            self.peers.append(session.peer)
            self.received.notify_all()
        return "250 Message accepted"

    def wait_for(self, count: int, timeout: float = 30) -> bool:
        with self.received:
            return self.received.wait_for(lambda: len(self.envelopes) >= count, timeout)

    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(envelope.original_content, policy=policy.default)
            for envelope in self.envelopes
        ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpSink:
    """Start and stop an SMTP server on a fixed loopback port (down until started)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = Collector()
        self.controller: Controller | None = None

    def start(self) -> SmtpSink:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A running SMTP server on loopback."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp_down() -> Iterator[SmtpSink]:
    """A port where no SMTP server listens yet (``start()`` brings it up)."""
    sink = SmtpSink()
    yield sink
    sink.stop()


# -- a plugin whose page notifies someone --------------------------------------------


def ping_plugin() -> Any:
    """Declares two kinds (one emailed by default, one not) and a page that notifies."""

    def blueprints() -> list[Blueprint]:
        bp = Blueprint("ping", __name__)

        @bp.post("/notify/<int:user_id>")
        def notify_view(user_id: int) -> Any:
            kind = request.form.get("kind", "ping.hello")
            notify(user_id, kind, TITLE, body=BODY, link="/ping/thing/7")
            db.session.commit()
            return "notified"

        return [bp]

    def kinds() -> list[NotificationKind]:
        return [
            NotificationKind("ping.hello", "A ping for me"),
            NotificationKind("ping.quiet", "A quiet ping", email_default=False),
        ]

    return throwaway_plugin("ping", portal_blueprints=blueprints, portal_notification_kinds=kinds)


def mail_app(make_app: Any, port: int, **config: Any) -> Any:
    settings = {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": port,
        "MAIL_SENDER": "Salesloop <portal@salesloop.example>",
        "MAIL_TIMEOUT": 30,
        "PORTAL_BASE_URL": BASE_URL,
        "MAIL_BACKGROUND_SENDER": False,
    }
    settings.update(config)
    return make_app(plugins=[("ping", ping_plugin())], **settings)


def ping_li_from_a_page(app: Any, make_person: Any, login: Any) -> Any:
    """li (with an email address) posts the plugin's page that notifies her: a request
    that queues one email. Returns the page's answer."""
    li = make_person("li", email="li@example.com")
    client = app.test_client()
    login(client, "li")
    return client.post(f"/ping/notify/{li}")


def emails(app: Any) -> list[OutboundEmail]:
    with app.app_context():
        rows = db.session.scalars(sa.select(OutboundEmail).order_by(OutboundEmail.id)).all()
        db.session.expunge_all()
        return list(rows)


def csrf_token(client: Any, path: str = "/") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'id="portal-csrf" data-token="([^"]+)"', page).group(1)


def csrf_login(client: Any, username: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(
        "/login",
        data={"username": username, "password": DEMO_TEST_PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302


def bell_count(client: Any) -> int:
    response = client.get("/notifications/bell", headers={"HX-Request": "true"})
    assert response.status_code == 200
    match = re.search(r'data-testid="bell-count" data-count="(\d+)"', response.get_data(True))
    return int(match.group(1)) if match else 0


# -- email delivery -------------------------------------------------------------------


def test_p1_3_2_a_notification_reaches_the_person_by_email_through_a_real_smtp_server(
    make_app: Any, make_person: Any, login: Any, smtp: SmtpSink
) -> None:
    app = mail_app(make_app, smtp.port)
    li = make_person("li", email="li@example.com")
    make_person("wang")
    client = app.test_client()
    login(client, "wang")
    assert client.post(f"/ping/notify/{li}").status_code == 200
    queued = emails(app)
    assert [(row.status, row.to_address) for row in queued] == [("queued", "li@example.com")]
    with app.app_context():
        counts = mailer.send_queued()
    assert counts["sent"] == 1 and counts["claimed"] == 1
    assert len(smtp.handler.envelopes) == 1
    envelope = smtp.handler.envelopes[0]
    assert envelope.rcpt_tos == ["li@example.com"]
    assert envelope.mail_from == "portal@salesloop.example"
    raw = envelope.original_content.decode("ascii")  # 7-bit on the wire
    assert "=?utf-8?" in raw.lower()  # the Chinese subject is RFC 2047 encoded
    message = smtp.handler.messages()[0]
    assert message["Subject"] == TITLE
    assert message.get_content_type() == "text/plain"
    text = message.get_content()
    assert "请在本周五前关闭。" in text
    assert f"{BASE_URL}/ping/thing/7" in text  # the absolute link into the portal
    assert f"{BASE_URL}/notifications/preferences" in text  # how to turn it off
    row = emails(app)[0]
    assert row.status == "sent" and row.sent_at is not None and row.attempts == 1


def test_p1_3_2_who_unticked_a_kind_gets_the_bell_but_no_email(
    make_app: Any, make_person: Any, login: Any, smtp: SmtpSink
) -> None:
    app = mail_app(make_app, smtp.port)
    li = make_person("li", email="li@example.com")
    client = app.test_client()
    login(client, "li")
    page = client.get("/notifications/preferences").get_data(as_text=True)
    # Defaults: an emailed-by-default kind is ticked, a quiet one is not.
    assert re.search(r'value="ping.hello" id="kind-ping-hello"\s+checked', page)
    assert not re.search(r'value="ping.quiet" id="kind-ping-quiet"\s+checked', page)
    assert "A ping for me" in page and "Ping" in page  # label under its plugin's title
    # Untick everything but the quiet kind.
    response = client.post(
        "/notifications/preferences", data={"save": "1", "email": ["ping.quiet"]}
    )
    assert response.status_code == 303
    with app.app_context():
        choices = dict(
            db.session.execute(
                sa.select(NotificationPreference.kind, NotificationPreference.email).where(
                    NotificationPreference.user_id == li
                )
            ).all()
        )
    assert choices["ping.hello"] is False and choices["ping.quiet"] is True
    assert choices["core.loop_overdue"] is False  # every declared kind got a row
    client.post(f"/ping/notify/{li}", data={"kind": "ping.hello"})
    client.post(f"/ping/notify/{li}", data={"kind": "ping.quiet"})
    with app.app_context():
        kinds = db.session.scalars(
            sa.select(Notification.kind).where(Notification.user_id == li)
        ).all()
        mailer.send_queued()
    assert sorted(kinds) == ["ping.hello", "ping.quiet"]  # both under the bell
    assert len(smtp.handler.envelopes) == 1  # only the ticked kind by email
    assert [row.notification_id is not None for row in emails(app)] == [True]


def test_p1_3_2_an_unknown_kind_in_the_preferences_form_is_refused_per_field(
    make_app: Any, make_person: Any, login: Any
) -> None:
    app = mail_app(make_app, free_port())
    make_person("li")  # no email address
    client = app.test_client()
    login(client, "li")
    page = client.get("/notifications/preferences").get_data(as_text=True)
    assert 'data-testid="no-email"' in page  # told that nothing can be emailed
    response = client.post(
        "/notifications/preferences", data={"save": "1", "email": ["nosuch.kind"]}
    )
    assert response.status_code == 422
    assert 'data-testid="form-error"' in response.get_data(as_text=True)
    with app.app_context():
        assert (
            db.session.scalar(sa.select(sa.func.count()).select_from(NotificationPreference)) == 0
        )


def test_p1_3_2_smtp_down_the_request_succeeds_and_the_email_waits_with_backoff(
    make_app: Any, make_person: Any, login: Any, smtp_down: SmtpSink
) -> None:
    app = mail_app(make_app, smtp_down.port, MAIL_BACKGROUND_SENDER=True)
    response = ping_li_from_a_page(app, make_person, login)
    assert response.status_code == 200  # the page answered; the sender works on its own
    # The committed request woke the background sender, which found no server.
    assert mailer.sender_for(app).wait_idle(timeout=60)
    [row] = emails(app)
    assert row.status == "queued" and row.attempts == 1
    assert "ConnectionRefusedError" in row.last_error
    retry_at = as_utc(row.next_attempt_at)
    assert retry_at > utcnow()  # backoff: not retried at once
    with app.app_context():
        before = mailer.send_queued(now=retry_at - timedelta(seconds=1))
    assert before["claimed"] == 0
    smtp_down.start()
    with app.app_context():
        later = mailer.send_queued(now=retry_at)
    assert later["sent"] == 1
    assert smtp_down.handler.messages()[0]["Subject"] == TITLE
    [row] = emails(app)
    assert row.status == "sent" and row.attempts == 2 and row.last_error == ""


def test_p1_3_2_a_hung_smtp_server_does_not_hold_the_request(
    make_app: Any, make_person: Any, login: Any
) -> None:
    # A server that accepts the connection but never greets: the sender thread hangs in
    # it while the request that queued the email has long answered.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(5)
        app = mail_app(
            make_app, hung.getsockname()[1], MAIL_BACKGROUND_SENDER=True, MAIL_TIMEOUT=120
        )
        assert ping_li_from_a_page(app, make_person, login).status_code == 200
        client = app.test_client()
        login(client, "li")
        assert client.get("/notifications/").status_code == 200
        assert not mailer.sender_for(app).wait_idle(timeout=0.5)  # still waiting on SMTP
    # The listening socket is closed: the sender's connection is reset, it gives up.
    assert mailer.sender_for(app).wait_idle(timeout=60)
    [row] = emails(app)
    assert row.status == "queued" and row.attempts == 1


def test_p1_3_2_the_background_sender_delivers_after_the_request_commits(
    make_app: Any, make_person: Any, login: Any, smtp: SmtpSink
) -> None:
    app = mail_app(make_app, smtp.port, MAIL_BACKGROUND_SENDER=True)
    assert ping_li_from_a_page(app, make_person, login).status_code == 200
    assert smtp.handler.wait_for(1)
    assert mailer.sender_for(app).wait_idle(timeout=60)
    assert [row.status for row in emails(app)] == ["sent"]


def test_p1_3_2_a_rolled_back_request_queues_and_sends_nothing(
    make_app: Any, make_person: Any, smtp: SmtpSink
) -> None:
    app = mail_app(make_app, smtp.port)
    li = make_person("li", email="li@example.com")
    with app.app_context():
        notify(li, "ping.hello", TITLE)
        assert db.session.info.get(mailer.QUEUED_FLAG) is True
        db.session.rollback()
        assert mailer.QUEUED_FLAG not in db.session.info
        assert mailer.send_queued()["claimed"] == 0
    assert smtp.handler.envelopes == []


def test_p6_3_two_senders_at_once_never_send_one_email_twice(
    make_app: Any, make_person: Any, smtp: SmtpSink
) -> None:
    app = mail_app(make_app, smtp.port)
    li = make_person("li", email="li@example.com")
    with app.app_context():
        for number in range(24):
            notify(li, "ping.hello", f"{TITLE} #{number}")
        db.session.commit()
    now = utcnow()
    barrier = threading.Barrier(2)
    totals: list[dict[str, Any]] = []

    def sender() -> None:
        with app.app_context():
            barrier.wait()
            while True:
                counts = mailer.send_queued(limit=5, now=now)
                totals.append(counts)
                if counts["claimed"] == 0:
                    break

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all("error" not in counts for counts in totals), totals
    subjects = [message["Subject"] for message in smtp.handler.messages()]
    assert len(subjects) == 24 and len(set(subjects)) == 24  # each exactly once
    assert sum(counts["sent"] for counts in totals) == 24
    assert {row.status for row in emails(app)} == {"sent"}
    # Queued outside a request (as a job does), the links are still absolute.
    assert f"{BASE_URL}/notifications/preferences" in smtp.handler.messages()[0].get_content()


def test_p1_3_2_a_burst_goes_out_batch_by_batch_one_connection_each(
    make_app: Any, make_person: Any, smtp: SmtpSink
) -> None:
    app = mail_app(make_app, smtp.port, MAIL_BATCH_SIZE=5)
    li = make_person("li", email="li@example.com")
    with app.app_context():
        for number in range(12):
            notify(li, "ping.hello", f"burst {number}")
        db.session.commit()
        totals = mailer.deliver_now()
    assert totals["sent"] == 12 and totals["claimed"] == 12
    assert len(smtp.handler.envelopes) == 12
    assert len(set(smtp.handler.peers)) == 3  # 5 + 5 + 2, one SMTP connection per batch


def test_p6_3_a_refused_address_is_given_up_and_a_header_cannot_be_injected(
    make_app: Any, make_person: Any, smtp: SmtpSink
) -> None:
    class Refusing(Collector):
        async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
            if address.startswith("gone@"):
                return "550 No such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    smtp.stop()
    smtp.handler = Refusing()
    smtp.start()
    app = mail_app(make_app, smtp.port)
    gone = make_person("gone", email="gone@example.com")
    li = make_person("li", email="li@example.com")
    with app.app_context():
        notify(gone, "ping.hello", "hello")
        notify(li, "ping.hello", "Subject\r\nBcc: spy@example.com")
        db.session.commit()
        counts = mailer.send_queued()
    assert counts["sent"] == 1 and counts["failed"] == 1
    refused, delivered = emails(app)
    assert refused.status == "failed" and refused.attempts == 1  # 5xx: no pointless retries
    assert "550" in refused.last_error
    assert delivered.status == "sent"
    [envelope] = smtp.handler.envelopes
    assert envelope.rcpt_tos == ["li@example.com"]
    message = smtp.handler.messages()[0]
    assert message["Bcc"] is None and message["Subject"] == "Subject Bcc: spy@example.com"


def test_p6_3_after_the_last_attempt_the_email_is_marked_failed(
    make_app: Any, make_person: Any, smtp_down: SmtpSink
) -> None:
    app = mail_app(make_app, smtp_down.port, MAIL_MAX_ATTEMPTS=3, MAIL_RETRY_SECONDS=10)
    li = make_person("li", email="li@example.com")
    with app.app_context():
        notify(li, "ping.hello", TITLE)
        db.session.commit()
        moment = utcnow()
        delays = []
        for _attempt in range(3):
            assert mailer.send_queued(now=moment)["claimed"] == 1
            row = db.session.scalars(sa.select(OutboundEmail)).one()
            delays.append(as_utc(row.next_attempt_at) - moment)
            moment = as_utc(row.next_attempt_at)
            db.session.expire_all()
        assert mailer.send_queued(now=moment + timedelta(days=1))["claimed"] == 0
    [row] = emails(app)
    assert row.status == "failed" and row.attempts == 3
    assert delays[:2] == [timedelta(seconds=10), timedelta(seconds=20)]  # doubling


def test_p1_3_2_a_sender_that_died_mid_batch_leaves_nothing_behind(
    make_app: Any, make_person: Any, smtp: SmtpSink
) -> None:
    app = mail_app(make_app, smtp.port, MAIL_CLAIM_SECONDS=600)
    li = make_person("li", email="li@example.com")
    with app.app_context():
        notify(li, "ping.hello", TITLE)
        db.session.commit()
        now = utcnow()
        # A sender claimed the row and crashed before sending: it stays "sending".
        assert mailer._claim(now, 10, "dead-sender")
        assert mailer.send_queued(now=now + timedelta(seconds=60))["claimed"] == 0
        assert mailer.send_queued(now=now + timedelta(seconds=601))["sent"] == 1
    assert len(smtp.handler.envelopes) == 1


def test_p6_3_a_batch_slower_than_the_claim_is_never_sent_twice(
    make_app: Any, make_person: Any, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sender A's batch takes longer than MAIL_CLAIM_SECONDS (its clock is moved on by
    the server's slowness). Sender B, looking at that moment, may only take the emails
    A has not renewed yet; A then leaves those to B. Each email goes out once."""
    clock = [1000.0]  # the mailer's monotonic clock, moved by the test only
    monkeypatch.setattr(mailer, "monotonic", lambda: clock[0])
    in_second, release = threading.Event(), threading.Event()

    class Slow(Collector):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            subject = email.message_from_bytes(envelope.original_content)["Subject"]
            if subject == "one":
                clock[0] += 400  # a slow server: the first email took 400 s
            elif subject == "two":
                in_second.set()
                while not release.is_set():  # keep A inside its second email
                    await asyncio.sleep(0.01)
            return await super().handle_DATA(server, session, envelope)

    smtp.stop()
    smtp.handler = Slow()
    smtp.start()
    app = mail_app(make_app, smtp.port, MAIL_CLAIM_SECONDS=600)
    li = make_person("li", email="li@example.com")
    with app.app_context():
        for subject in ("one", "two", "three"):
            notify(li, "ping.hello", subject)
        db.session.commit()
    start = utcnow()
    outcome: dict[str, Any] = {}

    def sender_a() -> None:
        with app.app_context():
            outcome["a"] = mailer.send_queued(now=start)

    thread = threading.Thread(target=sender_a)
    thread.start()
    try:
        assert in_second.wait(30), outcome
        # 650 s after A claimed: "three" looks abandoned, "two" was renewed at 400 s.
        with app.app_context():
            outcome["b"] = mailer.send_queued(now=start + timedelta(seconds=650))
    finally:
        release.set()
        thread.join(60)
    assert outcome["b"]["claimed"] == 1 and outcome["b"]["sent"] == 1
    assert outcome["a"]["sent"] == 2 and outcome["a"]["lost"] == 1
    subjects = sorted(message["Subject"] for message in smtp.handler.messages())
    assert subjects == ["one", "three", "two"]  # each exactly once
    assert {row.status for row in emails(app)} == {"sent"}


def test_p1_3_2_email_switched_off_queues_nothing(
    make_app: Any, make_person: Any, login: Any
) -> None:
    app = mail_app(make_app, free_port(), MAIL_ENABLED=False)
    li = make_person("li", email="li@example.com")
    client = app.test_client()
    login(client, "li")
    client.post(f"/ping/notify/{li}")
    assert emails(app) == []
    assert bell_count(client) == 1
    assert 'data-testid="mail-off"' in client.get("/notifications/preferences").get_data(True)


def test_p1_3_2_an_address_that_cannot_exist_gets_no_email(make_app: Any, make_person: Any) -> None:
    app = mail_app(make_app, free_port())
    demo = make_person("demo", email="demo@demo.invalid")  # as `portal demo` people have
    with app.app_context():
        assert notify(demo, "ping.hello", TITLE) is not None  # the bell still gets it
        db.session.commit()
    assert emails(app) == []


# -- the bell and the list -------------------------------------------------------------


def test_p1_3_2_the_bell_counts_unread_and_updates_after_mark_read(
    make_app: Any, make_person: Any
) -> None:
    app = mail_app(make_app, free_port(), WTF_CSRF_ENABLED=True)
    li = make_person("li")
    with app.app_context():
        notes = [notify(li, "ping.hello", f"note {n}", link="/notifications/") for n in range(3)]
        db.session.commit()
        ids = [note.id for note in notes]
    client = app.test_client()
    csrf_login(client, "li")
    home = client.get("/").get_data(as_text=True)
    assert 'hx-get="/notifications/bell"' in home and "every 60s" in home
    assert bell_count(client) == 3
    # Without the CSRF token the POST is refused and nothing changes.
    assert client.post(f"/notifications/{ids[0]}/read").status_code == 400
    assert bell_count(client) == 3
    token = csrf_token(client)
    response = client.post(f"/notifications/{ids[0]}/read", data={"csrf_token": token})
    assert response.status_code == 303
    assert bell_count(client) == 2
    # Opening one marks it read and leads to its link.
    response = client.post(f"/notifications/{ids[1]}/open", data={"csrf_token": token})
    assert response.status_code == 303 and response.location == "/notifications/"
    assert bell_count(client) == 1
    response = client.post(
        "/notifications/read-all",
        data={"csrf_token": token},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert response.status_code == 303
    assert bell_count(client) == 0


def test_p1_3_2_the_list_is_newest_first_paginated_with_unread_filter(
    app: Any, make_person: Any, login: Any
) -> None:
    li = make_person("li")
    start = utcnow() - timedelta(hours=1)
    with app.app_context():
        for number in range(30):
            db.session.add(
                Notification(
                    user_id=li,
                    kind="core.loop_assigned",
                    title=f"item {number:02d}",
                    created_at=start + timedelta(minutes=number),
                    read_at=utcnow() if number % 2 else None,
                )
            )
        db.session.commit()
    client = app.test_client()
    login(client, "li")
    first = client.get("/notifications/").get_data(as_text=True)
    titles = re.findall(r"item (\d\d)", first)
    assert titles[:3] == ["29", "28", "27"] and len(titles) == 25
    assert first.count('data-unread="yes"') == 12  # 28, 26 ... 6 on this page
    assert "portal-unread" in first
    second = client.get("/notifications/?page=2").get_data(as_text=True)
    assert re.findall(r"item (\d\d)", second) == ["04", "03", "02", "01", "00"]
    unread = client.get("/notifications/?show=unread").get_data(as_text=True)
    numbers = re.findall(r"item (\d\d)", unread)
    assert len(numbers) == 15 and all(int(n) % 2 == 0 for n in numbers)
    assert client.get("/notifications/?show=bogus&page=-3").status_code == 200


def test_p6_3_another_persons_notification_answers_404(
    app: Any, make_person: Any, login: Any, org: dict[str, int]
) -> None:
    with app.app_context():
        note = notify(org["li"], "core.loop_assigned", "for li only", link="/")
        db.session.commit()
        theirs = note.id
    client = app.test_client()
    login(client, "sup_east")  # li's supervisor: sees li's records, not li's messages
    assert client.post(f"/notifications/{theirs}/read").status_code == 404
    assert client.post(f"/notifications/{theirs}/open").status_code == 404
    assert "for li only" not in client.get("/notifications/").get_data(as_text=True)
    assert bell_count(client) == 0
    client.post("/notifications/read-all")
    with app.app_context():
        assert db.session.get(Notification, theirs).read_at is None  # untouched


OUTSIDE_LINKS = [
    "//evil.example/",
    "/\\evil.example/",
    "/\t/evil.example/",  # browsers drop the tab: //evil.example/
    "/\n/evil.example/",
    "https://evil.example/",
    "javascript:alert(1)",
    "loops/1",
]


def test_p6_3_notify_refuses_a_link_that_leaves_the_portal(app: Any, make_person: Any) -> None:
    li = make_person("li")
    with app.app_context():
        for link in OUTSIDE_LINKS:
            with pytest.raises(ValueError, match="inside the portal"):
                notify(li, "core.loop_assigned", "x", link=link)
        assert notify(li, "core.loop_assigned", "x", link="/loops/1?tab=history") is not None
        db.session.commit()
        links = db.session.scalars(sa.select(Notification.link)).all()
    assert links == ["/loops/1?tab=history"]


def test_p6_3_a_stored_link_never_leads_out_of_the_portal(
    app: Any, make_person: Any, login: Any
) -> None:
    li = make_person("li")
    with app.app_context():
        # Rows written around notify() (a script, an older version): checked on opening.
        rows = [
            Notification(user_id=li, kind="core.loop_assigned", title="x", link=link)
            for link in OUTSIDE_LINKS
        ]
        db.session.add_all(rows)
        db.session.commit()
        ids = [row.id for row in rows]
    client = app.test_client()
    login(client, "li")
    for notification_id, link in zip(ids, OUTSIDE_LINKS, strict=True):
        response = client.post(f"/notifications/{notification_id}/open")
        assert response.status_code == 303, link
        assert response.location.startswith("/notifications/"), (link, response.location)


def test_p6_3_email_links_use_the_base_url_never_the_requests_host(
    make_app: Any, make_person: Any, login: Any
) -> None:
    app = mail_app(make_app, free_port(), PORTAL_BASE_URL="")
    li = make_person("li", email="li@example.com")
    make_person("wang")
    client = app.test_client()
    # Anyone can send any Host header: it must not end up as the link in li's email.
    client.environ_base["HTTP_HOST"] = "evil.example"
    login(client, "wang")
    response = client.post(f"/ping/notify/{li}")
    assert response.status_code == 200
    [row] = emails(app)
    assert "evil.example" not in row.body
    assert "Open it in the portal: /ping/thing/7" in row.body  # the bare path, no host
    based = mail_app(make_app, free_port())
    with based.app_context():
        assert mailer.absolute_url("/ping/thing/7") == f"{BASE_URL}/ping/thing/7"


@pytest.mark.browser
def test_p1_3_2_the_bell_in_a_real_browser_counts_and_follows_mark_read(
    live_server: Any, page: Any, make_person: Any
) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    expect = playwright_api.expect
    li = make_person("li")
    with live_server.app.app_context():
        for number in range(2):
            notify(li, "core.loop_assigned", f"bell note {number}", link="/notifications/")
        db.session.commit()
    page.set_viewport_size({"width": 390, "height": 800})  # a phone: the bell stays visible
    page.goto(live_server.url + "/login")
    page.locator("#username").fill("li")
    page.locator("#password").fill(DEMO_TEST_PASSWORD)
    page.get_by_role("button", name=re.compile("Log in|登录")).click()
    bell = page.locator("#portal-bell")
    expect(bell.get_by_test_id("bell-count")).to_have_text("2", timeout=5000)
    expect(bell).to_be_visible()
    bell.get_by_test_id("bell").click()
    expect(page).to_have_url(live_server.url + "/notifications/")
    page.get_by_test_id("mark-read").first.click()
    expect(page.locator('[data-unread="yes"]')).to_have_count(1)
    expect(bell.get_by_test_id("bell-count")).to_have_text("1")
    page.get_by_test_id("mark-all-read").click()
    expect(page.locator('[data-unread="yes"]')).to_have_count(0)
    expect(bell.get_by_test_id("bell-count")).to_have_count(0)
    assert page.console_errors == []  # no CSP violation, no failed request


def test_p1_3_2_the_scheduled_sweep_escalates_and_the_supervisor_is_emailed(
    make_app: Any, org: dict[str, int], smtp: SmtpSink
) -> None:
    from portal.audit.recorder import acting_as
    from portal.auth.models import User
    from portal.loops import scheduler, service

    app = mail_app(make_app, smtp.port)
    now = utcnow()
    with app.test_request_context(), acting_as("test"):
        db.session.get(User, org["sup_east"]).email = "sup.east@example.com"
        item = service.raise_loop(
            "core.action",
            "回访未完成",
            db.session.get(User, org["li"]),
            due_at=now - timedelta(hours=1),
            priority="urgent",
            now=now - timedelta(hours=2),
        )
        db.session.commit()
        item_id = item.id
    with app.app_context():
        # One round of the scheduler: the sweep escalates, then the sender job delivers.
        results = scheduler.run_due(names=["core.escalate_overdue_loops", "core.send_emails"])
        assert [(r.name, r.status) for r in results] == [
            ("core.escalate_overdue_loops", "ok"),
            ("core.send_emails", "ok"),
        ]
        told = db.session.scalars(
            sa.select(Notification).where(
                Notification.user_id == org["sup_east"], Notification.kind == "core.loop_overdue"
            )
        ).all()
    assert len(told) == 1 and str(item_id) in told[0].link
    to_supervisor = [e for e in smtp.handler.envelopes if e.rcpt_tos == ["sup.east@example.com"]]
    assert len(to_supervisor) == 1
    message = email.message_from_bytes(to_supervisor[0].original_content, policy=policy.default)
    assert message["Subject"] == told[0].title
    assert f"{BASE_URL}{told[0].link}" in message.get_content()
