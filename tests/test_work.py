"""My work and the team view (P1.3.2 closed loop: everything raised is owned, due and
acted on; P2.3 a supervisor guides and supervises): one inbox per person, overdue first,
with items to verify and approvals waiting; filters, pagination, htmx fragments, scope."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from portal.audit.recorder import acting_as
from portal.extensions import db
from portal.loops.models import ApprovalRequest, ApprovalStep, LoopItem
from portal.models import utcnow
from portal.plugins import ApprovalKind, LoopType
from portal.testing import count_statements, throwaway_plugin

TITLE = re.compile(r'data-testid="work-title">([^<]+)<')


def add_items(app: Any, *specs: dict[str, Any]) -> list[int]:
    """Loop items written directly (the metrics and lists read what is stored)."""
    now = utcnow()
    with app.app_context(), acting_as("test"):
        items = []
        for spec in specs:
            values = {
                "type": "core.action",
                "clause": "P1.3.2",
                "title": "item",
                "due_at": now + timedelta(days=3),
                "status": "open",
                "priority": "normal",
                "created_at": now - timedelta(days=1),
            }
            values.update(spec)
            values.setdefault("raised_by_id", values["owner_id"])
            items.append(LoopItem(**values))
        db.session.add_all(items)
        db.session.commit()
        return [item.id for item in items]


def add_approval(
    app: Any, requester: int, approver: int, title: str, kind: str = "wk.leave"
) -> int:
    """A pending request whose first step waits for ``approver``."""
    with app.app_context(), acting_as("test"):
        request = ApprovalRequest(
            kind=kind, title=title, requester_id=requester, status="pending", current_position=1
        )
        request.steps.append(
            ApprovalStep(position=1, route="supervisor", approver_id=approver, status="pending")
        )
        db.session.add(request)
        db.session.commit()
        return request.id


def titles(response: Any) -> list[str]:
    return TITLE.findall(response.get_data(as_text=True))


@pytest.fixture
def app(make_app: Any) -> Any:
    """The portal with a plugin declaring a second loop type and an approval kind."""
    plugin = throwaway_plugin(
        "wk",
        portal_loop_types=lambda: [LoopType("wk.follow_up", "Customer follow-up", clause="P3.1.3")],
        portal_approval_kinds=lambda: [
            ApprovalKind("wk.leave", "Leave request", ruleset="leave_approval", clause="P6.1")
        ],
    )
    return make_app(plugins=[("wk", plugin)])


def logged_in(app: Any, login: Any, username: str) -> Any:
    client = app.test_client()
    login(client, username)
    return client


# -- the inbox ------------------------------------------------------------------------


def test_p1_3_2_inbox_lists_own_open_items_overdue_first_then_by_due_date(
    app: Any, org: dict[str, int], login: Any
) -> None:
    now = utcnow()
    li = org["li"]
    add_items(
        app,
        {"owner_id": li, "title": "Due in two days", "due_at": now + timedelta(days=2)},
        {"owner_id": li, "title": "Overdue a day", "due_at": now - timedelta(days=1)},
        {"owner_id": li, "title": "Due tomorrow", "due_at": now + timedelta(days=1)},
        {"owner_id": li, "title": "Overdue a week", "due_at": now - timedelta(days=7)},
        {
            "owner_id": li,
            "title": "Started",
            "due_at": now + timedelta(hours=5),
            "status": "in_progress",
            "escalation_level": 2,
            "priority": "urgent",
        },
        {"owner_id": li, "title": "Already done", "status": "done", "raised_by_id": org["manager"]},
        {"owner_id": li, "title": "Verified long ago", "status": "verified"},
        {"owner_id": org["wang"], "title": "Wang's own", "due_at": now - timedelta(days=9)},
    )
    client = logged_in(app, login, "li")
    response = client.get("/work/")
    assert response.status_code == 200
    assert titles(response) == [
        "Overdue a week",
        "Overdue a day",
        "Started",
        "Due tomorrow",
        "Due in two days",
    ]
    html = response.get_data(as_text=True)
    assert html.count('data-testid="overdue-badge"') == 2
    assert "Escalated, level 2" in html and "Urgent" in html
    assert 'data-testid="count-todo">5<' in html
    assert 'data-testid="count-todo-overdue">2 overdue<' in html
    assert "Action item" in html  # the type's label, not its code
    # In Chinese the same page renders, with the relative due dates in Chinese.
    chinese = client.get("/work/", headers={"Accept-Language": "zh-CN"})
    assert chinese.status_code == 200 and 'lang="zh-CN"' in chinese.get_data(as_text=True)
    assert "天" in chinese.get_data(as_text=True)  # "7 天前": babel's words, not English


def test_p1_3_2_done_items_wait_in_the_raisers_inbox_for_verification(
    app: Any, org: dict[str, int], login: Any
) -> None:
    sup, li = org["sup_east"], org["li"]
    add_items(
        app,
        {"owner_id": li, "raised_by_id": sup, "title": "Done, check it", "status": "done"},
        {"owner_id": li, "raised_by_id": sup, "title": "Still open", "status": "open"},
        {"owner_id": li, "raised_by_id": sup, "title": "Checked", "status": "verified"},
        {
            "owner_id": org["wang"],
            "raised_by_id": org["manager"],
            "title": "Not mine to check",
            "status": "done",
        },
    )
    supervisor = logged_in(app, login, "sup_east")
    response = supervisor.get("/work/")
    assert titles(response) == ["Done, check it"]
    html = response.get_data(as_text=True)
    assert 'data-section="verify"' in html
    assert 'data-testid="count-verify">1<' in html
    assert "Owner: Li" in html
    assert titles(supervisor.get("/work/?section=verify")) == ["Done, check it"]
    assert titles(supervisor.get("/work/?section=todo")) == []
    # The owner has nothing left to do on it; the open one is theirs.
    assert titles(logged_in(app, login, "li").get("/work/")) == ["Still open"]


def test_p1_3_2_self_raised_done_items_wait_for_the_owners_supervisor(
    app: Any, org: dict[str, int], login: Any, make_person: Any, make_unit: Any
) -> None:
    """Nobody verifies their own work: what an owner raised for themselves (or the
    system raised) waits in the inbox of the person the loop service asks to verify it."""
    from portal.auth.models import User
    from portal.loops import service

    lead = make_person("lead_pd", roles=["supervisor"])
    pudong = make_unit("Pudong", "team", parent=org["shanghai"], leader=lead)
    with app.app_context(), acting_as("test"):
        db.session.get(User, lead).unit_id = pudong
        db.session.commit()
    rep = make_person("pd_rep", roles=["salesperson"], unit=pudong)
    done = {"status": "done"}
    add_items(
        app,
        {"owner_id": org["li"], "title": "li for herself", **done},
        {"owner_id": org["li"], "raised_by_id": None, "title": "system for li", **done},
        {"owner_id": org["li"], "raised_by_id": org["sup_east"], "title": "sup for li", **done},
        {"owner_id": org["zhao"], "title": "zhao for himself", **done},
        {"owner_id": rep, "title": "rep for himself", **done},
        {"owner_id": lead, "title": "lead for himself", **done},
        {"owner_id": org["sup_east"], "title": "sup_east for himself", **done},
    )
    expected = {
        "sup_east": {
            "li for herself",
            "system for li",
            "sup for li",
            "lead for himself",
            "sup_east for himself",
        },
        "sup_south": {"zhao for himself"},
        "lead_pd": {"rep for himself"},
        "manager": set(),
        "li": set(),
        "pd_rep": set(),
    }
    with app.app_context():
        items = db.session.scalars(sa.select(LoopItem)).all()
        for username, titles_expected in expected.items():
            user = db.session.scalars(sa.select(User).where(User.username == username)).one()
            # Whom the loop service asks (and, without a supervisor, the owner).
            asked = set()
            for item in items:
                verifier = service.verifier_of(item)
                if verifier is None and item.owner_id == user.id:
                    verifier = user
                if verifier is not None and verifier.id == user.id:
                    assert service.may_verify(item, user), (username, item.title)
                    asked.add(item.title)
            assert asked == titles_expected, username
    for username, titles_expected in expected.items():
        response = logged_in(app, login, username).get("/work/?section=verify")
        assert set(titles(response)) == titles_expected, username


def test_p1_3_2_approvals_waiting_for_me_are_in_my_inbox(
    app: Any, org: dict[str, int], login: Any
) -> None:
    request_id = add_approval(app, org["li"], org["sup_east"], "Leave on Friday")
    add_approval(app, org["zhao"], org["sup_south"], "Someone else's approver")
    (item_id,) = add_items(app, {"owner_id": org["sup_east"], "title": "My own action"})
    supervisor = logged_in(app, login, "sup_east")
    response = supervisor.get("/work/")
    html = response.get_data(as_text=True)
    assert set(titles(response)) == {"Leave on Friday", "My own action"}
    assert 'data-testid="count-approvals">1<' in html
    assert "Leave request" in html and "Asked by Li" in html
    assert "Waiting since" in html
    # Each row opens its own page: the approval's and the loop item's.
    assert f'href="/approvals/{request_id}"' in html and f'href="/loops/{item_id}"' in html
    assert titles(supervisor.get("/work/?section=approvals")) == ["Leave on Friday"]
    # Approval kinds filter like types and clauses; a loop status filter leaves them out.
    assert titles(supervisor.get("/work/?type=wk.leave")) == ["Leave on Friday"]
    assert titles(supervisor.get("/work/?clause=P6")) == ["Leave on Friday"]
    assert titles(supervisor.get("/work/?status=open")) == ["My own action"]
    # The requester does not approve their own request.
    assert titles(logged_in(app, login, "li").get("/work/")) == []


def test_p1_3_2_inbox_filters_by_type_clause_status_and_text(
    app: Any, org: dict[str, int], login: Any
) -> None:
    li = org["li"]
    add_items(
        app,
        {"owner_id": li, "title": "Call back Acme", "type": "wk.follow_up", "clause": "P3.1.3"},
        {"owner_id": li, "title": "Fix the report 50%_done", "clause": "P1.3.2"},
        {
            "owner_id": li,
            "title": "Started follow-up",
            "type": "wk.follow_up",
            "clause": "P3.1.3",
            "status": "in_progress",
        },
    )
    client = logged_in(app, login, "li")
    assert titles(client.get("/work/?type=wk.follow_up")) == ["Call back Acme", "Started follow-up"]
    assert titles(client.get("/work/?type=core.action")) == ["Fix the report 50%_done"]
    assert titles(client.get("/work/?clause=P3")) == ["Call back Acme", "Started follow-up"]
    assert titles(client.get("/work/?clause=P3.1.3")) == ["Call back Acme", "Started follow-up"]
    assert titles(client.get("/work/?clause=P3.1.31")) == []
    assert titles(client.get("/work/?status=in_progress")) == ["Started follow-up"]
    assert titles(client.get("/work/?q=acme")) == ["Call back Acme"]
    # The person's % and _ are literal, not wildcards.
    assert titles(client.get("/work/?q=50%25_")) == ["Fix the report 50%_done"]
    assert titles(client.get("/work/?q=%25")) == ["Fix the report 50%_done"]
    both = client.get("/work/?type=wk.follow_up&status=open&q=call")
    assert titles(both) == ["Call back Acme"]
    # Values nobody offered are ignored, never an error.
    weird = client.get("/work/?type=<script>&status=nope&due=yesterday&section=x&page=abc&person=z")
    assert weird.status_code == 200
    assert len(titles(weird)) == 3


def test_p1_3_2_inbox_due_filters_with_a_frozen_clock(app: Any, org: dict[str, int]) -> None:
    from portal.auth.models import User
    from portal.loops.metrics import portal_zone
    from portal.loops.work_views import Filters, inbox_page

    # Wednesday 10:00 in Shanghai; the week ends on Sunday night.
    now = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
    li = org["li"]
    add_items(
        app,
        {"owner_id": li, "title": "Overdue", "due_at": now - timedelta(hours=1)},
        {"owner_id": li, "title": "Tonight", "due_at": now + timedelta(hours=10)},
        {"owner_id": li, "title": "Saturday", "due_at": now + timedelta(days=3)},
        {"owner_id": li, "title": "Next Tuesday", "due_at": now + timedelta(days=6)},
        {
            "owner_id": org["wang"],
            "title": "Done and late",
            "due_at": now - timedelta(days=2),
            "status": "done",
            "raised_by_id": li,
        },
    )
    with app.test_request_context("/work/"):
        user = db.session.get(User, li)
        zone = portal_zone()

        def listed(due: str) -> list[str]:
            return [row.title for row in inbox_page(user, Filters(due=due), now, zone).items]

        assert listed("overdue") == ["Overdue"]
        assert listed("today") == ["Tonight"]
        assert listed("week") == ["Tonight", "Saturday"]
        assert listed("later") == ["Next Tuesday"]
        # Without a due filter, the item li raised for wang waits for her verification, in
        # due-date order after the overdue ones (it is not overdue: it is done).
        rows = inbox_page(user, Filters(), now, zone).items
        assert [(row.title, row.section, row.overdue) for row in rows] == [
            ("Overdue", "todo", True),
            ("Done and late", "verify", False),
            ("Tonight", "todo", False),
            ("Saturday", "todo", False),
            ("Next Tuesday", "todo", False),
        ]


def test_p1_3_2_other_peoples_items_never_appear(app: Any, org: dict[str, int], login: Any) -> None:
    add_items(
        app,
        {"owner_id": org["zhao"], "title": "Secret of zhao"},
        {
            "owner_id": org["zhao"],
            "raised_by_id": org["wang"],
            "title": "Zhao done",
            "status": "done",
        },
        {"owner_id": org["wang"], "title": "Secret of wang"},
    )
    add_approval(app, org["zhao"], org["sup_south"], "Secret approval")
    for username in ("li", "sup_east", "manager"):
        client = logged_in(app, login, username)
        html = client.get("/work/?q=secret").get_data(as_text=True)
        assert "Secret" not in html, username
        assert "Secret" not in client.get("/work/").get_data(as_text=True), username


def test_p1_3_2_inbox_is_paginated_in_order(app: Any, org: dict[str, int], login: Any) -> None:
    now = utcnow()
    add_items(
        app,
        *[
            {"owner_id": org["li"], "title": f"Item {n:02d}", "due_at": now + timedelta(hours=n)}
            for n in range(25)
        ],
    )
    client = logged_in(app, login, "li")
    pages = [titles(client.get(f"/work/?per_page=10&page={n}")) for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert sum(pages, []) == [f"Item {n:02d}" for n in range(25)]
    html = client.get("/work/?per_page=10&page=2&type=core.action").get_data(as_text=True)
    assert "25 in all" in html
    # Pager links keep the filters.
    assert "type=core.action" in html and "page=3" in html


def test_p1_3_2_htmx_filter_swaps_only_the_list(app: Any, org: dict[str, int], login: Any) -> None:
    add_items(
        app,
        {"owner_id": org["li"], "title": "Follow up", "type": "wk.follow_up"},
        {"owner_id": org["li"], "title": "Action"},
    )
    client = logged_in(app, login, "li")
    full = client.get("/work/?type=wk.follow_up")
    fragment = client.get(
        "/work/?type=wk.follow_up", headers={"HX-Request": "true", "HX-Target": "work-list"}
    )
    assert "<html" in full.get_data(as_text=True)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and 'data-testid="work-filters"' not in body
    assert titles(fragment) == ["Follow up"]
    assert 'data-testid="count-todo">1<' in body
    assert "HX-Request" in fragment.headers["Vary"]
    assert "HX-Request" in full.headers["Vary"]


def test_p1_3_2_inbox_statements_do_not_grow_with_the_items(
    app: Any, org: dict[str, int], login: Any
) -> None:
    """No N+1: a full page of items with owners, raisers and approvals costs the same
    statements as a single item."""
    client = logged_in(app, login, "sup_east")
    add_items(app, {"owner_id": org["sup_east"], "raised_by_id": org["li"], "title": "one"})
    add_approval(app, org["li"], org["sup_east"], "one approval")

    def statements() -> int:
        return count_statements(app, client, "/work/")

    few = statements()
    add_items(
        app,
        *[
            {"owner_id": org["sup_east"], "raised_by_id": org[name], "title": f"n{n}"}
            for n, name in enumerate(["li", "wang", "manager", "sup_south"] * 5)
        ],
        *[
            {
                "owner_id": org[name],
                "raised_by_id": org["sup_east"],
                "title": f"v{n}",
                "status": "done",
            }
            for n, name in enumerate(["li", "wang"] * 5)
        ],
    )
    for n in range(5):
        add_approval(app, org["wang"], org["sup_east"], f"approval {n}")
    many = statements()
    assert many == few, (few, many)
    # login session, roles, grants, led units, page, count, items, approvals, counts, settings
    assert many <= 10


# -- the team view ------------------------------------------------------------------------


def test_p1_3_2_team_view_shows_the_supervisors_people_only(
    app: Any, org: dict[str, int], login: Any
) -> None:
    now = utcnow()
    add_items(
        app,
        {"owner_id": org["li"], "title": "Li late", "due_at": now - timedelta(days=2)},
        {"owner_id": org["li"], "title": "Li soon", "due_at": now + timedelta(days=1)},
        {"owner_id": org["li"], "title": "Li done", "status": "done", "due_at": now},
        {
            "owner_id": org["wang"],
            "title": "Wang later",
            "due_at": now + timedelta(days=5),
            "type": "wk.follow_up",
            "clause": "P3.1.3",
        },
        {"owner_id": org["wang"], "title": "Wang verified", "status": "verified"},
        {"owner_id": org["zhao"], "title": "Zhao late", "due_at": now - timedelta(days=9)},
        {"owner_id": org["sup_east"], "title": "Supervisor's own"},
    )
    supervisor = logged_in(app, login, "sup_east")
    response = supervisor.get("/work/team")
    assert response.status_code == 200
    assert titles(response) == ["Li late", "Li done", "Li soon", "Wang later"]
    html = response.get_data(as_text=True)
    summary = re.findall(
        r'data-person="(\d+)">.*?summary-open">(\d+)<.*?summary-overdue">(\d+)<.*?summary-verify">(\d+)<',
        html,
        re.S,
    )
    assert summary == [(str(org["li"]), "2", "1", "1"), (str(org["wang"]), "1", "0", "0")]
    assert "Zhao" not in html
    # Filters, and the person filter.
    assert titles(supervisor.get(f"/work/team?person={org['wang']}")) == ["Wang later"]
    assert titles(supervisor.get(f"/work/team?person={org['zhao']}")) == []
    assert titles(supervisor.get("/work/team?type=wk.follow_up")) == ["Wang later"]
    assert titles(supervisor.get("/work/team?status=verified")) == ["Wang verified"]
    assert titles(supervisor.get("/work/team?due=overdue")) == ["Li late"]
    fragment = supervisor.get("/work/team?q=li", headers={"HX-Target": "work-list"})
    assert "<html" not in fragment.get_data(as_text=True)
    assert titles(fragment) == ["Li late", "Li done", "Li soon"]
    # A manager reaches everyone.
    manager = logged_in(app, login, "manager")
    assert "Zhao late" in titles(manager.get("/work/team"))


def test_p1_3_2_team_view_statements_do_not_grow_with_the_items(
    app: Any, org: dict[str, int], login: Any
) -> None:
    """No N+1 in the team view: the summary is one grouped query and the page's owners
    and raisers are loaded with the items, however many people and items there are."""
    client = logged_in(app, login, "manager")
    add_items(app, {"owner_id": org["li"], "raised_by_id": org["sup_east"], "title": "one"})

    def statements() -> int:
        return count_statements(app, client, "/work/team?per_page=50")

    statements()  # warm the caches
    few = statements()
    names = ["li", "wang", "zhao", "sup_east", "sup_south", "admin", "auditor"]
    add_items(
        app,
        *[
            {
                "owner_id": org[name],
                "raised_by_id": org[names[(n + 1) % len(names)]],
                "title": f"t{n}",
                "status": ("open", "in_progress", "done")[n % 3],
            }
            for n, name in enumerate(names * 5)
        ],
    )
    assert statements() == few


def test_p1_3_2_team_view_is_refused_to_a_salesperson(
    app: Any, org: dict[str, int], login: Any, make_person: Any
) -> None:
    add_items(app, {"owner_id": org["wang"], "title": "Wang's"})
    assert logged_in(app, login, "li").get("/work/team").status_code == 403
    assert 'data-testid="team-link"' not in logged_in(app, login, "li").get("/work/").get_data(
        as_text=True
    )
    # A supervisor who leads no unit has nobody in the team.
    make_person("lonely", roles=["supervisor"])
    response = logged_in(app, login, "lonely").get("/work/team")
    assert response.status_code == 200
    assert 'data-testid="team-nobody"' in response.get_data(as_text=True)
    assert titles(response) == []


def test_p1_3_2_work_pages_need_a_login(app: Any) -> None:
    client = app.test_client()
    for path in ("/work/", "/work/team", "/work/metrics", "/work/metrics/chart/rates.svg"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
