"""The club admins' side: the list with search and totals, cancelling by stuid, the exports."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest

from berater.db import db
from berater.models import NovaReg
from tests.apps.nova.helpers import FACE_APP, GOOD, auth

pytestmark = pytest.mark.backends

HEADINGS = ["学号", "姓名", "院系", "手机号", "QQ", "自我介绍", "报名时间"]


def listing(client, admin, **query):
    response = client.get("/api/nova/admin/registrations", query_string=query, headers=admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def test_the_list_shows_registrations_with_phones_and_totals(client, admin, three):
    data = listing(client, admin)
    assert data["total"] == 3
    assert {i["stuid"] for i in data["items"]} == {"202610001", "202610002", "202620001"}
    assert {i["phone"] for i in data["items"]} == {"13900000001", "13900000002", "13900000003"}
    assert data["totals_by_department"] == [
        {"department": "物理系", "count": 2},
        {"department": "化学系", "count": 1},
    ]


@pytest.mark.parametrize(
    ("q", "stuids"),
    [
        ("李四", {"202610002"}),
        ("20262", {"202620001"}),
        ("化学", {"202620001"}),
        ("物理系", {"202610001", "202610002"}),
        ("%", set()),  # LIKE wildcards are searched for literally
        ("_", set()),
    ],
)
def test_the_list_searches_name_stuid_and_department(client, admin, three, q, stuids):
    data = listing(client, admin, q=q)
    assert {i["stuid"] for i in data["items"]} == stuids
    assert data["total"] == len(stuids)


def test_the_list_pages(client, admin, three):
    first = listing(client, admin, per_page=2, page=1)
    second = listing(client, admin, per_page=2, page=2)
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert first["total"] == second["total"] == 3
    seen = {i["stuid"] for i in first["items"] + second["items"]}
    assert len(seen) == 3


@pytest.mark.parametrize(
    "query",
    [
        {"per_page": 101},
        {"per_page": 0},
        {"page": 0},
        {"page": "x"},
        {"q": "x" * 201},
        {"status": "gone"},
        {"sort": "name"},
    ],
)
def test_bad_list_queries_are_400(client, admin, query):
    response = client.get("/api/nova/admin/registrations", query_string=query, headers=admin)
    assert response.status_code == 400
    assert response.get_json()["code"] == 400


def test_an_admin_cancels_by_stuid_and_the_student_can_renew(client, admin, three, ctx):
    response = client.post("/api/nova/admin/registrations/202610002/cancel", headers=admin)
    assert response.status_code == 200
    assert response.get_json()["data"] == {"stuid": "202610002", "cancelled": 1}
    assert listing(client, admin)["total"] == 2
    cancelled = listing(client, admin, status="cancelled")["items"]
    assert [(i["stuid"], i["cancelled"]) for i in cancelled] == [("202610002", True)]
    assert listing(client, admin, status="all")["total"] == 3
    db.session.expire_all()
    assert db.session.get(NovaReg, "o_b").deleted is True
    student = auth(client, "o_b")
    assert client.get("/api/nova/info", headers=student).status_code == 404
    assert client.post("/api/nova/info", json=GOOD, headers=student).status_code == 200


def test_cancelling_an_unknown_or_cancelled_stuid_is_404(client, admin, three):
    assert (
        client.post("/api/nova/admin/registrations/209999999/cancel", headers=admin).status_code
        == 404
    )
    client.post("/api/nova/admin/registrations/202610001/cancel", headers=admin)
    again = client.post("/api/nova/admin/registrations/202610001/cancel", headers=admin)
    assert again.status_code == 404


def test_cancelling_a_malformed_stuid_is_400(client, admin):
    response = client.post("/api/nova/admin/registrations/20%27%20or%201/cancel", headers=admin)
    assert response.status_code == 400


def test_the_csv_export_has_the_chinese_headings_and_every_active_registration(
    client, admin, three
):
    client.post("/api/nova/admin/registrations/202610002/cancel", headers=admin)
    response = client.get("/api/nova/admin/export.csv", headers=admin)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
    table = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert table[0] == HEADINGS
    by_stuid = {row[0]: row for row in table[1:]}
    assert set(by_stuid) == {"202610001", "202620001"}
    assert by_stuid["202610001"][:6] == [
        "202610001",
        "张三",
        "物理系",
        "13900000001",
        "123456789",
        "喜欢编程和天文。",
    ]
    assert by_stuid["202620001"][5] == "'=1+1"  # no formula runs in a spreadsheet
    assert len(by_stuid["202610001"][6]) == len("2026-11-25 12:00:00")


def test_the_xlsx_export_has_the_same_rows_as_text_cells(client, admin, three):
    response = client.get("/api/nova/admin/export.xlsx", headers=admin)
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    sheet = openpyxl.load_workbook(io.BytesIO(response.data)).active
    table = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert table[0] == HEADINGS
    csv_rows = list(
        csv.reader(
            io.StringIO(
                client.get("/api/nova/admin/export.csv", headers=admin).data.decode("utf-8-sig")
            )
        )
    )
    by_stuid = {row[0]: row for row in table[1:]}
    assert set(by_stuid) == {"202610001", "202610002", "202620001"}
    assert by_stuid["202610001"][3] == "13900000001"  # a string, not a number
    assert by_stuid["202620001"][5] == "=1+1"  # kept as text, not a formula
    assert all(
        cell.data_type == "s" for row in sheet.iter_rows(min_row=2) for cell in row if cell.value
    )
    for row in csv_rows[1:]:
        assert by_stuid[row[0]][:5] == row[:5]
        assert by_stuid[row[0]][6] == row[6]


def test_the_exports_of_an_empty_club_have_only_the_headings(client, admin):
    table = list(
        csv.reader(
            io.StringIO(
                client.get("/api/nova/admin/export.csv", headers=admin).data.decode("utf-8-sig")
            )
        )
    )
    assert table == [HEADINGS]
    sheet = openpyxl.load_workbook(
        io.BytesIO(client.get("/api/nova/admin/export.xlsx", headers=admin).data)
    ).active
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [HEADINGS]


# --- who may call ------------------------------------------------------------------------------

ADMIN_ROUTES = [
    ("get", "/api/nova/admin/registrations"),
    ("post", "/api/nova/admin/registrations/202610001/cancel"),
    ("get", "/api/nova/admin/export.csv"),
    ("get", "/api/nova/admin/export.xlsx"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_need_a_token(client, method, path):
    assert getattr(client, method)(path).status_code == 401


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_a_student_token_is_403_on_admin_routes(client, ctx, three, method, path):
    response = getattr(client, method)(path, headers=auth(client, "o_a"))
    assert response.status_code == 403
    assert response.get_json()["code"] == 403


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_the_face_app_token_is_403_on_admin_routes(client, ctx, method, path):
    assert getattr(client, method)(path, headers=FACE_APP).status_code == 403


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_a_general_admin_without_nova_admin_is_403(client, ctx, method, path):
    from tests import factories

    factories.privilege("o_staff", "admin")
    db.session.commit()
    assert getattr(client, method)(path, headers=auth(client, "o_staff")).status_code == 403
