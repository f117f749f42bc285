"""The SMS code API over the stand-in Aliyun endpoint: sending and verifying, the abuse cases
of SECURITY.md about phones and codes, the console backend and its page, and logs free of
phones and codes. Send limits, provider errors and concurrency: test_code_limits.py."""

from __future__ import annotations

import time

import pytest

from berater.db import db
from berater.sms import services as codes
from tests import factories

pytestmark = pytest.mark.backends

PHONE = "13800138000"
OTHER_PHONE = "13900139000"


def bearer(client, openid: str) -> dict[str, str]:
    response = client.post(f"/api/test/token/{openid}")
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.get_json()['data']['token']}"}


def send(client, headers, phone=PHONE, ip: str = "127.0.0.1", **extra_headers):
    return client.post(
        "/api/code",
        json={"phone": phone},
        headers={**headers, **extra_headers},
        environ_base={"REMOTE_ADDR": ip},
    )


def verify(client, headers, code: str):
    return client.post("/api/code/verify", json={"code": code}, headers=headers)


def last_code(aliyun) -> str:
    return aliyun.fake.sent[-1].template_param["code"]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def phone_number(n: int) -> str:
    return f"1380013{n:04d}"


@pytest.fixture
def user(client):
    return bearer(client, "o_user")


# --- send and verify ----------------------------------------------------------------------------


def test_a_code_is_sent_and_verifies_the_phone(client, aliyun, user, ctx):
    response = send(client, user)
    assert response.status_code == 200
    assert response.get_json()["data"] == {
        "phone": "138****8000",
        "expires_in": 300,
        "resend_after": 60,
    }
    [message] = aliyun.fake.sent
    assert message.phone == PHONE
    code = message.template_param["code"]
    assert len(code) == 6 and code.isdigit()

    checked = verify(client, user, code)
    assert checked.status_code == 200
    assert checked.get_json()["data"] == {
        "phone": "138****8000",
        "verified": True,
        "expires_in": 1800,
    }
    assert codes.verified_phone("o_user") == PHONE


def test_the_legacy_get_verifies_too(client, aliyun, user, ctx):
    send(client, user)
    response = client.get(f"/api/code/{last_code(aliyun)}", headers=user)
    assert response.status_code == 200
    assert response.get_json()["data"]["verified"] is True
    assert codes.verified_phone("o_user") == PHONE


def test_codes_are_random_six_digit_strings(make_app, aliyun):
    app = make_app(SMS_SEND_LIMITS=((100, 60),), SMS_IP_LIMITS=((100, 60),))
    client = app.test_client()
    headers = bearer(client, "o_many")
    for _ in range(12):
        assert send(client, headers).status_code == 200
    sent = [m.template_param["code"] for m in aliyun.fake.sent]
    assert all(len(c) == 6 and c.isdigit() for c in sent)
    assert len(set(sent)) >= 10


@pytest.mark.parametrize(
    "phone",
    [
        "13800138000\n",
        "+86 138-0013-8000",
        "+8613800138000",
        "8613800138000",
        "0086 138 0013 8000",
        " 138 0013 8000 ",
    ],
)
def test_phone_forms_are_normalised(client, aliyun, user, phone):
    assert send(client, user, phone).status_code == 200
    assert [m.phone for m in aliyun.fake.sent] == [PHONE]


@pytest.mark.parametrize(
    "phone",
    [
        "13800138000,13900139000",
        "13800138000;13900139000",
        "13800138000 13900139000",
        "１３８００１３８０００",
        "1380013800",
        "138001380001",
        "23800138000",
        "+1 202 555 0123",
        "138001\n38000",
        "",
        "x" * 40,
        ["13800138000"],
        13800138000,
        None,
    ],
    ids=[
        "comma-list",
        "semicolon-list",
        "space-list",
        "full-width",
        "short",
        "long",
        "not-mobile",
        "foreign",
        "newline",
        "empty",
        "oversized",
        "json-list",
        "number",
        "null",
    ],
)
def test_a_bad_phone_is_refused_before_the_provider(client, aliyun, user, phone):
    response = send(client, user, phone)
    assert response.status_code == 400
    assert response.get_json()["data"]["fields"][0]["field"] == "phone"
    assert aliyun.fake.calls == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"phone": PHONE, "openid": "o_other"}, {"phones": [PHONE]}],
    ids=["missing", "extra-field", "wrong-field"],
)
def test_bodies_other_than_one_phone_are_refused(client, aliyun, user, body):
    response = client.post("/api/code", json=body, headers=user)
    assert response.status_code == 400
    assert aliyun.fake.calls == 0


def test_a_form_body_is_415_and_sends_nothing(client, aliyun, user):
    response = client.post("/api/code", data={"phone": PHONE}, headers=user)
    assert response.status_code == 415
    assert aliyun.fake.calls == 0


def test_a_code_works_once(client, aliyun, user):
    send(client, user)
    code = last_code(aliyun)
    assert verify(client, user, code).status_code == 200
    again = verify(client, user, code)
    assert again.status_code == 400
    assert "request a new one" in again.get_json()["error"]


def test_five_wrong_tries_void_the_code_even_for_the_right_sixth(client, aliyun, user):
    send(client, user)
    code = last_code(aliyun)
    left = []
    for _ in range(5):
        response = verify(client, user, wrong(code))
        assert response.status_code == 400
        left.append(response.get_json()["data"]["tries_left"])
    assert left == [4, 3, 2, 1, 0]
    sixth = verify(client, user, code)
    assert sixth.status_code == 400
    assert "tries_left" not in (sixth.get_json()["data"] or {})


def test_four_wrong_tries_still_leave_the_right_one(client, aliyun, user):
    send(client, user)
    code = last_code(aliyun)
    for _ in range(4):
        verify(client, user, wrong(code))
    assert verify(client, user, code).status_code == 200


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", "１２３４５６", "12 456", "-12345"])
def test_a_malformed_code_is_refused_without_costing_a_try(client, aliyun, user, code):
    send(client, user)
    for _ in range(6):
        assert verify(client, user, code).status_code == 400
        assert client.get(f"/api/code/{code}", headers=user).status_code == 400
    assert verify(client, user, last_code(aliyun)).status_code == 200


@pytest.mark.parametrize("code", [123456, None, ["123456"]])
def test_a_code_of_the_wrong_type_is_refused(client, user, code):
    response = client.post("/api/code/verify", json={"code": code}, headers=user)
    assert response.status_code == 400
    assert response.get_json()["data"]["fields"][0]["field"] == "code"


def test_a_code_expires(make_app, aliyun):
    app = make_app(SMS_CODE_TTL=1)
    client = app.test_client()
    headers = bearer(client, "o_slow")
    send(client, headers)
    time.sleep(1.2)
    response = verify(client, headers, last_code(aliyun))
    assert response.status_code == 400
    assert "expired" in response.get_json()["error"]


def test_no_code_waiting_is_a_clear_400(client, user):
    response = verify(client, user, "123456")
    assert response.status_code == 400
    assert "request a new one" in response.get_json()["error"]


# --- binding: phone A, openid A, consumption ---------------------------------------------------


def test_a_code_does_not_verify_another_openid(client, aliyun, user, ctx):
    send(client, user)
    code = last_code(aliyun)
    other = bearer(client, "o_other")
    assert verify(client, other, code).status_code == 400
    assert codes.verified_phone("o_other") is None
    assert verify(client, user, code).status_code == 200  # the owner's try was not spent


def test_a_code_for_phone_a_does_not_verify_phone_b(make_app, aliyun):
    app = make_app(SMS_SEND_LIMITS=((5, 60),))
    client = app.test_client()
    headers = bearer(client, "o_switch")
    send(client, headers, PHONE)
    code_a = last_code(aliyun)
    send(client, headers, OTHER_PHONE)  # a new code, for phone B, replaces A's
    code_b = last_code(aliyun)
    if code_a != code_b:  # one chance in a million that they are equal
        response = verify(client, headers, code_a)
        assert response.status_code == 400
        assert response.get_json()["data"]["tries_left"] == 4
    assert verify(client, headers, code_b).get_json()["data"]["phone"] == "139****9000"
    with app.app_context():
        assert codes.verified_phone("o_switch") == OTHER_PHONE


def test_the_verified_phone_is_consumed_once(client, aliyun, user, ctx):
    send(client, user)
    verify(client, user, last_code(aliyun))
    assert codes.use_verified_phone("o_user", OTHER_PHONE) is False  # not the phone verified
    assert codes.verified_phone("o_user") == PHONE
    assert codes.use_verified_phone("o_user", PHONE) is True
    assert codes.verified_phone("o_user") is None
    assert codes.use_verified_phone("o_user", PHONE) is False


def test_the_verified_phone_expires(make_app, aliyun):
    app = make_app(SMS_VERIFIED_TTL=1)
    client = app.test_client()
    headers = bearer(client, "o_late")
    send(client, headers)
    verify(client, headers, last_code(aliyun))
    with app.app_context():
        assert codes.verified_phone("o_late") == PHONE
        time.sleep(1.2)
        assert codes.verified_phone("o_late") is None
        assert codes.use_verified_phone("o_late", PHONE) is False


# --- who may ask ---------------------------------------------------------------------------------


def test_no_token_is_401_and_sends_nothing(client, aliyun):
    assert client.post("/api/code", json={"phone": PHONE}).status_code == 401
    assert client.get("/api/code/123456").status_code == 401
    assert client.post("/api/code/verify", json={"code": "123456"}).status_code == 401
    assert aliyun.fake.calls == 0


def test_accounts_and_partner_apps_cannot_send_or_verify(client, aliyun, ctx):
    factories.auth_user("alice", "correct horse battery")
    db.session.commit()
    signed_in = client.post(
        "/api/token", json={"username": "alice", "password": "correct horse battery"}
    )
    account = {"Authorization": f"Bearer {signed_in.get_json()['data']['token']}"}
    app_token = {"Authorization": "Bearer face dev-face-app-token"}
    for headers in (account, app_token):
        assert send(client, headers).status_code == 403
        assert verify(client, headers, "123456").status_code == 403
    assert aliyun.fake.calls == 0


# --- the console backend and its page ------------------------------------------------------------


def test_the_console_backend_shows_codes_on_the_dev_page(make_app, aliyun, log_records):
    app = make_app(SMS_BACKEND="console")
    client = app.test_client()
    headers = bearer(client, "o_dev")
    assert send(client, headers, "+86 139-0013-9000").status_code == 200
    assert aliyun.fake.calls == 0
    page = client.get("/dev/sms")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    listing = client.get("/dev/sms?format=json").get_json()["data"]
    [message] = listing["messages"]
    assert message["phone"] == "13900139000"
    assert message["code"] in page.get_data(as_text=True)
    assert verify(client, headers, message["code"]).status_code == 200
    text = " ".join(r.getMessage() for r in log_records)
    assert "console SMS backend: a code was sent" in text
    assert message["code"] not in text


def test_the_dev_page_escapes_what_it_shows(make_app):
    app = make_app(SMS_BACKEND="console")
    with app.app_context():
        app.extensions["berater.sms"].send_code("<script>", "<b>")
    page = app.test_client().get("/dev/sms").get_data(as_text=True)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_the_dev_page_does_not_exist_without_test_routes(make_app):
    client = make_app(ENABLE_TEST_TOKEN=False).test_client()
    assert client.get("/dev/sms").status_code == 404


def test_the_dev_page_under_the_aliyun_backend_shows_nothing(client, aliyun, user):
    send(client, user)
    assert client.get("/dev/sms?format=json").get_json()["data"]["messages"] == []
    assert last_code(aliyun) not in client.get("/dev/sms").get_data(as_text=True)


# --- logs and documentation -----------------------------------------------------------------------


def test_no_phone_or_code_reaches_any_log_line(make_app, aliyun, log_records):
    app = make_app(LOG_LEVEL="DEBUG", SMS_SEND_LIMITS=((10, 60),))
    client = app.test_client()
    headers = bearer(client, "o_logged")
    send(client, headers, "+86 138-0013-8000")
    code = last_code(aliyun)
    client.get(f"/api/code/{wrong(code)}", headers=headers)
    client.get(f"/api/code/{code}")  # no token: 401
    client.post(f"/api/code/{code}", headers=headers)  # 405
    client.get(f"/api/code/{code}", headers=headers)
    aliyun.fake.fail("isv.MOBILE_NUMBER_ILLEGAL")
    send(client, headers)
    aliyun.fake.fail("timeout")
    send(client, headers)
    sent_codes = {m.template_param["code"] for m in aliyun.fake.sent}
    lines = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in log_records]
    text = "\n".join(lines)
    assert PHONE not in text and "138-0013-8000" not in text
    for sent in sent_codes | {wrong(code)}:
        assert sent not in text
    requests_logged = [line for line in lines if line.startswith("berater.request GET /api/code/")]
    assert len(requests_logged) == 3
    assert all("/api/code/****** " in line for line in requests_logged)
    assert not [r for r in log_records if r.name.startswith("aliyunsdkcore")]


def test_the_endpoints_are_in_the_openapi_document(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "post" in paths["/api/code"]
    assert "post" in paths["/api/code/verify"]
    assert "get" in paths["/api/code/{code}"]
    assert "/dev/sms" not in paths
