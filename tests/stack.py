"""The deployment files run on loopback: deploy/nginx/berater.conf on Debian's nginx, and an
app instance started by deploy/entrypoint.sh, with supervisord.conf and gunicorn.conf.py.

The files are used as the image uses them, with only their ports and paths changed: each
change must find what it replaces, so a file that moves on fails here rather than testing
something else. Used by tests/test_nginx.py and tests/test_stack.py.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from berater.settings import ENV_KEYS

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NGINX_SITE = ROOT / "deploy" / "nginx" / "berater.conf"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
SUPERVISORD_CONF = ROOT / "supervisord.conf"
START_TIMEOUT = 90.0  # the entrypoint: migrations, the Q&A index, supervisord and gunicorn


def replace_all(text: str, changes: list[tuple[str, str]]) -> str:
    """`text` with each (regular expression, replacement) applied; each must match."""
    for pattern, replacement in changes:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count, f"{pattern!r} no longer matches: update the test's ports and paths"
    return text


# --- nginx ---


@dataclass
class Site:
    """Where the test's nginx listens and finds its files."""

    base: Path
    http_port: int
    https_port: int

    @property
    def certs(self) -> Path:
        return self.base / "certs"

    @property
    def verify(self) -> Path:
        return self.base / "wechat-verify"

    @property
    def access_log(self) -> Path:
        return self.base / "access.log"

    @property
    def ca(self) -> str:
        """The file `requests` verifies the site's certificate with."""
        return str(self.certs / "ca.pem")

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def render(self, upstreams: list[int]) -> str:
        """deploy/nginx/berater.conf with this site's ports and paths, one upstream server
        (the file's own options kept) per port in `upstreams`."""
        self.certs.mkdir(parents=True, exist_ok=True)
        self.verify.mkdir(parents=True, exist_ok=True)

        def servers(match: re.Match[str]) -> str:
            return "\n".join(f"    server 127.0.0.1:{port}{match[1]};" for port in upstreams)

        text = NGINX_SITE.read_text()
        text, count = re.subn(r"^    server berater:8000(.*);$", servers, text, flags=re.MULTILINE)
        assert count == 1, "the upstream's `server berater:8000 ...;` line has changed"
        http, https = self.http_port, self.https_port
        return replace_all(
            text,
            [
                (r"^( +)listen 80 default_server;", rf"\1listen 127.0.0.1:{http} default_server;"),
                (r"^( +)listen 443 ssl ", rf"\1listen 127.0.0.1:{https} ssl "),
                (r"/etc/nginx/certs/", f"{self.certs}/"),
                (r"/srv/wechat-verify;", f"{self.verify};"),
                (r"/var/log/nginx/access\.log", str(self.access_log)),
            ],
        )

    def log_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def logged(self, request_id: str) -> str:
        """The access-log line of the request with this X-Request-ID."""
        for _ in range(50):  # nginx writes the line after the answer
            for line in self.log_lines():
                if f" {request_id} " in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no access-log line for {request_id}")


def upstreams_of(line: str) -> list[str]:
    """The upstream addresses an access-log line names, in the order they were tried."""
    found = re.search(r" upstream=(\S.*?) upstream_status=", line)
    assert found, line
    return [] if found[1] == "-" else [part.strip() for part in found[1].split(",")]


def make_certificates(folder: Path, names: tuple[str, ...] = ("127.0.0.1",)) -> None:
    """A throwaway CA (ca.pem) and a certificate it signed for `names` (IP addresses or host
    names), as fullchain.pem and privkey.pem: the two files deploy/certs/ holds."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        subject: str, key: Any, issuer: x509.Name | None, signer: Any, ca: bool
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            alt: list[x509.GeneralName] = []
            for item in names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(item)))
                except ValueError:
                    alt.append(x509.DNSName(item))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("Berater test CA", ca_key, None, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(names[0], key, ca_cert.subject, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (folder / "fullchain.pem").write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    (folder / "privkey.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (folder / "privkey.pem").chmod(0o600)


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Connects from another loopback address (127.0.0.2, ...): a client nginx tells apart."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_from(address: str, ca: str) -> requests.Session:
    """A `requests` session whose connections come from `address` and trust the test's CA."""
    session = requests.Session()
    session.verify = ca
    session.trust_env = False  # REQUESTS_CA_BUNDLE would win over `verify`
    adapter = SourceAddressAdapter(address)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# --- an app instance ---


def supervisord_conf(run_dir: Path) -> str:
    """supervisord.conf with the image's paths replaced: its sockets and pid file in
    `run_dir` instead of /tmp, this virtualenv's gunicorn, and the repository as /app."""
    return replace_all(
        SUPERVISORD_CONF.read_text(),
        [
            (r"/tmp\b", str(run_dir)),
            (r"^command=/opt/venv/bin/", f"command={BIN}/"),
            (r"^directory=/app$", f"directory={ROOT}"),
        ],
    )


@dataclass
class Instance:
    """One app instance as a container runs it: deploy/entrypoint.sh, whose process becomes
    supervisord, which runs gunicorn with gunicorn.conf.py on `port`."""

    name: str
    base: Path
    port: int
    settings: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.base / "container.log"

    @property
    def instance_path(self) -> Path:
        return self.base / "instance"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        """The container's environment: the image's ENV lines, then the settings. Every other
        setting is present and empty (its default), so a developer's .env cannot reach in."""
        env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
        env |= {key: "" for key in ENV_KEYS}
        env |= {
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "BERATER_ENV": "production",
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "INSTANCE_PATH": str(self.instance_path),
            "FLASK_APP": "run",
        }
        return env | self.settings

    def flask(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """An operator's command in this instance (`docker compose run berater flask ...`)."""
        return subprocess.run(
            [str(BIN / "flask"), "--app", "run", *args],
            cwd=ROOT,
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> None:
        """Run the entrypoint in the background (see `wait_ready`)."""
        run_dir = self.base / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        self.instance_path.mkdir(parents=True, exist_ok=True)
        conf = self.base / "supervisord.conf"
        conf.write_text(supervisord_conf(run_dir))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(ENTRYPOINT), str(conf)],
                cwd=self.base,  # the entrypoint finds the app from its own path
                env=self.environ(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, host: str, timeout: float = START_TIMEOUT) -> None:
        """Wait until the instance is ready, as the image's health check asks: /readyz (with
        the service's Host) answers 200 once the database, the store and the Q&A index are."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                answer = requests.get(f"{self.url}/readyz", headers={"Host": host}, timeout=2)
                if answer.status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not serving after {timeout:.0f}s:\n{self.tail()}")

    def processes(self) -> list[psutil.Process]:
        """supervisord (the entrypoint's own process), gunicorn's master and its workers."""
        assert self.proc is not None
        top = psutil.Process(self.proc.pid)
        return [top, *top.children(recursive=True)]

    def stop(self, timeout: float = 40) -> int:
        """As `docker stop` does: SIGTERM to the container's process, which is supervisord."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """Safety net: supervisord and everything under it (gunicorn has a process group
        of its own), killed outright."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for process in reversed(self.processes()):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.proc.wait(timeout=10)

    def logged(self, text: str, timeout: float = 3.0) -> bool:
        """Whether `text` shows in the log within `timeout`: supervisord copies the
        program's output to the file a moment after the answer has left."""
        deadline = time.monotonic() + timeout
        while True:
            if self.log_path.exists() and text in self.log_path.read_text(errors="replace"):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no output)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
