"""The JSON API: bearer tokens, the same scopes as the UI, JSON errors, OpenAPI (P2, P6.3)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from portal.auth.models import User
from portal.extensions import db


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_p6_3_api_needs_a_valid_token(
    client: Any, org: dict[str, int], api_token: Any, app: Any
) -> None:
    response = client.get("/api/v1/users")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/users", headers=_auth("sl_made_up")).status_code == 401
    token = api_token("li")
    assert client.get("/api/v1/me", headers=_auth(token)).json["username"] == "li"
    # A session cookie is not an API credential (no CSRF exposure through the API).
    client.post("/login", data={"username": "li", "password": "correct-horse-42"})
    assert client.get("/api/v1/me").status_code == 401


def test_p6_3_token_of_a_disabled_person_is_refused(
    client: Any, org: dict[str, int], api_token: Any, app: Any
) -> None:
    token = api_token("li")
    with app.app_context():
        db.session.get(User, org["li"]).active = False
        db.session.commit()
    response = client.get("/api/v1/me", headers=_auth(token))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"


@pytest.mark.parametrize(
    "viewer,expected", [("li", {"li"}), ("sup_east", {"sup_east", "li", "wang"}), ("manager", None)]
)
def test_p2_api_lists_and_details_use_the_same_scopes_as_the_ui(
    client: Any, org: dict[str, int], api_token: Any, viewer: str, expected: set[str] | None
) -> None:
    token = api_token(viewer)
    listing = client.get("/api/v1/users?per_page=200", headers=_auth(token)).json
    names = {item["username"] for item in listing["items"]}
    assert names == (expected if expected is not None else set(names) | {"zhao", "li"})
    assert listing["total"] == len(names)
    zhao = client.get(f"/api/v1/users/{org['zhao']}", headers=_auth(token))
    assert zhao.status_code == (200 if viewer == "manager" else 404)
    assert zhao.is_json


def test_api_pagination(client: Any, org: dict[str, int], api_token: Any) -> None:
    token = api_token("admin")
    first = client.get("/api/v1/users?per_page=3&page=1", headers=_auth(token)).json
    second = client.get("/api/v1/users?per_page=3&page=2", headers=_auth(token)).json
    assert len(first["items"]) == 3 and first["total"] == 8 and first["pages"] == 3
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}
    capped = client.get("/api/v1/users?per_page=100000", headers=_auth(token)).json
    assert capped["per_page"] == 200


def test_p2_admin_creates_and_changes_people_through_the_api(
    client: Any, org: dict[str, int], api_token: Any, app: Any
) -> None:
    token = api_token("admin")
    created = client.post(
        "/api/v1/users",
        headers=_auth(token),
        json={
            "username": "sun",
            "display_name": "Sun Li",
            "password": "long-enough-1",
            "roles": ["salesperson"],
            "unit_id": org["guangzhou"],
            "email": "sun@example.com",
        },
    )
    assert created.status_code == 201, created.json
    assert created.json["roles"] == ["salesperson"] and created.json["active"] is True
    moved = client.patch(
        f"/api/v1/users/{created.json['id']}",
        headers=_auth(token),
        json={"unit_id": org["shanghai"]},
    )
    assert moved.status_code == 200 and moved.json["unit_id"] == org["shanghai"]
    assert moved.json["display_name"] == "Sun Li"  # untouched fields stay
    sup_east = client.get("/api/v1/users?per_page=200", headers=_auth(api_token("sup_east")))
    assert "sun" in {item["username"] for item in sup_east.json["items"]}


def test_p2_bad_api_input_gets_clear_json_errors_and_writes_nothing(
    client: Any, org: dict[str, int], api_token: Any, app: Any
) -> None:
    token = api_token("admin")
    with app.app_context():
        people = db.session.scalar(sa.select(sa.func.count()).select_from(User))
    malformed = client.post(
        "/api/v1/users",
        headers={**_auth(token), "Content-Type": "application/json"},
        data="{not json",
    )
    assert malformed.status_code == 400 and malformed.json["error"]["code"] == "bad_json"
    not_json = client.post("/api/v1/users", headers=_auth(token), data={"a": "b"})
    assert not_json.status_code == 415
    unknown = client.post("/api/v1/users", headers=_auth(token), json={"usernme": "x"})
    assert unknown.status_code == 400 and "usernme" in unknown.json["error"]["fields"]
    invalid = client.post(
        "/api/v1/users",
        headers=_auth(token),
        json={
            "username": "a b",
            "display_name": "",
            "password": "123",
            "roles": [],
            "email": "not-an-email",
            "unit_id": 999999,
        },
    )
    assert invalid.status_code == 422
    fields = invalid.json["error"]["fields"]
    assert {"username", "display_name", "password", "roles", "email", "unit_id"} <= set(fields)
    duplicate = client.post(
        "/api/v1/users",
        headers=_auth(token),
        json={
            "username": "li",
            "display_name": "Another Li",
            "password": "long-enough-1",
            "roles": ["salesperson"],
        },
    )
    assert duplicate.status_code == 422 and "username" in duplicate.json["error"]["fields"]
    absurd = client.post(
        "/api/v1/users",
        headers=_auth(token),
        json={
            "username": "x" * 500,
            "display_name": "y" * 5000,
            "password": "long-enough-1",
            "roles": ["salesperson"],
        },
    )
    assert absurd.status_code == 422
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == people


def test_p2_api_writes_need_the_permission(
    client: Any, org: dict[str, int], api_token: Any
) -> None:
    response = client.post(
        "/api/v1/users", headers=_auth(api_token("manager")), json={"username": "x"}
    )
    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"
    response = client.patch(
        f"/api/v1/org-units/{org['east']}", headers=_auth(api_token("auditor")), json={"name": "X"}
    )
    assert response.status_code == 403


def test_p2_1_org_units_through_the_api(client: Any, org: dict[str, int], api_token: Any) -> None:
    token = api_token("admin")
    units = client.get("/api/v1/org-units", headers=_auth(token)).json
    assert {u["name"] for u in units["items"]} >= {"Company", "East", "Shanghai"}
    created = client.post(
        "/api/v1/org-units",
        headers=_auth(token),
        json={
            "name": "Key accounts",
            "kind": "product_line",
            "parent_id": org["company"],
            "leader_id": org["sup_east"],
        },
    )
    assert created.status_code == 201, created.json
    assert created.json["path"] == f"/{org['company']}/{created.json['id']}/"
    cycle = client.patch(
        f"/api/v1/org-units/{org['east']}",
        headers=_auth(token),
        json={"parent_id": org["shanghai"]},
    )
    assert cycle.status_code == 422 and "parent_id" in cycle.json["error"]["fields"]
    bad_kind = client.post(
        "/api/v1/org-units", headers=_auth(token), json={"name": "X", "kind": "galaxy"}
    )
    assert bad_kind.status_code == 422 and "kind" in bad_kind.json["error"]["fields"]


def test_p6_3_audit_log_through_the_api(client: Any, org: dict[str, int], api_token: Any) -> None:
    response = client.get("/api/v1/audit?table=core_org_unit", headers=_auth(api_token("auditor")))
    assert response.status_code == 200
    assert response.json["total"] >= 4
    assert {item["table"] for item in response.json["items"]} == {"core_org_unit"}
    assert client.get("/api/v1/audit", headers=_auth(api_token("li"))).status_code == 403


def test_api_unknown_route_and_method_answer_json(
    client: Any, org: dict[str, int], api_token: Any
) -> None:
    token = api_token("li")
    missing = client.get("/api/v1/nothing-here", headers=_auth(token))
    assert missing.status_code in (401, 404) and missing.is_json
    wrong_method = client.delete("/api/v1/me", headers=_auth(token))
    assert wrong_method.status_code == 405 and wrong_method.is_json


def test_openapi_document_covers_every_endpoint_and_needs_no_login(app: Any, client: Any) -> None:
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)
    create = document["paths"]["/api/v1/users"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert {"username", "display_name", "roles"} <= set(body["required"])
    assert body["properties"]["username"]["maxLength"] == 64


def test_p2_api_fields_must_have_the_right_json_type(
    client: Any, org: dict[str, int], api_token: Any
) -> None:
    token = api_token("admin")
    for value in ("0", "no", "off", 0):
        response = client.patch(
            f"/api/v1/users/{org['li']}", headers=_auth(token), json={"active": value}
        )
        assert response.status_code == 422, value
        assert "active" in response.json["error"]["fields"]
    for body in (
        {
            "username": ["li2"],
            "display_name": "X",
            "password": "long-enough-1",
            "roles": ["salesperson"],
        },
        {"display_name": {"a": 1}},
        {"roles": "salesperson"},
    ):
        response = client.post("/api/v1/users", headers=_auth(token), json=body)
        assert response.status_code == 422, body
    huge = client.patch(
        f"/api/v1/users/{org['li']}", headers=_auth(token), json={"unit_id": 10**30}
    )
    assert huge.status_code == 422
    assert client.get(f"/api/v1/users/{org['li']}", headers=_auth(token)).json["active"] is True


def test_absurd_numbers_in_urls_answer_404_or_a_page_not_500(
    client: Any, org: dict[str, int], api_token: Any, login: Any
) -> None:
    token = api_token("admin")
    huge = "9" * 30
    assert client.get(f"/api/v1/users/{huge}", headers=_auth(token)).status_code == 404
    assert client.get(f"/api/v1/users?page={huge}", headers=_auth(token)).status_code == 200
    login(client, "admin")
    for url in (
        f"/people/{huge}",
        f"/admin/users/{huge}",
        f"/admin/units/{huge}",
        f"/admin/users?unit={huge}",
    ):
        assert client.get(url).status_code in (200, 404), url
    assert client.get(f"/people/?page={huge}").status_code == 200


def test_p6_3_revoked_and_disabled_tokens_stop_working(
    app: Any, client: Any, org: dict[str, int], api_token: Any
) -> None:
    token = api_token("li")
    assert client.get("/api/v1/me", headers=_auth(token)).status_code == 200
    result = app.test_cli_runner().invoke(args=["users", "revoke-tokens", "li"])
    assert "Revoked 1 token(s)" in result.output
    assert client.get("/api/v1/me", headers=_auth(token)).status_code == 401
