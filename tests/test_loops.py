"""Loop items, the closed loop of P1.3.2: raising, the status machine, who may act,
closing with evidence, verification, reopening with the history kept, the pages (CSRF
on, htmx panel, 409/403/404/422), the JSON API and the due-date reminders."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import render_template_string
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.datastructures import FileStorage

from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.loops import service
from portal.loops.errors import NotAllowed, StateConflict
from portal.loops.models import LoopAttachment, LoopEvent, LoopItem, Notification
from portal.models import as_utc, utcnow
from portal.org.services import ValidationFailed
from portal.rules.models import RuleDecision
from portal.testing import DEMO_TEST_PASSWORD, count_statements, log_in_page, throwaway_plugin

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
T0 = datetime(2030, 3, 4, 1, 0, tzinfo=UTC)  # a Monday, 09:00 in Shanghai


@contextmanager
def acting(app: Any) -> Iterator[None]:
    """A request context (url_for, i18n) with writes attributed to the test."""
    with app.test_request_context(), acting_as("test"):
        yield


def person(user_id: int) -> User:
    return db.session.get(User, user_id)


def raise_item(app: Any, owner: int, raiser: int | None, **fields: Any) -> int:
    with acting(app):
        item = service.raise_loop(
            fields.pop("type", "core.action"),
            fields.pop("title", "Call the customer back"),
            person(owner),
            raised_by=person(raiser) if raiser else None,
            **fields,
        )
        db.session.commit()
        return item.id


def run(app: Any, loop_id: int, action: str, actor: int, **fields: Any) -> LoopItem:
    with acting(app):
        item = db.session.get(LoopItem, loop_id)
        service.act(item, person(actor), action, **fields)
        db.session.commit()
        return item


def history(app: Any, loop_id: int) -> list[tuple[str, str | None, str | None, str]]:
    with app.app_context():
        events = db.session.scalars(
            sa.select(LoopEvent).where(LoopEvent.loop_id == loop_id).order_by(LoopEvent.id)
        )
        return [(e.action, e.from_status, e.to_status, e.note) for e in events]


def notes_of(app: Any, user_id: int, kind: str | None = None) -> list[Notification]:
    with app.app_context():
        statement = sa.select(Notification).where(Notification.user_id == user_id)
        if kind:
            statement = statement.where(Notification.kind == kind)
        return list(db.session.scalars(statement.order_by(Notification.id)))


def loaded(app: Any, loop_id: int) -> LoopItem:
    with app.app_context():
        item = db.session.get(LoopItem, loop_id)
        db.session.expunge(item)
        return item


def count(app: Any, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


# -- the service -----------------------------------------------------------------------


@pytest.fixture
def spied(make_app: Any) -> tuple[Any, list[Any]]:
    """The portal with a plugin that records every loop event it receives."""
    seen: list[Any] = []

    def on_event(event: Any) -> None:
        if event.name.startswith("core.loop_"):
            seen.append(event)

    plugin = throwaway_plugin("spy", portal_on_event=on_event)
    return make_app(plugins=[("spy", plugin)]), seen


def test_p1_3_2_full_lifecycle_raise_start_close_verify(
    spied: tuple[Any, list[Any]], org: dict[str, int]
) -> None:
    app, seen = spied
    loop_id = raise_item(app, org["li"], org["sup_east"], now=T0, subject=("demo_visit", 7))
    item = loaded(app, loop_id)
    # No due date given: loop_policy gives a normal item seven days, and says so.
    assert as_utc(item.due_at) == T0 + timedelta(days=7)
    assert (item.status, item.clause, item.owner_id) == ("open", "P1.3.2", org["li"])
    with app.app_context():
        decisions = db.session.scalars(
            sa.select(RuleDecision).where(
                RuleDecision.subject_table == "core_loop_item",
                RuleDecision.subject_id == str(loop_id),
            )
        ).all()
        assert {(d.ruleset, d.rule) for d in decisions} >= {("loop_policy", "due-by-priority")}
        assert {d.outputs.get("due_days") for d in decisions} >= {7}
    assigned = notes_of(app, org["li"], "core.loop_assigned")
    assert len(assigned) == 1 and assigned[0].link == f"/loops/{loop_id}"
    assert seen[0].name == "core.loop_raised"
    assert seen[0].payload["subject_table"] == "demo_visit" and seen[0].payload["subject_id"] == "7"

    run(app, loop_id, "start", org["li"], now=T0 + timedelta(hours=1))
    run(app, loop_id, "close", org["li"], note="Called, quote sent", evidence="CRM #55")
    item = loaded(app, loop_id)
    assert (item.status, item.closure_note, item.evidence) == (
        "done",
        "Called, quote sent",
        "CRM #55",
    )
    assert as_utc(item.started_at) == T0 + timedelta(hours=1)
    # Whoever raised it is asked to verify.
    to_verify = notes_of(app, org["sup_east"], "core.loop_to_verify")
    assert len(to_verify) == 1 and "Call the customer back" in to_verify[0].title
    run(app, loop_id, "verify", org["sup_east"], note="Checked in the CRM")
    item = loaded(app, loop_id)
    assert item.status == "verified" and item.verified_by_id == org["sup_east"]
    assert [event[:3] for event in history(app, loop_id)] == [
        ("raised", None, "open"),
        ("started", "open", "in_progress"),
        ("closed", "in_progress", "done"),
        ("verified", "done", "verified"),
    ]
    changes = [(e.payload["action"], e.payload["to_status"]) for e in seen[1:]]
    assert changes == [("started", "in_progress"), ("closed", "done"), ("verified", "verified")]


def test_p1_3_2_reopen_keeps_the_history_and_tells_the_owner(app: Any, org: dict[str, int]) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"])
    run(app, loop_id, "close", org["li"], note="First attempt")
    run(app, loop_id, "verify", org["sup_east"])
    with acting(app), pytest.raises(ValidationFailed) as refused:
        service.reopen(db.session.get(LoopItem, loop_id), person(org["sup_east"]), "  ")
    assert "reason" in refused.value.fields
    run(app, loop_id, "reopen", org["sup_east"], note="The customer called again")
    item = loaded(app, loop_id)
    assert (item.status, item.reopen_count, item.closure_note, item.verified_at) == (
        "open",
        1,
        "",
        None,
    )
    reopened = notes_of(app, org["li"], "core.loop_reopened")
    assert len(reopened) == 1 and reopened[0].body == "The customer called again"
    run(app, loop_id, "close", org["li"], note="Second attempt")
    steps = history(app, loop_id)
    assert [s[0] for s in steps] == ["raised", "closed", "verified", "reopened", "closed"]
    assert steps[1][3] == "First attempt" and steps[3][3] == "The customer called again"
    assert loaded(app, loop_id).closure_note == "Second attempt"


def test_p1_3_2_a_long_history_shows_its_latest_entries(app: Any, org: dict[str, int]) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"])
    for number in range(5):
        run(app, loop_id, "comment", org["li"], note=f"Note {number}")
    with app.app_context():
        shown = service.history_of(db.session.get(LoopItem, loop_id), limit=3)
        assert [event.note for event in shown] == ["Note 2", "Note 3", "Note 4"]


@pytest.mark.parametrize(
    ("setup", "action", "actor"),
    [
        ([], "verify", "sup_east"),  # open: nothing to verify yet
        ([("close", "li")], "start", "li"),  # done cannot be started
        ([("close", "li"), ("verify", "sup_east")], "close", "li"),
        ([], "reopen", "sup_east"),  # open cannot be reopened
        ([("close", "li")], "reassign", "sup_east"),
    ],
)
def test_p1_3_2_illegal_transitions_are_conflicts_and_write_nothing(
    app: Any, org: dict[str, int], setup: list[tuple[str, str]], action: str, actor: str
) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"])
    for step, who in setup:
        run(app, loop_id, step, org[who], note="done")
    before = (loaded(app, loop_id).lock_version, len(history(app, loop_id)))
    with pytest.raises(StateConflict):
        run(app, loop_id, action, org[actor], note="x", new_owner=org["wang"])
    assert (loaded(app, loop_id).lock_version, len(history(app, loop_id))) == before


def test_p1_3_2_bad_input_is_refused_per_field_and_nothing_is_written(
    app: Any, org: dict[str, int], make_person: Any
) -> None:
    gone = make_person("gone", roles=["salesperson"])
    with acting(app):
        db.session.get(User, gone).active = False
        db.session.commit()
    cases = [
        ({"type": "sales.unknown"}, "type"),
        ({"due_at": utcnow() - timedelta(minutes=1)}, "due_at"),
        ({"priority": "whenever"}, "priority"),
        ({"title": "   "}, "title"),
        ({"subject_link": "javascript:alert(1)"}, "subject_link"),
        ({"subject_link": "//evil.example/x"}, "subject_link"),
        ({"subject": ("Bad Table!", 1)}, "subject"),
    ]
    for fields, field in cases:
        with pytest.raises(ValidationFailed) as refused:
            raise_item(app, org["li"], org["sup_east"], **fields)
        assert field in refused.value.fields, fields
    with pytest.raises(ValidationFailed) as refused:
        raise_item(app, gone, org["sup_east"])
    assert "owner" in refused.value.fields
    assert count(app, LoopItem) == 0 and count(app, LoopEvent) == 0
    assert notes_of(app, org["li"]) == []


def test_p1_3_2_who_may_act(app: Any, org: dict[str, int]) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"])
    with acting(app):
        item = db.session.get(LoopItem, loop_id)
        allowed = {
            name: service.allowed_actions(item, person(org[name]))
            for name in ("li", "wang", "sup_east", "sup_south", "manager", "auditor")
        }
    assert allowed["li"] == ["start", "close", "comment"]
    assert allowed["sup_east"] == ["start", "close", "comment", "reassign"]
    assert allowed["manager"] == ["start", "close", "comment", "reassign"]
    assert allowed["wang"] == allowed["sup_south"] == allowed["auditor"] == []
    for outsider in ("wang", "auditor", "sup_south"):
        with pytest.raises(NotAllowed):
            run(app, loop_id, "close", org[outsider], note="not mine")
    run(app, loop_id, "close", org["li"], note="done")
    # Verification is for whoever raised it: not the owner, not even the manager.
    for other in ("li", "manager"):
        with pytest.raises(NotAllowed):
            run(app, loop_id, "verify", org[other])
    with acting(app):
        item = db.session.get(LoopItem, loop_id)
        assert service.allowed_actions(item, person(org["sup_east"])) == [
            "verify",
            "reopen",
            "comment",
        ]
        assert service.allowed_actions(item, person(org["li"])) == ["comment"]


def test_p1_3_2_system_and_self_raised_items_are_verified_by_the_supervisor(
    app: Any, org: dict[str, int]
) -> None:
    by_system = raise_item(app, org["li"], None, priority="high")
    by_herself = raise_item(app, org["li"], org["li"], priority="normal")
    for asked, loop_id in enumerate((by_system, by_herself), start=1):
        run(app, loop_id, "close", org["li"], note="done")
        to_verify = notes_of(app, org["sup_east"], "core.loop_to_verify")
        assert len(to_verify) == asked and to_verify[-1].link == f"/loops/{loop_id}"
        with pytest.raises(NotAllowed):
            run(app, loop_id, "verify", org["li"])
        with pytest.raises(NotAllowed):
            run(app, loop_id, "verify", org["sup_south"])
        run(app, loop_id, "verify", org["sup_east"])
        assert loaded(app, loop_id).status == "verified"
    # Raising one's own item tells nobody; a system item tells its owner.
    assert len(notes_of(app, org["li"], "core.loop_assigned")) == 1


def test_p1_3_2_loop_policy_auto_verifies_ones_own_low_priority_item(
    app: Any, org: dict[str, int]
) -> None:
    loop_id = raise_item(app, org["li"], org["li"], priority="low", now=T0)
    assert as_utc(loaded(app, loop_id).due_at) == T0 + timedelta(days=14)
    run(app, loop_id, "close", org["li"], note="Tidied my customer list")
    item = loaded(app, loop_id)
    assert item.status == "verified" and item.verified_by_id is None
    steps = history(app, loop_id)
    assert [s[:3] for s in steps[-2:]] == [
        ("closed", "open", "done"),
        ("verified", "done", "verified"),
    ]
    assert notes_of(app, org["sup_east"], "core.loop_to_verify") == []


def test_p1_3_2_reassign_only_within_the_write_scope(app: Any, org: dict[str, int]) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"])
    with pytest.raises(ValidationFailed) as refused:
        run(app, loop_id, "reassign", org["sup_east"], new_owner=org["zhao"])
    assert "owner" in refused.value.fields
    with pytest.raises(NotAllowed):
        run(app, loop_id, "reassign", org["li"], new_owner=org["wang"])
    new_due = utcnow() + timedelta(days=3)
    run(app, loop_id, "reassign", org["sup_east"], new_owner=org["wang"], due_at=new_due)
    item = loaded(app, loop_id)
    assert item.owner_id == org["wang"] and abs(as_utc(item.due_at) - new_due) < timedelta(
        seconds=1
    )
    assert len(notes_of(app, org["wang"], "core.loop_assigned")) == 1
    assert history(app, loop_id)[-1][0] == "reassigned"


def test_p1_3_2_concurrent_close_of_the_same_item_one_wins(app: Any, org: dict[str, int]) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"])
    with app.test_request_context(), acting_as("first"):
        first = db.session.get(LoopItem, loop_id)
        assert first.status == "open"  # loaded before the other close
        with app.app_context(), app.test_request_context(), acting_as("second"):
            second = db.session.get(LoopItem, loop_id)
            service.close(second, db.session.get(User, org["sup_east"]), "closed by the supervisor")
            db.session.commit()
        with pytest.raises(StaleDataError):  # at the flush of the close, or the commit
            service.close(first, db.session.get(User, org["li"]), "closed by the owner")
            db.session.commit()
        db.session.rollback()
    item = loaded(app, loop_id)
    assert item.closure_note == "closed by the supervisor"
    assert [s[0] for s in history(app, loop_id)] == ["raised", "closed"]


def test_p1_3_2_evidence_files_are_checked_and_stored(make_app: Any, org: dict[str, int]) -> None:
    app = make_app(LOOP_ATTACHMENT_MAX_BYTES=1000)
    loop_id = raise_item(app, org["li"], org["sup_east"])
    folder = Path(app.instance_path) / "uploads" / "loops"

    def upload(name: str, data: bytes) -> FileStorage:
        return FileStorage(stream=io.BytesIO(data), filename=name, content_type="image/png")

    refused_cases = [
        ("photo.png", PNG + b"x" * 1000, "larger than"),
        ("photo.png", b"MZ\x90\x00 not a picture", "does not contain"),
        ("tool.exe", b"MZ\x90\x00", "not accepted"),
        ("empty.pdf", b"", "empty"),
    ]
    for name, data, message in refused_cases:
        with pytest.raises(ValidationFailed) as refused:
            run(app, loop_id, "close", org["li"], note="done", files=[upload(name, data)])
        assert message in refused.value.fields["files"][0]
    assert count(app, LoopAttachment) == 0 and not any(folder.glob("*"))
    assert loaded(app, loop_id).status == "open"
    run(
        app,
        loop_id,
        "close",
        org["li"],
        note="done",
        files=[upload("../../etc/photo.png", PNG), upload("notes.txt", "报价已发送".encode())],
    )
    with app.app_context():
        rows = db.session.scalars(sa.select(LoopAttachment).order_by(LoopAttachment.id)).all()
        assert [(r.filename, r.content_type, r.size) for r in rows] == [
            ("photo.png", "image/png", len(PNG)),
            ("notes.txt", "text/plain", len("报价已发送".encode())),
        ]
        assert rows[0].sha256 == __import__("hashlib").sha256(PNG).hexdigest()
        assert (folder / rows[0].stored_name).read_bytes() == PNG
        assert re.fullmatch(r"[0-9a-f]{40}", rows[0].stored_name)


def test_p1_3_2_a_refused_close_leaves_no_file_behind(app: Any, org: dict[str, int]) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"])
    folder = Path(app.instance_path) / "uploads" / "loops"
    with app.test_request_context(), acting_as("test"):
        item = db.session.get(LoopItem, loop_id)
        files = [FileStorage(stream=io.BytesIO(PNG), filename="a.png")]
        service.close(item, db.session.get(User, org["li"]), "done", files=files)
        assert len(list(folder.glob("*"))) == 1
        db.session.rollback()  # e.g. the commit lost a race: the file goes too
    assert not any(folder.glob("*"))
    # A request that fails unexpectedly ends by closing its session uncommitted: the
    # file goes too.
    with app.test_request_context(), acting_as("test"):
        item = db.session.get(LoopItem, loop_id)
        files = [FileStorage(stream=io.BytesIO(PNG), filename="b.png")]
        service.close(item, db.session.get(User, org["li"]), "done", files=files)
        assert len(list(folder.glob("*"))) == 1
        db.session.close()
    assert not any(folder.glob("*"))
    # And a committed close keeps its file.
    run(
        app, loop_id, "close", org["li"], note="done", files=[FileStorage(io.BytesIO(PNG), "c.png")]
    )
    assert len(list(folder.glob("*"))) == 1 and count(app, LoopAttachment) == 1


def test_p1_3_2_subject_links_both_ways(app: Any, org: dict[str, int]) -> None:
    first = raise_item(
        app, org["li"], org["sup_east"], subject=("demo_visit", 42), subject_link="/demo/visits/42"
    )
    raise_item(app, org["wang"], org["sup_east"], subject=("demo_visit", 42))
    raise_item(app, org["li"], org["sup_east"], subject=("demo_visit", 43))
    with app.app_context():
        li, sup = person(org["li"]), person(org["sup_east"])
        assert [i.id for i in service.loops_for_subject("demo_visit", 42, li)] == [first]
        assert len(service.loops_for_subject("demo_visit", "42", sup)) == 2
    with app.test_request_context():
        from flask_login import login_user

        li = person(org["li"])
        li.login_session_key = "test"
        login_user(li)
        html = render_template_string(
            '{% from "loops/_subject_loops.html" import subject_loops %}'
            '{{ subject_loops("demo_visit", 42, "/demo/visits/42") }}'
        )
    assert f'href="/loops/{first}"' in html and html.count("list-group-item") == 1
    assert "subject_table=demo_visit" in html and "subject_link=/demo/visits/42" in html


def test_p1_3_2_due_soon_reminders_once_per_due_date(app: Any, org: dict[str, int]) -> None:
    soon = raise_item(app, org["li"], org["sup_east"], due_at=T0 + timedelta(hours=20), now=T0)
    later = raise_item(app, org["li"], org["sup_east"], due_at=T0 + timedelta(hours=30), now=T0)
    urgent = raise_item(
        app, org["wang"], org["sup_east"], priority="urgent", due_at=T0 + timedelta(hours=5), now=T0
    )
    with app.app_context():
        counts = service.remind_due_soon(now=T0)
    # Normal items are reminded a day ahead, urgent ones four hours ahead (loop_policy).
    assert counts == {"checked": 1, "reminded": 1, "notified": 1}
    assert [n.link for n in notes_of(app, org["li"], "core.loop_due_soon")] == [f"/loops/{soon}"]
    with app.app_context():
        assert service.remind_due_soon(now=T0)["reminded"] == 0  # once per due date
        assert service.remind_due_soon(now=T0 + timedelta(hours=1))["reminded"] == 1  # urgent
        assert service.remind_due_soon(now=T0 + timedelta(hours=6))["reminded"] == 1  # later
    assert len(notes_of(app, org["wang"], "core.loop_due_soon")) == 1
    assert [s[0] for s in history(app, later)][-1] == "reminded"
    assert [s[0] for s in history(app, urgent)][-1] == "reminded"
    # A new due date earns a new reminder.
    run(
        app,
        soon,
        "reassign",
        org["sup_east"],
        new_owner=org["wang"],
        due_at=T0 + timedelta(hours=40),
    )
    with app.app_context():
        assert service.remind_due_soon(now=T0 + timedelta(hours=17))["reminded"] == 1


def test_p1_3_2_a_reminder_batch_changed_meanwhile_is_read_again(
    app: Any, org: dict[str, int]
) -> None:
    """Someone renames an item between the reminder job's read and its write: the job's
    write is refused by the item's lock version (StaleDataError), the batch is read
    again, and the owner is still reminded once."""
    loop_id = raise_item(app, org["li"], org["sup_east"], due_at=T0 + timedelta(hours=20), now=T0)
    table = LoopItem.__table__
    changed: list[bool] = []

    def someone_else_changes_it(session: Any, *args: Any) -> None:
        if changed:
            return
        changed.append(True)
        with db.engine.begin() as other:
            other.execute(
                sa.update(table)
                .where(table.c.id == loop_id)
                .values(title="Renamed meanwhile", lock_version=table.c.lock_version + 1)
            )

    with app.app_context():
        session = db.session()
        sa.event.listen(session, "before_flush", someone_else_changes_it)
        try:
            counts = service.remind_due_soon(now=T0)
        finally:
            sa.event.remove(session, "before_flush", someone_else_changes_it)
    assert changed and counts == {"checked": 1, "reminded": 1, "notified": 1}
    reminded = notes_of(app, org["li"], "core.loop_due_soon")
    assert len(reminded) == 1 and "Renamed meanwhile" in reminded[0].title
    assert [s[0] for s in history(app, loop_id)] == ["raised", "reminded"]


def test_p1_3_2_due_dates_are_bounded_not_a_500(make_app: Any, org: dict[str, int]) -> None:
    """A due date at the end of the calendar is refused per field; west of Greenwich the
    end of 31 December 9999 would not even fit a datetime once in UTC."""
    app = make_app(BABEL_DEFAULT_TIMEZONE="America/Los_Angeles")
    client = app.test_client()
    token = {"Authorization": "Bearer " + _issue_token(app, "sup_east")}
    body = {"type": "core.action", "title": "Some day", "owner_id": org["li"]}
    for due_on in ("9999-12-31", (utcnow() + timedelta(days=4000)).date().isoformat()):
        refused = client.post("/api/v1/loops", json={**body, "due_on": due_on}, headers=token)
        assert refused.status_code == 422, refused.json
        assert "too far away" in refused.json["error"]["fields"]["due_on"][0]
    with pytest.raises(ValidationFailed) as refused:
        raise_item(app, org["li"], org["sup_east"], due_at=datetime(9999, 12, 31, 23, 59))
    assert "too far away" in refused.value.fields["due_at"][0]
    assert count(app, LoopItem) == 0
    fine = client.post("/api/v1/loops", json={**body, "due_on": "2099-01-01"}, headers=token)
    assert fine.status_code == 422  # more than ten years ahead
    soon = (utcnow() + timedelta(days=30)).date().isoformat()
    assert (
        client.post("/api/v1/loops", json={**body, "due_on": soon}, headers=token).status_code
        == 201
    )


def _issue_token(app: Any, username: str) -> str:
    from portal.auth.services import issue_token

    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.username == username)).one()
        token = issue_token(user, "test")
        db.session.commit()
        return token


# -- the pages ---------------------------------------------------------------------------


def csrf_token(html: str, prefix: str = "") -> str:
    name = f"{prefix}-csrf_token" if prefix else "csrf_token"
    match = re.search(rf'id="{name}" name="{name}" type="hidden" value="([^"]+)"', html)
    assert match, f"no {name} in the page"
    return match.group(1)


def csrf_login(client: Any, username: str) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": DEMO_TEST_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302


@pytest.fixture
def csrf_app(make_app: Any) -> Any:
    return make_app(WTF_CSRF_ENABLED=True)


def test_p1_3_2_pages_raise_and_close_with_csrf(csrf_app: Any, org: dict[str, int]) -> None:
    app = csrf_app
    sup = app.test_client()
    csrf_login(sup, "sup_east")
    form = sup.get("/loops/new").get_data(as_text=True)
    assert 'name="owner_id"' in form and "Wang" in form and "Zhao" not in form
    data = {
        "title": "Visit the new distributor",
        "type": "core.action",
        "owner_id": str(org["li"]),
        "priority": "high",
        "due_on": "",
        "description": "Bring the catalogue",
    }
    assert sup.post("/loops/new", data=data).status_code == 400  # no CSRF token
    assert count(app, LoopItem) == 0
    data["csrf_token"] = csrf_token(form)
    past = sup.post("/loops/new", data={**data, "due_on": "2020-01-01"})
    assert past.status_code == 422 and "cannot be in the past" in past.get_data(as_text=True)
    outside = sup.post("/loops/new", data={**data, "owner_id": str(org["zhao"])})
    assert outside.status_code == 422
    assert count(app, LoopItem) == 0
    created = sup.post("/loops/new", data=data)
    assert created.status_code == 303
    loop_id = int(created.headers["Location"].rsplit("/", 1)[1])
    assert loaded(app, loop_id).priority == "high"

    li = app.test_client()
    csrf_login(li, "li")
    page = li.get(f"/loops/{loop_id}").get_data(as_text=True)
    assert 'data-action="start"' in page and 'data-action="verify"' not in page
    version = re.search(r'data-version="(\d+)"', page).group(1)
    token = csrf_token(page, "close")
    # Closing without a note: 422 with the message, and nothing written.
    empty = li.post(
        f"/loops/{loop_id}/close",
        data={"close-csrf_token": token, "close-version": version, "close-note": " "},
    )
    assert empty.status_code == 422
    assert "a closing note is required" in empty.get_data(as_text=True)
    assert loaded(app, loop_id).status == "open" and len(history(app, loop_id)) == 1
    closed = li.post(
        f"/loops/{loop_id}/close",
        data={
            "close-csrf_token": token,
            "close-version": version,
            "close-note": "Visited, order expected",
            "close-evidence": "Visit report 12",
            "close-files": (io.BytesIO(PNG), "photo.png"),
        },
        content_type="multipart/form-data",
    )
    assert closed.status_code == 303 and closed.headers["Location"] == f"/loops/{loop_id}"
    page = li.get(f"/loops/{loop_id}").get_data(as_text=True)
    assert "Visited, order expected" in page and "photo.png" in page

    page = sup.get(f"/loops/{loop_id}").get_data(as_text=True)
    verified = sup.post(
        f"/loops/{loop_id}/verify",
        data={"verify-csrf_token": csrf_token(page, "verify"), "verify-note": "Seen the order"},
    )
    assert verified.status_code == 303
    assert loaded(app, loop_id).status == "verified"


def test_p1_3_2_pages_answer_404_outside_the_scope_and_403_without_the_right(
    client: Any, app: Any, org: dict[str, int], login: Any
) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"])
    for outsider in ("wang", "zhao", "sup_south"):
        other = app.test_client()
        login(other, outsider)
        assert other.get(f"/loops/{loop_id}").status_code == 404
        assert other.post(f"/loops/{loop_id}/close", data={"close-note": "x"}).status_code == 404
        assert f"/loops/{loop_id}" not in other.get("/loops/").get_data(as_text=True)
    login(client, "auditor")
    assert client.get(f"/loops/{loop_id}").status_code == 200  # reads everything
    refused = client.post(f"/loops/{loop_id}/close", data={"close-note": "x"})
    assert refused.status_code == 403
    run(app, loop_id, "close", org["li"], note="done")
    manager = app.test_client()
    login(manager, "manager")
    assert manager.post(f"/loops/{loop_id}/verify", data={}).status_code == 403
    assert loaded(app, loop_id).status == "done"
    assert manager.post(f"/loops/{loop_id}/fly", data={}).status_code == 404


def test_p1_3_2_pages_conflicts_answer_409(
    client: Any, app: Any, org: dict[str, int], login: Any
) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"])
    login(client, "li")
    version = str(loaded(app, loop_id).lock_version)
    run(app, loop_id, "start", org["sup_east"])  # someone else acted meanwhile
    stale = client.post(
        f"/loops/{loop_id}/close", data={"close-version": version, "close-note": "done"}
    )
    assert stale.status_code == 409
    assert "changed this item meanwhile" in stale.get_data(as_text=True)
    assert loaded(app, loop_id).status == "in_progress"
    twice = client.post(f"/loops/{loop_id}/start", data={})
    assert twice.status_code == 409 and "Only an open item" in twice.get_data(as_text=True)
    # With htmx the page is reloaded with the explanation (htmx does not swap a 409).
    again = client.post(f"/loops/{loop_id}/start", data={}, headers={"HX-Request": "true"})
    assert again.status_code == 409 and again.headers["HX-Redirect"] == f"/loops/{loop_id}"
    assert "Only an open item" in client.get(f"/loops/{loop_id}").get_data(as_text=True)


def test_p1_3_2_htmx_swaps_the_item_panel(
    client: Any, app: Any, org: dict[str, int], login: Any
) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"])
    login(client, "li")
    headers = {"HX-Request": "true", "HX-Target": "loop-panel"}
    bad = client.post(f"/loops/{loop_id}/comment", data={"comment-note": ""}, headers=headers)
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="loop-panel"') and "<html" not in html
    assert "Write a comment." in html
    good = client.post(
        f"/loops/{loop_id}/comment", data={"comment-note": "On my way"}, headers=headers
    )
    html = good.get_data(as_text=True)
    assert good.status_code == 200 and html.lstrip().startswith('<div id="loop-panel"')
    assert "Your comment was added." in html and "On my way" in html
    assert "HX-Request" in good.headers.get("Vary", "")


def test_p1_3_2_register_lists_filters_and_pages(
    client: Any, app: Any, org: dict[str, int], login: Any
) -> None:
    for number in range(30):
        raise_item(app, org["li"], org["sup_east"], title=f"Task {number:02d}")
    past = utcnow() - timedelta(days=10)
    overdue = raise_item(
        app,
        org["wang"],
        org["sup_east"],
        title="Late one",
        now=past,
        due_at=past + timedelta(days=1),
    )
    raise_item(app, org["zhao"], org["sup_south"], title="Southern task")
    login(client, "sup_east")
    first = client.get("/loops/").get_data(as_text=True)
    assert "Task 00" in first and "Southern task" not in first and "31 in all" in first
    assert "Late one" in first  # due first
    assert "Task 29" in client.get("/loops/?page=2").get_data(as_text=True)
    only_late = client.get("/loops/?overdue=1").get_data(as_text=True)
    assert f'data-loop-id="{overdue}"' in only_late and "Task 00" not in only_late
    wang = client.get(f"/loops/?owner={org['wang']}&status=active").get_data(as_text=True)
    assert "1 in all" in wang
    assert "0 in all" in client.get("/loops/?status=verified").get_data(as_text=True)
    assert "Task 07" in client.get("/loops/?q=task+07").get_data(as_text=True)
    assert client.get("/loops/?owner=abc&page=-3&status=%00").status_code == 200
    li = app.test_client()
    login(li, "li")
    assert "30 in all" in li.get("/loops/").get_data(as_text=True)


def test_p1_3_2_the_raiser_reads_and_verifies_wherever_the_owner_sits(
    client: Any, app: Any, org: dict[str, int], login: Any, api_token: Any
) -> None:
    """Whoever raised an item follows it even after it went to someone outside their
    scope: they read it (page, API, evidence) and verify it, but do not act as owner."""
    loop_id = raise_item(app, org["zhao"], org["sup_south"])
    run(app, loop_id, "reassign", org["manager"], new_owner=org["li"])
    login(client, "sup_south")
    assert client.get(f"/loops/{loop_id}").status_code == 200
    assert f'data-loop-id="{loop_id}"' in client.get("/loops/").get_data(as_text=True)
    headers = _auth(api_token("sup_south"))
    assert client.get(f"/api/v1/loops/{loop_id}", headers=headers).json["allowed_actions"] == [
        "comment"
    ]
    assert client.post(f"/loops/{loop_id}/close", data={"close-note": "x"}).status_code == 403
    refused = client.post(
        f"/api/v1/loops/{loop_id}/actions", json={"action": "close", "note": "x"}, headers=headers
    )
    assert refused.status_code == 403 and loaded(app, loop_id).status == "open"
    run(
        app, loop_id, "close", org["li"], note="done", files=[FileStorage(io.BytesIO(PNG), "p.png")]
    )
    with app.app_context():
        attachment_id = db.session.scalar(sa.select(LoopAttachment.id))
    assert client.get(f"/loops/{loop_id}/attachments/{attachment_id}").data == PNG
    page = client.get(f"/loops/{loop_id}").get_data(as_text=True)
    verified = client.post(
        f"/loops/{loop_id}/verify", data={"verify-csrf_token": "", "verify-note": "Seen"}
    )
    assert 'data-action="verify"' in page and verified.status_code == 303
    assert loaded(app, loop_id).status == "verified"
    # Someone who neither raised it nor reaches its owner does not even see it.
    other = app.test_client()
    login(other, "zhao")
    assert other.get(f"/loops/{loop_id}").status_code == 404


def test_p1_3_2_attachment_download_is_scoped(
    client: Any, app: Any, org: dict[str, int], login: Any
) -> None:
    loop_id = raise_item(app, org["li"], org["sup_east"])
    file = FileStorage(stream=io.BytesIO(PNG), filename="receipt.png")
    run(app, loop_id, "close", org["li"], note="done", files=[file])
    other = raise_item(app, org["li"], org["sup_east"])
    with app.app_context():
        attachment_id = db.session.scalar(sa.select(LoopAttachment.id))
    login(client, "sup_east")
    response = client.get(f"/loops/{loop_id}/attachments/{attachment_id}")
    assert response.status_code == 200 and response.data == PNG
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.mimetype == "image/png"
    # Another item's id in the URL does not reach the file.
    assert client.get(f"/loops/{other}/attachments/{attachment_id}").status_code == 404
    wang = app.test_client()
    login(wang, "wang")
    assert wang.get(f"/loops/{loop_id}/attachments/{attachment_id}").status_code == 404


def test_p1_3_2_detail_links_to_the_subject(
    client: Any, app: Any, org: dict[str, int], login: Any
) -> None:
    loop_id = raise_item(
        app, org["li"], None, subject=("demo_visit", 9), subject_link="/demo/visits/9"
    )
    login(client, "li")
    page = client.get(f"/loops/{loop_id}").get_data(as_text=True)
    assert '<a href="/demo/visits/9">demo_visit #9</a>' in page
    assert "the portal (a rule or a job)" in page


# -- the API ---------------------------------------------------------------------------------


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_p1_3_2_api_lists_raises_and_acts(
    client: Any, app: Any, org: dict[str, int], api_token: Any
) -> None:
    sup, li, wang = (_auth(api_token(name)) for name in ("sup_east", "li", "wang"))
    body = {"type": "core.action", "title": "Send the price list", "owner_id": org["li"]}
    created = client.post("/api/v1/loops", json=body, headers=sup)
    assert created.status_code == 201, created.json
    item = created.json
    assert (item["status"], item["owner_id"], item["priority"]) == ("open", org["li"], "normal")
    assert item["history"][0]["action"] == "raised"
    loop_id = item["id"]
    outside = client.post("/api/v1/loops", json={**body, "owner_id": org["zhao"]}, headers=sup)
    assert outside.status_code == 422 and "owner_id" in outside.json["error"]["fields"]
    typo = client.post("/api/v1/loops", json={**body, "titel": "x"}, headers=sup)
    assert typo.status_code == 400 and typo.json["error"]["code"] == "unknown_fields"
    past = client.post("/api/v1/loops", json={**body, "due_on": "2001-01-01"}, headers=sup)
    assert past.status_code == 422 and "due_on" in past.json["error"]["fields"]

    listing = client.get("/api/v1/loops?status=active", headers=li).json
    assert [i["id"] for i in listing["items"]] == [loop_id] and listing["total"] == 1
    assert client.get("/api/v1/loops", headers=wang).json["total"] == 0
    assert client.get(f"/api/v1/loops/{loop_id}", headers=wang).status_code == 404
    detail = client.get(f"/api/v1/loops/{loop_id}", headers=li).json
    assert detail["allowed_actions"] == ["start", "close", "comment"]

    url = f"/api/v1/loops/{loop_id}/actions"
    no_note = client.post(url, json={"action": "close"}, headers=li)
    assert no_note.status_code == 422 and no_note.json["error"]["fields"] == {
        "note": [no_note.json["error"]["fields"]["note"][0]]
    }
    assert loaded(app, loop_id).status == "open"
    assert client.post(url, json={"action": "fly"}, headers=li).status_code == 422
    assert client.post(url, json={"action": "close", "note": 5}, headers=li).status_code == 200
    assert client.post(url, json={"action": "close", "note": "x"}, headers=li).status_code == 409
    assert client.post(url, json={"action": "verify"}, headers=li).status_code == 403
    assert client.post(url, json={"action": "verify"}, headers=wang).status_code == 404
    stale = client.post(url, json={"action": "verify", "version": 1}, headers=sup)
    assert stale.status_code == 409 and stale.json["error"]["code"] == "conflict"
    version = client.get(f"/api/v1/loops/{loop_id}", headers=sup).json["version"]
    verified = client.post(url, json={"action": "verify", "version": version}, headers=sup)
    assert verified.status_code == 200 and verified.json["status"] == "verified"
    reopened = client.post(
        url, json={"action": "reopen", "note": "Price list was old"}, headers=sup
    )
    assert reopened.json["status"] == "open" and reopened.json["reopen_count"] == 1
    moved = client.post(url, json={"action": "reassign", "owner_id": org["wang"]}, headers=sup)
    assert moved.status_code == 200 and moved.json["owner_id"] == org["wang"]
    assert [h["action"] for h in moved.json["history"]] == [
        "raised",
        "closed",
        "verified",
        "reopened",
        "reassigned",
    ]


def test_p1_3_2_register_and_api_filter_clauses_below_and_due_windows(
    client: Any, app: Any, org: dict[str, int], login: Any, api_token: Any
) -> None:
    """One set of filters (``service.filter_loops``) for the register, My work and the
    API: a clause matches the clauses below it, due windows are the portal's days."""
    today = raise_item(
        app,
        org["li"],
        org["sup_east"],
        title="Due today",
        clause="P3.1.2",
        due_at=T0 + timedelta(hours=2),
        now=T0,
    )
    week = raise_item(
        app,
        org["li"],
        org["sup_east"],
        title="Due Thursday",
        clause="P31",
        due_at=T0 + timedelta(days=3),
        now=T0,
    )
    later = raise_item(
        app,
        org["li"],
        org["sup_east"],
        title="Due later",
        clause="P3",
        due_at=T0 + timedelta(days=10),
        now=T0,
    )
    with app.test_request_context():

        def ids(**args: str) -> list[int]:
            statement = service.filter_loops(sa.select(LoopItem.id), args, now=T0)
            return list(db.session.scalars(statement.order_by(LoopItem.id)))

        assert ids(due="today") == [today]  # T0 is Monday 09:00 in Shanghai
        assert ids(due="week") == [today, week]
        assert ids(due="later") == [later]
        assert ids(due="overdue") == [] and ids(due="yesterday") == [today, week, later]
        assert ids(clause="P3") == [today, later] and ids(clause="P3.1") == [today]
    login(client, "sup_east")
    page = client.get("/loops/?clause=P3").get_data(as_text=True)
    assert f'data-loop-id="{today}"' in page and f'data-loop-id="{week}"' not in page
    headers = _auth(api_token("li"))
    listed = client.get("/api/v1/loops?clause=P3.1", headers=headers).json
    assert [item["id"] for item in listed["items"]] == [today]


def test_p1_3_2_a_subject_needs_its_table_and_its_id(
    client: Any, app: Any, org: dict[str, int], api_token: Any
) -> None:
    headers = _auth(api_token("sup_east"))
    body = {"type": "core.action", "title": "About what?", "owner_id": org["li"]}
    for half in ({"subject_table": "demo_visit"}, {"subject_id": "7"}):
        refused = client.post("/api/v1/loops", json={**body, **half}, headers=headers)
        assert refused.status_code == 422 and "subject_table" in refused.json["error"]["fields"]
    assert count(app, LoopItem) == 0
    whole = {"subject_table": "demo_visit", "subject_id": "7"}
    created = client.post("/api/v1/loops", json={**body, **whole}, headers=headers)
    assert created.status_code == 201 and created.json["subject_id"] == "7"


def test_p1_3_2_register_detail_and_api_statements_do_not_grow_with_the_items(
    client: Any, app: Any, org: dict[str, int], login: Any, api_token: Any
) -> None:
    """No N+1: a page of items of many owners and raisers, and an item with a long
    history by many people, cost the same statements as one item with one event."""
    first = raise_item(app, org["li"], org["sup_east"])
    login(client, "manager")
    headers = _auth(api_token("manager"))
    urls = ["/loops/", f"/loops/{first}", "/api/v1/loops", f"/api/v1/loops/{first}"]
    for url in urls:  # the first requests also warm caches (the token's last use, rules)
        count_statements(app, client, url, headers=headers)
    few = {url: count_statements(app, client, url, headers=headers) for url in urls}
    names = ("li", "wang", "zhao", "sup_east", "sup_south", "admin")
    for n, owner in enumerate(names * 4):
        raise_item(app, org[owner], org[names[n % 5]], title=f"Item {n}")
    for actor in ("li", "sup_east", "manager", "admin"):
        run(app, first, "comment", org[actor], note=f"Seen by {actor}")
    run(app, first, "reassign", org["manager"], new_owner=org["wang"])
    run(app, first, "reassign", org["manager"], new_owner=org["zhao"])
    many = {url: count_statements(app, client, url, headers=headers) for url in urls}
    assert many == few, (few, many)


def test_p1_3_2_api_is_in_the_openapi_document(client: Any, app: Any) -> None:
    document = client.get("/api/v1/openapi.json").json
    paths = document["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/loops"])
    assert "get" in paths["/api/v1/loops/{loop_id}"]
    action = paths["/api/v1/loops/{loop_id}/actions"]["post"]
    schema = action["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["action"] and "note" in schema["properties"]
    assert "422" in action["responses"]
    raise_schema = paths["/api/v1/loops"]["post"]["requestBody"]["content"]["application/json"]
    assert {"title", "type", "owner_id"} <= set(raise_schema["schema"]["required"])


# -- demo data ---------------------------------------------------------------------------


def test_p1_3_2_demo_loop_items_cover_every_state_once(app: Any) -> None:
    from portal.audit.recorder import acting_as as acting_as_cli
    from portal.demo import run_demo

    with app.app_context(), acting_as_cli("cli:demo"):
        run_demo(app)
        first = db.session.execute(sa.select(LoopItem.status, LoopItem.due_at)).all()
        run_demo(app)  # a second run changes nothing
        assert db.session.scalar(sa.select(sa.func.count(LoopItem.id))) == len(first)
    statuses = {status for status, _due in first}
    assert statuses == {"open", "in_progress", "done", "verified"}
    overdue = [due for status, due in first if status == "open" and as_utc(due) < utcnow()]
    assert overdue, "the demo shows overdue items"


# -- in a browser ------------------------------------------------------------------------


@pytest.mark.browser
def test_p1_3_2_closing_in_the_browser_on_a_phone(
    live_server: Any, page: Any, org: dict[str, int], tmp_path: Path
) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    app = live_server.app
    loop_id = raise_item(app, org["li"], org["sup_east"], title="Visit the distributor")
    page.set_viewport_size({"width": 390, "height": 844})
    log_in_page(page, live_server, "li")
    page.goto(f"{live_server.url}/loops/{loop_id}")
    page.wait_for_load_state("domcontentloaded")
    page.get_by_role("button", name="Start working on it").click()
    expect(page.get_by_test_id("loop-status")).to_have_text("In progress")
    page.locator("details[data-action=close] summary").click()
    page.locator("#close-note").fill("Visited; they order next week")
    photo = tmp_path / "visit.png"
    photo.write_bytes(PNG)
    page.locator("#close-files").set_input_files(str(photo))
    page.locator("details[data-action=close] button[type=submit]").click()
    expect(page.get_by_text("The item is closed.")).to_be_visible()
    expect(page.get_by_test_id("loop-status")).to_have_text("Done, to verify")
    expect(page.get_by_test_id("loop-attachments")).to_contain_text("visit.png")
    assert page.url == f"{live_server.url}/loops/{loop_id}"  # the panel was swapped in place
    assert page.console_errors == []
    page.screenshot(path=str(Path(tempfile_dir()) / "loop-closed-phone.png"), full_page=True)
    assert loaded(app, loop_id).status == "done"


def tempfile_dir() -> str:
    import tempfile

    folder = Path(tempfile.gettempdir()) / "salesloop-screenshots"
    folder.mkdir(exist_ok=True)
    return str(folder)


def test_p1_3_2_a_due_date_is_the_end_of_that_day_in_the_portals_time_zone(app: Any) -> None:
    from datetime import date

    with app.test_request_context():  # BABEL_DEFAULT_TIMEZONE: Asia/Shanghai (UTC+8)
        assert service.due_at_from_date(date(2030, 1, 1)) == datetime(
            2030, 1, 1, 15, 59, 59, tzinfo=UTC
        )
        naive = service._aware(datetime(2030, 1, 1, 18, 0))
        assert naive == datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
