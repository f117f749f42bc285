"""The access-token keeper: one token in the store, renewed by exactly one process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from berater.errors import ServiceUnavailable, TooManyRequests, UpstreamError
from berater.ext.wechat import keeper
from berater.extensions import store
from standins.wechat import RunningWeChat

pytestmark = pytest.mark.backends

STABLE = "/cgi-bin/stable_token"
CLASSIC = "/cgi-bin/token"
# An errcode, a 5xx or an HTML page is an answer: the error is raised at once, well within
# the read timeout (1.5 s in tests).
ANSWERED_FAILURE = 1.0


def test_cache_hit_makes_no_call(ctx: Flask, wechat: RunningWeChat) -> None:
    first = keeper.access_token()
    assert keeper.access_token() == first
    assert keeper.access_token() == first
    assert wechat.fake.calls_to(STABLE) == 1
    assert wechat.fake.is_access_token(first)


def test_token_is_cached_until_five_minutes_before_expiry(
    ctx: Flask, wechat: RunningWeChat
) -> None:
    keeper.access_token()
    left = store.ttl("wechat", "access_token")
    assert left is not None and 7200 - 300 - 5 < left <= 7200 - 300


def test_dropped_cache_fetches_a_token_again(ctx: Flask, wechat: RunningWeChat) -> None:
    keeper.access_token()
    store.delete("wechat", "access_token")  # what the store does when the TTL runs out
    keeper.access_token()
    assert wechat.fake.calls_to(STABLE) == 2


def test_classic_endpoint_is_a_setting(make_app: Callable[..., Flask], wechat: RunningWeChat):
    app = make_app(WECHAT_TOKEN_ENDPOINT="classic")
    with app.app_context():
        token = keeper.access_token()
        assert keeper.access_token() == token
    assert wechat.fake.calls_to(CLASSIC) == 1
    assert wechat.fake.calls_to(STABLE) == 0


def test_invalidate_drops_only_the_token_it_names(ctx: Flask, wechat: RunningWeChat) -> None:
    token = keeper.access_token()
    keeper.invalidate("some-older-token")
    assert keeper.access_token() == token
    keeper.invalidate(token)
    assert store.get("wechat", "access_token") is None


def test_invalidated_token_is_replaced_even_if_wechat_hands_it_back(
    ctx: Flask, wechat: RunningWeChat
) -> None:
    token = keeper.access_token()
    keeper.invalidate(token)
    fresh = keeper.access_token()
    assert fresh != token
    assert wechat.fake.is_access_token(fresh)
    assert not wechat.fake.is_access_token(token)  # force_refresh replaced it at WeChat


def test_waiter_uses_the_token_the_lock_holder_stores(ctx: Flask, wechat: RunningWeChat) -> None:
    store.set_if_absent("wechat", "access_token:lock", "another-process", ttl=5)

    def other_process_stores_token() -> None:
        time.sleep(0.3)
        with ctx.app_context():
            store.set("wechat", "access_token", "token-from-elsewhere", ttl=60)

    thread = threading.Thread(target=other_process_stores_token)
    thread.start()
    assert keeper.access_token() == "token-from-elsewhere"
    thread.join()
    assert wechat.fake.calls_to(STABLE) == 0


def test_waiter_gives_up_with_503_when_the_holder_never_finishes(
    make_app: Callable[..., Flask], wechat: RunningWeChat
) -> None:
    app = make_app(WECHAT_TOKEN_WAIT=0.4)
    with app.app_context():
        store.set_if_absent("wechat", "access_token:lock", "stuck-process", ttl=5)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            keeper.access_token()
        assert time.monotonic() - started < 1.0
    assert wechat.fake.calls_to(STABLE) == 0


@pytest.mark.parametrize(
    ("errcode", "error", "words"),
    [
        (-1, ServiceUnavailable, "busy"),
        (45009, ServiceUnavailable, "daily API quota"),
        (45011, TooManyRequests, "per-minute"),
        (40164, UpstreamError, "IP"),
    ],
)
def test_token_fetch_errors_are_clear_and_release_the_lock(
    ctx: Flask, wechat: RunningWeChat, errcode: int, error: type[Exception], words: str
) -> None:
    wechat.fake.fail(STABLE, "errcode", errcode=errcode)
    started = time.monotonic()
    with pytest.raises(error) as caught:
        keeper.access_token()
    assert time.monotonic() - started < ANSWERED_FAILURE
    assert words in str(caught.value)
    assert store.get("wechat", "access_token:lock") is None
    assert keeper.access_token()  # the next request renews it
    assert wechat.fake.calls_to(STABLE) == 2


def test_wrong_secret_is_an_upstream_error(make_app: Callable[..., Flask]) -> None:
    app = make_app(WECHAT_SECRET="not-the-secret")
    with app.app_context(), pytest.raises(UpstreamError) as caught:
        keeper.access_token()
    assert "credentials" in str(caught.value)


@pytest.mark.parametrize("mode", ["http500", "html"])
def test_unreadable_token_answers_are_upstream_errors(
    ctx: Flask, wechat: RunningWeChat, mode: str
) -> None:
    wechat.fake.fail(STABLE, mode)
    started = time.monotonic()
    with pytest.raises(UpstreamError, match="unreadable"):
        keeper.access_token()
    assert time.monotonic() - started < ANSWERED_FAILURE


_WORKER = """
import json, sys, threading
from berater import create_app
from berater.ext.wechat import keeper

settings = json.loads(sys.argv[1])
settings["WECHAT_TIMEOUT"] = tuple(settings["WECHAT_TIMEOUT"])
app = create_app(settings)
barrier = threading.Barrier(8)
tokens, errors = [], []

def work():
    with app.app_context():
        barrier.wait()
        try:
            tokens.append(keeper.access_token())
        except Exception as exc:
            errors.append(repr(exc))

threads = [threading.Thread(target=work) for _ in range(8)]
print("ready", flush=True)
sys.stdin.readline()  # every process starts together
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"tokens": tokens, "errors": errors}), flush=True)
"""


def test_32_concurrent_requests_in_4_processes_fetch_one_token(
    ctx: Flask, wechat: RunningWeChat, base_settings: dict[str, Any]
) -> None:
    settings = {k: v for k, v in base_settings.items() if k != "SERVER_NAME"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    tokens = [token for result in results for token in result["tokens"]]
    assert [e for result in results for e in result["errors"]] == []
    assert len(tokens) == 32
    assert len(set(tokens)) == 1
    assert wechat.fake.calls_to(STABLE) == 1
    assert keeper.access_token() == tokens[0]
