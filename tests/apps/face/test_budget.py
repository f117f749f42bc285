"""The face app's hourly budget of rows: 429 with Retry-After past it, whole pages, one
budget for everyone who asks as the app, atomic under parallel requests, a warning without
the query's values."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import requests
from sqlalchemy import event, update

from berater.apps.face import services
from berater.db import db
from berater.models import SourceStudent
from tests import factories
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends

FACE = {"Authorization": "Bearer face dev-face-app-token"}
URL = "/api/face/students"
BUDGET = 250
HOUR_START = 500_000 * 3600  # a clock hour's first second
NOW = HOUR_START + 3600 - 754.3  # 754.3 s before the hour's end: Retry-After 755


@pytest.fixture
def app(make_app):
    return make_app(FACE_ROWS_PER_HOUR=BUDGET)


@pytest.fixture
def clock(monkeypatch):
    """The budget's clock, fixed at NOW; `clock.now = ...` moves it."""

    class Clock:
        now = NOW

        def __call__(self) -> float:
            return self.now

    fixed = Clock()
    monkeypatch.setattr(services, "clock", fixed)
    return fixed


@pytest.fixture
def rows(ctx, clock):
    """300 rows, all in one department, so a page of the department is a full 100."""
    made = factories.admission_list(300)
    db.session.execute(update(SourceStudent).values(department="软件学院"))
    db.session.commit()
    return made


def get(client, headers=FACE, **params):
    return client.get(URL, query_string=params, headers=headers)


def page(client, number: int, per_page: int = 100, headers=FACE):
    return get(client, headers, department="软件学院", page=number, per_page=per_page)


def budget_warnings(records) -> list[str]:
    return [
        r.getMessage()
        for r in records
        if r.name == "berater.apps.face.services" and r.levelno == logging.WARNING
    ]


def test_past_the_budget_a_page_is_429_with_retry_after_to_the_hours_end(client, rows, log_records):
    assert len(page(client, 1).get_json()["data"]["students"]) == 100
    assert len(page(client, 2).get_json()["data"]["students"]) == 100
    assert services.rows_used("face") == 200

    refused = page(client, 3)  # 100 more would make 300 of 250: refused whole, nothing taken
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "755"
    body = refused.get_json()
    assert body["code"] == 429
    assert body["data"] == {"retry_after": 755, "rows_left": 50}
    assert "would pass the hourly budget of 250 rows" in body["error"]
    assert services.rows_used("face") == 200
    assert budget_warnings(log_records) == [
        "face app: hourly row budget of 250: 200 rows used this hour, a page of 100 refused"
    ]

    # A smaller page still fits, to the last row; then every page is refused.
    assert len(page(client, 5, per_page=50).get_json()["data"]["students"]) == 50
    spent = page(client, 1, per_page=1)
    assert spent.status_code == 429
    assert spent.get_json()["data"] == {"retry_after": 755, "rows_left": 0}
    assert "the hourly budget of 250 rows is spent" in spent.get_json()["error"]
    assert services.rows_used("face") == BUDGET
    assert budget_warnings(log_records)[-1] == (
        "face app: hourly row budget of 250: 250 rows used this hour, a page of 1 refused"
    )


def test_the_warning_never_holds_the_querys_values(client, rows, log_records):
    for number in (1, 2, 3):
        page(client, number)  # the third is refused
    page(client, 5, per_page=50)
    wanted = [rows[0]["stuid"], rows[0]["name"], rows[0]["admission_id"]]
    answer = get(client, stuid=wanted[0], name=wanted[1], admission_id=wanted[2] + "*")
    assert answer.status_code == 429
    lines = budget_warnings(log_records)
    assert len(lines) == 2
    for line in lines:
        assert "软件学院" not in line
        assert not any(value in line for value in wanted)


def test_an_empty_page_costs_one_row(make_app, rows):
    client = make_app(FACE_ROWS_PER_HOUR=3).test_client()
    for _ in range(3):
        answer = get(client, stuid="2099999999", page=1)
        assert answer.get_json()["data"]["total"] == 0
    assert get(client, stuid="2099999999").status_code == 429
    assert services.rows_used("face") == 3


def test_a_spent_budget_is_refused_before_the_database_is_asked(client, rows):
    for number in (1, 2):
        page(client, number)
    page(client, 3, per_page=50)
    statements: list[str] = []

    def note(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        assert page(client, 1).status_code == 429
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert not [s for s in statements if "source_student" in s]


def test_the_next_hour_brings_a_new_budget(client, rows, clock):
    for number in (1, 2):
        page(client, number)
    assert page(client, 3).status_code == 429
    clock.now = HOUR_START + 3600  # the next hour's first second
    assert page(client, 3).status_code == 200
    assert services.rows_used("face") == 100
    clock.now = HOUR_START + 2 * 3600 - 0.2
    for number in (1, 2):
        page(client, number)
    assert page(client, 3).headers["Retry-After"] == "1"


def test_a_person_granted_face_spends_the_apps_budget(client, rows):
    factories.privilege("o_photo_staff", "face")
    db.session.commit()
    person = bearer(token_for(client, "o_photo_staff"))
    assert page(client, 1, headers=person).status_code == 200
    assert page(client, 2).status_code == 200
    assert page(client, 3, headers=person).status_code == 429
    assert page(client, 3).status_code == 429
    assert services.rows_used("face") == 200


def test_parallel_pages_never_pass_the_budget(live_server, rows):
    barrier = threading.Barrier(10)
    statuses: list[int] = []

    def attempt(number: int) -> None:
        barrier.wait()
        answer = requests.get(
            live_server + URL,
            params={"department": "软件学院", "page": number % 3 + 1, "per_page": 100},
            headers=FACE,
            timeout=30,
        )
        statuses.append(answer.status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 200] + [429] * 8
    assert services.rows_used("face") == 200


def test_the_budget_fails_closed_when_the_store_is_down(make_app, rows):
    client = make_app(REDIS_URL="redis://127.0.0.1:9", REDIS_SOCKET_TIMEOUT=0.5).test_client()
    started = time.monotonic()
    answer = page(client, 1)
    assert answer.status_code == 503
    assert time.monotonic() - started < 1.5
    assert "students" not in str(answer.get_json())
