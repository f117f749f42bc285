"""The local sandbox's admission list (data/demo-admission.csv): loaded once, into an empty
list only, and good enough to bind with through the API as a newcomer would."""

from __future__ import annotations

import csv

import pytest
from sqlalchemy import func, select

from berater.admission.cli import DEMO_LIST, load_demo_list
from berater.db import db
from berater.identifiers import normalise_id_card
from berater.models import SourceStudent
from tests import factories
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends


def demo_rows() -> list[dict[str, str]]:
    with DEMO_LIST.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_the_demo_list_holds_made_up_people_with_valid_id_cards():
    rows = demo_rows()
    assert len(rows) >= 5
    for row in rows:
        assert normalise_id_card(row["身份证号"]) == row["身份证号"]
        assert row["学号"] and row["录取号"] and row["姓名"]
    assert len({row["身份证号"] for row in rows}) == len(rows)


def test_the_first_start_loads_it_and_later_starts_leave_the_list_alone(ctx):
    report = load_demo_list()

    assert report is not None and report.counts.inserted == len(demo_rows())
    assert report.rejected == []
    assert load_demo_list() is None  # the second start
    count = db.session.scalar(select(func.count()).select_from(SourceStudent))
    assert count == len(demo_rows())


def test_a_real_list_is_never_mixed_with_the_demo(ctx):
    factories.source_student()
    db.session.commit()

    assert load_demo_list() is None
    assert db.session.scalar(select(func.count()).select_from(SourceStudent)) == 1


def test_a_newcomer_binds_as_a_demo_student(make_app):
    app = make_app(SMS_BACKEND="console")
    with app.app_context():
        load_demo_list()
    client = app.test_client()
    token = token_for(client, "o_dev_newcomer")
    sent = client.post("/api/code", json={"phone": "13800138000"}, headers=bearer(token))
    assert sent.status_code == 200
    code = client.get("/dev/sms?format=json").get_json()["data"]["messages"][0]["code"]
    assert (
        client.post("/api/code/verify", json={"code": code}, headers=bearer(token)).status_code
        == 200
    )
    first = demo_rows()[0]

    bound = client.post(
        "/api/student",
        json={"id_card": first["身份证号"], "id": first["学号"]},
        headers=bearer(token),
    )

    assert bound.status_code == 200, bound.get_json()
    assert bound.get_json()["data"]["record"]["name"] == first["姓名"]
