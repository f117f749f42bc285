"""Benchmark: the cost of a token check (`GET /api/token`) against the bare `GET /api/ping`.

What it measures, on one throwaway server (and a minimal one beside it) and in one run:

* requests/s and p99 latency of a minimal Flask app answering the same envelope
  (bench/minimal_app.py: no hooks, no validation, no logging), of `GET /api/ping` (the
  constant envelope, through every per-request hook) and of `GET /api/token` with a real
  token of a bound student (Fernet decrypt, revocation check, the identity envelope), each
  measured twice (--rounds), alternating, the best kept; the ratio ping/minimal (the cost of
  the request pipeline) is compared with the goal of >= 0.90, token/ping with >= 0.85;
  and the CPU time the server's gunicorn spent per request in each run, whose ratios move
  less than the rates' (wrk shares the CPUs);
* revocation latency across workers: after `DELETE /api/token` on one connection, how long
  until every worker refuses the token (20 consecutive 401s on new connections).

How: a temporary directory holds the instance folder (SQLite file, embedded store) or a
throwaway MariaDB / redis-server (tests/servers.py); `flask db upgrade` prepares the schema;
gunicorn runs with gunicorn.conf.py (sync workers) on a free loopback port; wrk drives it.

    .venv/bin/python bench/token_check.py                      # sqlite + embedded store
    .venv/bin/python bench/token_check.py --db mariadb --store redis
    .venv/bin/python bench/token_check.py --duration 5 --connections 32 --workers 2

Needs `wrk` (Debian package `wrk`), and for --db mariadb / --store redis the Debian packages
`mariadb-server` and `redis-server`. Everything started is stopped, and the temporary
directory removed, on success, failure or Ctrl-C. LOG_LEVEL is WARNING for the server, so
the app's per-request log line is not part of the figures.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
GOAL_PING = 0.90  # GET /api/ping's rate as a share of the minimal app's
GOAL_TOKEN = 0.85  # GET /api/token's rate as a share of GET /api/ping's
HOST = "127.0.0.1"
STREAK = 20  # consecutive 401s that count as "revoked everywhere"
REVOCATION_SYNC = 1.0  # the app's default (berater/settings.py); not overridden here
REVOCATION_TIMEOUT = 15.0  # seconds; the design promises about REVOCATION_SYNC
REVOCATION_TRIALS = 3  # each with a fresh token, at a random point of the sync cycle
WRK_THREADS = 2

# The bound student the token is minted for (made-up data, throwaway database).
OPENID = "oBench_token_check_000000001"
STUID = "20259999"
ADMISSION_ID = "B2025000000099"
ID_CARD = "11010519991231002X"


def load_servers() -> ModuleType:
    """tests/servers.py: the throwaway MariaDB and Redis servers of the test suite."""
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    from tests import servers

    return servers


# --------------------------------------------------------------------------- environment


@dataclass
class Environment:
    """The settings every process of the run shares (flask CLI, gunicorn, in-process app)."""

    settings: dict[str, str]

    def env(self, **extra: str) -> dict[str, str]:
        """os.environ with the settings (and `extra`) laid over it, for a subprocess."""
        return {**os.environ, **self.settings, **extra}


def prepare(
    args: argparse.Namespace, tmp: Path, stack: ExitStack, servers: ModuleType
) -> Environment:
    """Instance folder, database and store for this run; the schema is upgraded."""
    instance = tmp / "instance"
    instance.mkdir()
    if args.db == "mariadb":
        mariadb = servers.start_mariadb(tmp / "mariadb")
        stack.callback(mariadb.stop)
        database_url = mariadb.url
    else:
        database_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    if args.store == "redis":
        redis_server = servers.start_redis(tmp / "redis")
        stack.callback(redis_server.stop)
        redis_url = redis_server.url
    else:
        redis_url = ""  # the embedded store, started by gunicorn's master (gunicorn.conf.py)
    environment = Environment(
        {
            "BERATER_ENV": args.env,
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "LOG_LEVEL": "WARNING",
        }
    )
    result = subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "run", "db", "upgrade"],
        cwd=PROJECT_ROOT,
        env=environment.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{result.stdout}{result.stderr}")
    return environment


# The real app: the project's gunicorn.conf.py (its master preforks berater's modules and
# starts the embedded store). The minimal app: the same worker settings, no hooks; run from
# bench/, where gunicorn finds no gunicorn.conf.py of its own.
BERATER_APP = "run:app"
MINIMAL_APP = "minimal_app:app"


@contextmanager
def gunicorn(
    environment: Environment,
    workers: int,
    tmp: Path,
    port: int,
    app: str = BERATER_APP,
    worker_class: str | None = None,
) -> Iterator[str]:
    """Run gunicorn on `app`; yield its base URL; SIGTERM and wait on the way out.
    `worker_class` None: gunicorn.conf.py's; "sync" also sets GUNICORN_THREADS=1 (gunicorn
    would otherwise turn sync into gthread)."""
    name = app.split(":")[0]
    log_path = tmp / f"gunicorn-{name}.log"
    extra = {"GUNICORN_BIND": f"{HOST}:{port}", "WEB_CONCURRENCY": str(workers)}
    if worker_class == "sync":
        extra["GUNICORN_THREADS"] = "1"
    env = environment.env(**extra)
    chosen = ["--worker-class", worker_class] if worker_class else []
    if app == BERATER_APP:
        cwd, options = PROJECT_ROOT, ["-c", "gunicorn.conf.py", *chosen]
    else:
        cwd = PROJECT_ROOT / "bench"
        threads = env.get("GUNICORN_THREADS") or str(configured_threads())
        options = chosen or ["--worker-class", configured_worker_class()]
        options += ["--threads", threads, "--workers", str(workers), "--timeout", "30"]
        options += ["--keep-alive", "2", "--bind", f"{HOST}:{port}"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            # Our own control socket: gunicorn's default (~/.gunicorn/gunicorn.ctl) is shared
            # by every gunicorn of the user, so a benchmark would take over another's.
            [
                str(VENV_BIN / "gunicorn"),
                *options,
                "--control-socket",
                str(control_socket(tmp, app)),
                app,
            ],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches the benchmark, which stops it in order
        )
    base = f"http://{HOST}:{port}"
    try:
        wait_until_up(process, port, log_path)
        yield base
        problems = log_problems(log_path)
        if problems:
            print(f"\ngunicorn logged problems during the run (tail):\n{problems}")
    finally:
        stop_process(process, timeout=30)
        if app == BERATER_APP:
            stop_leftover_embedded_store(Path(environment.settings["INSTANCE_PATH"]))


def configured_worker_class() -> str:
    """gunicorn.conf.py's worker class, for the minimal app and the printed config."""
    text = (PROJECT_ROOT / "gunicorn.conf.py").read_text()
    found = re.search(r'^worker_class = "(\w+)"', text, re.M)
    return found.group(1) if found else "sync"


def configured_threads() -> int:
    from berater.settings import default

    return int(os.environ.get("GUNICORN_THREADS") or default("GUNICORN_THREADS"))


def wait_until_up(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    """Poll /api/ping until it answers 200; fail with the log tail if gunicorn dies or hangs."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"gunicorn exited with code {process.returncode}; log:\n{tail(log_path)}"
            )
        with suppress(OSError, http.client.HTTPException):
            status, _ = request(port, "GET", "/api/ping", timeout=1)
            if status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer /api/ping within 30 s; log:\n{tail(log_path)}")


def stop_process(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM, wait; SIGKILL if it does not go."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def stop_leftover_embedded_store(instance: Path) -> None:
    """Safety net: gunicorn's master stops the embedded store at exit; if it was killed, we do."""
    pid_file = instance / "redis.pid"
    with suppress(OSError, ValueError):
        pid = int(pid_file.read_text().strip())
        # Only the server of this run's instance folder, never a process that reused the pid.
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if str(instance / "redis.conf").encode() not in cmdline:
            return
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)  # raises once it is gone
            time.sleep(0.05)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def log_problems(path: Path) -> str:
    """The log tail when the server logged an error or a traceback, else ''."""
    text = path.read_text(errors="replace") if path.exists() else ""
    if re.search(r"Traceback|\bERROR\b|\bCRITICAL\b|WORKER TIMEOUT", text):
        return tail(path)
    return ""


# --------------------------------------------------------------------------- HTTP helpers


def request(
    port: int, method: str, path: str, token: str | None = None, timeout: float = 5
) -> tuple[int, dict[str, Any]]:
    """One request on a new connection: (HTTP status, parsed JSON body or {})."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {"raw": raw[:200].decode(errors="replace")}
    return response.status, body


def create_student(environment: Environment) -> None:
    """Insert a source_student row and a student row bound to OPENID, through the app."""
    from berater import create_app
    from berater.db import db
    from berater.models import SourceStudent, Student

    app = create_app(dict(environment.settings))
    with app.app_context():
        db.session.add(
            SourceStudent(
                id_card=ID_CARD,
                stuid=STUID,
                admission_id=ADMISSION_ID,
                name="测试学生",
                origin="北京",
                gender="男",
                department="计算机学院",
            )
        )
        db.session.flush()
        db.session.add(Student(openid=OPENID, phone="13800000000", id_card=ID_CARD))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
        app.extensions["berater.store"].close()


def get_token(port: int) -> str:
    status, body = request(port, "POST", f"/api/test/token/{OPENID}")
    if status != 200 or not body.get("data", {}).get("token"):
        raise RuntimeError(f"POST /api/test/token answered {status}: {body}")
    if not body["data"].get("student"):
        raise RuntimeError(f"the test token is not a student's (is the binding wrong?): {body}")
    return str(body["data"]["token"])


def check_token_answer(port: int, token: str) -> None:
    """Refuse to benchmark an error path: /api/token must say 200 and our stuid."""
    status, body = request(port, "GET", "/api/token", token)
    data = body.get("data") or {}
    if status != 200 or body.get("code") != 200 or data.get("stuid") != STUID:
        raise RuntimeError(f"GET /api/token answered {status}, expected 200 and {STUID}: {body}")


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    requests_per_s: float
    p99_ms: float
    non_2xx: int
    socket_errors: str
    requests: int = 0  # answered in the run
    cpu_us: float = 0.0  # the server's CPU per request, when measured (`measure`)

    def problem(self) -> str:
        parts = []
        if self.non_2xx:
            parts.append(f"{self.non_2xx} non-2xx answers")
        if self.socket_errors:
            parts.append(f"socket errors: {self.socket_errors}")
        return "; ".join(parts)


UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(output: str) -> WrkResult:
    """Requests/s, p99, non-2xx count and socket errors from `wrk --latency` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    if rps is None or p99 is None:
        raise RuntimeError(f"cannot parse wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:\s+(.+)", output)
    total = re.search(r"^\s*(\d+) requests in", output, re.M)
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p99_ms=float(p99.group(1)) * UNIT_MS[p99.group(2)],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1).strip() if errors else "",
        requests=int(total.group(1)) if total else 0,
    )


def run_wrk(url: str, script: Path, connections: int, duration: int) -> WrkResult:
    command = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return parse_wrk(result.stdout)


def measure(url: str, script: Path, args: argparse.Namespace, server: str) -> WrkResult:
    """One wrk run, with the CPU time the processes whose command line holds `server` spent
    per request in it (see `cpu_seconds`)."""
    before = cpu_seconds(server)
    result = run_wrk(url, script, args.connections, args.duration)
    spent = cpu_seconds(server) - before
    result.cpu_us = spent / result.requests * 1e6 if result.requests else 0.0
    return result


def best(current: WrkResult | None, new: WrkResult) -> WrkResult:
    """The faster run's figures, with the least CPU per request of the two runs."""
    if current is None:
        return new
    kept = new if new.requests_per_s > current.requests_per_s else current
    kept.cpu_us = min(current.cpu_us, new.cpu_us)
    return kept


def cpu_seconds(needle: str) -> float:
    """CPU seconds (user + system) spent so far by the processes whose command line holds
    `needle` (a gunicorn's control socket: its master and workers; a run's folder: every
    server of the run), wrk left out. The CPU a request costs the server moves less with
    other work on the machine than its rate does."""
    tick = os.sysconf("SC_CLK_TCK")
    wanted = needle.encode()
    seconds = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if wanted not in b" ".join(argv) or Path(argv[0].decode()).name == "wrk":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, UnicodeDecodeError, IndexError):
            continue  # gone meanwhile, or not ours to read
        seconds += (int(fields[11]) + int(fields[12])) / tick
    return seconds


def control_socket(tmp: Path, app: str) -> Path:
    """The control socket of the gunicorn serving `app` (in its command line, and so in its
    workers')."""
    return tmp / f"gunicorn-{app.split(':')[0]}.ctl"


def wrk_script(path: Path, token: str | None) -> Path:
    """A Lua script that sets the Authorization header (or nothing, for the bare endpoint)."""
    lines = ['wrk.method = "GET"']
    if token:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- revocation


@dataclass
class Revocation:
    latency_s: float | None  # DELETE answered -> first of STREAK consecutive 401s
    stale_after_delete: int  # 200s seen after the DELETE: a worker still trusted its copy
    polls: int


def poll_round(port: int, token: str, width: int) -> list[int]:
    """`width` concurrent GET /api/token on new connections, so several workers answer."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=width) as pool:
        futures = [pool.submit(request, port, "GET", "/api/token", token) for _ in range(width)]
        return [future.result()[0] for future in futures]


def measure_revocation(port: int, token: str, workers: int) -> Revocation:
    """Sign out on one connection, then poll with new connections until all say 401."""
    width = max(2, 2 * workers)
    # Keep every worker busy for over REVOCATION_SYNC, so each holds a recent copy of the
    # revocation list, as under load, instead of syncing at its very next request; the random
    # length puts the DELETE at a random point of the workers' sync cycle.
    warm_until = time.monotonic() + REVOCATION_SYNC * (1.2 + random.random())
    while time.monotonic() < warm_until:
        statuses = poll_round(port, token, width)
        if set(statuses) != {200}:
            raise RuntimeError(f"before the sign-out, GET /api/token answered {statuses}")
        time.sleep(0.01)
    status, body = request(port, "DELETE", "/api/token", token)
    deleted_at = time.monotonic()
    if status != 200:
        raise RuntimeError(f"DELETE /api/token answered {status}: {body}")
    streak, streak_start, stale, polls = 0, 0.0, 0, 0
    while time.monotonic() - deleted_at < REVOCATION_TIMEOUT:
        started = time.monotonic()
        statuses = poll_round(port, token, width)
        polls += len(statuses)
        unexpected = set(statuses) - {200, 401}
        if unexpected:
            raise RuntimeError(f"GET /api/token after the sign-out answered {statuses}")
        if all(s == 401 for s in statuses):
            if streak == 0:
                streak_start = started
            streak += len(statuses)
            if streak >= STREAK:
                return Revocation(max(0.0, streak_start - deleted_at), stale, polls)
        else:
            stale += statuses.count(200)
            streak = 0
        time.sleep(0.01)
    return Revocation(None, stale, polls)


# --------------------------------------------------------------------------- main


def server_parser(description: str) -> argparse.ArgumentParser:
    """The options every gunicorn + wrk benchmark takes: backends, load and rounds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--db", choices=["sqlite", "mariadb"], default="sqlite")
    parser.add_argument("--store", choices=["embedded", "redis"], default="embedded")
    parser.add_argument("--env", choices=["testing", "development"], default="testing")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--worker-class",
        choices=["sync", "gthread", "gevent"],
        default=None,
        help="gunicorn's worker class (default: gunicorn.conf.py's); threads: GUNICORN_THREADS",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating runs per endpoint; the best counts"
    )
    return parser


def parse_server_args(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> argparse.Namespace:
    """Parse, refusing a duration, connection, worker or round count below 1."""
    args = parser.parse_args(argv)
    for name in ("duration", "connections", "workers", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parse_server_args(server_parser(__doc__.splitlines()[0]), argv)


def report(
    args: argparse.Namespace,
    results: dict[str, WrkResult],
    revocations: list[Revocation],
    load_before: float,
) -> None:
    minimal, ping, token = results["minimal"], results["ping"], results["token"]
    pipeline = ping.requests_per_s / minimal.requests_per_s
    ratio = token.requests_per_s / ping.requests_per_s
    print()
    print(
        f"config: db={args.db} store={args.store} env={args.env} workers={args.workers} "
        f"worker_class={args.worker_class or configured_worker_class()} "
        f"connections={args.connections} duration={args.duration}s "
        f"wrk_threads={WRK_THREADS} cpus={os.cpu_count()} "
        "LOG_LEVEL=WARNING (per-request log line off)"
    )
    print(f"1-min load average before the run: {load_before:.2f} (other work shares these CPUs)")
    print(
        f"best of {args.rounds} runs each, alternating minimal/ping/token/minimal/...; "
        "ping and token on one server, minimal on its own beside it"
    )
    print()
    print(f"{'endpoint':<34}{'requests/s':>12}{'p99 ms':>10}{'server CPU µs':>15}")
    rows = [
        ("minimal Flask app (same envelope)", minimal),
        ("GET /api/ping (bare)", ping),
        ("GET /api/token (Bearer)", token),
    ]
    for label, result in rows:
        print(
            f"{label:<34}{result.requests_per_s:>12,.0f}{result.p99_ms:>10.2f}"
            f"{result.cpu_us:>15,.0f}"
        )
    print(f"{'ratio ping/minimal':<34}{pipeline:>12.3f}")
    print(f"{'ratio token/ping':<34}{ratio:>12.3f}")
    if ping.cpu_us and token.cpu_us:
        # The gunicorns' own CPU per request (least of the runs): it moves less than the
        # rates with what else runs on the machine, wrk included.
        print(
            f"server CPU per request, minimal/ping: {minimal.cpu_us / ping.cpu_us:.3f}, "
            f"ping/token: {ping.cpu_us / token.cpu_us:.3f}  "
            f"({minimal.cpu_us:,.0f} / {ping.cpu_us:,.0f} / {token.cpu_us:,.0f} µs)"
        )
    print()
    for label, value, goal in (
        ("ping/minimal", pipeline, GOAL_PING),
        ("token/ping", ratio, GOAL_TOKEN),
    ):
        print(f"goal {label} >= {goal:.2f}: {'met' if value >= goal else 'NOT met'} ({value:.4f})")
    print(
        f"revocation latency (DELETE answered -> first of {STREAK} consecutive 401s on new "
        f"connections; REVOCATION_SYNC {REVOCATION_SYNC:g} s):"
    )
    for number, revocation in enumerate(revocations, start=1):
        if revocation.latency_s is None:
            outcome = f"NOT effective within {REVOCATION_TIMEOUT:.0f} s"
        else:
            outcome = f"{revocation.latency_s * 1000:5.0f} ms"
        print(
            f"  trial {number}: {outcome}  ({revocation.stale_after_delete} of "
            f"{revocation.polls} answers after the DELETE still 200)"
        )
    latencies = [r.latency_s for r in revocations if r.latency_s is not None]
    if len(latencies) < len(revocations):
        print("  worst: NOT effective: a worker kept accepting a signed-out token")
    else:
        print(f"  worst: {max(latencies) * 1000:.0f} ms")


def benchmark(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> None:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk not found: apt-get install -y wrk")
    load_before = os.getloadavg()[0]
    servers = load_servers()
    stack.callback(servers._stop_all)  # any server left half-started by an interruption
    print(f"preparing: db={args.db} store={args.store} in {tmp}", flush=True)
    environment = prepare(args, tmp, stack, servers)
    port = servers.free_port()
    base = stack.enter_context(
        gunicorn(environment, args.workers, tmp, port, worker_class=args.worker_class)
    )
    minimal_base = stack.enter_context(
        gunicorn(
            environment,
            args.workers,
            tmp,
            servers.free_port(),
            MINIMAL_APP,
            worker_class=args.worker_class,
        )
    )
    create_student(environment)
    token = get_token(port)
    check_token_answer(port, token)
    print(f"server up at {base}: /api/token answers 200 with stuid {STUID}", flush=True)
    print(f"minimal app up at {minimal_base}", flush=True)

    minimal_server = str(control_socket(tmp, MINIMAL_APP))
    server = str(control_socket(tmp, BERATER_APP))
    endpoints = {
        "minimal": (
            f"{minimal_base}/api/ping",
            wrk_script(tmp / "minimal.lua", None),
            minimal_server,
        ),
        "ping": (f"{base}/api/ping", wrk_script(tmp / "ping.lua", None), server),
        "token": (f"{base}/api/token", wrk_script(tmp / "token.lua", token), server),
    }
    results: dict[str, WrkResult] = {}
    for attempt in range(1, args.rounds + 1):
        for name, (url, script, serving) in endpoints.items():
            result = measure(url, script, args, serving)
            problem = result.problem()
            print(
                f"  run {attempt} {name:<7}: {result.requests_per_s:>9,.0f} req/s  "
                f"p99 {result.p99_ms:6.2f} ms  server CPU {result.cpu_us:4.0f} µs/req"
                f"{'  !! ' + problem if problem else ''}",
                flush=True,
            )
            if result.non_2xx:
                raise RuntimeError(f"{name}: {problem}; the figures would measure an error path")
            results[name] = best(results.get(name), result)
    check_token_answer(port, token)  # still the success path after the load
    revocations = [measure_revocation(port, token, args.workers)]
    for _ in range(REVOCATION_TRIALS - 1):
        token = get_token(port)  # issued after the last sign-out, so valid again
        check_token_answer(port, token)
        revocations.append(measure_revocation(port, token, args.workers))
    report(args, results, revocations, load_before)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(
    run_benchmark: Callable[[argparse.Namespace, Path, ExitStack], None],
    args: argparse.Namespace,
    prefix: str,
) -> int:
    """Run a benchmark in a temporary folder and always clean up: 0, 1 on failure, 130 on ^C."""
    sys.path.insert(0, str(PROJECT_ROOT))  # `berater`, for the in-process app
    os.chdir(PROJECT_ROOT)
    signal.signal(signal.SIGTERM, _terminate)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    stack = ExitStack()
    try:
        run_benchmark(args, tmp, stack)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        # No second Ctrl-C halfway through stopping servers.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            stack.close()  # gunicorn first (entered last), then the servers
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(benchmark, parse_args(argv), "berater-bench-")


if __name__ == "__main__":
    sys.exit(main())
