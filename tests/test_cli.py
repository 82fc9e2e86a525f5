"""The ``portal`` command: users, tokens, plugins, schema and demo data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from portal.auth.models import User
from portal.extensions import db


def test_users_create_token_and_list(app: Any, org: dict[str, int]) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "users",
            "create",
            "sun",
            "--name",
            "Sun Li",
            "--role",
            "salesperson",
            "--unit",
            "Shanghai",
            "--password-stdin",
        ],
        input="long-enough-1\n",
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        sun = db.session.scalars(sa.select(User).where(User.username == "sun")).one()
        assert sun.unit_id == org["shanghai"] and sun.role_codes == {"salesperson"}
    token = runner.invoke(args=["users", "token", "sun"]).output.strip()
    assert token.startswith("sl_")
    client = app.test_client()
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json["username"]
        == "sun"
    )
    listing = runner.invoke(args=["users", "list"]).output
    assert "sun" in listing and "Shanghai" in listing


def test_users_create_refuses_bad_input_with_a_clear_message(app: Any, org: dict[str, int]) -> None:
    runner = app.test_cli_runner()
    duplicate = runner.invoke(
        args=[
            "users",
            "create",
            "li",
            "--name",
            "X",
            "--role",
            "salesperson",
            "--password",
            "long-enough-1",
        ]
    )
    assert duplicate.exit_code != 0 and "username" in duplicate.output
    bad_role = runner.invoke(
        args=[
            "users",
            "create",
            "neo",
            "--name",
            "Neo",
            "--role",
            "wizard",
            "--password",
            "long-enough-1",
        ]
    )
    assert bad_role.exit_code != 0 and "roles" in bad_role.output
    weak = runner.invoke(
        args=[
            "users",
            "create",
            "neo",
            "--name",
            "Neo",
            "--role",
            "salesperson",
            "--password",
            "123",
        ]
    )
    assert weak.exit_code != 0 and "password" in weak.output
    assert "Traceback" not in duplicate.output + bad_role.output + weak.output
    unknown = runner.invoke(args=["users", "token", "ghost"])
    assert unknown.exit_code != 0 and "no person with username 'ghost'" in unknown.output


def test_disabled_person_gets_no_token(app: Any, org: dict[str, int]) -> None:
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "set-active", "li", "false"]).exit_code == 0
    result = runner.invoke(args=["users", "token", "li"])
    assert result.exit_code != 0 and "disabled" in result.output


def test_plugins_list_shows_name_version_source_state_and_hooks(app: Any) -> None:
    output = app.test_cli_runner().invoke(args=["plugins", "list"]).output
    assert "organisation  0.1.0  source=salesloop  loaded" in output
    assert "portal_roles" in output


def test_p2_demo_data_is_complete_and_idempotent(app: Any) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    for username in ("admin", "auditor", "manager", "sup_east", "sales_li", "finance", "hr"):
        assert username in first.output
    assert "demo-pass-2026" in first.output
    with app.app_context():
        people = db.session.scalar(sa.select(sa.func.count()).select_from(User))
        roles = {code for user in db.session.scalars(sa.select(User)) for code in user.role_codes}
    assert {"admin", "auditor", "manager", "supervisor", "salesperson", "finance", "hr"} <= roles
    assert runner.invoke(args=["demo"]).exit_code == 0
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == people


def test_the_console_script_runs(portal_database: str, tmp_path: Path) -> None:
    portal = Path(sys.executable).parent / "portal"
    environment = {
        **os.environ,
        "PORTAL_DATABASE_URL": portal_database,
        "PORTAL_SECRET_KEY": "cli-test",
    }
    result = subprocess.run(
        [str(portal), "plugins", "list"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "core" in result.stdout and "organisation" in result.stdout
