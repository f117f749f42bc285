"""Parallel registrations and renewals of one student: exactly one wins."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from berater.db import db
from berater.models import NovaReg
from tests.apps.nova.helpers import GOOD, auth, make_student

pytestmark = pytest.mark.backends

PARALLEL = 8


def _post_in_parallel(url: str, headers: dict[str, str]) -> list[int]:
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = [
            pool.submit(requests.post, url, json=GOOD, headers=headers, timeout=10)
            for _ in range(PARALLEL)
        ]
        return sorted(f.result().status_code for f in futures)


def test_parallel_first_registrations_have_one_winner(client, ctx, live_server):
    make_student("o_race", stuid="202600900")
    headers = auth(client, "o_race")
    codes = _post_in_parallel(f"{live_server}/api/nova/info", headers)
    assert codes == [200] + [409] * (PARALLEL - 1)


def test_parallel_renewals_have_one_winner(client, ctx, live_server):
    make_student("o_race2", stuid="202600901")
    headers = auth(client, "o_race2")
    assert client.post("/api/nova/info", json=GOOD, headers=headers).status_code == 200
    assert client.delete("/api/nova/info", headers=headers).status_code == 200
    codes = _post_in_parallel(f"{live_server}/api/nova/info", headers)
    assert codes == [200] + [409] * (PARALLEL - 1)
    db.session.expire_all()
    assert db.session.get(NovaReg, "o_race2").deleted is False
