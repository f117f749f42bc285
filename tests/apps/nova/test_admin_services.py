"""What the console adds to the club admins' side: the department filter, the departments,
masked phones, and the audit row of a cancellation (the API's too)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from berater.apps.nova import services
from berater.db import db, transaction
from berater.errors import NotFound
from berater.models import AuditLog
from tests.apps.nova.test_admin_api import listing

pytestmark = pytest.mark.backends


def audit_rows() -> list[AuditLog]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditLog).order_by(AuditLog.id)))


def test_the_list_filters_by_department_with_its_totals(client, admin, three):
    data = listing(client, admin, department="物理系")
    assert {i["stuid"] for i in data["items"]} == {"202610001", "202610002"}
    assert data["total"] == 2
    assert data["totals_by_department"] == [{"department": "物理系", "count": 2}]
    assert listing(client, admin, department="物理")["total"] == 0  # the whole name only
    both = listing(client, admin, department="物理系", q="李")
    assert [i["name"] for i in both["items"]] == ["李四"]


def test_a_department_too_long_is_400(client, admin):
    response = client.get(
        "/api/nova/admin/registrations", query_string={"department": "系" * 65}, headers=admin
    )
    assert response.status_code == 400


def test_the_departments_are_the_filter_choices(ctx, three):
    assert services.departments() == sorted(["化学系", "物理系"])


def test_phones_are_masked_on_request(ctx, three):
    data = services.registrations(None, "all", 1, 50, mask_phones=True)
    assert {i["phone"] for i in data["items"]} == {"139****0001", "139****0002", "139****0003"}
    whole = services.registrations(None, "all", 1, 50)
    assert {i["phone"] for i in whole["items"]} == {"13900000001", "13900000002", "13900000003"}


def test_a_cancellation_by_an_admin_is_audited(ctx, three):
    with transaction():
        notices = services.cancel_by_admin("202610002", "user:club", "10.1.2.3")
    assert [(n.openid, n.event) for n in notices] == [("o_b", "cancelled")]
    row = audit_rows()[-1]
    assert (row.actor, row.action, row.target, row.ip) == (
        "user:club",
        "nova_cancel",
        "202610002",
        "10.1.2.3",
    )


def test_a_refused_cancellation_leaves_no_audit_row(ctx, three):
    before = len(audit_rows())
    with pytest.raises(NotFound), transaction():
        services.cancel_by_admin("209999999", "user:club")
    assert len(audit_rows()) == before


def test_the_api_cancellation_is_audited_with_the_caller(client, ctx, admin, three):
    response = client.post("/api/nova/admin/registrations/202610001/cancel", headers=admin)
    assert response.status_code == 200
    row = audit_rows()[-1]
    assert (row.actor, row.action, row.target) == ("o_admin", "nova_cancel", "202610001")
