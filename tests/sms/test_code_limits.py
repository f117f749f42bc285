"""The SMS code API under pressure: send limits per phone, openid and client IP (429 with
Retry-After, taken before the provider is called), provider errors and timeouts, a store
outage, and parallel sends and guesses over real HTTP."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from standins.aliyun import MESSAGES
from tests.sms.test_codes import (
    OTHER_PHONE,
    PHONE,
    bearer,
    last_code,
    phone_number,
    send,
    verify,
)

pytestmark = pytest.mark.backends


@pytest.fixture
def user(client):
    return bearer(client, "o_user")


# --- send limits ---------------------------------------------------------------------------------


def test_a_second_code_within_a_minute_is_429_before_the_provider(client, aliyun, user):
    assert send(client, user).status_code == 200
    again = send(client, user)
    assert again.status_code == 429
    assert 55 <= int(again.headers["Retry-After"]) <= 60
    assert again.get_json()["data"]["retry_after"] == int(again.headers["Retry-After"])
    assert aliyun.fake.calls == 1


def test_the_per_phone_limit_holds_across_openids(client, aliyun, user):
    assert send(client, user).status_code == 200
    other = bearer(client, "o_other")
    response = send(client, other, "+86 138 0013 8000")  # the same phone, written differently
    assert response.status_code == 429
    assert "Retry-After" in response.headers
    assert aliyun.fake.calls == 1


def test_the_per_openid_limit_holds_across_phones(client, aliyun, user):
    assert send(client, user, PHONE).status_code == 200
    assert send(client, user, OTHER_PHONE).status_code == 429
    assert aliyun.fake.calls == 1


HOUR = 1.0  # the hour window, shortened for the tests


def _until_the_day_limit(attempt) -> tuple[list[int], object]:
    """Send until a 429 that is not the short windows': (429 waits seen, the last answer).

    A short-window 429 is waited out; the first 429 of each window is recorded with the
    number of successes before it, so the counts hold however slow the machine is.
    """
    successes, short_stops = 0, []
    while True:
        response = attempt(successes)
        if response.status_code == 200:
            successes += 1
            continue
        assert response.status_code == 429
        if int(response.headers["Retry-After"]) > HOUR + 1:
            return [*short_stops, successes], response
        short_stops.append(successes)
        time.sleep(int(response.headers["Retry-After"]))


@pytest.mark.parametrize("scope", ["phone", "openid"])
def test_five_an_hour_and_ten_a_day(make_app, aliyun, scope):
    # The SECURITY.md counts, with the minute and hour windows shortened.
    app = make_app(SMS_SEND_LIMITS=((1, 0.05), (5, HOUR), (10, 86400)))
    client = app.test_client()
    tokens = [bearer(client, f"o_{n}") for n in range(11)]

    def attempt(n: int):
        time.sleep(0.06)  # past the shortened minute
        if scope == "phone":  # one phone, many openids
            return send(client, tokens[n], PHONE)
        return send(client, tokens[0], phone_number(n))  # one openid, many phones

    stops, last = _until_the_day_limit(attempt)
    assert stops == [5, 10]  # the hour stopped the 6th; the day the 11th
    assert 86300 <= int(last.headers["Retry-After"]) <= 86400
    assert len(aliyun.fake.sent) == 10


def test_ten_an_hour_per_client_ip(client, aliyun):
    for n in range(10):
        assert (
            send(client, bearer(client, f"o_{n}"), phone_number(n), ip="10.1.2.3").status_code
            == 200
        )
    eleventh = send(client, bearer(client, "o_10"), phone_number(10), ip="10.1.2.3")
    assert eleventh.status_code == 429
    assert 3590 <= int(eleventh.headers["Retry-After"]) <= 3600
    assert send(client, bearer(client, "o_11"), phone_number(11), ip="10.9.9.9").status_code == 200
    assert len(aliyun.fake.sent) == 11


def test_fifty_a_day_per_client_ip(make_app, aliyun):
    app = make_app(SMS_IP_LIMITS=((10, HOUR), (50, 86400)))
    client = app.test_client()
    tokens = [bearer(client, f"o_{n}") for n in range(51)]
    stops, last = _until_the_day_limit(
        lambda n: send(client, tokens[n], phone_number(n), ip="10.1.2.3")
    )
    assert stops == [10, 20, 30, 40, 50]
    assert int(last.headers["Retry-After"]) > 86000
    assert len(aliyun.fake.sent) == 50


def test_a_forged_forwarded_for_does_not_escape_the_ip_limit(client, aliyun):
    # No trusted proxy: X-Forwarded-For is the client's own claim and is ignored.
    for n in range(11):
        response = send(
            client,
            bearer(client, f"o_{n}"),
            phone_number(n),
            ip="10.1.2.3",
            **{"X-Forwarded-For": f"192.0.2.{n}"},
        )
    assert response.status_code == 429
    assert len(aliyun.fake.sent) == 10


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(make_app, aliyun):
    client = make_app(TRUSTED_PROXIES=1).test_client()
    proxy, forwarded = "10.0.0.1", {"X-Forwarded-For": "198.51.100.7"}
    for n in range(10):
        assert (
            send(client, bearer(client, f"o_{n}"), phone_number(n), proxy, **forwarded).status_code
            == 200
        )
    blocked = send(client, bearer(client, "o_10"), phone_number(10), proxy, **forwarded)
    assert blocked.status_code == 429
    other = send(
        client,
        bearer(client, "o_11"),
        phone_number(11),
        proxy,
        **{"X-Forwarded-For": "198.51.100.8"},
    )
    assert other.status_code == 200


def test_ipv6_clients_share_a_limit_per_slash_64(client, aliyun):
    for n in range(10):
        assert (
            send(
                client, bearer(client, f"o_{n}"), phone_number(n), ip=f"2001:db8::{n + 1}"
            ).status_code
            == 200
        )
    assert (
        send(client, bearer(client, "o_10"), phone_number(10), ip="2001:db8::ffff").status_code
        == 429
    )
    assert (
        send(client, bearer(client, "o_11"), phone_number(11), ip="2001:db8:0:1::1").status_code
        == 200
    )


def test_a_refused_request_takes_no_slot(client, aliyun, user):
    assert send(client, user, "not a phone").status_code == 400
    assert send(client, user).status_code == 200


def test_parallel_sends_text_once(live_server, app, aliyun):
    token = bearer(app.test_client(), "o_racer")
    barrier = threading.Barrier(10)
    statuses: list[int] = []

    def attempt() -> None:
        barrier.wait()
        response = requests.post(
            live_server + "/api/code", json={"phone": PHONE}, headers=token, timeout=10
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [429] * 9
    assert len(aliyun.fake.sent) == 1


# --- the provider ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("isv.MOBILE_NUMBER_ILLEGAL", 400),
        ("isv.BUSINESS_LIMIT_CONTROL", 429),
        ("isv.DAY_LIMIT_CONTROL", 429),
        ("isv.OUT_OF_SERVICE", 503),
        ("isp.SYSTEM_ERROR", 503),
    ],
)
def test_provider_errors_are_clear_and_never_echoed(client, aliyun, user, error, status):
    aliyun.fake.fail(error)
    response = send(client, user)
    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == status
    assert MESSAGES[error] not in response.get_data(as_text=True)
    assert error not in response.get_data(as_text=True)
    assert ("Retry-After" in response.headers) == (status == 429)
    assert aliyun.fake.sent == []


def test_a_refused_send_leaves_no_code_waiting(make_app, aliyun):
    app = make_app(SMS_SEND_LIMITS=((5, 60),))
    client = app.test_client()
    headers = bearer(client, "o_refused")
    send(client, headers)
    earlier = last_code(aliyun)
    aliyun.fake.fail("isv.MOBILE_NUMBER_ILLEGAL")
    assert send(client, headers).status_code == 400
    response = verify(client, headers, earlier)
    assert response.status_code == 400  # asking again replaced the earlier code
    assert "request a new one" in response.get_json()["error"]


def test_a_provider_timeout_is_a_quick_502_and_a_retry_cannot_send_twice(client, aliyun, user):
    aliyun.fake.fail("timeout")  # the stand-in sends, then answers after 2.5 s
    started = time.monotonic()
    first = send(client, user)
    assert first.status_code == 502
    assert time.monotonic() - started < 2.3  # read timeout 1.5 s in tests
    retry = send(client, user)
    assert retry.status_code == 429
    assert int(retry.headers["Retry-After"]) >= 1
    assert len(aliyun.fake.sent) == 1
    # The text did go out; its code stays good.
    assert verify(client, user, last_code(aliyun)).status_code == 200


def test_a_store_outage_is_a_503_and_sends_nothing(make_app, aliyun):
    healthy = make_app()
    headers = bearer(healthy.test_client(), "o_user")
    broken = make_app(REDIS_URL="redis://127.0.0.1:9/0", REVOCATION_SYNC=0.0)
    started = time.monotonic()
    response = send(broken.test_client(), headers)
    assert response.status_code == 503
    assert time.monotonic() - started < 2.5
    assert aliyun.fake.calls == 0


# --- concurrency: parallel guesses ---------------------------------------------------------


def _guess_in_parallel(live_server: str, token: dict[str, str], guesses: list[str]) -> list[dict]:
    barrier = threading.Barrier(len(guesses))
    answers: list[dict] = []
    lock = threading.Lock()

    def attempt(guess: str) -> None:
        barrier.wait()
        response = requests.post(
            live_server + "/api/code/verify", json={"code": guess}, headers=token, timeout=10
        )
        with lock:
            answers.append(response.json())

    threads = [threading.Thread(target=attempt, args=(g,)) for g in guesses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_twenty_parallel_wrong_guesses_are_evaluated_five_times(live_server, app, aliyun):
    client = app.test_client()
    token = bearer(client, "o_target")
    send(client, token)
    code = last_code(aliyun)
    guesses = [f"{(int(code) + n) % 1_000_000:06d}" for n in range(1, 21)]
    answers = _guess_in_parallel(live_server, token, guesses)
    assert {a["code"] for a in answers} == {400}
    evaluated = [a for a in answers if "tries_left" in (a["data"] or {})]
    assert len(evaluated) == 5
    assert sorted(a["data"]["tries_left"] for a in evaluated) == [0, 1, 2, 3, 4]
    assert verify(client, token, code).status_code == 400  # void now


def test_the_right_code_among_twenty_parallel_guesses_gets_at_most_five_evaluations(
    live_server, app, aliyun
):
    client = app.test_client()
    token = bearer(client, "o_target")
    send(client, token)
    code = last_code(aliyun)
    guesses = [code] + [f"{(int(code) + n) % 1_000_000:06d}" for n in range(1, 20)]
    answers = _guess_in_parallel(live_server, token, guesses)
    evaluated = [a for a in answers if a["code"] == 200 or "tries_left" in (a["data"] or {})]
    assert len(evaluated) <= 5
    assert sum(a["code"] == 200 for a in answers) <= 1
    assert all(a["code"] in (200, 400) for a in answers)
    assert verify(client, token, code).status_code == 400  # used or void: never twice
