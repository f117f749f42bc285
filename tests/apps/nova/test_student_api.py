"""The student's own nova registration: source, register, read, cancel, renew."""

from __future__ import annotations

import pytest

from berater.db import db
from berater.models import NovaReg, SourceStudent, Student
from tests.apps.nova.helpers import FACE_APP, GOOD, PHONE, auth, make_nova_admin, make_student

pytestmark = pytest.mark.backends


@pytest.fixture
def student(ctx, client):
    make_student("o_nova", stuid="202600001", name="王小明", department="物理系")
    return auth(client, "o_nova")


def test_source_gives_the_admission_facts_and_no_phone_before_registering(client, student):
    response = client.get("/api/nova/source", headers=student)
    assert response.status_code == 200
    assert response.get_json()["data"] == {
        "stuid": "202600001",
        "name": "王小明",
        "department": "物理系",
        "phone": None,
        "qq": None,
    }


def test_source_gives_the_phone_and_qq_registered_with(client, student):
    client.post("/api/nova/info", json=GOOD, headers=student)
    data = client.get("/api/nova/source", headers=student).get_json()["data"]
    assert (data["phone"], data["qq"]) == (PHONE, "123456789")


def test_register_copies_the_admission_record_and_reads_back(client, student):
    response = client.post("/api/nova/info", json=GOOD, headers=student)
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert data["stuid"] == "202600001"
    assert data["name"] == "王小明"
    assert data["department"] == "物理系"
    assert data["phone"] == PHONE  # the student's own phone, whole
    assert data["intro"] == "喜欢编程和天文。"
    again = client.get("/api/nova/info", headers=student)
    assert again.status_code == 200
    assert again.get_json()["data"] == data


def test_register_normalises_the_phone(client, student, ctx):
    body = {**GOOD, "phone": "+86 139-1234-5678"}
    assert client.post("/api/nova/info", json=body, headers=student).status_code == 200
    assert db.session.get(NovaReg, "o_nova").phone == PHONE


def test_info_is_404_before_registering(client, student):
    response = client.get("/api/nova/info", headers=student)
    assert response.status_code == 404
    assert response.get_json()["code"] == 404


def test_registering_twice_is_409(client, student):
    assert client.post("/api/nova/info", json=GOOD, headers=student).status_code == 200
    again = client.post("/api/nova/info", json=GOOD, headers=student)
    assert again.status_code == 409


def test_cancel_keeps_the_row_and_hides_the_registration(client, student, ctx):
    client.post("/api/nova/info", json=GOOD, headers=student)
    response = client.delete("/api/nova/info", headers=student)
    assert response.status_code == 200
    assert client.get("/api/nova/info", headers=student).status_code == 404
    db.session.expire_all()
    row = db.session.get(NovaReg, "o_nova")
    assert row is not None and row.deleted is True


def test_cancel_without_a_registration_is_404(client, student):
    assert client.delete("/api/nova/info", headers=student).status_code == 404
    client.post("/api/nova/info", json=GOOD, headers=student)
    assert client.delete("/api/nova/info", headers=student).status_code == 200
    assert client.delete("/api/nova/info", headers=student).status_code == 404


def test_a_cancelled_registration_can_be_renewed_with_new_details(client, student):
    client.post("/api/nova/info", json=GOOD, headers=student)
    client.delete("/api/nova/info", headers=student)
    renewed = {"phone": "13700001111", "qq": "98765", "intro": None}
    response = client.post("/api/nova/info", json=renewed, headers=student)
    assert response.status_code == 200
    data = client.get("/api/nova/info", headers=student).get_json()["data"]
    assert (data["phone"], data["qq"], data["intro"]) == ("13700001111", "98765", None)
    assert client.post("/api/nova/info", json=renewed, headers=student).status_code == 409


def test_renewal_takes_the_admission_record_as_it_is_now(client, student, ctx):
    client.post("/api/nova/info", json=GOOD, headers=student)
    client.delete("/api/nova/info", headers=student)
    source = db.session.scalars(
        db.select(SourceStudent).where(SourceStudent.stuid == "202600001")
    ).one()
    source.department = "天文系"
    db.session.commit()
    data = client.post("/api/nova/info", json=GOOD, headers=student).get_json()["data"]
    assert data["department"] == "天文系"


@pytest.mark.parametrize(
    "body",
    [
        {**GOOD, "stuid": "202699999"},
        {**GOOD, "name": "别人"},
        {**GOOD, "department": "数学系"},
        {**GOOD, "deleted": True},
        {**GOOD, "openid": "o_other"},
    ],
)
def test_fields_the_client_must_not_set_are_400(client, student, body, ctx):
    response = client.post("/api/nova/info", json=body, headers=student)
    assert response.status_code == 400
    assert response.get_json()["code"] == 400
    assert db.session.get(NovaReg, "o_nova") is None


@pytest.mark.parametrize(
    "phone",
    [
        "12345678901",
        "1391234567",
        "139123456789",
        "13912345678,13912345679",
        "１３９１２３４５６７８",
        "",
        13912345678,
    ],
)
def test_a_bad_phone_is_400(client, student, phone):
    response = client.post("/api/nova/info", json={**GOOD, "phone": phone}, headers=student)
    assert response.status_code == 400
    assert "phone" in response.get_json()["error"]


@pytest.mark.parametrize(
    "qq", ["1234", "1234567890123", "01234567", "12345a", "", " 123456", 123456789, None]
)
def test_a_bad_qq_is_400(client, student, qq):
    response = client.post("/api/nova/info", json={**GOOD, "qq": qq}, headers=student)
    assert response.status_code == 400
    assert "qq" in response.get_json()["error"]


@pytest.mark.parametrize("qq", ["12345", "123456789012"])
def test_qq_of_5_to_12_digits_is_accepted(client, student, qq):
    response = client.post("/api/nova/info", json={**GOOD, "qq": qq}, headers=student)
    assert response.status_code == 200
    assert response.get_json()["data"]["qq"] == qq


@pytest.mark.parametrize(
    "intro", ["x" * 201, "第一行\n第二行", "tab\there", "bell\x07", "a\u2028b"]
)
def test_a_long_or_control_character_intro_is_400(client, student, intro):
    response = client.post("/api/nova/info", json={**GOOD, "intro": intro}, headers=student)
    assert response.status_code == 400
    assert "intro" in response.get_json()["error"]


def test_an_intro_of_200_characters_is_accepted(client, student):
    response = client.post("/api/nova/info", json={**GOOD, "intro": "字" * 200}, headers=student)
    assert response.status_code == 200


def test_phone_and_qq_are_required(client, student):
    response = client.post("/api/nova/info", json={"intro": "hi"}, headers=student)
    assert response.status_code == 400
    assert {f["field"] for f in response.get_json()["data"]["fields"]} == {"phone", "qq"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "application/json"),
        (b"not json", "application/json"),
        (b"[1]", "application/json"),
        (b'{"phone": "13912345678"}', "text/plain"),
    ],
)
def test_a_malformed_body_is_a_4xx_envelope(client, student, body, content_type):
    response = client.post(
        "/api/nova/info", data=body, headers={**student, "Content-Type": content_type}
    )
    assert response.status_code in (400, 415)
    assert response.get_json()["code"] == response.status_code


# --- who may call ------------------------------------------------------------------------------


STUDENT_ROUTES = [
    ("get", "/api/nova/source"),
    ("get", "/api/nova/info"),
    ("post", "/api/nova/info"),
    ("delete", "/api/nova/info"),
]


@pytest.mark.parametrize(("method", "path"), STUDENT_ROUTES)
def test_student_routes_need_a_token(client, method, path):
    kwargs = {"json": GOOD} if method == "post" else {}
    assert getattr(client, method)(path, **kwargs).status_code == 401


@pytest.mark.parametrize(("method", "path"), STUDENT_ROUTES)
def test_the_face_app_token_is_403_on_student_routes(client, ctx, method, path):
    kwargs = {"json": GOOD} if method == "post" else {}
    assert getattr(client, method)(path, headers=FACE_APP, **kwargs).status_code == 403


@pytest.mark.parametrize(("method", "path"), STUDENT_ROUTES)
def test_a_nova_admin_who_is_not_a_student_is_403_on_student_routes(client, ctx, method, path):
    make_nova_admin("o_admin")
    kwargs = {"json": GOOD} if method == "post" else {}
    response = getattr(client, method)(path, headers=auth(client, "o_admin"), **kwargs)
    assert response.status_code == 403


def test_a_nova_admin_who_is_also_a_student_can_register(client, ctx):
    make_student("o_both", stuid="202600002")
    make_nova_admin("o_both")
    response = client.post("/api/nova/info", json=GOOD, headers=auth(client, "o_both"))
    assert response.status_code == 200


@pytest.mark.parametrize(("method", "path"), STUDENT_ROUTES)
def test_a_student_without_a_student_number_is_404(client, ctx, method, path):
    make_student("o_nostuid", stuid=None)
    headers = auth(client, "o_nostuid")
    kwargs = {"json": GOOD} if method == "post" else {}
    response = getattr(client, method)(path, headers=headers, **kwargs)
    assert response.status_code == 404
    assert response.get_json()["code"] == 404


def test_a_token_whose_admission_record_is_gone_is_404_not_500(client, ctx):
    make_student("o_gone", stuid="202600003")
    headers = auth(client, "o_gone")
    db.session.execute(db.delete(Student).where(Student.openid == "o_gone"))
    db.session.commit()
    # The token still says student (roles are read again only after a role change).
    for path in ("/api/nova/source", "/api/nova/info"):
        assert client.get(path, headers=headers).status_code == 404
    assert client.post("/api/nova/info", json=GOOD, headers=headers).status_code == 404
