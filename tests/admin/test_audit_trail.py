"""The audit trail's filters (actor, target, action, role, time), paging and CSV export,
through the services and the JSON API."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest

from berater.admin import services
from berater.db import db
from berater.identity import audit
from tests import factories
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends

ADMIN = "o_admin"


def row(actor, action, target, role=None, at="2026-03-01 10:00:00", ip=None):
    entry = audit.record(actor, action, target, role, ip)
    entry.at = datetime.fromisoformat(at)
    return entry


@pytest.fixture
def trail(ctx):
    """Eight rows over three days (UTC), committed."""
    rows = [
        row("cli", "grant", "o_amy", "admin", "2026-03-01 09:00:00"),
        row("o_amy", "user_create", "dora", None, "2026-03-01 23:30:00"),
        row("o_amy", "grant", "user:dora", "face", "2026-03-02 00:10:00", "10.0.0.1"),
        row(
            "o_amy", "invite_create", "invite:0123456789abcdef", "nova_admin", "2026-03-02 08:00:00"
        ),
        row("user:dora", "grant", "o_ben", "nova_admin", "2026-03-02 08:05:00"),
        row("o_amy", "user_disable", "dora", None, "2026-03-03 12:00:00"),
        row("cli", "revoke", "user:dora", "face", "2026-03-03 12:00:00"),
        row("o_amy", "revoke", "o_ben", "nova_admin", "2026-03-03 18:00:00"),
    ]
    db.session.commit()
    return rows


def targets(where: audit.Filter, page=1, per_page=50):
    rows, total = audit.entries(page, per_page, where)
    return [r.target for r in rows], total


def test_every_filter_narrows_the_trail(trail):
    F = audit.Filter
    assert targets(F()) == (
        [
            "o_ben",
            "user:dora",
            "dora",
            "o_ben",
            "invite:0123456789abcdef",
            "user:dora",
            "dora",
            "o_amy",
        ],
        8,
    )
    assert targets(F(actor="cli")) == (["user:dora", "o_amy"], 2)
    assert targets(F(action="grant")) == (["o_ben", "user:dora", "o_amy"], 3)
    assert targets(F(role="nova_admin")) == (["o_ben", "o_ben", "invite:0123456789abcdef"], 3)
    assert targets(F(target="o_ben")) == (["o_ben", "o_ben"], 2)
    assert targets(F(actor="o_amy", action="revoke", role="nova_admin")) == (["o_ben"], 1)
    assert targets(F(actor="nobody")) == ([], 0)


def test_an_account_holder_s_rows_include_the_changes_to_the_account(trail):
    # Grants name the subject user:dora; the account's own changes name the username.
    assert targets(audit.Filter(target="user:dora")) == (
        ["user:dora", "dora", "user:dora", "dora"],
        4,
    )
    assert targets(audit.Filter(target="dora")) == (["dora", "dora"], 2)  # exactly that


def test_the_time_range_includes_its_start_and_excludes_its_end(trail):
    day = audit.Filter(since=datetime(2026, 3, 2), until=datetime(2026, 3, 3))
    assert targets(day)[1] == 3
    assert targets(audit.Filter(since=datetime(2026, 3, 3, 12)))[1] == 3
    assert targets(audit.Filter(until=datetime(2026, 3, 1, 9)))[1] == 0
    assert targets(audit.Filter(until=datetime(2026, 3, 1, 9, 0, 1)))[1] == 1


def test_filtered_pages_are_newest_first_and_counted(trail):
    where = audit.Filter(actor="o_amy")
    first, total = targets(where, 1, 2)
    second, _ = targets(where, 2, 2)
    third, _ = targets(where, 3, 2)
    assert total == 5
    assert first + second + third == [
        "o_ben",
        "dora",
        "invite:0123456789abcdef",
        "user:dora",
        "dora",
    ]
    assert (len(first), len(second), len(third)) == (2, 2, 1)


# -- the JSON API ------------------------------------------------------------------------------


@pytest.fixture
def admin(client, trail):
    factories.privilege(ADMIN, "admin")
    db.session.commit()
    return bearer(token_for(client, ADMIN))


def listed(client, admin, query):
    response = client.get(f"/api/admin/audit?{query}", headers=admin)
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    return [item["target"] for item in data["items"]], data["total"]


def test_the_api_takes_the_same_filters(client, admin):
    assert listed(client, admin, "actor=cli") == (["user:dora", "o_amy"], 2)
    assert listed(client, admin, "action=grant&role=nova_admin") == (["o_ben"], 1)
    assert listed(client, admin, "target=user:dora&per_page=1&page=2") == (["dora"], 4)
    # Without an offset a time is UTC; with one it is converted.
    assert listed(client, admin, "from=2026-03-02&to=2026-03-03")[1] == 3
    assert listed(client, admin, "from=2026-03-02T08:00:00%2B08:00&to=2026-03-02T08:05:00")[1] == 2
    assert listed(client, admin, "")[1] == 8  # no filter: everything, as before


@pytest.mark.parametrize(
    "query",
    [
        "action=delete",
        "actor=" + "x" * 81,
        "target=a%20b",
        "role=a;b",
        "from=yesterday",
        "to=2026-13-01",
        "since=2026-01-01",  # the field's name in Python is not a parameter
        "actor=",
    ],
)
def test_a_bad_filter_is_refused_with_its_field(client, admin, query):
    response = client.get(f"/api/admin/audit?{query}", headers=admin)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["data"]["fields"]


def test_the_export_is_a_csv_file_of_the_filtered_rows(client, admin):
    response = client.get("/api/admin/audit/export.csv?actor=o_amy&action=grant", headers=admin)

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="audit-')
    assert response.headers["X-Total-Count"] == "1"
    assert response.headers["X-Exported-Count"] == "1"
    assert response.data.startswith(b"\xef\xbb\xbf")  # a BOM, so Excel reads UTF-8
    lines = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert lines == [
        ["时间 (北京时间)", "操作人", "操作", "对象", "角色", "IP"],
        ["2026-03-02 08:10:00", "o_amy", "grant", "user:dora", "face", "10.0.0.1"],
    ]


def test_the_export_defuses_spreadsheet_formulas(ctx):
    row('=HYPERLINK("http://evil")', "grant", "+1+1", "face", ip="@SUM(A1)")
    row("-2", "revoke", "\tx", None)
    db.session.commit()

    body, exported, total = services.audit_csv()

    lines = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))[1:]
    assert (exported, total) == (2, 2)
    cells = [cell for line in lines for cell in line[1:]]
    assert '\'=HYPERLINK("http://evil")' in cells
    assert {"'+1+1", "'@SUM(A1)", "'-2", "'\tx"} <= set(cells)
    assert not any(cell[:1] in ("=", "+", "-", "@", "\t") for cell in cells)


def test_the_export_keeps_the_newest_rows_up_to_its_cap(ctx, monkeypatch):
    for i in range(5):
        row("cli", "grant", f"o_{i}", "face", f"2026-03-0{i + 1} 00:00:00")
    db.session.commit()
    monkeypatch.setattr(services, "MAX_EXPORT", 3)

    body, exported, total = services.audit_csv()

    lines = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))[1:]
    assert (exported, total) == (3, 5)
    assert [line[3] for line in lines] == ["o_4", "o_3", "o_2"]


def test_a_non_admin_gets_no_export(client, ctx):
    response = client.get("/api/admin/audit/export.csv", headers=bearer(token_for(client, "o_x")))
    assert response.status_code == 403
    assert client.get("/api/admin/audit/export.csv").status_code == 401
