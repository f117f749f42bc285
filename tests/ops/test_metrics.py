"""/metrics: what is counted, under which labels, and what never becomes a label.

In the test process prometheus_client keeps its values in memory (no
PROMETHEUS_MULTIPROC_DIR), so each test reads the change of a sample across what it does,
after writing what waits (`metrics.flush`, as a scrape does). The multiprocess mode under
gunicorn is tested in tests/test_gunicorn.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from berater import metrics
from berater.ext.wechat import client as wechat_client
from berater.ext.wechat import ticket
from berater.metrics import LATENCY
from standins.aliyun import RunningAliyunSms
from standins.wechat import RunningWeChat
from tests.chat.helpers import event_xml, post, signed_query, text_xml, url
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends

ROOT = Path(__file__).resolve().parents[2]
PHONE, OTHER_PHONE = "13812345678", "13912345678"
REQUESTS = "berater_http_request_duration_seconds_count"
SUM = "berater_http_request_duration_seconds_sum"


def sample(name: str, **labels: str) -> float:
    metrics.flush()
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextmanager
def change(name: str, **labels: str) -> Iterator[list[float]]:
    """Yield a list that holds, after the block, how much the sample grew."""
    grown: list[float] = []
    before = sample(name, **labels)
    yield grown
    grown.append(sample(name, **labels) - before)


def scrape(app: Flask) -> str:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


def test_requests_count_under_their_url_rule_never_their_path(app: Flask) -> None:
    client = app.test_client()
    token = token_for(client, "o_metrics_rule")
    before = endpoint_labels(scrape(app))  # other tests' apps count in this process too
    with (
        change(REQUESTS, endpoint="/api/code/<code>", method="GET", status="400") as coded,
        change(REQUESTS, endpoint="unmatched", method="GET", status="404") as unmatched,
        change(REQUESTS, endpoint="/api/ping", method="GET", status="200") as pings,
        change(REQUESTS, endpoint="unmatched", method="other", status="405") as odd,
    ):
        for code in ("123456", "654321"):
            assert client.get(f"/api/code/{code}", headers=bearer(token)).status_code == 400
        assert client.get(f"/no/such/{PHONE}").status_code == 404
        for _ in range(3):
            assert client.get(f"/api/ping?phone={PHONE}").status_code == 200
        assert client.open("/api/ping", method="BREW").status_code == 405
    assert (coded, unmatched, pings, odd) == ([2], [1], [3], [1])
    text = scrape(app)
    for secret in ("123456", "654321", PHONE, "o_metrics_rule", "BREW", token):
        assert secret not in text
    # Every request label this test added is a rule of the app or `unmatched`.
    rules = {rule.rule for rule in app.url_map.iter_rules()} | {"unmatched"}
    assert endpoint_labels(text) - before <= rules


def endpoint_labels(text: str) -> set[str]:
    return {
        metric.labels["endpoint"]
        for family in text_string_to_metric_families(text)
        for metric in family.samples
        if "endpoint" in metric.labels
    }


def test_token_mints_and_checks_are_counted_by_result(app: Flask) -> None:
    client = app.test_client()
    results = ("ok", "missing", "malformed", "invalid", "revoked", "forbidden", "app_refused")
    with (
        change("berater_tokens_minted_total", kind="wechat") as minted,
        change("berater_tokens_minted_total", kind="account") as accounts,
    ):
        token = token_for(client, "o_metrics_token")
    counters = {result: change("berater_token_checks_total", result=result) for result in results}
    grown = {result: counter.__enter__() for result, counter in counters.items()}
    assert client.get("/api/token", headers=bearer(token)).status_code == 200
    assert client.get("/api/token").status_code == 401
    assert client.get("/api/token", headers={"Authorization": "Basic x"}).status_code == 401
    assert client.get("/api/token", headers=bearer(token[:-4] + "AAAA")).status_code == 401
    assert client.get("/api/admin/audit", headers=bearer(token)).status_code == 403
    wrong_app = {"Authorization": "Bearer face not-the-secret"}
    assert client.get("/api/token", headers=wrong_app).status_code == 401
    assert client.delete("/api/token", headers=bearer(token)).status_code == 200
    assert client.get("/api/token", headers=bearer(token)).status_code == 401
    for counter in counters.values():
        counter.__exit__(None, None, None)
    assert (minted, accounts) == ([1], [0])
    assert {result: grown[result][0] for result in results} == {
        "ok": 2,  # the check, then the sign-out's own check
        "missing": 1,
        "malformed": 1,
        "invalid": 1,
        "revoked": 1,
        "forbidden": 1,
        "app_refused": 1,
    }


def test_sms_sends_and_provider_errors_are_counted_by_code(
    app: Flask, aliyun: RunningAliyunSms
) -> None:
    client = app.test_client()
    with (
        change("berater_sms_sends_total", backend="aliyun", outcome="sent") as sent,
        change("berater_sms_sends_total", backend="aliyun", outcome="refused") as refused,
        change("berater_sms_provider_errors_total", code="isv.BUSINESS_LIMIT_CONTROL") as code,
        change(
            "berater_upstream_request_duration_seconds_count",
            service="aliyun",
            operation="SendSms",
            outcome="ok",
        ) as calls,
    ):
        first = bearer(token_for(client, "o_metrics_sms_1"))
        assert client.post("/api/code", json={"phone": PHONE}, headers=first).status_code == 200
        aliyun.fake.fail("isv.BUSINESS_LIMIT_CONTROL")
        second = bearer(token_for(client, "o_metrics_sms_2"))
        answer = client.post("/api/code", json={"phone": OTHER_PHONE}, headers=second)
        assert answer.status_code == 429
    assert (sent, refused, code, calls) == ([1], [1], [1], [1])
    text = scrape(app)
    assert PHONE not in text and OTHER_PHONE not in text


def test_upstream_calls_and_access_token_and_ticket_refreshes_are_counted(
    ctx: Flask, wechat: RunningWeChat
) -> None:
    labels = {"service": "wechat", "operation": "/cgi-bin/message/custom/send"}
    with (
        change("berater_wechat_refreshes_total", value="access_token", outcome="ok") as refreshes,
        change("berater_upstream_request_duration_seconds_count", **labels, outcome="ok") as ok,
        change("berater_upstream_errors_total", **labels, error="http_5xx") as failed,
        change("berater_wechat_refreshes_total", value="jsapi_ticket", outcome="ok") as tickets,
    ):
        wechat_client.send_text("o_metrics_upstream", "你好")
        wechat.fake.fail("/cgi-bin/message/custom/send", "http500", times=1)
        wechat_client.send_text("o_metrics_upstream", "再见")  # retried once, then sent
        ticket.jsapi_ticket()
        ticket.jsapi_ticket()  # kept: no second fetch
    assert (refreshes, ok, failed, tickets) == ([1], [2], [1], [1])
    assert sample(
        "berater_upstream_request_duration_seconds_bucket", **labels, outcome="ok", le="+Inf"
    )


def test_webhook_messages_duplicates_and_replays_are_counted(app: Flask) -> None:
    client = app.test_client()
    with (
        change("berater_webhook_messages_total", type="text") as texts,
        change("berater_webhook_messages_total", type="event:subscribe") as follows,
        change("berater_webhook_duplicates_total") as duplicates,
        change("berater_webhook_replays_refused_total") as replays,
    ):
        assert post(client, text_xml("你好", sender="o_metrics_chat")).status_code == 200
        welcome = event_xml("subscribe", sender="o_metrics_chat", created=1700000900)
        assert post(client, welcome).status_code == 200
        assert post(client, welcome).status_code == 200  # WeChat delivering it again
        query = signed_query()
        other = event_xml("subscribe", sender="o_metrics_other", created=1700000901)
        for xml, status in ((text_xml("一"), 200), (other, 403)):
            answer = client.post(url(query), data=xml.encode(), content_type="text/xml")
            assert answer.status_code == status
    assert (texts, follows, duplicates, replays) == ([2], [2], [1], [1])
    assert "o_metrics_chat" not in scrape(app)


def test_background_drops_and_the_waiting_queue_are_counted(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(TASK_WORKERS=1, TASK_QUEUE=1)
    pool = app.extensions["berater.tasks"]
    with change("berater_tasks_dropped_total", reason="full") as dropped:
        waiting = sample("berater_tasks_waiting")
        assert pool.submit(app, "metrics-test", lambda: None, (), 30.0)  # due in 30 s
        assert sample("berater_tasks_waiting") == waiting + 1
        assert not pool.submit(app, "metrics-test", lambda: None, (), 30.0)
    assert dropped == [1]
    pool.shutdown(timeout=0)
    assert sample("berater_tasks_waiting") == waiting


def test_the_writer_writes_a_request_within_a_moment_without_a_scrape(app: Flask) -> None:
    """A request only queues its counts; the process's writer thread writes them within
    FLUSH_SECONDS, with nobody asking (an idle gunicorn worker answers no scrape)."""
    labels = {"endpoint": "/api/ping", "method": "GET", "status": "200"}
    metrics.flush()
    before = REGISTRY.get_sample_value(REQUESTS, labels) or 0.0
    assert app.test_client().get("/api/ping").status_code == 200
    assert any(thread.name == metrics.WRITER_NAME for thread in threading.enumerate())
    deadline = time.monotonic() + 20 * metrics.FLUSH_SECONDS
    while (REGISTRY.get_sample_value(REQUESTS, labels) or 0.0) == before:
        assert time.monotonic() < deadline, "the request was not written"
        time.sleep(0.01)
    assert REGISTRY.get_sample_value(REQUESTS, labels) == before + 1


def test_with_metrics_off_nothing_is_counted_or_served(make_app: Callable[..., Flask]) -> None:
    app = make_app(METRICS=False)
    with change(REQUESTS, endpoint="/api/ping", method="GET", status="200") as pings:
        assert app.test_client().get("/api/ping").status_code == 200
    assert pings == [0]
    assert app.test_client().get("/metrics").status_code == 404


def test_an_empty_multiprocess_folder_means_this_process_only(tmp_path: Path) -> None:
    """`PROMETHEUS_MULTIPROC_DIR=` (as .env.example ships it, and as compose passes an empty
    value on) is unset: a `flask` command writes no metric files into its working folder."""
    count = "from berater import metrics; metrics.token_check('ok'); print('counted')"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": "", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", count], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"counted\n"
    assert list(tmp_path.iterdir()) == []


# Observes the same durations through the request log's path and through prometheus_client's
# own `observe` under another rule, counting a token check with each; then once more before
# a fork, left waiting, and once in the forked worker, which ends as a gunicorn worker does;
# prints the scrape.
MULTIPROCESS_REQUESTS = """
import os, sys
from berater import metrics
from berater.http import ROUTE_KEY, Route

env = {"REQUEST_METHOD": "GET", ROUTE_KEY: Route("/api/ping", False, None, False, None)}
durations = (0.0, 0.001, 0.005, 0.0050001, 0.3, 10.0, 20.0)
for seconds in durations:
    metrics.observe_request(env, "200 OK", seconds)
    metrics.HTTP_REQUESTS.labels("/reference", "GET", "200").observe(seconds)
    metrics.token_check("ok")
metrics.flush()
series = metrics._requests[("/api/ping", "GET", "200 OK")]
assert isinstance(series.__self__, metrics.FileSeries), series
metrics.observe_request(env, "200 OK", 0.02)  # waiting at the fork: the parent's to write
metrics.token_check("ok")
pid = os.fork()
if pid == 0:
    metrics.observe_request(env, "200 OK", 0.02)
    metrics.token_check("ok")
    metrics.token_check("expired")
    sys.exit(0)  # written at exit, not by the writer, which waits FLUSH_SECONDS first
os.waitpid(pid, 0)
sys.stdout.write(metrics.render(os.environ["PROMETHEUS_MULTIPROC_DIR"])[0].decode())
"""


def test_under_gunicorn_a_request_is_written_as_prometheus_would_write_it(
    tmp_path: Path,
) -> None:
    """The request histogram's own write path in multiprocess mode (metrics.FileSeries):
    every bucket, count and sum as prometheus_client's `observe` gives them, each worker in
    its own file, a forked worker's requests added to the totals."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_REQUESTS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    samples: dict[str, dict[tuple[str, str], float]] = {"/api/ping": {}, "/reference": {}}
    for family in text_string_to_metric_families(done.stdout.decode()):
        for metric in family.samples:
            rule = metric.labels.get("endpoint")
            if family.name == "berater_http_request_duration_seconds" and rule in samples:
                samples[rule][(metric.name, metric.labels.get("le", ""))] = metric.value
    ours, reference = samples["/api/ping"], samples["/reference"]
    assert len(reference) == len(LATENCY) + 3  # each bucket, +Inf, the count and the sum
    two_more = {  # the two requests at 0.02 s, in this process and in the forked one
        (name, le): value + (2 if float(le or "inf") >= 0.02 and name != SUM else 0)
        for (name, le), value in reference.items()
    }
    two_more[(SUM, "")] = reference[(SUM, "")] + 0.04
    assert ours.keys() == two_more.keys()
    for key, value in two_more.items():
        assert ours[key] == pytest.approx(value), key
    assert reference[(f"{REQUESTS}", "")] == 7
    assert reference[("berater_http_request_duration_seconds_bucket", "0.005")] == 3
    assert len(list(folder.glob("histogram_*.db"))) == 2
    checks = {
        metric.labels["result"]: metric.value
        for family in text_string_to_metric_families(done.stdout.decode())
        for metric in family.samples
        if metric.name == "berater_token_checks_total"
    }
    # One per duration, then the one left waiting at the fork and the forked worker's.
    assert checks == {"ok": 7 + 2, "expired": 1}
