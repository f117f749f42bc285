"""Benchmark: what one `GET /api/ping` costs the CPU in the app and in the minimal app, counted
rather than timed.

Under gunicorn a worker's caches are cold at each request: between two requests the kernel's
network code, gunicorn's parser and wrk's own work pass through the same cores. A request
then costs about four times what a warm loop of it costs, and what decides the cost is how
much memory it touches, not only how many instructions it runs. wrk's figures move by a few
per cent from run to run; this counts the same thing without the noise:

* each target (bench/minimal_app.py, and berater's app with METRICS on, as under gunicorn)
  answers N requests in process, straight through its WSGI callable;
* before each request a copy of --evict-bytes (default 3 MB, more than a core's L2) pushes
  the request's memory out of the caches, as the work between two requests does;
* valgrind's callgrind counts, for the requests only (the eviction is left out), the
  instructions and the simulated misses of the first-level caches and of a last level the
  size of one core's L2 (--LL), and prints them per request, with an estimate of cycles
  (instructions + 14 a first-level miss + 60 a last-level miss, this kind of machine's
  latencies in cycles) and its ratio between the targets.

    .venv/bin/python bench/pipeline.py                 # 100 requests a target
    .venv/bin/python bench/pipeline.py --requests 300

Needs `valgrind` (Debian package `valgrind`); the targets run side by side, about a minute.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("minimal", "ping")
EVENTS = ("Ir", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")
L1_MISS_CYCLES = 14
LL_MISS_CYCLES = 60
LAST_LEVEL = "2097152,16,64"  # one core's L2 here: 2 MiB, 16-way, 64-byte lines
WARM_UP = 200


def build(target: str, instance: Path) -> Any:
    """The target's WSGI callable; berater's in the testing environment."""
    if target == "minimal":
        sys.path.insert(0, str(PROJECT_ROOT / "bench"))
        import minimal_app

        return minimal_app.app
    sys.path.insert(0, str(PROJECT_ROOT))
    from berater import create_app

    # LOG_LEVEL as bench/token_check.py runs the server: the access line is not counted.
    settings = {"BERATER_ENV": "testing", "INSTANCE_PATH": str(instance), "LOG_LEVEL": "WARNING"}
    return create_app(settings)


def environ(host: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/ping",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "HTTP_USER_AGENT": "bench",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def serve(target: str, requests: int, evict_bytes: int) -> None:
    """The child under valgrind: warm up, then answer `requests` requests, each one inside
    `functools.reduce` (the only place callgrind counts) after evicting the caches."""
    with tempfile.TemporaryDirectory() as tmp:
        app = build(target, Path(tmp))
        host = "127.0.0.1"
        statuses: list[str] = []

        def start(status: str, headers: Any, exc_info: Any = None) -> None:
            statuses.append(status)

        def answer(done: int, env: dict[str, Any]) -> int:
            body = app(env, start)
            b"".join(body)
            close = getattr(body, "close", None)  # WSGI: only an iterable that has one
            if close is not None:
                close()
            return done + 1

        for _ in range(WARM_UP):
            answer(0, environ(host))
        source, target_buffer = bytearray(evict_bytes), bytearray(evict_bytes)
        for _ in range(requests):
            target_buffer[:] = source
            functools.reduce(answer, (environ(host),), 0)
        if set(statuses) != {"200 OK"}:
            raise SystemExit(f"{target}: answers {sorted(set(statuses))}")


def totals(path: Path) -> dict[str, int]:
    names: list[str] = []
    values: list[int] = []
    for line in path.read_text().splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith(("summary:", "totals:")):
            values = [int(v) for v in line.split()[1:]]
    return dict(zip(names, values, strict=True))


def count(target: str, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    out = folder / f"callgrind.{target}"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder / f"metrics-{target}")}
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir()
    command = [
        "valgrind",
        "--tool=callgrind",
        "--cache-sim=yes",
        f"--LL={LAST_LEVEL}",
        "--toggle-collect=functools_reduce",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--serve",
        target,
        "--requests",
        str(args.requests),
        "--evict-bytes",
        str(args.evict_bytes),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{target} under valgrind failed:\n{done.stderr[-3000:]}")
    counted = totals(out)
    per_request = {name: counted[name] / args.requests for name in EVENTS}
    per_request["cycles"] = (
        per_request["Ir"]
        + L1_MISS_CYCLES * (per_request["I1mr"] + per_request["D1mr"] + per_request["D1mw"])
        + LL_MISS_CYCLES * (per_request["ILmr"] + per_request["DLmr"] + per_request["DLmw"])
    )
    return per_request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--evict-bytes", type=int, default=3_000_000)
    parser.add_argument("--serve", choices=TARGETS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    if args.serve:
        serve(args.serve, args.requests, args.evict_bytes)
        return 0
    if subprocess.run(["which", "valgrind"], capture_output=True).returncode != 0:
        raise SystemExit("valgrind not found: apt-get install -y valgrind")
    with (
        tempfile.TemporaryDirectory(prefix="berater-bench-pipeline-") as tmp,
        concurrent.futures.ThreadPoolExecutor(len(TARGETS)) as pool,
    ):
        runs = {target: pool.submit(count, target, args, Path(tmp)) for target in TARGETS}
        results = {target: run.result() for target, run in runs.items()}
    print(
        f"per request, caches evicted before each ({args.evict_bytes:,} bytes copied), "
        f"{args.requests} requests a target; last level simulated as {LAST_LEVEL}"
    )
    print(f"{'target':<10}" + "".join(f"{name:>10}" for name in (*EVENTS, "cycles")))
    for target, figures in results.items():
        row = "".join(f"{figures[name]:>10,.0f}" for name in (*EVENTS, "cycles"))
        print(f"{target:<10}{row}")
    minimal, ping = results["minimal"]["cycles"], results["ping"]["cycles"]
    extra = ping - minimal
    than = f"{extra:,.0f} more" if extra >= 0 else f"{-extra:,.0f} fewer"
    print(f"estimated cycles, minimal / ping: {minimal / ping:.3f} (ping: {than})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
