"""Every write to any model lands in the one audit log (P6.3 data kept secure)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from portal.audit.models import AuditEvent
from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.org.models import OrgUnit


def _events(app: Any, **filters: Any) -> list[AuditEvent]:
    with app.app_context():
        statement = sa.select(AuditEvent).order_by(AuditEvent.id)
        for key, value in filters.items():
            statement = statement.where(getattr(AuditEvent, key) == value)
        events = list(db.session.scalars(statement))
        db.session.expunge_all()
        return events


def test_p6_3_create_update_delete_are_recorded_with_before_and_after(app: Any) -> None:
    with app.app_context(), acting_as("test:writer"):
        unit = OrgUnit(name="East", kind="region", path="/")
        db.session.add(unit)
        db.session.commit()
        unit_id = unit.id
        unit.name = "East China"
        db.session.commit()
        db.session.delete(unit)
        db.session.commit()
    events = _events(app, table_name="core_org_unit", record_id=str(unit_id))
    assert [e.action for e in events] == ["create", "update", "delete"]
    created, updated, deleted = events
    assert created.after["name"] == "East" and created.before is None
    assert updated.before["name"] == "East" and updated.after["name"] == "East China"
    assert "kind" not in updated.after  # only what changed
    assert deleted.before["name"] == "East China" and deleted.after is None
    assert {e.actor for e in events} == {"test:writer"}


def test_p6_3_writes_through_the_browser_name_the_person_and_address(
    client: Any, login: Any, org: dict[str, int], app: Any
) -> None:
    login(client, "admin")
    response = client.post(
        f"/admin/users/{org['li']}",
        data={
            "username": "li",
            "display_name": "Li Na",
            "roles": ["salesperson"],
            "unit_id": str(org["shanghai"]),
            "active": "y",
        },
    )
    assert response.status_code == 303
    event = _events(app, table_name="core_user", record_id=str(org["li"]), action="update")[-1]
    assert event.actor == "admin" and event.actor_id == org["admin"]
    assert event.address == "127.0.0.1"
    assert event.before["display_name"] == "Li" and event.after["display_name"] == "Li Na"


def test_p6_3_secrets_are_never_written_to_the_log(app: Any, make_person: Any) -> None:
    user_id = make_person("li")
    created = _events(app, table_name="core_user", record_id=str(user_id))[0]
    assert created.after["password_hash"] == "***"


def test_p6_3_role_changes_of_a_person_are_recorded(app: Any, org: dict[str, int]) -> None:
    from portal.org.services import update_user

    with app.app_context(), acting_as("test"):
        update_user(db.session.get(User, org["li"]), {"roles": ["supervisor"]})
        db.session.commit()
    event = _events(app, table_name="core_user", record_id=str(org["li"]), action="update")[-1]
    assert event.after["roles"]["added"] and event.after["roles"]["removed"]


def test_p6_3_a_rolled_back_change_leaves_no_audit_row(app: Any) -> None:
    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
        db.session.add(OrgUnit(name="Ghost", kind="team", path="/"))
        db.session.flush()
        db.session.rollback()
        after = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    assert before == after


def test_p6_3_a_failed_write_writes_nothing_at_all(app: Any, make_person: Any) -> None:
    make_person("li", email="li@example.com")
    with app.app_context():
        counts = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
        db.session.add(User(username="li", display_name="dup", password_hash="x"))
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == counts


@pytest.mark.parametrize(
    "role,status", [("admin", 200), ("auditor", 200), ("manager", 403), ("li", 403)]
)
def test_p6_3_audit_log_is_visible_to_admins_and_auditors_only(
    client: Any, login: Any, org: dict[str, int], role: str, status: int
) -> None:
    login(client, role)
    assert client.get("/admin/audit/").status_code == status


def test_p6_3_audit_log_filters(client: Any, login: Any, org: dict[str, int]) -> None:
    login(client, "auditor")
    page = client.get(f"/admin/audit/?table=core_user&record={org['zhao']}").get_data(as_text=True)
    assert page.count("<code>core_user</code>") == 1
    page = client.get("/admin/audit/?table=core_org_unit&action=delete").get_data(as_text=True)
    assert "Nothing recorded for this filter." in page
    assert client.get("/admin/audit/?since=not-a-date&action=bogus").status_code == 200
    # An auditor reads everything and changes nothing.
    assert client.post("/admin/users/new", data={}).status_code == 403


def test_p6_3_moving_a_person_and_changing_a_leader_are_recorded(
    app: Any, org: dict[str, int]
) -> None:
    from portal.org.services import save_unit, update_user

    with app.app_context(), acting_as("test"):
        update_user(db.session.get(User, org["li"]), {"unit_id": org["guangzhou"]})
        east = db.session.get(OrgUnit, org["east"])
        save_unit(east, "East", "region", org["company"], org["manager"])
        db.session.commit()
    moved = _events(app, table_name="core_user", record_id=str(org["li"]), action="update")[-1]
    assert moved.before["unit_id"] == org["shanghai"] and moved.after["unit_id"] == org["guangzhou"]
    led = _events(app, table_name="core_org_unit", record_id=str(org["east"]), action="update")[-1]
    assert led.before["leader_id"] == org["sup_east"] and led.after["leader_id"] == org["manager"]


def test_p6_3_bulk_statements_are_recorded_too(app: Any, org: dict[str, int]) -> None:
    with app.app_context(), acting_as("test:bulk"):
        db.session.execute(sa.update(User).where(User.id == org["li"]).values(title="Rep"))
        db.session.execute(
            sa.update(User).where(User.id == org["li"]).values(password_hash="not-shown")
        )
        db.session.execute(
            sa.update(User).where(User.id.in_([org["wang"], org["zhao"]])).values(title="Rep")
        )
        db.session.execute(
            sa.update(User).where(User.password_hash == "not-shown").values(title="Lead")
        )
        db.session.commit()
    events = _events(app, table_name="core_user", action="bulk_update")
    assert len(events) == 4 and events[0].actor == "test:bulk"
    assert events[0].after["values"] == {"title": "Rep"}
    assert events[0].before["parameters"] == {"id_1": org["li"]}
    assert events[1].after["values"] == {"password_hash": "***"}
    # Which rows a bulk statement touched stays readable: the ids of an IN list...
    assert events[2].before["parameters"] == {"id_1": [org["wang"], org["zhao"]]}
    # ... but a secret column's value never appears, not even in a condition.
    assert events[3].before["parameters"] == {"password_hash_1": "***"}


def test_p6_3_a_bulk_statement_computing_its_value_is_recorded_as_text(
    app: Any, org: dict[str, int]
) -> None:
    with app.app_context(), acting_as("test:bulk"):
        db.session.execute(
            sa.update(User).where(User.id == org["li"]).values(display_name=User.username + "!")
        )
        db.session.commit()
    (event,) = _events(app, table_name="core_user", action="bulk_update")
    assert event.after["values"] == {"display_name": "core_user.username || '!'"}


def test_p6_3_audit_dates_are_days_in_the_portals_time_zone(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    from datetime import UTC, datetime

    with app.app_context():
        # 23:30 UTC on 1 March is 07:30 on 2 March in Shanghai, where the page shows it.
        db.session.add(
            AuditEvent(
                at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC),
                actor="tz",
                action="update",
                table_name="tz_probe",
                record_id="1",
            )
        )
        db.session.commit()
    login(client, "auditor")
    second = client.get("/admin/audit/?table=tz_probe&since=2026-03-02&until=2026-03-02")
    first = client.get("/admin/audit/?table=tz_probe&since=2026-03-01&until=2026-03-01")
    assert "<code>tz_probe</code>" in second.get_data(as_text=True)
    assert "<code>tz_probe</code>" not in first.get_data(as_text=True)
    assert client.get("/admin/audit/?until=9999-12-31").status_code == 200


def test_p6_3_an_export_is_recorded_with_who_what_and_how_many(
    app: Any, login: Any, client: Any, org: dict[str, int]
) -> None:
    from portal.audit.recorder import record_access

    with app.app_context(), acting_as("job:nightly-export"):
        record_access("export", "sales_customer", {"rows": 12, "filters": {"grade": "A"}})
        db.session.commit()
        row = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "export")).one()
        assert (row.actor, row.table_name, row.record_id) == (
            "job:nightly-export",
            "sales_customer",
            "*",
        )
        assert row.after == {"rows": 12, "filters": {"grade": "A"}}
    login(client, "auditor")
    page = client.get("/admin/audit/?action=export").get_data(as_text=True)
    assert "sales_customer" in page and "exported" in page
