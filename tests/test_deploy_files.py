"""The deployment files: .env.example, docker-compose.yaml, Dockerfile, supervisord.conf,
wait-for-it.sh and deploy/entrypoint.sh. No Docker engine here, so each file is parsed,
cross-checked against the others and the app, and the scripts are run for real on loopback
(tests/test_stack.py runs them all together; tests/test_compose.py checks compose against its
specification)."""

from __future__ import annotations

import ast
import configparser
import json
import os
import re
import runpy
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from dotenv import dotenv_values
from flask import Flask
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from berater.ext.crypto import new_key
from berater.settings import (
    ENV_KEYS,
    SETTINGS,
    ConfigError,
    database_server,
    default,
    load_config,
    setting,
)

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
SUPERVISORD = ROOT / "supervisord.conf"
WAIT_FOR_IT = ROOT / "wait-for-it.sh"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
NGINX_SITE = ROOT / "deploy" / "nginx" / "berater.conf"

SECRETS = {row.name for row in SETTINGS if row.required} | {"APP_TOKENS", "WECHAT_AES_KEY"}
SECRETS |= {"MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD"}
COMPOSE_KEYS = ("MARIADB_DATABASE", "MARIADB_USER", "MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD")
RANDOM_LOOKING = re.compile(r"[A-Za-z0-9+/=_-]{20,}")
COMPOSE_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


# --- helpers ---


def env_example() -> dict[str, str | None]:
    return dotenv_values(ENV_EXAMPLE)


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def supervisord() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(SUPERVISORD.read_text())
    return parser


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """[(INSTRUCTION, arguments)] per stage, continuation lines joined, comments dropped."""
    stages: list[list[tuple[str, str]]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.partition(" ")
        pending = ""
        if word.upper() == "FROM":
            stages.append([])
        stages[-1].append((word.upper(), rest.strip()))
    return stages


def final_stage(instruction: str) -> list[str]:
    return [rest for word, rest in dockerfile_stages()[-1] if word == instruction]


def dockerfile_env() -> dict[str, str]:
    return dict(item.split("=", 1) for rest in final_stage("ENV") for item in shlex.split(rest))


def copied_files() -> dict[str, str]:
    """Repo path (or pattern) -> absolute path in the image, for the final stage's COPYs."""
    workdir = final_stage("WORKDIR")[-1]
    copied = {}
    for rest in final_stage("COPY"):
        args = shlex.split(rest)
        if any(arg.startswith("--from") for arg in args):
            continue
        *sources, dest = [arg for arg in args if not arg.startswith("--")]
        for source in sources:
            name = source.rstrip("/")
            target = dest if dest.startswith("/") else f"{workdir}/{dest.removeprefix('./')}"
            if (ROOT / name).is_dir():  # COPY dir/ dest/ copies the folder's contents
                copied[name] = target.rstrip("/")
            else:
                copied[name] = f"{target.rstrip('/')}/{Path(name).name}"
    return copied


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # the kernel completes handshakes without accept()
        yield sock.getsockname()[1]


def wait_for_it(
    *args: str, method: str | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if method:
        env["WAIT_FOR_IT_METHOD"] = method
    return subprocess.run(
        [str(WAIT_FOR_IT), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


# --- .env.example ---


def test_env_example_lists_every_setting_the_app_reads() -> None:
    text = ENV_EXAMPLE.read_text()
    for key in (*ENV_KEYS, *COMPOSE_KEYS, "GUNICORN_BIND", "WEB_CONCURRENCY"):
        assert re.search(rf"^{key}=", text, re.MULTILINE), f"{key}= missing from .env.example"


def test_env_example_explains_each_setting_in_a_comment_above_it() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[A-Z_][A-Z0-9_]*=", line):
            assert lines[number - 1].startswith("# "), f"no comment above {line!r}"
    assert "# --- Core ---" in lines and "# --- WeChat ---" in lines


def test_env_example_lists_every_variable_compose_interpolates() -> None:
    used = set(COMPOSE_VAR.findall(COMPOSE.read_text()))
    assert used, "the compose file should take its secrets from .env"
    assert used <= set(env_example())


def test_env_example_ships_no_secret() -> None:
    values = env_example()
    for key in SECRETS:
        assert values[key] == "", f"{key} must be empty in .env.example"
    for key, value in values.items():
        assert not RANDOM_LOOKING.search(value or ""), f"{key} looks like a real secret"
    # The filled-in settings are the production defaults, so copying them changes nothing.
    for key in ENV_KEYS:
        if values[key]:
            parsed = setting(key).parse(values[key])
            assert parsed == default(key, "production"), f"{key} differs from production's"


def test_env_example_starts_production_once_the_blanks_are_filled() -> None:
    values = {key: value or "" for key, value in env_example().items()}
    with pytest.raises(ConfigError):
        load_config(environ=values)  # as shipped: production refuses the empty secrets
    values |= {
        "SECRET_KEY": secrets.token_urlsafe(32),
        "CRYPTO_KEYS": f"{new_key()},{new_key()}",
        "APP_TOKENS": f"face={secrets.token_urlsafe(32)}",
        "WECHAT_APPID": f"wx{secrets.token_hex(8)}",
        "WECHAT_SECRET": secrets.token_hex(16),
        "WECHAT_TOKEN": secrets.token_urlsafe(16),
        "DATABASE_URL": "mysql+pymysql://berater:pw@mariadb:3306/berater?charset=utf8mb4",
        "SMS_ACCESS_KEY": "LTAI5tAbCdEfGhIjKlMnOp",
        "SMS_ACCESS_SECRET": secrets.token_hex(15),
        "SMS_SIGN_NAME": "某某大学招生办",
        "SMS_TEMPLATE_CODE": "SMS_123456789",
        "SERVICE_BASE_URL": "https://berater.example.edu.cn",
    }
    settings = load_config(environ=values)
    assert settings["BERATER_ENV"] == "production"
    assert settings["ENABLE_TEST_TOKEN"] is False
    assert len(settings["CRYPTO_KEYS"]) == 2
    assert set(settings["APP_TOKENS"]) == {"face"}


# --- docker-compose.yaml ---


def test_compose_publishes_only_nginx() -> None:
    services = compose()["services"]
    assert set(services) == {"mariadb", "redis", "berater", "nginx"}
    for name in ("mariadb", "redis", "berater"):
        assert "ports" not in services[name], name
    assert services["nginx"]["ports"] == ["80:80", "443:443"]
    assert services["nginx"]["depends_on"] == {"berater": {"condition": "service_healthy"}}


def test_nginx_gets_the_site_and_the_folders_it_names() -> None:
    """compose mounts the site where the image's nginx.conf includes it, read-only, and the
    certificate and verification folders where the site looks for them."""
    mounts = {}
    for volume in compose()["services"]["nginx"]["volumes"]:
        source, target, mode = volume.split(":")
        assert mode == "ro", volume
        mounts[target] = ROOT / source
    assert mounts["/etc/nginx/conf.d/default.conf"] == NGINX_SITE
    site = NGINX_SITE.read_text()
    for target, folder in mounts.items():
        if target.startswith("/etc/nginx/conf.d/"):
            continue
        assert folder.is_dir() and (folder / "README.md").is_file(), folder
        assert re.search(rf"\s{re.escape(target)}[/;]", site), f"the site never reads {target}"
    assert re.search(r"ssl_certificate /etc/nginx/certs/fullchain\.pem;", site)
    assert re.search(r"ssl_certificate_key /etc/nginx/certs/privkey\.pem;", site)
    # What is mounted there is per installation: never committed, never in the image.
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "/deploy/certs/*" in ignored and "/deploy/wechat-verify/*" in ignored
    assert "deploy/certs" in (ROOT / ".dockerignore").read_text().split()


def test_app_starts_after_mariadb_and_redis_are_healthy() -> None:
    services = compose()["services"]
    depends = services["berater"]["depends_on"]
    assert depends == {
        "mariadb": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    mariadb_check = services["mariadb"]["healthcheck"]["test"]
    assert mariadb_check[1:] == ["healthcheck.sh", "--connect", "--innodb_initialized"]
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]


def test_compose_keeps_data_in_named_volumes_and_warns_against_down_v() -> None:
    config = compose()
    services = config["services"]
    assert "mariadb-data:/var/lib/mysql" in services["mariadb"]["volumes"]
    assert "redis-data:/data" in services["redis"]["volumes"]
    assert set(config["volumes"]) == {"mariadb-data", "redis-data"}
    assert services["redis"]["command"][-2:] == ["--appendonly", "yes"]
    assert "--character-set-server=utf8mb4" in services["mariadb"]["command"]
    assert "--collation-server=utf8mb4_unicode_ci" in services["mariadb"]["command"]
    assert re.search(r"NEVER run `docker compose down -v`", COMPOSE.read_text())


def test_compose_requires_the_database_passwords() -> None:
    environment = compose()["services"]["mariadb"]["environment"]
    for key in COMPOSE_KEYS:
        assert environment[key].startswith(f"${{{key}:?"), f"{key} should be required"
    assert compose()["services"]["berater"]["env_file"] == ".env"
    assert "env_file" not in compose()["services"]["mariadb"]  # app secrets stay out


def test_app_environment_points_at_the_compose_services() -> None:
    services = compose()["services"]
    environment = services["berater"]["environment"]
    for key in environment:
        assert key in ENV_KEYS, f"{key} is not a setting (berater/settings.py)"
    fake = {"MARIADB_USER": "berater", "MARIADB_PASSWORD": "pw", "MARIADB_DATABASE": "berater"}
    database_url = COMPOSE_VAR.sub(lambda m: fake[m[1]], environment["DATABASE_URL"])
    url = make_url(database_url)
    assert url.drivername == "mysql+pymysql"
    assert url.host == "mariadb" and url.port == 3306
    # What the entrypoint waits for before the migrations.
    assert database_server({"DATABASE_URL": database_url}) == "mariadb:3306"
    assert (url.username, url.password, url.database) == ("berater", "pw", "berater")
    assert url.query["charset"] == "utf8mb4"
    redis_url = make_url(environment["REDIS_URL"])
    assert redis_url.host in services and redis_url.port == 6379
    assert environment["BERATER_ENV"] == "production"


def test_shutdown_lets_gunicorn_finish_requests_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR for the server it configures; not for
    # the tests that run after this one in this process.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    grace = compose()["services"]["berater"]["stop_grace_period"]
    compose_seconds = int(grace.removesuffix("s"))
    supervisord_seconds = supervisord().getint("program:berater", "stopwaitsecs")
    gunicorn_seconds = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["graceful_timeout"]
    assert compose_seconds > supervisord_seconds > gunicorn_seconds


# After loading the app a worker frees its garbage, then freezes what is left: the
# collector's full passes skip the app's own objects from then on.
WORKER_INIT = """
import gc, os, runpy, sys
settings = runpy.run_path(os.path.join(sys.argv[1], "gunicorn.conf.py"))
cycle = []
cycle.append(cycle)
alive = [object() for _ in range(1000)]
gc.collect(); gc.garbage.clear()
cycle = None
settings["post_worker_init"](None)
print(gc.get_freeze_count() >= len(alive), gc.get_count()[0] < 100, len(gc.garbage))
"""


def test_a_worker_freezes_what_it_loaded_once_the_app_is_loaded(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER_INIT, str(ROOT)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "0"]


# --- supervisord.conf ---


def test_supervisord_stops_gunicorn_as_a_group_and_logs_to_the_container() -> None:
    config = supervisord()
    main = config["supervisord"]
    assert main.getboolean("nodaemon")
    assert main["logfile"] == "/dev/null" and main["pidfile"].startswith("/tmp/")
    program = config["program:berater"]
    assert program.getboolean("stopasgroup") and program.getboolean("killasgroup")
    assert program["stopsignal"] == "TERM" and program.getboolean("autorestart")
    assert program["stdout_logfile"] == "/dev/stdout" and program["stderr_logfile"] == "/dev/stderr"
    assert program["stdout_logfile_maxbytes"] == program["stderr_logfile_maxbytes"] == "0"
    assert "user" not in program and "user" not in main


def test_supervisord_runs_the_image_gunicorn_with_the_repo_config() -> None:
    program = supervisord()["program:berater"]
    argv = shlex.split(program["command"])
    venv = next(r.split()[-1] for r in final_stage("COPY") if r.startswith("--from"))
    assert argv[0] == f"{venv}/bin/gunicorn"
    assert argv[argv.index("-c") + 1] == "gunicorn.conf.py" and argv[-1] == "run:app"
    assert (ROOT / "gunicorn.conf.py").is_file()
    assert copied_files()["gunicorn.conf.py"] == f"{program['directory']}/gunicorn.conf.py"
    assert copied_files()["run.py"] == f"{program['directory']}/run.py"


# --- wait-for-it.sh ---


# bash's /dev/tcp (with coreutils' timeout) and python3 are on every Debian machine the image
# and CI use; the nc branch is the same loop with another probe and needs netcat installed.
METHODS = ["devtcp", "python"]


@pytest.mark.parametrize("method", METHODS)
def test_wait_for_it_runs_the_command_when_the_port_accepts(
    listening_port: int, method: str
) -> None:
    result = wait_for_it(
        f"127.0.0.1:{listening_port}", "-t", "5", "--", "echo", "ok", method=method
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert "is available" in result.stderr


@pytest.mark.parametrize("method", METHODS)
def test_wait_for_it_gives_up_on_a_closed_port(method: str) -> None:
    started = time.monotonic()
    result = wait_for_it(
        f"127.0.0.1:{closed_port()}", "-t", "1", "--", "echo", "ran", method=method
    )
    assert result.returncode == 1
    assert time.monotonic() - started < 3
    assert result.stdout == ""  # the command is not run after a timeout
    assert "timeout" in result.stderr


def test_wait_for_it_waits_for_a_port_that_opens_later() -> None:
    port = closed_port()
    server = socket.socket()

    def open_later() -> None:
        time.sleep(1.5)
        server.bind(("127.0.0.1", port))
        server.listen(1)

    opener = threading.Thread(target=open_later)
    opener.start()
    try:
        started = time.monotonic()
        result = wait_for_it(f"127.0.0.1:{port}", "-t", "10", "--", "echo", "ok")
        opener.join()
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert time.monotonic() - started >= 1.4


def test_wait_for_it_passes_arguments_and_exit_status_through(listening_port: int) -> None:
    target = f"127.0.0.1:{listening_port}"
    result = wait_for_it(target, "-q", "--", "printf", "%s|", "a b", "c")
    assert (result.returncode, result.stdout, result.stderr) == (0, "a b|c|", "")
    assert wait_for_it(target, "-q", "--", "sh", "-c", "exit 7").returncode == 7


@pytest.mark.parametrize("target", ["localhost", ":80", "db:0", "db:99999", "db:x"])
def test_wait_for_it_rejects_a_malformed_target(target: str) -> None:
    result = wait_for_it(target, "-t", "1")
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_wait_for_it_is_executable_and_valid_bash() -> None:
    assert os.access(WAIT_FOR_IT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(WAIT_FOR_IT)], check=False).returncode == 0
    if shutil.which("shellcheck"):
        check = subprocess.run(["shellcheck", str(WAIT_FOR_IT)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout


# --- Dockerfile ---


def test_dockerfile_copies_files_that_exist() -> None:
    for stage in dockerfile_stages():
        for word, rest in stage:
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            if word != "COPY" or "--from" in rest:
                continue
            for source in args[:-1]:
                if not any(ch in source for ch in "*?["):  # a pattern may match nothing
                    assert (ROOT / source).exists(), f"COPY {source}: not in the repo"
    copied = copied_files()
    for needed in (
        "berater",
        "migrations",
        "data",
        "run.py",
        "wait-for-it.sh",
        "deploy/entrypoint.sh",
    ):
        assert copied.get(needed) == f"/app/{needed}", f"the image lacks /app/{needed}"


def test_the_image_leaves_out_the_stand_ins_and_production_never_imports_them() -> None:
    copied = copied_files()
    assert not any(source.split("/")[0] in {"standins", "tests", "bench"} for source in copied)
    assert "standins" in (ROOT / ".dockerignore").read_text().split()
    for path in (ROOT / "berater").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "standins" for n in names), path


def test_dockerfile_runs_as_the_unprivileged_berater_user() -> None:
    user, _, group = final_stage("USER")[-1].partition(":")
    assert user not in {"root", "0"} and group not in {"root", "0"}
    assert user in {"berater", "10001"}
    useradd = next(r for r in final_stage("RUN") if "useradd" in r)
    assert re.search(r"--uid 10001\b.*\bberater$", useradd)


def test_dockerfile_listens_where_compose_publishes() -> None:
    env = dockerfile_env()
    assert env["BERATER_ENV"] == "production"
    assert env["PYTHONDONTWRITEBYTECODE"] == env["PYTHONUNBUFFERED"] == "1"
    assert env["INSTANCE_PATH"] == "/app/instance"
    port = env["GUNICORN_BIND"].rsplit(":", 1)[1]
    assert env["GUNICORN_BIND"].startswith("0.0.0.0:")
    assert final_stage("EXPOSE") == [port]
    assert re.search(rf"^\s*server berater:{port}\b", NGINX_SITE.read_text(), re.MULTILINE)
    assert f"127.0.0.1:{port}/readyz" in final_stage("HEALTHCHECK")[-1]


def healthcheck_env(service_base_url: str = "https://berater.example.edu.cn") -> dict[str, str]:
    """The container's environment as the check sees it: SERVICE_BASE_URL comes from .env."""
    return {**os.environ, "SERVICE_BASE_URL": service_base_url}


def healthcheck_command(base_url: str) -> list[str]:
    rest = final_stage("HEALTHCHECK")[-1]
    command = json.loads(rest[rest.index("CMD") + 3 :])
    assert command[0] == "python"  # the venv's, first on the image's PATH
    return [
        sys.executable,
        *(arg.replace("http://127.0.0.1:8000", base_url) for arg in command[1:]),
    ]


def test_healthcheck_passes_on_the_running_app(
    make_app: Callable[..., Flask], qna_index: Path
) -> None:
    """As in production: the app answers only SERVICE_BASE_URL's host, and the check, sent to
    the loopback port, names that host; it passes once the app is ready (its database,
    store and Q&A index), and fails while it is not."""
    public = "https://berater.example.edu.cn"
    for index, ready in ((qna_index, True), (qna_index.parent / "missing.npz", False)):
        app = make_app(SERVICE_BASE_URL=public, EXTRA_HOSTS=[], QNA_INDEX=str(index))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        try:
            assert requests.get(f"{base}/readyz", timeout=5).status_code == 400  # Host 127.0.0.1
            command = healthcheck_command(base)
            result = subprocess.run(
                command, env=healthcheck_env(public), capture_output=True, timeout=10
            )
            assert (result.returncode == 0) is ready, result.stderr
        finally:
            server.shutdown()
            server.server_close()


def test_healthcheck_fails_when_the_app_is_down_or_unwell() -> None:
    class Unwell(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Unwell)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        unwell = healthcheck_command(f"http://127.0.0.1:{server.server_port}")
        result = subprocess.run(unwell, env=healthcheck_env(), capture_output=True, timeout=10)
        assert result.returncode != 0 and b"HTTPError" in result.stderr
    finally:
        server.shutdown()
        server.server_close()
    down = healthcheck_command(f"http://127.0.0.1:{closed_port()}")
    result = subprocess.run(down, env=healthcheck_env(), capture_output=True, timeout=10)
    assert result.returncode != 0 and b"URLError" in result.stderr


@pytest.fixture
def entry_sandbox(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The image's /app with stand-in `flask` and `supervisord` that log their calls; the
    entrypoint's own `python` is the real one, reading the settings."""
    shutil.copy2(WAIT_FOR_IT, tmp_path / "wait-for-it.sh")
    (tmp_path / "deploy").mkdir()
    shutil.copy2(ENTRYPOINT, tmp_path / "deploy" / "entrypoint.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("flask", "supervisord"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "$CALLS"\nexit "${{RC_{name}:-0}}"\n')
        script.chmod(0o755)
    path = f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env |= {key: "" for key in ENV_KEYS}  # a developer's .env stays out
    env |= {"PATH": path, "CALLS": str(tmp_path / "calls"), "PYTHONPATH": str(ROOT)}
    env |= {"BERATER_ENV": "testing"}
    return tmp_path, env


def run_cmd(sandbox: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [arg.replace("/app/", f"{sandbox}/") for arg in json.loads(final_stage("CMD")[-1])]
    return subprocess.run(command, cwd="/", env=env, capture_output=True, text=True, timeout=30)


def calls(sandbox: Path) -> list[str]:
    path = sandbox / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_the_image_starts_with_the_entrypoint() -> None:
    assert json.loads(final_stage("CMD")[-1]) == [copied_files()["deploy/entrypoint.sh"]]
    assert os.access(ENTRYPOINT, os.X_OK)
    assert subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=False).returncode == 0
    if shutil.which("shellcheck"):
        check = subprocess.run(["shellcheck", str(ENTRYPOINT)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout


def test_container_waits_for_the_database_then_migrates_then_starts_supervisord(
    entry_sandbox: tuple[Path, dict[str, str]], listening_port: int
) -> None:
    sandbox, env = entry_sandbox
    env["DATABASE_URL"] = f"mysql+pymysql://berater:pw@127.0.0.1:{listening_port}/berater"
    result = run_cmd(sandbox, env)
    assert result.returncode == 0, result.stderr
    assert f"127.0.0.1:{listening_port} is available" in result.stderr
    conf = copied_files()["supervisord.conf"].replace("/app/", f"{sandbox}/")
    assert calls(sandbox) == [
        "flask --app run db upgrade",
        "flask --app run qna build --if-missing",
        f"supervisord -c {conf}",
    ]


def test_container_on_sqlite_has_no_server_to_wait_for(
    entry_sandbox: tuple[Path, dict[str, str]],
) -> None:
    sandbox, env = entry_sandbox
    result = run_cmd(sandbox, env)
    assert result.returncode == 0, result.stderr
    assert "wait-for-it" not in result.stderr
    assert calls(sandbox)[0] == "flask --app run db upgrade"


def test_container_does_not_start_when_migrations_fail(
    entry_sandbox: tuple[Path, dict[str, str]], listening_port: int
) -> None:
    sandbox, env = entry_sandbox
    env["DATABASE_URL"] = f"mysql+pymysql://berater:pw@127.0.0.1:{listening_port}/berater"
    env["RC_flask"] = "1"
    result = run_cmd(sandbox, env)
    assert result.returncode != 0
    assert calls(sandbox) == ["flask --app run db upgrade"]


def test_container_refuses_to_start_without_its_settings_before_waiting(
    entry_sandbox: tuple[Path, dict[str, str]],
) -> None:
    """Production without its secrets: the settings are named at once, nothing is run, and
    the database (which is not there) is not waited for."""
    sandbox, env = entry_sandbox
    env["BERATER_ENV"] = "production"
    env["DATABASE_URL"] = f"mysql+pymysql://berater:pw@127.0.0.1:{closed_port()}/berater"
    started = time.monotonic()
    result = run_cmd(sandbox, env)
    assert result.returncode != 0
    assert time.monotonic() - started < 10
    assert "entrypoint: production needs" in result.stderr and "SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert calls(sandbox) == []


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("mysql+pymysql://berater:pw@mariadb:3306/berater?charset=utf8mb4", "mariadb:3306"),
        ("mysql+pymysql://berater:pw@db.internal/berater", "db.internal:3306"),
        ("mysql+pymysql://berater:p%40ss@[::1]:3307/berater", "[::1]:3307"),
        ("mysql+pymysql://berater:pw@/berater?unix_socket=/run/mysqld/mysqld.sock", ""),
        ("sqlite:////app/instance/berater.sqlite3", ""),
        ("", ""),
    ],
)
def test_the_entrypoint_waits_for_the_server_in_database_url(url: str, server: str) -> None:
    assert database_server({"DATABASE_URL": url}) == server
