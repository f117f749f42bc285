"""Throwaway MariaDB, Redis and nginx servers for the test suite, and the service under
gunicorn.

Each server lives in its own temporary directory, listens on 127.0.0.1 on a free port and is
stopped by ``Server.stop()`` (or, as a safety net, at interpreter exit). No system service, no
system config file (``--no-defaults``; nginx gets a main file of its own) and no network
beyond loopback are used.

    db = start_mariadb(tmp_path / "db")      # db.url, db.admin_url, db.port
    store = start_redis(tmp_path / "redis")  # store.url, store.pause(), store.resume()
    proxy = start_nginx(tmp_path / "nginx", site, port)  # proxy.reload(site), proxy.access_log
    with Gunicorn(env, tmp_path / "gunicorn.log") as service:  # service.port, .workers()
        ...
    with serving(base_settings, tmp_path / "gunicorn.log", LOG_LEVEL="DEBUG") as service:
        ...  # a test run's settings in the environment; the log's tail shown on a failure
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

START_TIMEOUT = 30.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent
_RUNNING: set[Server] = set()


def _find_binary(names: list[str], package: str) -> str:
    """Locate a server binary on PATH or in the sbin directories (often not on a user's PATH)."""
    for name in names:
        for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/local/sbin/{name}"):
            if candidate and os.access(candidate, os.X_OK):
                return candidate
    raise RuntimeError(
        f"{names[0]} not found: install the Debian package '{package}' "
        f"(apt-get install -y {package}); scripts/test.sh does this for you"
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    """A server process on 127.0.0.1:``port``; ``url`` is what the app is configured with."""

    name = "server"

    def __init__(self, base_dir: Path, argv: list[str], port: int, url: str) -> None:
        self.base_dir = base_dir
        self.argv = argv
        self.port = port
        self.url = url
        self.admin_url = url
        self.log_path = base_dir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process and wait until it answers (raises RuntimeError with the log tail)."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _RUNNING.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                error = RuntimeError(f"exited with code {self.proc.returncode}")
                break
            try:
                self._ping()
                return
            except Exception as exc:  # not up yet
                error = exc
                time.sleep(0.1)
        self._kill()
        raise RuntimeError(
            f"{self.name} on port {self.port} did not start within {START_TIMEOUT:.0f}s "
            f"({error!r}); tail of {self.log_path}:\n{_log_tail(self.log_path)}"
        )

    def stop(self) -> None:
        """Shut the server down cleanly (falling back to SIGTERM, then SIGKILL) and wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.resume()
            try:
                self._shutdown()
                self.proc.wait(timeout=30)
            except Exception:
                self._kill()
        self.proc = None
        _RUNNING.discard(self)

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data directory."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP the process: connections are still accepted by the kernel but never answered,
        so clients see timeouts, as with an unresponsive server. Undo with ``resume()``."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused process (harmless when it is not paused)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def _kill(self) -> None:
        assert self.proc is not None
        self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _ping(self) -> None:
        raise NotImplementedError

    def _shutdown(self) -> None:
        assert self.proc is not None
        self.proc.terminate()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


class MariaDBServer(Server):
    """mariadbd with its own datadir, socket and pid file; ``admin_url`` connects as root."""

    name = "mariadb"

    def __init__(self, base_dir: Path, argv: list[str], port: int, socket_path: Path) -> None:
        self.password = secrets.token_hex(12)
        url = (
            f"mysql+pymysql://berater:{self.password}@127.0.0.1:{port}/berater_test?charset=utf8mb4"
        )
        super().__init__(base_dir, argv, port, url)
        self.socket_path = socket_path
        self.admin_url = f"mysql+pymysql://root@127.0.0.1:{port}/?charset=utf8mb4"
        self.admin = _find_binary(["mariadb-admin", "mysqladmin"], "mariadb-client")

    def _connect_root(self):  # type: ignore[no-untyped-def]
        import pymysql

        return pymysql.connect(
            unix_socket=str(self.socket_path), user="root", connect_timeout=2, autocommit=True
        )

    def _ping(self) -> None:
        # Probe the socket ourselves first: pymysql leaks its AF_UNIX socket when connect() fails,
        # which pytest's filterwarnings=error turns into a test failure.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            probe.connect(str(self.socket_path))
        self._connect_root().close()

    def _shutdown(self) -> None:
        cmd = [self.admin, "--no-defaults", f"--socket={self.socket_path}", "-uroot", "shutdown"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)

    def setup(self) -> None:
        """Create ``berater_test``, the ``berater`` user and a TCP root login (idempotent)."""
        statements = [
            "CREATE DATABASE IF NOT EXISTS berater_test "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            f"CREATE USER IF NOT EXISTS 'berater'@'127.0.0.1' IDENTIFIED BY '{self.password}'",
            "GRANT ALL PRIVILEGES ON `berater_test`.* TO 'berater'@'127.0.0.1'",
            "GRANT ALL PRIVILEGES ON `berater\\_test\\_%`.* TO 'berater'@'127.0.0.1'",
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'",
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
            "FLUSH PRIVILEGES",
        ]
        conn = self._connect_root()
        try:
            with conn.cursor() as cur:
                for sql in statements:
                    cur.execute(sql)
        finally:
            conn.close()


class RedisServer(Server):
    """redis-server without persistence; stopped with SIGTERM (nothing to save)."""

    name = "redis"

    def _ping(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()


def start_mariadb(base_dir: Path) -> MariaDBServer:
    """Initialise a datadir under ``base_dir`` and start mariadbd on a free loopback port."""
    mariadbd = _find_binary(["mariadbd", "mysqld"], "mariadb-server")
    install_db = _find_binary(["mariadb-install-db", "mysql_install_db"], "mariadb-server")
    base_dir = Path(base_dir).resolve()
    data_dir, tmp_dir = base_dir / "data", base_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    socket_path = base_dir / "mariadb.sock"
    if len(str(socket_path)) > 100:  # AF_UNIX paths are limited to 108 bytes
        socket_path = Path(tempfile.mkdtemp(prefix="mdb")) / "mariadb.sock"
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    log_path = base_dir / "mariadb.log"
    with open(log_path, "ab") as log:
        result = subprocess.run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={data_dir}",
                "--skip-test-db",
                "--auth-root-authentication-method=normal",
                "--skip-name-resolve",
                *as_root,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=180,
        )
    if result.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed; tail of {log_path}:\n{_log_tail(log_path)}")
    port = free_port()
    argv = [
        mariadbd,
        "--no-defaults",  # must come first: ignore /etc/mysql and ~/.my.cnf
        f"--datadir={data_dir}",
        f"--tmpdir={tmp_dir}",
        f"--socket={socket_path}",
        f"--pid-file={base_dir / 'mariadb.pid'}",
        "--bind-address=127.0.0.1",
        f"--port={port}",
        "--skip-name-resolve",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
        "--innodb-buffer-pool-size=64M",
        "--innodb-log-file-size=16M",
        "--innodb-use-native-aio=0",  # io_setup() may fail inside containers
        "--innodb-flush-log-at-trx-commit=2",
        "--skip-log-bin",
        *as_root,
    ]
    server = MariaDBServer(base_dir, argv, port, socket_path)
    server.start()
    try:
        server.setup()
    except Exception:
        server.stop()
        raise
    return server


def start_redis(base_dir: Path) -> RedisServer:
    """Start redis-server on a free loopback port, no RDB/AOF persistence, dir ``base_dir``."""
    binary = _find_binary(["redis-server"], "redis-server")
    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly"]
    argv += ["no", "--dir", str(base_dir), "--daemonize", "no", "--logfile", ""]
    server = RedisServer(base_dir, argv, port, f"redis://127.0.0.1:{port}/0")
    server.start()
    return server


class NginxServer(Server):
    """Debian's nginx in the foreground, with its own prefix, pid file, logs and temporary
    folders under ``base_dir`` and the image's main file (``NGINX_MAIN``) around ``site``."""

    name = "nginx"

    def __init__(self, base_dir: Path, argv: list[str], port: int, site_path: Path) -> None:
        super().__init__(base_dir, argv, port, f"http://127.0.0.1:{port}")
        self.site_path = site_path
        self.error_log = base_dir / "error.log"
        self.default_access_log = base_dir / "http-access.log"

    def _ping(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2):
            pass

    def check(self) -> None:
        """`nginx -t` on the files as they are now (raises RuntimeError with its output)."""
        result = subprocess.run(
            [*self.argv, "-t"], capture_output=True, text=True, timeout=30, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{result.stderr}")

    def reload(self, site: str) -> None:
        """Write a new site, check it, and reload as `nginx -s reload` does (SIGHUP): returns
        once a worker started on the new configuration and the old ones have gone (until
        then an old worker may still accept a connection and serve it the old way)."""
        assert self.proc is not None
        self.site_path.write_text(site)
        self.check()
        master = psutil.Process(self.proc.pid)
        before = {child.pid for child in master.children()}
        os.kill(self.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + START_TIMEOUT
        while (now := {child.pid for child in master.children()}) - before == set() or (
            now & before
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not reload:\n{_log_tail(self.error_log)}")
            time.sleep(0.05)


NGINX_MAIN = """\
# What the nginx image's nginx.conf sets around conf.d/*.conf, with this folder's paths.
{user}worker_processes 1;
daemon off;
pid {base}/nginx.pid;
error_log {base}/error.log notice;
events {{
    worker_connections 256;
}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path {base}/temp/body;
    proxy_temp_path {base}/temp/proxy;
    fastcgi_temp_path {base}/temp/fastcgi;
    uwsgi_temp_path {base}/temp/uwsgi;
    scgi_temp_path {base}/temp/scgi;
    access_log {base}/http-access.log;
    sendfile on;
    keepalive_timeout 65;
    include {site};
}}
"""


def start_nginx(base_dir: Path, site: str, port: int) -> NginxServer:
    """Start nginx with `site` (an http-level file, as conf.d/ holds) as the current user;
    `port` is one it listens on, probed to know it is up."""
    binary = _find_binary(["nginx"], "nginx")
    base_dir = Path(base_dir).resolve()
    (base_dir / "temp").mkdir(parents=True, exist_ok=True)
    site_path = base_dir / "site.conf"
    site_path.write_text(site)
    # As root, nginx would run its workers as `nobody`, who cannot read the test's folders.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    main = base_dir / "nginx.conf"
    main.write_text(NGINX_MAIN.format(user=user, base=base_dir, site=site_path))
    argv = [binary, "-p", f"{base_dir}/", "-c", str(main), "-e", str(base_dir / "error.log")]
    server = NginxServer(base_dir, argv, port, site_path)
    server.check()
    server.start()
    return server


# gunicorn.conf.py's gthread workers accept many connections each; with this in the master's
# environment a worker holding one connection (a request it has not finished) takes no other,
# so a test reaches a chosen worker as with one connection per sync worker. The class, the
# threads and the rest of gunicorn.conf.py stay as configured.
ONE_CONNECTION_PER_WORKER = {"GUNICORN_CMD_ARGS": "--worker-connections 1"}


class Gunicorn:
    """The service under the real gunicorn with the project's gunicorn.conf.py.

    ``env`` is the whole environment of the master (settings included); GUNICORN_BIND and
    WEB_CONCURRENCY are set here. The master runs in a session of its own, so ``stop()`` can
    take it and every worker down whatever state they are in.
    """

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.count = workers
        self.env = {**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"}
        self.env["WEB_CONCURRENCY"] = str(workers)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the master and wait until /api/ping answers and every worker is up."""
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [gunicorn, "-c", "gunicorn.conf.py", "run:app"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if len(self.workers()) == self.count and self._pings():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"gunicorn did not serve within {START_TIMEOUT:.0f}s; tail of {self.log_path}:\n"
            + _log_tail(self.log_path)
        )

    def workers(self) -> list[int]:
        """The pids of the master's live workers (not the embedded store it may have started)."""
        import psutil

        if self.proc is None:
            return []
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        pids = []
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                if "redis" not in child.name() and child.status() != psutil.STATUS_ZOMBIE:
                    pids.append(child.pid)
        return sorted(pids)

    def holder(self, local: tuple[str, int], timeout: float = 10.0) -> int:
        """The worker that accepted the connection whose client end is ``local``."""
        import psutil

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in self.workers():
                with contextlib.suppress(psutil.NoSuchProcess):
                    for conn in psutil.Process(pid).net_connections(kind="tcp"):
                        if conn.raddr and (conn.raddr.ip, conn.raddr.port) == local:
                            return pid
            time.sleep(0.02)
        raise RuntimeError(f"no worker accepted the connection from {local}")

    def on_each_worker(self, head: str) -> dict[int, tuple[int, bytes]]:
        """Send the request `head` (its request line and headers, without the blank line
        that ends them) once to every worker: {worker pid: (status, body)}. Each worker takes
        one connection at a time (ONE_CONNECTION_PER_WORKER), so while an unfinished request
        holds one worker the next connection goes to another."""
        held: list[http.client.HTTPConnection] = []
        answers: dict[int, tuple[int, bytes]] = {}
        try:
            holders = []
            for _ in range(self.count):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                held.append(conn)
                conn.connect()
                assert conn.sock is not None
                conn.sock.sendall(head.encode())  # no blank line yet: this worker is held
                holders.append(self.holder(conn.sock.getsockname()))
            for conn, pid in zip(held, holders, strict=True):
                assert conn.sock is not None
                conn.sock.sendall(b"Connection: close\r\n\r\n")
                response = http.client.HTTPResponse(conn.sock, method="GET")
                response.begin()
                answers[pid] = (response.status, response.read())
                response.close()
        finally:
            for conn in held:
                conn.close()
        return answers

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL the whole session when it does not go in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def _pings(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/api/ping")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def __enter__(self) -> Gunicorn:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def serving(
    settings: dict[str, Any], log_path: Path, workers: int = 2, **overrides: str
) -> Iterator[Gunicorn]:
    """gunicorn on a test run's settings (the `base_settings` fixture: its database, store
    and stand-ins) and `overrides`, LOG_LEVEL INFO unless they say otherwise; the tail of
    its log is printed when the test fails inside."""
    from berater.settings import ENV_KEYS

    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update({k: v for k, v in settings.items() if isinstance(v, str)})
    env.update({"LOG_LEVEL": "INFO", **overrides})
    gunicorn = Gunicorn(env, log_path, workers)
    gunicorn.start()
    try:
        yield gunicorn
    except BaseException:
        print(f"---- gunicorn's log ----\n{gunicorn.log()[-5000:]}")
        raise
    finally:
        gunicorn.stop()


def _stop_all() -> None:
    """atexit safety net: stop every server a test forgot to stop."""
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(_stop_all)
