"""Logging in and out, sessions, passwords, throttling (P2: who may see what starts here)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from portal.auth.models import LoginAttempt, User
from portal.extensions import db
from portal.testing import DEMO_TEST_PASSWORD


def test_login_and_logout(client: Any, make_person: Any) -> None:
    make_person("li", display_name="Li Na")
    response = client.post("/login", data={"username": "li", "password": DEMO_TEST_PASSWORD})
    assert response.status_code == 302
    assert "Li Na" in client.get("/").get_data(as_text=True)
    assert client.get("/logout").status_code == 405  # GET cannot log anyone out
    response = client.post("/logout")
    assert response.status_code == 302 and response.location == "/login"
    assert client.get("/").status_code == 302


def test_wrong_password_and_unknown_user_get_the_same_clear_message(
    client: Any, make_person: Any
) -> None:
    make_person("li")
    wrong = client.post("/login", data={"username": "li", "password": "nope-nope"})
    unknown = client.post("/login", data={"username": "ghost", "password": "nope-nope"})
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Wrong username or password." in response.get_data(as_text=True)


def test_empty_login_form_gets_per_field_messages(client: Any) -> None:
    response = client.post("/login", data={"username": "", "password": ""})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert page.count("This field is required.") == 2
    assert page.count("invalid-feedback") == 2


def test_failed_logins_are_throttled_per_username(app: Any, client: Any, make_person: Any) -> None:
    make_person("li")
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert (
            client.post("/login", data={"username": "li", "password": "bad-guess"}).status_code
            == 401
        )
    response = client.post("/login", data={"username": "li", "password": DEMO_TEST_PASSWORD})
    assert response.status_code == 429
    assert "Too many failed attempts" in response.get_data(as_text=True)
    with app.app_context():
        attempts = db.session.scalar(sa.select(sa.func.count()).select_from(LoginAttempt))
        # The throttled attempt was not even tried, so not recorded.
        assert attempts == app.config["LOGIN_MAX_FAILURES"]


def test_disabled_person_cannot_log_in_and_loses_open_sessions(
    app: Any, client: Any, make_person: Any
) -> None:
    user_id = make_person("li")
    client.post("/login", data={"username": "li", "password": DEMO_TEST_PASSWORD})
    assert client.get("/").status_code == 200
    with app.app_context():
        db.session.get(User, user_id).active = False
        db.session.commit()
    assert client.get("/").status_code == 302
    response = client.post("/login", data={"username": "li", "password": DEMO_TEST_PASSWORD})
    assert response.status_code == 401


def test_login_starts_a_new_session(client: Any, make_person: Any) -> None:
    make_person("li")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    client.post("/login", data={"username": "li", "password": DEMO_TEST_PASSWORD})
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session.get("_fresh") is True


def test_password_change_validates_and_ends_other_sessions(
    app: Any, make_person: Any, login: Any
) -> None:
    make_person("li")
    phone, laptop = app.test_client(), app.test_client()
    login(phone, "li")
    login(laptop, "li")
    bad = laptop.post(
        "/account/password",
        data={"current_password": "not-mine", "new_password": "short", "confirm": "other"},
    )
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "Use at least 8 characters." in text and "The passwords differ." in text
    wrong_current = laptop.post(
        "/account/password",
        data={
            "current_password": "not-mine-at-all",
            "new_password": "a-new-secret-9",
            "confirm": "a-new-secret-9",
        },
    )
    assert wrong_current.status_code == 422
    assert "That is not your current password." in wrong_current.get_data(as_text=True)
    good = laptop.post(
        "/account/password",
        data={
            "current_password": DEMO_TEST_PASSWORD,
            "new_password": "a-new-secret-9",
            "confirm": "a-new-secret-9",
        },
    )
    assert good.status_code == 302
    assert laptop.get("/").status_code == 200  # the session that changed it goes on
    assert phone.get("/").status_code == 302  # every other session has ended
    assert login(app.test_client(), "li", "a-new-secret-9")


def test_password_rules(client: Any, make_person: Any, login: Any) -> None:
    make_person("li")
    login(client, "li")
    for new, message in (
        ("12345678901", "Use letters as well as digits."),
        ("li", "Use at least 8 characters."),
    ):
        response = client.post(
            "/account/password",
            data={"current_password": DEMO_TEST_PASSWORD, "new_password": new, "confirm": new},
        )
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)


def test_passwords_are_hashed_never_stored(app: Any, make_person: Any) -> None:
    user_id = make_person("li")
    with app.app_context():
        stored = db.session.get(User, user_id).password_hash
        assert DEMO_TEST_PASSWORD not in stored and stored.startswith("pbkdf2:")


def test_a_copied_cookie_is_worthless_after_logout(app: Any, make_person: Any, login: Any) -> None:
    make_person("li")
    client = app.test_client()
    login(client, "li")
    stolen = client.get_cookie("session").value
    client.post("/logout")
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/").status_code == 302


def test_a_login_ends_after_the_absolute_lifetime_however_active(
    app: Any, make_person: Any, login: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    from portal.auth.models import UserSession

    make_person("li")
    client = app.test_client()
    login(client, "li")
    assert client.get("/").status_code == 200
    with app.app_context():
        session_row = db.session.scalars(sa.select(UserSession)).one()
        session_row.created_at = (
            datetime.now(UTC) - app.config["PERMANENT_SESSION_LIFETIME"] - timedelta(minutes=1)
        )
        db.session.commit()
    assert client.get("/").status_code == 302


def test_throttling_cannot_be_dodged_with_spaces_around_the_name(
    app: Any, client: Any, make_person: Any
) -> None:
    make_person("li")
    for attempt in range(app.config["LOGIN_MAX_FAILURES"]):
        name = " " * attempt + "li" + " " * attempt
        client.post("/login", data={"username": name, "password": "bad-guess"})
    response = client.post("/login", data={"username": "  li ", "password": DEMO_TEST_PASSWORD})
    assert response.status_code == 429
