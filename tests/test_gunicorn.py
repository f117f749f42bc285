"""Real gunicorn as configured, two workers, the embedded store: each worker must not start its
own.

The master starts the embedded Redis before forking (gunicorn.conf.py `on_starting`), so both
workers share one server, and with it tokens' revocations; the master stops it at exit.

To know which worker answered, each probe sends the same request on two connections held
open at once: each worker takes one connection at a time here (ONE_CONNECTION_PER_WORKER), so
while the first worker waits for the rest of its request the second connection can only be
taken by the other worker.
Which worker holds which connection is read from the kernel (psutil), and each answer is
matched to a worker through its access-log line ([pid] and the request id we sent).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import socket
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from berater.ext import embedded_redis
from berater.metrics import FLUSH_SECONDS
from berater.settings import ENV_KEYS
from standins.wechat import RunningWeChat
from tests.servers import ONE_CONNECTION_PER_WORKER, free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START_TIMEOUT = 20.0
LETTERS = string.ascii_lowercase
REVOKED_WITHIN = 1.5  # REVOCATION_SYNC is 1 s by default
ACCESS_LINE = re.compile(
    r"berater\.request \[(?P<pid>\d+)\] \w+ \S+ (?P<status>\d{3}) .* id=(?P<request_id>\S+)"
)


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    worker: int = 0
    request_id: str = ""


def test_gunicorn_workers_share_one_embedded_store_and_its_revocations(
    tmp_path: Path, wechat: RunningWeChat
) -> None:
    instance = tmp_path / "instance"
    port = free_port()
    env = _gunicorn_env(tmp_path, port, wechat)
    upgrade = subprocess.run(
        [str(BIN / "flask"), "--app", "run", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upgrade.returncode == 0, f"flask db upgrade failed:\n{upgrade.stderr[-3000:]}"
    assert _servers_for(instance) == []  # `flask` started its own store and stopped it at exit

    log_path = tmp_path / "gunicorn.log"
    master = _start_master(env, log_path)
    try:
        workers = _wait_until_serving(master, port, log_path)

        # One embedded server for the instance, started by the master, not by a worker.
        running = _servers_for(instance)
        assert len(running) == 1, f"{len(running)} embedded servers: {running}"
        assert running[0].ppid() == master.pid

        # Both workers answer, each in its own process.
        probes: list[Answer] = []
        pings = _on_both_workers(port, workers, "GET", "/api/ping")
        probes += pings
        assert sorted(a.worker for a in pings) == sorted(workers)
        assert [a.status for a in pings] == [200, 200]

        # A token minted through one request is accepted everywhere afterwards.
        minted = _request(port, "POST", "/api/test/token/o_gunicorn")
        assert minted.status == 200, minted.body
        auth = {"Authorization": f"Bearer {minted.body['data']['token']}"}
        for _ in range(8):
            answer = _request(port, "GET", "/api/token", auth)
            assert answer.status == 200, answer.body
        accepted = _on_both_workers(port, workers, "GET", "/api/token", auth)
        probes += accepted
        for answer in accepted:
            assert answer.status == 200, (answer.worker, answer.body)

        # Sign-out in one worker: within REVOKED_WITHIN every worker refuses the token.
        assert _request(port, "DELETE", "/api/token", auth).status == 200
        signed_out = time.monotonic()
        while True:
            answers = _on_both_workers(port, workers, "GET", "/api/token", auth)
            probes += answers
            if all(a.status == 401 for a in answers):
                break
            took = time.monotonic() - signed_out
            assert took < REVOKED_WITHIN, f"still accepted {took:.2f}s after sign-out: {answers}"
            time.sleep(0.05)
        for _ in range(3):
            refused = _on_both_workers(port, workers, "GET", "/api/token", auth)
            probes += refused
            for answer in refused:
                assert answer.status == 401, (answer.worker, answer.body)
                assert "revoked" in answer.body["error"]
        for _ in range(8):
            assert _request(port, "GET", "/api/token", auth).status == 401
        # The mark the workers shared lives in the one embedded server.
        client = redis.Redis(unix_socket_path=str(embedded_redis.socket_path(instance)))
        try:
            assert client.hexists("berater:revoke:marks", "o_gunicorn")
        finally:
            client.close()

        # Each worker logged its own answers: the access line carries its [pid].
        logged = {
            m["request_id"]: (int(m["pid"]), int(m["status"]))
            for m in map(ACCESS_LINE.search, log_path.read_text(errors="replace").splitlines())
            if m
        }
        for probe in probes:
            assert logged.get(probe.request_id) == (probe.worker, probe.status), probe

        # SIGTERM: the workers stop, then the master, which stops the embedded server.
        master.send_signal(signal.SIGTERM)
        assert master.wait(timeout=25) == 0
        assert not embedded_redis.is_alive(embedded_redis.socket_path(instance))
        assert _servers_for(instance) == []
        assert not any(psutil.pid_exists(pid) and _is_running(pid) for pid in workers)
    except BaseException:
        print(f"---- tail of gunicorn's output ({log_path}) ----\n{_tail(log_path)}")
        raise
    finally:
        _cleanup(master, instance)


def test_gunicorn_own_log_is_redacted_and_foreign_hosts_are_refused(
    tmp_path: Path, wechat: RunningWeChat
) -> None:
    """gunicorn's error log shows a request line it refuses whole, query string included; it
    goes through the app's redacting formatter (gunicorn.conf.py's logconfig_dict). Behind two
    trusted proxies, X-Forwarded-For with one value or two is served, and another host, in
    Host or X-Forwarded-Host, is refused."""
    instance = tmp_path / "instance"
    port = free_port()
    env = _gunicorn_env(tmp_path, port, wechat, TRUSTED_PROXIES="2")
    code = "oauth" + secrets.token_hex(12)
    phone, id_card = "13812345678", "11010519491231002X"  # a valid check character
    secrets_sent = (code, phone, id_card)
    out_path, err_path = tmp_path / "gunicorn.out", tmp_path / "gunicorn.err"
    master = _start_master(env, out_path, err_path)
    try:
        _wait_until_serving(master, port, err_path)
        # Request lines gunicorn refuses before the app sees them: no HTTP version, a tab.
        query = f"code={code}&phone={phone}&id_card={id_card}"
        for line in (
            f"GET /signin/callback?{query}",
            f"GET\t/signin/callback?{query} HTTP/1.1",
            f"GET /signin/{phone}/{id_card}?code={code}",
        ):
            status, _ = _raw(port, f"{line}\r\nHost: 127.0.0.1:{port}\r\n\r\n")
            assert status == 400, line
        # X-Forwarded-For with one value (fewer than the two hops) or two: served.
        for forwarded in ("203.0.113.7", "203.0.113.7, 198.51.100.1"):
            headers = {"X-Forwarded-For": forwarded}
            assert _request(port, "GET", "/api/ping", headers).status == 200
        # Another host: refused, in Host or through the proxies in X-Forwarded-Host.
        status, body = _raw(port, "GET /signin HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        assert status == 400 and "evil.example" in body and "Location" not in body
        forwarded_host = {"X-Forwarded-Host": "evil.example, 127.0.0.1"}
        assert _request(port, "GET", "/api/ping", forwarded_host).status == 400

        master.send_signal(signal.SIGTERM)
        assert master.wait(timeout=25) == 0
        logged = err_path.read_text(errors="replace")
        printed = out_path.read_text(errors="replace")
        for secret in secrets_sent:
            assert secret not in logged and secret not in printed, secret
        assert logged.count("Invalid request from ip=127.0.0.1") == 3
        for placeholder in ("code=[redacted]", "phone=[redacted]", "id_card=[redacted]"):
            assert placeholder in logged
        assert "/signin/[phone]/[id_card]?code=[redacted]" in logged
        # gunicorn's own lines are in the app's format, through the same formatter.
        assert re.search(r" INFO gunicorn\.error \[\d+\] Booting worker", logged), logged
    except BaseException:
        print(f"---- tail of gunicorn's stderr ({err_path}) ----\n{_tail(err_path)}")
        raise
    finally:
        _cleanup(master, instance)


def test_gunicorn_json_logs_parse_and_carry_no_secret(
    tmp_path: Path, wechat: RunningWeChat
) -> None:
    """LOG_FORMAT=json: every line on gunicorn's output, the app's and gunicorn's own, is one
    JSON object, and none carries the token, phone, ID card or code a request held."""
    instance = tmp_path / "instance"
    port = free_port()
    env = _gunicorn_env(tmp_path, port, wechat, LOG_FORMAT="json")
    upgrade = subprocess.run(
        [str(BIN / "flask"), "--app", "run", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upgrade.returncode == 0, upgrade.stderr[-3000:]
    code, phone, id_card = "oauth" + secrets.token_hex(12), "13812345678", "11010519491231002X"
    out_path, err_path = tmp_path / "gunicorn.out", tmp_path / "gunicorn.err"
    master = _start_master(env, out_path, err_path)
    try:
        workers = _wait_until_serving(master, port, err_path)
        token = _request(port, "POST", "/api/test/token/o_json_log").body["data"]["token"]
        auth = {"Authorization": f"Bearer {token}"}
        answers = _on_both_workers(port, workers, "GET", "/api/token", auth)
        assert [a.status for a in answers] == [200, 200]
        query = f"code={code}&phone={phone}&id_card={id_card}"
        assert _request(port, "GET", f"/api/ping?{query}").status == 200
        assert _request(port, "GET", f"/api/code/{code[-6:]}?{query}", auth).status in {400, 403}
        status, _ = _raw(port, f"GET /signin/callback?{query}\r\nHost: 127.0.0.1\r\n\r\n")
        assert status == 400  # gunicorn refuses the line and logs it, query string included

        master.send_signal(signal.SIGTERM)
        assert master.wait(timeout=25) == 0
        text = err_path.read_text(errors="replace") + out_path.read_text(errors="replace")
        for secret in (token, code, code[-6:], phone, id_card):
            assert secret not in text, secret
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        for line in lines:
            assert {"time", "level", "logger", "message", "pid"} <= set(line), line
        requests = {
            line["request_id"]: line for line in lines if line["logger"] == "berater.request"
        }
        for answer in answers:  # each worker logged its own answer, with its pid
            logged = requests[answer.request_id]
            assert (logged["pid"], logged["status"], logged["path"]) == (
                answer.worker,
                200,
                "/api/token",
            )
            assert logged["method"] == "GET" and logged["duration_ms"] >= 0
        paths = {line["path"] for line in requests.values()}
        assert "/api/ping" in paths and "/api/code/******" in paths  # no query, masked
        gunicorn = [line for line in lines if line["logger"] == "gunicorn.error"]
        assert any(line["message"].startswith("Booting worker") for line in gunicorn)
        assert any("code=[redacted]" in line["message"] for line in gunicorn)
    except BaseException:
        print(f"---- tail of gunicorn's stderr ({err_path}) ----\n{_tail(err_path)}")
        raise
    finally:
        _cleanup(master, instance)


def test_metrics_of_both_workers_add_up_and_outlive_a_worker(
    tmp_path: Path, wechat: RunningWeChat
) -> None:
    """prometheus_client's multiprocess mode: /metrics, answered by either worker, adds up the
    requests both answered; the master empties the folder at start, so an earlier run's
    counts are gone; a worker that exits keeps its counts in the totals and its live gauges
    are dropped (gunicorn.conf.py's child_exit)."""
    instance = tmp_path / "instance"
    port = free_port()
    folder = tmp_path / "metrics"
    folder.mkdir()
    stale = (
        "from berater import metrics\n"
        "for _ in range(1000):\n"
        "    metrics.HTTP_REQUESTS.labels('/healthz', 'GET', '200').observe(0.001)\n"
    )
    env = _gunicorn_env(tmp_path, port, wechat, PROMETHEUS_MULTIPROC_DIR=str(folder))
    subprocess.run([sys.executable, "-c", stale], cwd=ROOT, env=env, check=True, timeout=60)
    assert list(folder.glob("histogram_*.db")), "the earlier run left no file"
    log_path = tmp_path / "gunicorn.log"
    master = _start_master(env, log_path)
    try:
        workers = _wait_until_serving(master, port, log_path)
        rounds = 3
        for _ in range(rounds):
            answers = _on_both_workers(port, workers, "GET", "/healthz")
            assert sorted(a.worker for a in answers) == sorted(workers)
        # Summed over both, nothing stale; the worker that does not answer the scrape has
        # written its counts within FLUSH_SECONDS, though it answers nothing more.
        _wait_for_healthz_count(port, 2 * rounds)
        for pid in workers:  # each worker wrote its own files
            assert (folder / f"histogram_{pid}.db").exists(), pid
            assert (folder / f"gauge_livesum_{pid}.db").exists(), pid

        # One worker exits right after answering; gunicorn starts another; the exited
        # worker's counts remain, the last one written as it exited.
        gone = workers[0]
        assert len(_on_both_workers(port, workers, "GET", "/healthz")) == 2
        os.kill(gone, signal.SIGTERM)
        deadline = time.monotonic() + START_TIMEOUT
        while (folder / f"gauge_livesum_{gone}.db").exists() or len(_children(master)) < 2:
            assert time.monotonic() < deadline, "the worker was not replaced and marked dead"
            time.sleep(0.05)
        assert (folder / f"histogram_{gone}.db").exists()
        assert _request(port, "GET", "/healthz").status == 200
        _wait_for_healthz_count(port, 2 * rounds + 3)
        text = _text(port, "/metrics")
        assert "berater_token_checks_total" in text and "berater_tasks_waiting" in text

        master.send_signal(signal.SIGTERM)
        assert master.wait(timeout=25) == 0
    except BaseException:
        print(f"---- tail of gunicorn's output ({log_path}) ----\n{_tail(log_path)}")
        raise
    finally:
        _cleanup(master, instance)


def _text(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def _wait_for_healthz_count(port: int, count: int) -> None:
    """/metrics counts `count` answers of /healthz within a few of the workers' writes
    (metrics.FLUSH_SECONDS), and never more."""
    deadline = time.monotonic() + 20 * FLUSH_SECONDS
    while (seen := _healthz_count(port)) != count:
        assert seen < count, f"{seen} counted, {count} answered"
        assert time.monotonic() < deadline, f"{seen} counted, {count} answered"
        time.sleep(0.05)


def _healthz_count(port: int) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {"endpoint": "/healthz", "method": "GET", "status": "200"}
    for family in text_string_to_metric_families(_text(port, "/metrics")):
        for sample in family.samples:
            if sample.name.endswith("_count") and sample.labels == wanted:
                return sample.value
    return 0.0


def _start_master(
    env: dict[str, str], log_path: Path, err_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """gunicorn with the project's gunicorn.conf.py, in a session of its own, its output in
    `log_path` (its standard error in `err_path` when given)."""
    with open(log_path, "wb") as out, open(err_path or os.devnull, "wb") as err:
        return subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "run:app"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err if err_path else subprocess.STDOUT,
            start_new_session=True,
        )


def _children(master: subprocess.Popen[bytes]) -> list[int]:
    return [
        p.pid
        for p in psutil.Process(master.pid).children()
        if "redis-server" not in p.name() and _is_running(p.pid)
    ]


def _gunicorn_env(tmp_path: Path, port: int, wechat: RunningWeChat, **extra: str) -> dict[str, str]:
    """The environment of a gunicorn with two workers on SQLite and the embedded store."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(
        {
            "BERATER_ENV": "testing",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "REDIS_URL": "",
            "WEB_CONCURRENCY": "2",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "LOG_LEVEL": "INFO",
            **ONE_CONNECTION_PER_WORKER,
            "WECHAT_API_BASE": wechat.url,
            "WECHAT_OAUTH_BASE": wechat.url,
            **extra,
        }
    )
    return env


def _raw(port: int, text: str) -> tuple[int, str]:
    """Send `text` as it is on a new connection; the answer's status and whole text."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(text.encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    answer = received.decode("utf-8", "replace")
    return int(answer.split(" ", 2)[1]), answer


def _wait_until_serving(master: subprocess.Popen[bytes], port: int, log_path: Path) -> list[int]:
    """Wait until /api/ping answers and the master has two booted workers; return their pids."""
    deadline = time.monotonic() + START_TIMEOUT
    workers: list[int] = []
    while time.monotonic() < deadline:
        if master.poll() is not None:
            pytest.fail(f"gunicorn exited with {master.returncode}:\n{_tail(log_path)}")
        workers = [
            p.pid for p in psutil.Process(master.pid).children() if "redis-server" not in p.name()
        ]
        if len(workers) == 2:
            try:
                if _request(port, "GET", "/api/ping").status == 200:
                    return workers
            except OSError:
                pass
        time.sleep(0.1)
    pytest.fail(f"gunicorn did not serve within {START_TIMEOUT}s (workers {workers})")


def _request(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> Answer:
    """One request on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return Answer(response.status, json.loads(response.read()))
    finally:
        conn.close()


def _on_both_workers(
    port: int, workers: list[int], method: str, path: str, headers: dict[str, str] | None = None
) -> list[Answer]:
    """Send the request to each worker once (see the module docstring); answers in pid order."""
    request_ids, socks, holders = [], [], []
    try:
        for _ in workers:
            # Letters only: the log redactor masks long digit runs.
            request_id = "probe-" + "".join(secrets.choice(LETTERS) for _ in range(12))
            lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
            lines += [
                f"X-Request-ID: {request_id}",
                *(f"{k}: {v}" for k, v in (headers or {}).items()),
            ]
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(sock)
            sock.sendall(("\r\n".join(lines) + "\r\n").encode())  # no blank line yet: held
            request_ids.append(request_id)
            # Accepted (and so the worker full) before the next connection is opened.
            holders.append(_holder(sock, workers))
        assert sorted(holders) == sorted(workers), f"connections held by {holders}"
        answers = []
        for sock, holder, request_id in zip(socks, holders, request_ids, strict=True):
            sock.sendall(b"\r\n")
            response = http.client.HTTPResponse(sock, method=method)
            response.begin()
            assert response.getheader("X-Request-ID") == request_id
            answers.append(Answer(response.status, json.loads(response.read()), holder, request_id))
            response.close()
    finally:
        for sock in socks:
            sock.close()
    return sorted(answers, key=lambda a: a.worker)


def _holder(sock: socket.socket, workers: list[int]) -> int:
    """The worker whose accepted connection is the other end of `sock`."""
    here = sock.getsockname()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for pid in workers:
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.raddr and (conn.raddr.ip, conn.raddr.port) == here:
                    return pid
        time.sleep(0.02)
    pytest.fail(f"no worker accepted the connection from {here}")


def _servers_for(instance: Path) -> list[psutil.Process]:
    """redis-server processes serving `instance` (Redis retitles itself `unixsocket:<path>`)."""
    title = f"unixsocket:{embedded_redis.socket_path(instance)}"
    config = str(instance.resolve() / "redis.conf")
    found = []
    for process in psutil.process_iter(["cmdline"]):
        # Depending on the length of the original argv, the new title is one argument or
        # several, padded with empty ones: compare the joined text.
        text = " ".join(arg for arg in process.info["cmdline"] or [] if arg).rstrip()
        if text.endswith((f" {config}", f" {title}")):
            found.append(process)
    return found


def _is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def _cleanup(master: subprocess.Popen[bytes], instance: Path) -> None:
    """Whatever happened above: no gunicorn and no embedded server outlive the test."""
    if master.poll() is None:
        os.killpg(master.pid, signal.SIGKILL)  # the master and its workers (one session)
        master.wait(timeout=10)
    for process in _servers_for(instance):  # the store runs in a session of its own
        process.kill()
        process.wait(timeout=10)
