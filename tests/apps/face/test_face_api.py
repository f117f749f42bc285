"""The photo app's query: filters, wildcards, fields, pages, masking and who may call it."""

from __future__ import annotations

import pytest

from berater.db import db
from tests import factories
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends

FACE = {"Authorization": "Bearer face dev-face-app-token"}
URL = "/api/face/students"


@pytest.fixture
def rows(ctx):
    """Five admission rows in two departments and three provinces."""
    made = [
        factories.source_student(
            admission_id="26320102000001", stuid="202600001", name="王伟",
            origin="江苏", department="软件学院",
        ),
        factories.source_student(
            admission_id="26320102000002", stuid="202600002", name="王芳",
            origin="浙江", department="软件学院",
        ),
        factories.source_student(
            admission_id="26330106000003", stuid="202600003", name="李娜",
            origin="浙江", department="文学院",
        ),
        factories.source_student(
            admission_id="26110105000004", stuid="202600004", name="100%_王",
            origin="北京", department="文学院",
        ),
        factories.source_student(
            admission_id="26110105000005", stuid="202600005", name="100ab王",
            origin="北京", department="文学院",
        ),
    ]  # fmt: skip
    db.session.commit()
    return made


def get(client, headers=FACE, **params):
    return client.get(URL, query_string=params, headers=headers)


def admission_ids(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [s["admission_id"] for s in response.get_json()["data"]["students"]]


# --- filters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"department": "软件学院"}, ["26320102000001", "26320102000002"]),
        ({"origin": "北京"}, ["26110105000004", "26110105000005"]),
        ({"name": "李娜"}, ["26330106000003"]),
        ({"admission_id": "26330106000003"}, ["26330106000003"]),
        ({"stuid": "202600002"}, ["26320102000002"]),
        ({"department": "文学院", "origin": "浙江"}, ["26330106000003"]),
    ],
    ids=["department", "origin", "name", "admission_id", "stuid", "two-filters"],
)
def test_each_filter_narrows_the_list(client, rows, params, expected):
    assert admission_ids(get(client, **params)) == expected


def test_a_comma_list_matches_any_of_its_values(client, rows):
    response = get(client, admission_id="26320102000002,26110105000005,,nosuch")
    assert admission_ids(response) == ["26110105000005", "26320102000002"]
    assert admission_ids(get(client, origin="北京,江苏")) == [
        "26110105000004",
        "26110105000005",
        "26320102000001",
    ]


def test_a_wildcard_matches_at_either_end(client, rows):
    # Each wildcard value holds enough other characters for its field (test_enumeration.py).
    assert admission_ids(get(client, admission_id="263201020000*")) == [
        "26320102000001",
        "26320102000002",
    ]
    assert admission_ids(get(client, admission_id="*330106000003")) == ["26330106000003"]
    assert admission_ids(get(client, name="*王伟*")) == ["26320102000001"]
    assert admission_ids(get(client, name="王伟*,*李娜")) == ["26320102000001", "26330106000003"]


def test_like_specials_match_only_literally(client, rows):
    # `%` and `_` are not wildcards: "100%_*" finds the one name with them, not "100ab王".
    assert admission_ids(get(client, name="100%_*")) == ["26110105000004"]
    assert admission_ids(get(client, name="*0%*")) == ["26110105000004"]
    assert admission_ids(get(client, name="100__*")) == []
    assert admission_ids(get(client, name="*0!*")) == []


def test_a_wildcard_inside_a_value_is_refused(client, rows):
    response = get(client, admission_id="26320102*000001")
    assert response.status_code == 400
    assert response.get_json()["data"]["fields"][0]["field"] == "admission_id"


# --- no dump ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"admission_id": "*"},
        {"name": "**"},
        {"admission_id": "*,263201020000*"},
        {"department": ""},
    ],
    ids=["nothing", "lone-star", "double-star", "star-in-list", "empty"],
)
def test_a_lone_star_cannot_dump_the_table(client, rows, params):
    response = get(client, **params)
    assert response.status_code == 400
    assert "name at least one filter" in response.get_json()["data"]["fields"][0]["message"]
    assert response.get_json()["data"]["fields"][0]["message"]


def test_a_star_beside_a_narrowing_filter_is_allowed(client, rows):
    assert admission_ids(get(client, admission_id="*", department="软件学院")) == [
        "26320102000001",
        "26320102000002",
    ]


# --- fields ----------------------------------------------------------------------------------


def test_field_picks_the_columns_in_order(client, rows):
    response = get(client, department="软件学院", field="name,admission_id,name")
    students = response.get_json()["data"]["students"]
    assert [list(s) for s in students] == [["name", "admission_id"]] * 2


def test_every_allowlisted_column_without_field(client, rows):
    student = get(client, name="李娜").get_json()["data"]["students"][0]
    assert set(student) == {
        "stuid", "name", "origin", "gender", "department", "admission_id", "id_card",
    }  # fmt: skip


@pytest.mark.parametrize("field", ["password", "created_at", "name,openid", "__class__"])
def test_an_unknown_field_is_refused_by_name(client, rows, field):
    response = get(client, department="文学院", field=field)
    assert response.status_code == 400
    body = response.get_json()
    assert body["data"]["fields"][0]["field"] == "field"
    assert repr(field.split(",")[-1]) in body["data"]["fields"][0]["message"]


def test_an_unknown_parameter_is_refused(client, rows):
    assert get(client, department="文学院", openid="x").status_code == 400


# --- pages -----------------------------------------------------------------------------------


def test_pages_split_the_list_with_the_total(client, rows):
    every = {"department": "软件学院,文学院", "per_page": 2}
    first = get(client, **every).get_json()["data"]
    second = get(client, **every, page=2).get_json()["data"]
    third = get(client, **every, page=3).get_json()["data"]
    assert (first["page"], first["per_page"], first["total"]) == (1, 2, 5)
    ids = [s["admission_id"] for page in (first, second, third) for s in page["students"]]
    assert ids == sorted(r.admission_id for r in rows)


def test_a_page_beyond_the_end_is_empty_with_the_total(client, rows):
    data = get(client, department="文学院", page=9).get_json()["data"]
    assert data == {"students": [], "page": 9, "per_page": 100, "total": 3}


@pytest.mark.parametrize("params", [{"per_page": 101}, {"per_page": 0}, {"page": 0}, {"page": "x"}])
def test_a_bad_page_is_refused(client, rows, params):
    assert get(client, department="文学院", **params).status_code == 400


def test_the_page_size_goes_up_to_100(client, rows):
    assert get(client, department="文学院", per_page=100).get_json()["data"]["per_page"] == 100


def test_the_answer_keeps_the_original_shape(client, rows):
    body = get(client, stuid="202600003", field="stuid,name").get_json()
    assert body["code"] == 200
    assert body["error"] == ""
    assert body["data"]["students"] == [{"stuid": "202600003", "name": "李娜"}]


# --- ID cards --------------------------------------------------------------------------------


def test_id_cards_are_masked_by_default(client, rows):
    student = get(client, name="李娜", field="id_card").get_json()["data"]["students"][0]
    whole = rows[2].id_card
    assert student["id_card"] == whole[:6] + "********" + whole[-4:]
    assert whole not in str(get(client, department="文学院").get_json())


def test_id_cards_are_whole_when_the_settings_allow(make_app, rows):
    client = make_app(FACE_SEE_ID_CARDS=True).test_client()
    student = get(client, name="李娜", field="id_card").get_json()["data"]["students"][0]
    assert student["id_card"] == rows[2].id_card


# --- who may call ----------------------------------------------------------------------------


def test_no_token_is_refused(client, rows):
    assert get(client, headers={}, department="文学院").status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer face wrong-secret", "Bearer face ", "Bearer other dev-face-app-token", "Bearer x"],
)
def test_a_wrong_app_secret_is_refused(client, rows, header):
    response = get(client, headers={"Authorization": header}, department="文学院")
    assert response.status_code == 401
    assert "students" not in str(response.get_json())


def test_a_student_token_is_forbidden(client, rows):
    factories.student("o_student", rows[0])
    db.session.commit()
    token = token_for(client, "o_student")
    response = get(client, headers=bearer(token), department="文学院")
    assert response.status_code == 403
    assert response.get_json()["data"] is None


def test_a_person_granted_face_may_query(client, rows):
    factories.privilege("o_photo_staff", "face")
    db.session.commit()
    token = token_for(client, "o_photo_staff")
    assert admission_ids(get(client, headers=bearer(token), origin="江苏")) == ["26320102000001"]


def test_the_face_app_token_is_forbidden_elsewhere(client, rows):
    assert client.get("/api/source", headers=FACE).status_code == 403


def test_a_number_prefix_finds_exactly_its_rows(client, rows):
    # SQLite answers digit prefixes through an index range: the range ends must be exact.
    # "...9*" ends at "...:" (":" follows "9"); the rows just past either end stay out.
    factories.source_student(admission_id="26399999999901", stuid="202699999")
    factories.source_student(admission_id="26399999999899", stuid="202699998")
    factories.source_student(admission_id="26400000000000", stuid="202699997")
    db.session.commit()
    assert admission_ids(get(client, admission_id="263999999999*")) == ["26399999999901"]
    assert admission_ids(get(client, admission_id="26399999999901*")) == ["26399999999901"]
    both = get(client, admission_id="263999999998*,263301060000*")
    assert admission_ids(both) == ["26330106000003", "26399999999899"]
    by_stuid = get(client, stuid="202600005,202600004,202600001", per_page=100)
    assert admission_ids(by_stuid) == ["26110105000004", "26110105000005", "26320102000001"]
