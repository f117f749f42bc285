"""Binding: candidate details, student ID card + number, the admission record (SECURITY.md)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from berater.db import db, transaction
from berater.models import Candidate, Student
from tests import factories
from tests.helpers import bearer, commit_fails, token_for

pytestmark = pytest.mark.backends

PHONE = "13800138000"
CANDIDATE = {
    "name": "李四",
    "province": "江苏省",
    "city": "南京",
    "score": 612.5,
    "subject": "物理类",
}


@pytest.fixture
def app(make_app):
    """Send limits out of the way: these tests verify several phones a minute."""
    return make_app(SMS_SEND_LIMITS=((1000, 60),), SMS_IP_LIMITS=((1000, 60),))


@pytest.fixture
def verify_phone(aliyun):
    """Verify `phone` for the bearer of `token` the way a person does: SMS code, then check."""

    def verify(http, token: str, phone: str, base: str = "") -> None:
        sent = http.post(f"{base}/api/code", json={"phone": phone}, headers=bearer(token))
        assert sent.status_code == 200, sent.json() if base else sent.get_json()
        code = aliyun.fake.sent[-1].template_param["code"]
        checked = http.post(f"{base}/api/code/verify", json={"code": code}, headers=bearer(token))
        assert checked.status_code == 200

    return verify


@pytest.fixture
def source(ctx):
    row = factories.source_student(stuid="202600042", admission_id="26320102000042")
    db.session.commit()
    return {"id_card": row.id_card, "stuid": row.stuid, "admission_id": row.admission_id}


# --- candidates -----------------------------------------------------------------------------


def test_a_candidate_binds_with_a_verified_phone_and_gets_the_role(verify_phone, client, app):
    token = token_for(client, "o_cand")
    verify_phone(client, token, PHONE)
    response = client.post("/api/candidate", json=CANDIDATE, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert data["candidate"] is True
    assert data["record"]["province"] == "江苏"
    assert data["record"]["phone"] == "138****8000"
    check = client.get("/api/token", headers=bearer(data["token"])).get_json()["data"]
    assert check["roles"] == ["candidate"]
    # The old token picks up the new role at its next check, too.
    assert client.get("/api/token", headers=bearer(token)).get_json()["data"]["candidate"]
    with app.app_context():
        assert db.session.get(Candidate, "o_cand").phone == PHONE


def test_binding_needs_a_verified_phone_and_consumes_it(verify_phone, client):
    token = token_for(client, "o_cand")
    refused = client.post("/api/candidate", json=CANDIDATE, headers=bearer(token))
    assert refused.status_code == 403
    assert "verify your phone" in refused.get_json()["error"]
    verify_phone(client, token, PHONE)
    assert client.post("/api/candidate", json=CANDIDATE, headers=bearer(token)).status_code == 200
    other = token_for(client, "o_cand2")
    # The verified phone belonged to o_cand and is used up.
    assert client.post("/api/candidate", json=CANDIDATE, headers=bearer(other)).status_code == 403


@pytest.mark.parametrize(("failing", "then"), [("candidate", "student"), ("student", "candidate")])
def test_a_binding_that_fails_to_commit_leaves_the_phone_verified(
    verify_phone, client, source, aliyun, store_client, failing, then
):
    bodies = {"candidate": CANDIDATE, "student": {"id_card": source["id_card"], "id": "202600042"}}
    token = token_for(client, "o_both")
    verify_phone(client, token, PHONE)
    with commit_fails():
        failed = client.post(f"/api/{failing}", json=bodies[failing], headers=bearer(token))
    assert failed.status_code == 500
    assert store_client.get("berater:sms:verified:o_both") == PHONE
    assert store_client.hget("berater:revoke:marks", "o_both") is None
    # The same verification serves the next binding (no new text), which uses it up.
    texts = len(aliyun.fake.sent)
    bound = client.post(f"/api/{then}", json=bodies[then], headers=bearer(token))
    assert bound.status_code == 200, bound.get_json()
    assert len(aliyun.fake.sent) == texts
    assert store_client.get("berater:sms:verified:o_both") is None
    assert store_client.hget("berater:revoke:marks", "o_both") is not None


@pytest.mark.mariadb  # pysqlite commits at the release of a savepoint opened before any write
@pytest.mark.parametrize("failing", ["candidate", "student"])
def test_a_failed_binding_writes_nothing_and_the_same_verification_binds_again(
    verify_phone, client, app, source, failing
):
    body = (
        CANDIDATE if failing == "candidate" else {"id_card": source["id_card"], "id": "202600042"}
    )
    token = token_for(client, "o_again")
    verify_phone(client, token, PHONE)
    with commit_fails():
        assert client.post(f"/api/{failing}", json=body, headers=bearer(token)).status_code == 500
    with app.app_context():
        assert db.session.get(Candidate, "o_again") is None
        assert db.session.get(Student, "o_again") is None
    bound = client.post(f"/api/{failing}", json=body, headers=bearer(token))
    assert bound.status_code == 200, bound.get_json()
    assert bound.get_json()["data"][failing] is True


def test_a_phone_change_that_fails_to_commit_keeps_the_old_phone_and_the_new_one_verified(
    verify_phone, client, app, store_client
):
    token = token_for(client, "o_cand")
    verify_phone(client, token, PHONE)
    token = client.post("/api/candidate", json=CANDIDATE, headers=bearer(token)).get_json()["data"][
        "token"
    ]
    verify_phone(client, token, "13900139000")
    with commit_fails():
        failed = client.patch(
            "/api/candidate", json={"phone": "13900139000"}, headers=bearer(token)
        )
    assert failed.status_code == 500
    assert store_client.get("berater:sms:verified:o_cand") == "13900139000"
    with app.app_context():
        assert db.session.get(Candidate, "o_cand").phone == PHONE
    moved = client.patch("/api/candidate", json={"phone": "13900139000"}, headers=bearer(token))
    assert moved.status_code == 200
    assert store_client.get("berater:sms:verified:o_cand") is None


def test_a_phone_verified_again_while_a_binding_commits_stays_verified(
    verify_phone, client, app, store_client
):
    """The binding deletes the verified phone only if it is still the one it used."""
    from berater.binding import services

    token = token_for(client, "o_cand")
    verify_phone(client, token, PHONE)
    with app.app_context(), transaction():
        services.bind_candidate("o_cand", CANDIDATE)
        store_client.set("berater:sms:verified:o_cand", "13900139000")  # verified meanwhile
    assert store_client.get("berater:sms:verified:o_cand") == "13900139000"


def test_a_candidate_cannot_register_twice(verify_phone, client):
    token = token_for(client, "o_cand")
    verify_phone(client, token, PHONE)
    client.post("/api/candidate", json=CANDIDATE, headers=bearer(token))
    again = client.post("/api/candidate", json=CANDIDATE, headers=bearer(token))
    assert again.status_code == 409
    assert again.get_json()["data"] == {"reason": "already_bound"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"province": "火星"}, "province"),
        ({"province": "Jiangsu"}, "province"),
        ({"score": 9999}, "score"),
        ({"score": -1}, "score"),
        ({"score": "600"}, "score"),
        ({"score": True}, "score"),
        ({"subject": "音乐"}, "subject"),
        ({"name": ""}, "name"),
        ({"name": "名" * 33}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"city": ""}, "city"),
        ({"openid": "o_other"}, "openid"),
        ({"phone": PHONE}, "phone"),
        ({"deleted": True}, "deleted"),
    ],
)
def test_bad_candidate_fields_are_refused_and_nothing_is_written(
    verify_phone, client, app, change, field
):
    token = token_for(client, "o_cand")
    verify_phone(client, token, PHONE)
    response = client.post("/api/candidate", json={**CANDIDATE, **change}, headers=bearer(token))
    assert response.status_code == 400
    assert field in response.get_json()["error"]
    # Named in the fields, so a page can show the error beside its field.
    named = {f["field"].split(".")[0] for f in response.get_json()["data"]["fields"]}
    assert named == {field}
    with app.app_context():
        assert db.session.get(Candidate, "o_cand") is None


@pytest.mark.parametrize(
    ("province", "stored"),
    [("香港特别行政区", "香港"), ("澳门", "澳门"), ("台湾省", "台湾"), ("内蒙古自治区", "内蒙古"),
     ("北京市", "北京"), ("新疆", "新疆")],
)  # fmt: skip
def test_each_of_the_34_provincial_divisions_is_a_province(verify_phone, client, province, stored):
    from berater.binding.services import PROVINCES

    assert len(PROVINCES) == len(set(PROVINCES)) == 34
    token = token_for(client, "o_cand")
    verify_phone(client, token, PHONE)
    response = client.post(
        "/api/candidate", json={**CANDIDATE, "province": province}, headers=bearer(token)
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"]["record"]["province"] == stored


def test_a_candidate_reads_their_own_details_with_the_phone_masked(verify_phone, client):
    token = token_for(client, "o_cand")
    assert client.get("/api/candidate", headers=bearer(token)).status_code == 403
    verify_phone(client, token, PHONE)
    client.post("/api/candidate", json=CANDIDATE, headers=bearer(token))

    response = client.get("/api/candidate", headers=bearer(token))

    assert response.status_code == 200
    assert response.get_json()["data"] == {
        "name": "李四",
        "province": "江苏",
        "city": "南京",
        "score": 612.5,
        "subject": "物理类",
        "phone": "138****8000",
    }
    nobody = token_for(client, "o_other")
    assert client.get("/api/candidate", headers=bearer(nobody)).status_code == 403


def test_a_candidate_updates_details_and_changes_phone_only_when_verified(
    verify_phone, client, app
):
    token = token_for(client, "o_cand")
    verify_phone(client, token, PHONE)
    token = client.post("/api/candidate", json=CANDIDATE, headers=bearer(token)).get_json()["data"][
        "token"
    ]
    patched = client.patch("/api/candidate", json={"score": 640}, headers=bearer(token))
    assert patched.status_code == 200
    assert patched.get_json()["data"]["record"]["score"] == 640
    unverified = client.patch(
        "/api/candidate", json={"phone": "13900139000"}, headers=bearer(token)
    )
    assert unverified.status_code == 400
    [named] = unverified.get_json()["data"]["fields"]
    assert (named["field"], named["type"]) == ("phone", "not_verified")
    verify_phone(client, token, "13900139000")
    moved = client.patch("/api/candidate", json={"phone": "139 0013 9000"}, headers=bearer(token))
    assert moved.status_code == 200
    with app.app_context():
        assert db.session.get(Candidate, "o_cand").phone == "13900139000"


def test_patch_needs_the_candidate_role(client):
    token = token_for(client, "o_nobody")
    assert (
        client.patch("/api/candidate", json={"score": 1}, headers=bearer(token)).status_code == 403
    )


# --- students -------------------------------------------------------------------------------


@pytest.mark.parametrize("number_field", ["stuid", "admission_id"])
def test_a_student_binds_with_id_card_and_either_number(verify_phone, client, source, number_field):
    token = token_for(client, "o_stu")
    verify_phone(client, token, PHONE)
    body = {"id_card": source["id_card"].lower(), "id": source[number_field]}
    response = client.post("/api/student", json=body, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert data["student"] is True
    assert data["record"]["stuid"] == "202600042"
    assert data["record"]["id_card"] == source["id_card"][:6] + "********" + source["id_card"][-4:]
    check = client.get("/api/token", headers=bearer(data["token"])).get_json()["data"]
    assert check["stuid"] == "202600042"


@pytest.mark.parametrize(
    ("id_card", "rule"),
    [
        ("123", "string_too_short"),
        ("11010519491231002", "string_too_short"),
        ("110105194912310021", "check"),
        ("11010519491331002X", "birth_date"),
        ("1101051949123100２X", "format"),
        ("010105194912310021", "format"),
    ],
)
def test_an_invalid_id_card_is_a_400_before_any_lookup(verify_phone, client, source, id_card, rule):
    token = token_for(client, "o_stu")
    verify_phone(client, token, PHONE)
    response = client.post(
        "/api/student", json={"id_card": id_card, "id": "202600042"}, headers=bearer(token)
    )
    assert response.status_code == 400
    # The field and the rule it breaks, for a page to say beside the field.
    [named] = response.get_json()["data"]["fields"]
    assert (named["field"], named["type"]) == ("id_card", rule)


def test_a_wrong_number_looks_like_an_unknown_card(verify_phone, client, source):
    token = token_for(client, "o_stu")
    verify_phone(client, token, PHONE)
    wrong = client.post(
        "/api/student",
        json={"id_card": source["id_card"], "id": "999999999"},
        headers=bearer(token),
    )
    unknown = client.post(
        "/api/student",
        json={"id_card": factories.id_card(777), "id": "202600042"},
        headers=bearer(token),
    )
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.get_json() == unknown.get_json()


def test_failed_bindings_are_limited_per_openid_per_day(verify_phone, client, source):
    token = token_for(client, "o_guess")
    verify_phone(client, token, PHONE)
    for n in range(5):
        body = {"id_card": source["id_card"], "id": f"10000{n}"}
        assert client.post("/api/student", json=body, headers=bearer(token)).status_code == 404
    right = {"id_card": source["id_card"], "id": source["stuid"]}
    limited = client.post("/api/student", json=right, headers=bearer(token))
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 3600
    other = token_for(client, "o_other")
    verify_phone(client, other, "13900139000")
    assert client.post("/api/student", json=right, headers=bearer(other)).status_code == 200


def test_parallel_guesses_cannot_get_past_the_daily_binding_limit(
    verify_phone, app, live_server, source, monkeypatch
):
    """50 wrong numbers at once over HTTP: at most BIND_MAX_FAILURES are looked up (404),
    the others are refused (429), and the right number afterwards is refused too."""
    import requests

    from berater.sms import services as codes

    verified_phone = codes.verified_phone

    def slow_verified_phone(openid: str) -> str | None:
        time.sleep(0.05)  # a busy store or database: the attempts overlap more
        return verified_phone(openid)

    monkeypatch.setattr(codes, "verified_phone", slow_verified_phone)
    token = requests.post(f"{live_server}/api/test/token/o_guess", timeout=10).json()["data"][
        "token"
    ]
    verify_phone(requests, token, PHONE, base=live_server)
    barrier = threading.Barrier(50)

    def guess(n: int) -> int:
        barrier.wait()
        body = {"id_card": source["id_card"], "id": f"9{n:08d}"}
        answer = requests.post(
            f"{live_server}/api/student", json=body, headers=bearer(token), timeout=30
        )
        return answer.status_code

    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(guess, range(50)))
    checked = statuses.count(404)
    assert checked <= app.config["BIND_MAX_FAILURES"]
    assert statuses.count(429) == 50 - checked
    right = {"id_card": source["id_card"], "id": source["stuid"]}
    late = requests.post(
        f"{live_server}/api/student", json=right, headers=bearer(token), timeout=30
    )
    assert late.status_code == 429


def test_an_attempt_that_is_not_a_wrong_guess_uses_no_try(verify_phone, client, source):
    token = token_for(client, "o_careful")
    right = {"id_card": source["id_card"], "id": source["stuid"]}
    for _ in range(6):  # no verified phone yet: 403, never counted
        assert client.post("/api/student", json=right, headers=bearer(token)).status_code == 403
    verify_phone(client, token, PHONE)
    for n in range(4):
        body = {"id_card": source["id_card"], "id": f"10000{n}"}
        assert client.post("/api/student", json=body, headers=bearer(token)).status_code == 404
    assert client.post("/api/student", json=right, headers=bearer(token)).status_code == 200


def test_one_id_card_binds_one_openid(verify_phone, client, source):
    first, second = token_for(client, "o_first"), token_for(client, "o_second")
    verify_phone(client, first, PHONE)
    verify_phone(client, second, "13900139000")
    body = {"id_card": source["id_card"], "id": source["stuid"]}
    assert client.post("/api/student", json=body, headers=bearer(first)).status_code == 200
    taken = client.post("/api/student", json=body, headers=bearer(second))
    assert taken.status_code == 409
    assert taken.get_json()["data"] == {"reason": "id_card_taken"}
    again = client.post("/api/student", json=body, headers=bearer(first))
    assert again.status_code == 409
    assert again.get_json()["data"] == {"reason": "already_bound"}


def test_concurrent_bindings_of_one_card_have_one_winner(verify_phone, app, live_server, source):
    import requests

    tokens = []
    for n in range(8):
        token = requests.post(f"{live_server}/api/test/token/o_race{n}", timeout=10).json()["data"][
            "token"
        ]
        verify_phone(requests, token, f"1380013800{n}", base=live_server)
        tokens.append(token)
    body = {"id_card": source["id_card"], "id": source["stuid"]}
    results: list[int] = []
    reasons: list[str] = []
    barrier = threading.Barrier(len(tokens))

    def bind(token: str) -> None:
        barrier.wait()
        answer = requests.post(
            f"{live_server}/api/student", json=body, headers=bearer(token), timeout=20
        )
        results.append(answer.status_code)
        if answer.status_code == 409:  # the card's check, or the unique index in a race
            reasons.append(answer.json()["data"]["reason"])

    threads = [threading.Thread(target=bind, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] + [409] * 7
    assert reasons == ["id_card_taken"] * 7
    with app.app_context():
        assert db.session.query(Student).count() == 1


@pytest.mark.parametrize(
    "extra", [{"openid": "o_x"}, {"stuid": "1"}, {"deleted": True}, {"phone": PHONE}]
)
def test_fields_a_client_does_not_own_are_refused(verify_phone, client, source, extra):
    token = token_for(client, "o_stu")
    verify_phone(client, token, PHONE)
    body = {"id_card": source["id_card"], "id": source["stuid"], **extra}
    response = client.post("/api/student", json=body, headers=bearer(token))
    assert response.status_code == 400
    assert next(iter(extra)) in response.get_json()["error"]


def test_a_student_binding_cannot_move_to_another_card(verify_phone, client, source):
    token = token_for(client, "o_stu")
    verify_phone(client, token, PHONE)
    body = {"id_card": source["id_card"], "id": source["stuid"]}
    token = client.post("/api/student", json=body, headers=bearer(token)).get_json()["data"][
        "token"
    ]
    moved = client.patch(
        "/api/student", json={"id_card": factories.id_card(555)}, headers=bearer(token)
    )
    assert moved.status_code == 409
    same = client.patch("/api/student", json={"id_card": source["id_card"]}, headers=bearer(token))
    assert same.status_code == 200


def test_source_returns_only_the_bearers_record_masked(verify_phone, client, source, ctx):
    factories.student("o_someone_else")
    db.session.commit()
    token = token_for(client, "o_stu")
    verify_phone(client, token, PHONE)
    body = {"id_card": source["id_card"], "id": source["stuid"]}
    token = client.post("/api/student", json=body, headers=bearer(token)).get_json()["data"][
        "token"
    ]
    data = client.get("/api/source", headers=bearer(token)).get_json()["data"]
    assert data["stuid"] == "202600042"
    assert data["phone"] == "138****8000"
    assert source["id_card"] not in str(data)
    candidate = token_for(client, "o_not_student")
    assert client.get("/api/source", headers=bearer(candidate)).status_code == 403
    assert (
        client.get(
            "/api/source", headers={"Authorization": "Bearer face dev-face-app-token"}
        ).status_code
        == 403
    )
