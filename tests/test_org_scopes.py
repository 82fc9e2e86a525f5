"""P2.1-P2.4 organisation and the data scopes every chapter plugin relies on (P6.3)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from portal.auth.models import User
from portal.extensions import db
from portal.org.models import OrgUnit
from portal.scoping import can_reach, scoped

# Who sees whose people records (User is scoped by its own id): the oracle of the matrix.
READ_MATRIX = {
    "li": {"li"},
    "wang": {"wang"},
    "sup_east": {"sup_east", "li", "wang"},
    "sup_south": {"sup_south", "zhao"},
    "manager": "all",
    "admin": "all",
    "auditor": "all",
}
WRITE_MATRIX = {**READ_MATRIX, "auditor": set()}


def _visible(app: Any, viewer: int, verb: str) -> set[str]:
    with app.app_context():
        user = db.session.get(User, viewer)
        rows = db.session.scalars(scoped(sa.select(User.username), User, user, verb))
        return set(rows)


@pytest.mark.parametrize("verb,matrix", [("read", READ_MATRIX), ("write", WRITE_MATRIX)])
@pytest.mark.parametrize("viewer", sorted(READ_MATRIX))
def test_p2_scope_matrix_role_by_ownership(
    app: Any, org: dict[str, int], viewer: str, verb: str, matrix: dict[str, Any]
) -> None:
    everyone = {"manager", "sup_east", "sup_south", "li", "wang", "zhao", "admin", "auditor"}
    expected = everyone if matrix[viewer] == "all" else matrix[viewer]
    assert _visible(app, org[viewer], verb) == expected


def test_p2_3_supervisor_sees_whole_subtree_including_deeper_units(
    app: Any, org: dict[str, int], make_unit: Any, make_person: Any
) -> None:
    pudong = make_unit("Pudong", "team", parent=org["shanghai"])
    make_person("deep", roles=["salesperson"], unit=pudong)
    assert "deep" in _visible(app, org["sup_east"], "read")
    assert "deep" not in _visible(app, org["sup_south"], "read")


def test_p2_1_reassigning_a_person_changes_what_supervisors_see_at_once(
    app: Any, org: dict[str, int]
) -> None:
    from portal.org.services import update_user

    with app.app_context():
        li = db.session.get(User, org["li"])
        update_user(li, {"unit_id": org["guangzhou"]})
        db.session.commit()
    assert "li" not in _visible(app, org["sup_east"], "read")
    assert "li" in _visible(app, org["sup_south"], "read")


def test_p2_1_moving_a_unit_moves_its_subtree_and_the_scope(app: Any, org: dict[str, int]) -> None:
    from portal.org.services import save_unit

    with app.app_context():
        shanghai = db.session.get(OrgUnit, org["shanghai"])
        save_unit(shanghai, "Shanghai", "team", org["south"], None)
        db.session.commit()
        assert shanghai.path == f"/{org['company']}/{org['south']}/{org['shanghai']}/"
    assert {"li", "wang"} <= _visible(app, org["sup_south"], "read")
    assert not {"li", "wang"} & _visible(app, org["sup_east"], "read")


def test_p2_1_a_unit_cannot_be_moved_under_its_own_subtree(app: Any, org: dict[str, int]) -> None:
    from portal.org.services import ValidationFailed, save_unit

    with app.app_context():
        east = db.session.get(OrgUnit, org["east"])
        with pytest.raises(ValidationFailed) as failure:
            save_unit(east, "East", "region", org["shanghai"], org["sup_east"])
        assert "parent_id" in failure.value.fields
        db.session.rollback()
        assert db.session.get(OrgUnit, org["east"]).parent_id == org["company"]


def test_p2_4_salesperson_reports_to_the_nearest_leader_above(
    app: Any, org: dict[str, int]
) -> None:
    from portal.org.services import supervisor_of

    with app.app_context():
        assert supervisor_of(db.session.get(User, org["li"])).id == org["sup_east"]
        # A unit leader reports to the next leader up, not to themselves.
        sup = db.session.get(User, org["sup_east"])
        sup.unit_id = org["east"]
        db.session.commit()
        assert supervisor_of(db.session.get(User, org["sup_east"])).id == org["manager"]


def test_p2_out_of_scope_details_answer_404_in_the_browser(
    client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "li")
    assert client.get(f"/people/{org['li']}").status_code == 200
    assert client.get(f"/people/{org['wang']}").status_code == 404
    assert client.get(f"/people/{org['zhao']}").status_code == 404
    listing = client.get("/people/").get_data(as_text=True)
    assert "Wang" not in listing and "Li" in listing


def test_p2_3_supervisor_profile_lists_team_and_duties(
    client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "sup_east")
    page = client.get(f"/people/{org['sup_east']}").get_data(as_text=True)
    assert "Guide and supervise salespeople day to day" in page  # P2.3 duty
    assert "Li" in page and "Wang" in page
    assert client.get(f"/people/{org['li']}").status_code == 200
    assert client.get(f"/people/{org['zhao']}").status_code == 404


def test_p2_2_manager_profile_shows_manager_duties(
    client: Any, login: Any, org: dict[str, int]
) -> None:
    login(client, "manager")
    page = client.get(f"/people/{org['manager']}").get_data(as_text=True)
    assert "Break the sales target down and assign it to the team" in page
    assert "(P2.2)" in page


def test_p2_write_scope_gives_403_when_readable_but_not_writable(
    app: Any, org: dict[str, int]
) -> None:
    from werkzeug.exceptions import Forbidden, NotFound

    from portal.scoping import get_scoped_or_404

    with app.test_request_context():
        auditor = db.session.get(User, org["auditor"])
        assert can_reach(db.session.get(User, org["li"]), auditor, "read")
        with pytest.raises(Forbidden):
            get_scoped_or_404(User, org["li"], auditor, "write")
        li = db.session.get(User, org["li"])
        with pytest.raises(NotFound):
            get_scoped_or_404(User, org["zhao"], li, "read")


def test_p2_unscoped_model_is_refused(app: Any, org: dict[str, int]) -> None:
    with app.app_context():
        user = db.session.get(User, org["li"])
        with pytest.raises(TypeError, match="cannot be scoped"):
            scoped(sa.select(OrgUnit), OrgUnit, user)


def test_p2_3_a_team_list_never_shows_more_than_the_viewers_scope(
    client: Any, login: Any, org: dict[str, int], app: Any
) -> None:
    from portal.org.services import save_unit

    # Li (salesperson in the East) is made leader of the Guangzhou team in the South.
    with app.app_context():
        guangzhou = db.session.get(OrgUnit, org["guangzhou"])
        save_unit(guangzhou, "Guangzhou", "team", org["south"], org["li"])
        db.session.commit()
    login(client, "sup_east")
    assert client.get(f"/people/{org['zhao']}").status_code == 404
    assert "Zhao" not in client.get(f"/people/{org['li']}").get_data(as_text=True)
    client.post("/logout")
    login(client, "li")  # own scope: leading a unit does not widen it
    assert "Zhao" not in client.get(f"/people/{org['li']}").get_data(as_text=True)


def test_p2_search_treats_wildcards_literally(client: Any, login: Any, org: dict[str, int]) -> None:
    login(client, "admin")
    assert "No one matches." in client.get("/people/?q=%25").get_data(as_text=True)
    assert "No one matches." in client.get("/admin/users?q=%25").get_data(as_text=True)
    assert ">Li<" in client.get("/admin/users?q=li").get_data(as_text=True)
