"""Fixtures of the nova tests: a club admin's token and three registrations."""

from __future__ import annotations

import pytest

from tests.apps.nova.helpers import GOOD, auth, make_nova_admin, make_student


@pytest.fixture
def admin(ctx, client):
    make_nova_admin("o_admin")
    return auth(client, "o_admin")


def register(client, openid: str, stuid: str, name: str, department: str | None, **body):
    make_student(openid, stuid=stuid, name=name, department=department)
    response = client.post("/api/nova/info", json={**GOOD, **body}, headers=auth(client, openid))
    assert response.status_code == 200, response.get_json()


@pytest.fixture
def three(client, ctx):
    register(client, "o_a", "202610001", "张三", "物理系", phone="13900000001")
    register(client, "o_b", "202610002", "李四", "物理系", phone="13900000002")
    register(client, "o_c", "202620001", "王五", "化学系", phone="13900000003", intro="=1+1")
