"""The password rules as data: what a page shows before the first try is what is enforced."""

from __future__ import annotations

import re

import pytest

from berater.db import db
from berater.errors import BadRequest
from berater.identity import accounts
from tests import factories
from tests.helpers import bearer, token_for

ADMIN = "o_admin"


@pytest.fixture
def rules(client, ctx) -> dict:
    factories.privilege(ADMIN, "admin")
    db.session.commit()
    response = client.get("/api/admin/password-rules", headers=bearer(token_for(client, ADMIN)))
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()["data"]


def refused(password: str, username: str = "") -> bool:
    try:
        accounts.check_password_rules(password, username)
    except BadRequest:
        return True
    return False


def test_the_rules_are_the_ones_enforced(rules):
    assert rules == {
        "min_length": 8,
        "max_length": 128,
        "not_common": True,
        "not_username": True,
        "username_min": 3,
        "username_max": 64,
        "username_pattern": accounts.USERNAME.pattern,
    }
    shortest, longest = rules["min_length"], rules["max_length"]
    assert refused("Vq7#kzPw"[: shortest - 1])
    assert not refused("Vq7#kzPw"[:shortest])
    assert not refused("Vq7#kzPw" * (longest // 8))
    assert refused("Vq7#kzPw" * (longest // 8) + "x")
    common = next(
        line.strip()
        for line in accounts.COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
        if len(line.strip()) >= shortest and not line.startswith("#")
    )
    assert refused(common) and refused(common.upper())
    assert refused("my-dora-pass-9", "dora") and refused("xxDORAxxyy", "dora")
    assert not refused("my-dora-pass-9", "erin")


def test_the_username_rule_is_the_one_enforced(rules):
    pattern = re.compile(rules["username_pattern"])
    for name in ("abc", "a" * 64, "dora.k-9_x", "9lives"):
        assert pattern.fullmatch(name) and accounts.normalise_username(name) == name
    for name in ("ab", "a" * 65, "_dora", ".dora", "do ra", "dorä"):
        assert not pattern.fullmatch(name)
        with pytest.raises(BadRequest):
            accounts.normalise_username(name)
    assert len("abc") == rules["username_min"] and len("a" * 64) == rules["username_max"]


def test_only_an_admin_reads_the_rules(client, ctx):
    assert client.get("/api/admin/password-rules").status_code == 401
    response = client.get("/api/admin/password-rules", headers=bearer(token_for(client, "o_x")))
    assert response.status_code == 403
