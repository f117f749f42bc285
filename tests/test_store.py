"""The store contract (berater.ext.store) on the embedded server and on a real redis-server.

Marked `backends`: `pytest` runs it on the embedded store, `pytest -m backends --store=redis`
runs it again on a throwaway redis-server. Nothing here is mocked: outages are made by
stopping, freezing or killing the real server process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from flask import Flask

from berater.errors import StoreUnavailable
from berater.extensions import store
from tests import servers
from tests.helpers import StoreOutage

pytestmark = pytest.mark.backends

# SECURITY.md: "Redis down: 503 within about a second". REDIS_SOCKET_TIMEOUT is 1.0 s.
OUTAGE_BUDGET = 1.5
RACERS = 20


def test_keys_are_namespaced_by_area(ctx: Flask, store_client: redis.Redis) -> None:
    store.set("sms", "13800138000", "123456")
    store.set("login", "13800138000", "3")

    assert store.key("sms", "13800138000") == "berater:sms:13800138000"
    assert store_client.get("berater:sms:13800138000") == "123456"
    assert store_client.get("berater:login:13800138000") == "3"
    assert store_client.get("13800138000") is None
    assert sorted(store_client.keys("*13800138000*")) == [
        "berater:login:13800138000",
        "berater:sms:13800138000",
    ]
    assert store.get("sms", "13800138000") == "123456"
    assert store.get("other", "13800138000") is None


def test_set_with_ttl_expires(ctx: Flask, store_client: redis.Redis) -> None:
    store.set("sms", "brief", "v", ttl=0.3)
    store.set("sms", "forever", "v")

    assert store.get("sms", "brief") == "v"
    assert 0 < store_client.pttl("berater:sms:brief") <= 300
    assert store_client.pttl("berater:sms:forever") == -1  # no ttl: never expires
    time.sleep(0.45)
    assert store.get("sms", "brief") is None
    assert store_client.exists("berater:sms:brief") == 0
    assert store.get("sms", "forever") == "v"


def test_set_if_absent_is_true_once_then_false(ctx: Flask) -> None:
    assert store.set_if_absent("lock", "bind", "first", ttl=0.3) is True
    assert store.set_if_absent("lock", "bind", "second", ttl=30) is False
    assert store.set_if_absent("lock", "bind", "third", ttl=30) is False

    assert store.get("lock", "bind") == "first"
    left = store.ttl("lock", "bind")
    assert left is not None and left <= 0.3  # a refused attempt does not reset the ttl
    time.sleep(0.45)
    assert store.set_if_absent("lock", "bind", "after expiry", ttl=30) is True
    assert store.get("lock", "bind") == "after expiry"


def test_set_if_absent_has_exactly_one_winner_among_racing_threads(app: Flask) -> None:
    wins = _race(app, lambda i: store.set_if_absent("lock", "race", f"thread {i}", ttl=30))

    assert sorted(wins) == [False] * (RACERS - 1) + [True]
    with app.app_context():
        assert store.get("lock", "race") == f"thread {wins.index(True)}"


def test_get_and_delete_gives_the_value_to_exactly_one_of_20_threads(app: Flask) -> None:
    for round_ in range(5):
        key = f"code-{round_}"
        with app.app_context():
            store.set("code", key, f"value {round_}", ttl=30)

        got = _race(app, lambda _i, key=key: store.get_and_delete("code", key))

        assert [v for v in got if v is not None] == [f"value {round_}"], got
        with app.app_context():
            assert store.get("code", key) is None


def test_incr_counts_and_its_window_starts_at_the_first_increment(
    ctx: Flask, store_client: redis.Redis
) -> None:
    assert store.incr("fail", "user:ann", ttl=1.0) == 1
    first = time.monotonic()
    time.sleep(0.4)
    assert store.incr("fail", "user:ann", ttl=1.0) == 2
    assert store.incr("fail", "user:ann", ttl=1.0, amount=3) == 5
    assert store_client.get("berater:fail:user:ann") == "5"

    left = store.ttl("fail", "user:ann")
    assert left is not None
    assert left <= 0.6 + 0.05, f"later increments extended the window: {left:.3f}s left"

    time.sleep(max(0.0, first + 1.1 - time.monotonic()))
    assert store.get("fail", "user:ann") is None  # the window ended one second after the first
    assert store.incr("fail", "user:ann", ttl=1.0) == 1  # and a new one starts
    left = store.ttl("fail", "user:ann")
    assert left is not None and 0.8 < left <= 1.0


def test_ttl_reports_seconds_left_or_none(ctx: Flask) -> None:
    store.set("t", "forever", "1")
    store.set("t", "long", "1", ttl=5)
    store.set("t", "short", "1", ttl=0.25)

    assert store.ttl("t", "missing") is None
    assert store.ttl("t", "forever") is None
    long_left = store.ttl("t", "long")
    short_left = store.ttl("t", "short")
    assert long_left is not None and 4.5 < long_left <= 5
    assert short_left is not None and 0 < short_left <= 0.25
    assert isinstance(short_left, float)


def test_delete_removes_several_keys_and_counts_them(ctx: Flask, store_client: redis.Redis) -> None:
    for key in ("a", "b", "c"):
        store.set("d", key, key)
    store.set("other", "a", "kept")

    assert store.delete("d", "a", "b", "missing") == 2
    assert store.get("d", "a") is None
    assert store.get("d", "b") is None
    assert store.get("d", "c") == "c"
    assert store_client.get("berater:other:a") == "kept"  # same key, other area: untouched
    assert store.delete("d") == 0


@pytest.mark.parametrize("failure", ["hung", "refused"])
def test_store_outage_answers_503_quickly_and_recovers_without_restart(
    make_app: Callable[..., Flask],
    backend_servers: dict[str, servers.Server],
    failure: str,
) -> None:
    # REVOCATION_SYNC=0: every token check reads the revocation marks from the store.
    app = make_app(REVOCATION_SYNC=0)
    client = app.test_client()
    token = client.post("/api/test/token/o_store_outage").get_json()["data"]["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/token", headers=auth).status_code == 200
    outage = StoreOutage(app, backend_servers.get("redis"))

    outage.begin(failure)
    try:
        with app.app_context():
            for call in (
                lambda: store.get("sms", "k"),
                lambda: store.incr("fail", "k", ttl=60),  # a pipeline, not a single command
            ):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    call()
                took = time.monotonic() - started
                assert took < OUTAGE_BUDGET, f"{failure} store: StoreUnavailable after {took:.2f}s"

        started = time.monotonic()
        response = client.get("/api/token", headers=auth)
        took = time.monotonic() - started
        assert response.status_code == 503
        body = response.get_json()
        assert body["code"] == 503
        assert "store is unavailable" in body["error"]
        assert body["data"] is None
        assert took < OUTAGE_BUDGET, f"{failure} store: the 503 took {took:.2f}s"
        assert client.get("/api/ping").status_code == 200  # what needs no store still works
    finally:
        outage.end(failure)

    # The same app object, not rebuilt: its connection pool reconnects on its own, at once.
    started = time.monotonic()
    response = client.get("/api/token", headers=auth)
    took = time.monotonic() - started
    assert response.status_code == 200, response.get_json()
    assert took < OUTAGE_BUDGET, f"{failure} store: the first answer after it took {took:.2f}s"
    with app.app_context():
        store.set("sms", "after", "back")
        assert store.get("sms", "after") == "back"


def _race(app: Flask, call: Callable[[int], object]) -> list[object]:
    """Run `call(i)` in RACERS threads released together; return the results in thread order."""
    barrier = threading.Barrier(RACERS)

    def one(i: int) -> object:
        with app.app_context():
            barrier.wait(timeout=10)
            return call(i)

    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(one, range(RACERS)))
