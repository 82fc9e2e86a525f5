"""Admins manage people, roles and units in the browser (P2.1 structure, roles as data)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from portal.auth.models import Role, User
from portal.extensions import db
from portal.org.models import OrgUnit


def _count(app: Any, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_p2_admin_creates_a_person_with_unit_and_role(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    response = client.post(
        "/admin/users/new",
        data={
            "username": "zhou",
            "display_name": "Zhou Min",
            "email": "zhou@example.com",
            "roles": ["salesperson"],
            "unit_id": str(org["guangzhou"]),
            "password": "first-pass-1",
            "active": "y",
        },
    )
    assert response.status_code == 303
    with app.app_context():
        zhou = db.session.scalars(sa.select(User).where(User.username == "zhou")).one()
        assert zhou.unit_id == org["guangzhou"] and zhou.role_codes == {"salesperson"}
    assert login(app.test_client(), "zhou", "first-pass-1")


def test_p2_bad_person_form_gets_a_message_per_field_and_saves_nothing(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    before = _count(app, User)
    response = client.post(
        "/admin/users/new",
        data={
            "username": "no spaces!",
            "display_name": "",
            "email": "nope",
            "roles": [],
            "unit_id": "123456",
            "password": "short",
            "phone": "call me",
        },
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for message in (
        "Use 2-64 letters, digits, dots, dashes or underscores.",
        "This field is required.",
        "Invalid email address.",
        "Choose at least one role.",
        "Not a valid choice",
        "Use at least 8 characters.",
        "Digits, spaces, +, -, ( and ) only.",
    ):
        assert message in page, message
    duplicate = client.post(
        "/admin/users/new",
        data={
            "username": "li",
            "display_name": "Another",
            "roles": ["salesperson"],
            "password": "long-enough-1",
            "unit_id": "None",
        },
    )
    assert duplicate.status_code == 422
    assert "This username is taken." in duplicate.get_data(as_text=True)
    assert _count(app, User) == before


def test_p2_admin_cannot_disable_themself(client: Any, login: Any, org: dict[str, int]) -> None:
    login(client, "admin")
    response = client.post(
        f"/admin/users/{org['admin']}",
        data={"username": "admin", "display_name": "Admin", "roles": ["admin"], "unit_id": "None"},
    )
    assert response.status_code == 422
    assert "You cannot disable your own account." in response.get_data(as_text=True)


def test_p2_admin_lists_people_with_filters(client: Any, login: Any, org: dict[str, int]) -> None:
    login(client, "admin")
    page = client.get(f"/admin/users?unit={org['east']}").get_data(as_text=True)
    assert ">Li<" in page and ">Wang<" in page and ">Zhao<" not in page
    page = client.get("/admin/users?role=supervisor").get_data(as_text=True)
    assert ">Sup_East<" in page and ">Li<" not in page
    page = client.get("/admin/users?q=zha").get_data(as_text=True)
    assert ">Zhao<" in page and ">Li<" not in page


def test_p2_roles_are_data_an_admin_can_create_and_grant(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    response = client.post(
        "/admin/roles/new",
        data={
            "code": "key_account",
            "name": "Key account manager",
            "read_scope": "team",
            "write_scope": "own",
            "duties": "Keep key customers\nReport monthly",
            "permissions": ["organisation.view_team"],
        },
    )
    assert response.status_code == 303
    with app.app_context():
        role = db.session.scalars(sa.select(Role).where(Role.code == "key_account")).one()
        assert role.permission_codes == {"organisation.view_team"}
        assert role.read_scope == "team"
    bad = client.post(
        "/admin/roles/new",
        data={"code": "Bad Code", "name": "", "read_scope": "galaxy", "write_scope": "own"},
    )
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "Lower-case letters, digits and underscores." in text and "Not a valid choice" in text


def test_p2_admin_role_keeps_the_right_to_manage_roles(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    with app.app_context():
        admin_role = db.session.scalars(sa.select(Role).where(Role.code == "admin")).one()
        role_id = admin_role.id
    response = client.post(
        f"/admin/roles/{role_id}",
        data={
            "code": "admin",
            "name": "Administrator",
            "read_scope": "all",
            "write_scope": "all",
            "permissions": ["core.users.manage"],
        },
    )
    assert response.status_code == 422
    assert "must keep the right to manage roles" in response.get_data(as_text=True)


def test_p2_1_admin_builds_the_tree_and_moves_a_unit(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    response = client.post(
        "/admin/units/new",
        data={
            "name": "Key accounts",
            "kind": "product_line",
            "parent_id": str(org["company"]),
            "leader_id": str(org["sup_south"]),
            "active": "y",
        },
    )
    assert response.status_code == 303
    tree = client.get("/admin/units").get_data(as_text=True)
    assert "Key accounts" in tree
    cycle = client.post(
        f"/admin/units/{org['east']}",
        data={
            "name": "East",
            "kind": "region",
            "parent_id": str(org["shanghai"]),
            "leader_id": str(org["sup_east"]),
            "active": "y",
        },
    )
    assert cycle.status_code == 422
    assert "cannot be placed inside itself" in cycle.get_data(as_text=True)
    duplicate = client.post(
        "/admin/units/new",
        data={"name": "East", "kind": "region", "parent_id": str(org["company"]), "active": "y"},
    )
    assert duplicate.status_code == 422
    assert "Another unit with this name already exists here." in duplicate.get_data(as_text=True)
    occupied = client.post(
        f"/admin/units/{org['shanghai']}",
        data={"name": "Shanghai", "kind": "team", "parent_id": str(org["east"])},
    )
    assert occupied.status_code == 422 and "Move the 2 people" in occupied.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(OrgUnit, org["east"]).parent_id == org["company"]


def test_admin_settings_are_validated_per_field(
    client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    bad = client.post(
        "/admin/settings", data={"core.company_name": "ACME", "core.login_attempts_kept_days": "-5"}
    )
    assert bad.status_code == 422
    assert "Must be at least 1." in bad.get_data(as_text=True)
    good = client.post(
        "/admin/settings",
        data={
            "core.company_name": "ACME Sales",
            "core.login_attempts_kept_days": "30",
            "organisation.chart_shows_headcount": "yes",
        },
    )
    assert good.status_code == 303
    assert "ACME Sales" in client.get("/").get_data(as_text=True)


def test_admin_plugins_page_lists_plugins_and_hooks(
    client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "admin")
    page = client.get("/admin/plugins").get_data(as_text=True)
    assert "organisation" in page and "portal_roles" in page


def test_p2_nobody_hands_out_rights_they_do_not_hold(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    from portal.auth.models import RolePermission

    # A people manager (may manage people, nothing else) cannot make anyone an admin.
    with app.app_context():
        role = Role(
            code="people_admin", name="People admin", read_scope="all", write_scope="all", rank=50
        )
        role.grants = [RolePermission(code="core.users.manage")]
        db.session.add(role)
        db.session.commit()
    login(client, "admin")
    client.post(
        f"/admin/users/{org['manager']}",
        data={
            "username": "manager",
            "display_name": "Manager",
            "roles": ["manager", "people_admin"],
            "unit_id": str(org["company"]),
            "active": "y",
        },
    )
    client.post("/logout")
    login(client, "manager")
    response = client.post(
        f"/admin/users/{org['li']}",
        data={
            "username": "li",
            "display_name": "Li",
            "roles": ["salesperson", "admin"],
            "unit_id": str(org["shanghai"]),
            "active": "y",
        },
    )
    assert response.status_code == 422
    assert "carry rights you do not have" in response.get_data(as_text=True)
    ok = client.post(
        f"/admin/users/{org['li']}",
        data={
            "username": "li",
            "display_name": "Li Na",
            "roles": ["salesperson"],
            "unit_id": str(org["shanghai"]),
            "active": "y",
        },
    )
    assert ok.status_code == 303


def test_p2_the_last_role_manager_cannot_lose_the_right(
    app: Any, client: Any, login: Any, org: dict[str, int]
) -> None:
    from portal.org.services import ValidationFailed, update_user

    with app.app_context():
        admin = db.session.get(User, org["admin"])
        try:
            update_user(admin, {"roles": ["manager"]})
            raise AssertionError("the last admin lost the right to manage roles")
        except ValidationFailed as failure:
            assert "roles" in failure.fields
        db.session.rollback()


def test_p2_demo_people_can_be_edited_as_they_are(app: Any, client: Any) -> None:
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo"]).exit_code == 0
    client.post("/login", data={"username": "admin", "password": "demo-pass-2026"})
    with app.app_context():
        li = db.session.scalars(sa.select(User).where(User.username == "sales_li")).one()
        other_team = db.session.scalars(
            sa.select(OrgUnit).where(OrgUnit.name.like("Guangzhou%"))
        ).one()
        email, li_id, unit_id = li.email, li.id, other_team.id
    response = client.post(
        f"/admin/users/{li_id}",
        data={
            "username": "sales_li",
            "display_name": "Li Na / 李娜",
            "email": email,
            "roles": ["salesperson"],
            "unit_id": str(unit_id),
            "active": "y",
        },
    )
    assert response.status_code == 303
