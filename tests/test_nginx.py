"""deploy/nginx/berater.conf on Debian's nginx, in front of stand-in upstreams.

nginx runs as the test's user with its own prefix (tests/servers.py), the site as compose
mounts it with only ports and paths changed (tests/stack.py), TLS with a certificate from a
throwaway CA made here. The upstream is a small WSGI app behind werkzeug's ProxyFix with one
trusted hop, as the app is with TRUSTED_PROXIES=1: it answers what it was sent and what it
then believes about the client. tests/test_stack.py runs the same site in front of the app.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from berater.settings import default
from tests.servers import NginxServer, free_port, start_nginx
from tests.stack import NGINX_SITE, Site, client_from, make_certificates, upstreams_of

TIMEOUT = 15
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


# --- a stand-in upstream ---


@dataclass
class Upstream:
    """A threaded WSGI server: answers JSON describing each request, remembers them, and
    waits `delays[path]` seconds before answering that path."""

    delays: dict[str, float] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)
    server: BaseWSGIServer | None = None
    release: threading.Event = field(default_factory=threading.Event)

    def app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        body = request.get_data()
        described = {
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode(),
            "headers": dict(request.headers),
            "body_length": len(body),
            # What the app reads through ProxyFix with TRUSTED_PROXIES=1:
            "remote_addr": request.remote_addr,
            "scheme": request.scheme,
            "host": request.host,
        }
        self.seen.append(described)
        delay = self.delays.get(request.path, 0)
        if delay:
            self.release.wait(delay)
        return Response(json.dumps(described), mimetype="application/json")(environ, start_response)

    def start(self) -> int:
        wsgi = ProxyFix(self.app, x_for=1, x_proto=1, x_host=1)
        self.server = make_server("127.0.0.1", 0, wsgi, threaded=True)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self.server.server_port

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def paths(self) -> list[str]:
        return [entry["path"] for entry in self.seen]


class HangUp:
    """An upstream that reads a request and closes the connection without an answer, as an
    instance stopping under a request does."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                received = b""
                try:
                    while b"\r\n\r\n" not in received:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        received += chunk
                except OSError:
                    pass
                self.requests.append(received)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    stand_in = Upstream()
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def site(tmp_path: Path) -> Site:
    made = Site(tmp_path / "site", free_port(), free_port())
    make_certificates(made.certs)
    return made


@pytest.fixture
def nginx_for(site: Site, tmp_path: Path) -> Iterator[Any]:
    """Start nginx on `site` in front of the given upstream ports."""
    started: list[NginxServer] = []

    def start(*ports: int) -> NginxServer:
        server = start_nginx(tmp_path / "nginx", site.render(list(ports)), site.http_port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def proxy(nginx_for: Any, upstream: Upstream) -> NginxServer:
    assert upstream.server is not None
    return nginx_for(upstream.server.server_port)


@pytest.fixture
def browser(site: Site) -> Iterator[requests.Session]:
    with client_from("127.0.0.2", site.ca) as session:
        yield session


# --- the headers the app trusts ---


def test_the_app_behind_it_sees_the_client_the_scheme_and_its_own_host(
    proxy: NginxServer, site: Site, upstream: Upstream, browser: requests.Session
) -> None:
    """With one trusted hop the app reads the client's own address, https and the host it
    was asked for, whatever the client put in X-Forwarded-* itself."""
    forged = {
        "X-Forwarded-For": "203.0.113.9, 198.51.100.7",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "evil.example",
        "X-Request-ID": "chosen-by-the-client",
    }
    answer = browser.get(f"{site.https}/api/ping?x=1", headers=forged, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert seen["remote_addr"] == "127.0.0.2"  # the peer nginx saw, not a forged value
    assert seen["scheme"] == "https"
    assert seen["host"] == "127.0.0.1"
    headers = seen["headers"]
    assert headers["X-Forwarded-For"] == "203.0.113.9, 198.51.100.7, 127.0.0.2"
    assert headers["X-Forwarded-Proto"] == "https"
    assert headers["X-Forwarded-Host"] == headers["Host"] == "127.0.0.1"
    assert REQUEST_ID.match(headers["X-Request-Id"])
    assert seen["path"] == "/api/ping" and seen["query"] == "x=1"
    # The same id in nginx's line: the line of a request can be found from the app's.
    assert "upstream=127.0.0.1:" in site.logged(headers["X-Request-Id"])
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "nginx/" not in answer.headers.get("Server", "")  # server_tokens off

    # Without headers of its own, the client is the peer as well.
    plain = browser.get(f"{site.https}/api/ping", timeout=TIMEOUT).json()
    assert plain["headers"]["X-Forwarded-For"] == "127.0.0.2"
    assert plain["remote_addr"] == "127.0.0.2"


def test_every_location_passes_the_same_headers(
    proxy: NginxServer, site: Site, upstream: Upstream, browser: requests.Session
) -> None:
    """A location with a proxy_set_header of its own would drop the server's: /chat/ too."""
    for path in ("/chat/", "/signin", "/api/token"):
        seen = browser.post(f"{site.https}{path}", data=b"<xml/>", timeout=TIMEOUT).json()
        assert seen["path"] == path
        assert seen["remote_addr"] == "127.0.0.2" and seen["scheme"] == "https", path
        assert REQUEST_ID.match(seen["headers"]["X-Request-Id"]), path


# --- HTTP, the verification file and /metrics ---


def test_plain_http_moves_to_https_except_the_verification_file(
    proxy: NginxServer, site: Site, upstream: Upstream, browser: requests.Session
) -> None:
    (site.verify / "MP_verify_Ab12Cd34Ef56Gh78.txt").write_text("Ab12Cd34Ef56Gh78")
    (site.verify / "private.txt").write_text("not for anyone")

    moved = browser.get(
        f"{site.http}/signin?next=https%3A%2F%2Fapp.example%2F", allow_redirects=False
    )
    assert moved.status_code == 301
    assert moved.headers["Location"] == "https://127.0.0.1/signin?next=https%3A%2F%2Fapp.example%2F"
    assert browser.post(f"{site.http}/chat/", data=b"x", allow_redirects=False).status_code == 301

    for base in (site.http, site.https):
        served = browser.get(f"{base}/MP_verify_Ab12Cd34Ef56Gh78.txt", allow_redirects=False)
        assert served.status_code == 200, base
        assert served.text == "Ab12Cd34Ef56Gh78"
        assert served.headers["Content-Type"].startswith("text/plain")
        assert browser.get(f"{base}/MP_verify_Other123.txt").status_code == 404
    # Only the verification file's name is served from the folder.
    assert browser.get(f"{site.http}/private.txt", allow_redirects=False).status_code == 301
    assert browser.get(f"{site.https}/private.txt").json()["path"] == "/private.txt"
    assert "not for anyone" not in browser.get(f"{site.https}/MP_verify_..%2Fprivate.txt").text
    # A name of that shape is answered from the folder alone, found or not.
    assert "/MP_verify_Ab12Cd34Ef56Gh78.txt" not in upstream.paths()
    assert "/MP_verify_Other123.txt" not in upstream.paths()


@pytest.mark.parametrize(
    "path", ["/metrics", "/metrics/", "/metrics?name=x", "//metrics", "/%6Detrics", "/metrics/x"]
)
def test_metrics_are_not_published(
    proxy: NginxServer, site: Site, upstream: Upstream, browser: requests.Session, path: str
) -> None:
    answer = browser.get(f"{site.https}{path}", timeout=TIMEOUT)
    assert answer.status_code == 404
    assert upstream.seen == []  # never reached the app


# --- bodies ---


def test_the_body_limit_is_the_apps(
    proxy: NginxServer, site: Site, upstream: Upstream, browser: requests.Session
) -> None:
    """client_max_body_size is MAX_CONTENT_LENGTH's production default: a body the app would
    take passes, one byte more is refused by nginx, in the app's envelope, however framed."""
    limit = default("MAX_CONTENT_LENGTH", "production")
    written = re.search(r"^\s*client_max_body_size (\d+)k;$", NGINX_SITE.read_text(), re.M)
    assert written and int(written[1]) * 1024 == limit

    fits = browser.post(f"{site.https}/api/code", data=b"x" * limit, timeout=TIMEOUT)
    assert fits.status_code == 200 and fits.json()["body_length"] == limit

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 1024 + 1):
            yield b"y" * 1024

    for body in (b"x" * (limit + 1), chunks()):
        refused = browser.post(f"{site.https}/api/code", data=body, timeout=TIMEOUT)
        assert refused.status_code == 413
        assert refused.headers["Content-Type"] == "application/json"
        assert refused.json() == {
            "code": 413,
            "error": "the request body is too large",
            "data": None,
        }
    assert upstream.paths() == ["/api/code"]  # only the one that fits


def test_the_admission_upload_alone_takes_a_file_of_the_apps_limit(
    proxy: NginxServer, site: Site, upstream: Upstream, browser: requests.Session
) -> None:
    """The console's upload location allows ADMISSION_UPLOAD_MAX's production default and
    the multipart form around it; a body past its own limit is refused, and the larger limit
    holds for that one path only."""
    from berater.console.admission import FORM_ROOM

    limit = default("ADMISSION_UPLOAD_MAX", "production") + FORM_ROOM
    written = re.search(
        r"location = /admin/admission/upload \{[^}]*client_max_body_size (\d+)m;",
        NGINX_SITE.read_text(),
    )
    assert written, "no upload location with its own client_max_body_size"
    allowed = int(written[1]) * 1024 * 1024
    assert limit <= allowed <= limit + 2 * 1024 * 1024

    fits = browser.post(f"{site.https}/admin/admission/upload", data=b"x" * limit, timeout=60)
    assert fits.status_code == 200 and fits.json()["body_length"] == limit
    refused = browser.post(
        f"{site.https}/admin/admission/upload", data=b"x" * (allowed + 1), timeout=60
    )
    assert refused.status_code == 413
    assert refused.json()["code"] == 413
    small = default("MAX_CONTENT_LENGTH", "production")
    for path in ("/admin/nova/cancel", "/admin/admission/upload/x", "/admin/admission"):
        other = browser.post(f"{site.https}{path}", data=b"x" * (small + 1), timeout=TIMEOUT)
        assert other.status_code == 413, path
    assert upstream.paths() == ["/admin/admission/upload"]


# --- timeouts and instances ---


def test_the_webhook_is_answered_before_wechat_gives_up(
    nginx_for: Any, site: Site, browser: requests.Session
) -> None:
    """WeChat waits 5 s for /chat/: nginx answers 504 before that when the app is slower;
    other paths wait for the app as long as gunicorn lets them."""
    slow = Upstream(delays={"/chat/": 10, "/api/slow": 4})
    port = slow.start()
    try:
        nginx_for(port)
        started = time.monotonic()
        answer = browser.post(f"{site.https}/chat/?signature=x", data=b"<xml/>", timeout=TIMEOUT)
        took = time.monotonic() - started
        assert answer.status_code == 504
        assert answer.json()["code"] == 504
        assert 2.5 < took < 4.5, took

        started = time.monotonic()
        waited = browser.get(f"{site.https}/api/slow", timeout=TIMEOUT)
        assert waited.status_code == 200
        assert time.monotonic() - started >= 3.9
    finally:
        slow.stop()


def test_a_post_is_not_sent_again_when_an_instance_hangs_up(
    nginx_for: Any, site: Site, upstream: Upstream, browser: requests.Session
) -> None:
    """An instance that hangs up under a request: a GET goes on to the next one; a POST, which
    it may have acted on, is answered 502 and not sent again."""
    assert upstream.server is not None
    hang_up = HangUp()
    try:
        nginx_for(hang_up.port, upstream.server.server_port)  # round robin starts with it
        posted = browser.post(f"{site.https}/api/code", json={"n": 1}, timeout=TIMEOUT)
        assert posted.status_code == 502
        assert posted.json()["code"] == 502
        assert len(hang_up.requests) == 1 and hang_up.requests[0].startswith(b"POST /api/code")
        assert upstream.seen == []  # not sent twice
    finally:
        hang_up.stop()


def test_a_get_moves_on_when_an_instance_hangs_up(
    nginx_for: Any, site: Site, upstream: Upstream, browser: requests.Session
) -> None:
    assert upstream.server is not None
    hang_up = HangUp()
    try:
        nginx_for(hang_up.port, upstream.server.server_port)
        answer = browser.get(f"{site.https}/api/token", timeout=TIMEOUT)
        assert answer.status_code == 200
        assert len(hang_up.requests) == 1 and hang_up.requests[0].startswith(b"GET /api/token")
        request_id = answer.json()["headers"]["X-Request-Id"]
        line = site.logged(request_id)
        assert upstreams_of(line) == [
            f"127.0.0.1:{hang_up.port}",
            f"127.0.0.1:{upstream.server.server_port}",
        ]
        assert "upstream_status=502, 200" in line
    finally:
        hang_up.stop()


def test_a_post_moves_on_when_an_instance_is_down(
    nginx_for: Any, site: Site, upstream: Upstream, browser: requests.Session
) -> None:
    """A refused connection sent nothing: even a POST goes on to the next instance."""
    assert upstream.server is not None
    closed = free_port()
    nginx_for(closed, upstream.server.server_port)
    answer = browser.post(f"{site.https}/api/code", json={"n": 1}, timeout=TIMEOUT)
    assert answer.status_code == 200
    assert upstream.paths() == ["/api/code"]
    line = site.logged(answer.json()["headers"]["X-Request-Id"])
    assert upstreams_of(line) == [f"127.0.0.1:{closed}", f"127.0.0.1:{upstream.server.server_port}"]


# --- the access log ---


def test_the_access_log_shows_no_query_string_code_phone_or_id_card(
    proxy: NginxServer, site: Site, upstream: Upstream, browser: requests.Session
) -> None:
    secrets_sent = ("oauthcodeXYZ", "13812345678", "11010519491231002X", "654321")
    paths = [
        "/signin/callback?code=oauthcodeXYZ&state=s",
        "/api/code/654321",
        "/api/code/verify",
        "/signin/13812345678/11010519491231002X",
        "/api/nova/admin/registrations/2026000421/cancel",
    ]
    for path in paths:
        browser.get(f"{site.https}{path}", timeout=TIMEOUT)
    browser.get(f"{site.http}/signin/callback?code=oauthcodeXYZ", allow_redirects=False)
    # nginx writes a request's line once the answer has gone: wait for the last one.
    deadline = time.monotonic() + 3
    while '" 301 ' not in (text := site.access_log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    for secret in secrets_sent:
        assert secret not in text, secret
    assert '"GET /signin/callback HTTP/1.1" 200' in text
    assert '"GET /api/code/****** HTTP/1.1" 200' in text
    assert '"GET /api/code/verify HTTP/1.1" 200' in text
    assert '"GET /signin/[digits]... HTTP/1.1" 200' in text
    assert '"GET /api/nova/admin/registrations/[digits]... HTTP/1.1" 200' in text
    assert '"GET /signin/callback HTTP/1.1" 301' in text
    # The image's own http-level log (its `main` format shows query strings) stays unused.
    assert not proxy.default_access_log.exists() or proxy.default_access_log.read_text() == ""
