"""Links that leave the service are built on SERVICE_BASE_URL, and only its host is answered:
a request naming another Host (or X-Forwarded-Host through a trusted proxy) is a 400 before
any view runs, so `Host: evil.example` can neither steer the OAuth callback nor an
invitation link."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from berater.db import db
from berater.settings import load_config, trusted_hosts
from berater.urls import HostCheck, host_name
from tests import factories
from tests.helpers import bearer

pytestmark = pytest.mark.backends

ADMIN = "o_admin"
EVIL = "evil.example"
BASE = "https://berater.example.edu.cn/berater"  # a public host and the prefix it serves under


def admin_token(app: Flask, client: FlaskClient, base: str = "") -> str:
    with app.app_context():
        factories.privilege(ADMIN, "admin")
        db.session.commit()
    response = client.post(f"{base}/api/test/token/{ADMIN}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["token"]


def signed_in_page_session(client: FlaskClient, token: str, host: str) -> None:
    """The invitation pages' sign-in, as /api/admin/callback would leave it."""
    with client.session_transaction(base_url=f"http://{host}") as session:
        session["admin_token"] = token


def redirect_uri(response: Any) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    return parse_qs(urlsplit(response.headers["Location"]).query)["redirect_uri"][0]


def page_link(response: Any) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    found = re.search(r'https?://[^"<\s]+/api/admin/auth\?seq=[^"<\s]+', response.get_data(True))
    assert found, response.get_data(as_text=True)
    return found.group()


# --- another Host is refused ---


@pytest.mark.parametrize(
    "path",
    ["/signin", "/signin?next=/demo/app", "/api/admin/link/face", "/api/admin/go/link/face"],
)
def test_a_foreign_host_gets_400_and_no_link(app: Flask, client: FlaskClient, path: str) -> None:
    token = admin_token(app, client)
    # An admin, signed in on the invitation pages too (the cookie goes with the request).
    signed_in_page_session(client, token, "localhost")
    answer = client.get(path, headers={"Host": EVIL, **bearer(token)})
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert answer.get_json()["error"] == f"Host '{EVIL}' is not trusted"
    assert EVIL not in answer.get_data(as_text=True).replace(f"Host '{EVIL}'", "")
    # The same request on the service's own host is served.
    assert client.get(path, headers=bearer(token)).status_code in {200, 302}


@pytest.mark.parametrize("host", [EVIL, f"{EVIL}:5000", "localhost.evil.example", "127.0.0.2"])
def test_only_service_base_url_host_and_the_extra_hosts_are_answered(
    client: FlaskClient, host: str
) -> None:
    assert client.get("/api/ping", headers={"Host": host}).status_code == 400
    for good in ("localhost", "localhost:5000", "127.0.0.1", "127.0.0.1:8000"):
        assert client.get("/api/ping", headers={"Host": good}).status_code == 200


def test_the_host_check_ignores_case_and_port_and_follows_legacy_mode(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app().test_client()
    for good in ("LocalHost", "LOCALHOST:80", "127.0.0.1:5000"):
        assert client.get("/api/ping", headers={"Host": good}).status_code == 200, good
    for bad in ("[::2]:5000", "localhost:5000@evil.example", "", "local host"):
        answer = client.get("/api/ping", headers={"Host": bad})
        assert answer.status_code == 400, bad
        assert answer.get_json() == {
            "code": 400,
            "error": f"Host {bad!r} is not trusted",
            "data": None,
        }
    assert [
        host_name(h) for h in ("[::1]:5000", "[::1]", "[::1]x", "Example.edu.CN:443", "a:b")
    ] == [
        "::1",
        "::1",
        "",
        "example.edu.cn",
        "",
    ]
    legacy = make_app(LEGACY_STATUS_200=True).test_client()
    answer = legacy.get("/api/ping", headers={"Host": EVIL})
    assert answer.status_code == 200 and answer.get_json()["code"] == 400


def test_the_host_check_remembers_only_a_few_trusted_host_values(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    client = app.test_client()
    check = app.wsgi_app.app  # the request log's inner layer
    assert isinstance(check, HostCheck)
    for port in range(1, 3 * HostCheck.KNOWN_HOSTS):
        assert client.get("/api/ping", headers={"Host": f"localhost:{port}"}).status_code == 200
    for _ in range(2):  # asked again: still refused, never remembered
        assert client.get("/api/ping", headers={"Host": EVIL}).status_code == 400
    assert len(check.known) == HostCheck.KNOWN_HOSTS
    assert EVIL not in check.known and "localhost:1" in check.known


def test_x_forwarded_host_through_a_trusted_proxy_is_checked_too(
    make_app: Callable[..., Flask],
) -> None:
    behind_proxy = make_app(TRUSTED_PROXIES=1).test_client()
    refused = behind_proxy.get("/signin", headers={"X-Forwarded-Host": EVIL})
    assert refused.status_code == 400
    assert "Location" not in refused.headers
    answered = behind_proxy.get("/signin", headers={"X-Forwarded-Host": "localhost"})
    assert redirect_uri(answered) == "http://localhost/signin/callback"
    # Without a trusted proxy the header is not read at all.
    direct = make_app(TRUSTED_PROXIES=0).test_client()
    ignored = direct.get("/signin", headers={"X-Forwarded-Host": EVIL})
    assert redirect_uri(ignored) == "http://localhost/signin/callback"


# --- links are built on SERVICE_BASE_URL, whatever the request's host ---


def test_every_link_is_on_service_base_url(make_app: Callable[..., Flask]) -> None:
    app = make_app(SERVICE_BASE_URL=BASE)
    client = app.test_client()
    token = admin_token(app, client, "http://berater.example.edu.cn")
    # 127.0.0.1 is an extra host of the tests; the links still name SERVICE_BASE_URL.
    for host in ("berater.example.edu.cn", "127.0.0.1"):
        origin = f"http://{host}"
        assert redirect_uri(client.get(f"{origin}/signin")) == f"{BASE}/signin/callback"
        link = client.get(f"{origin}/api/admin/link/face", headers=bearer(token))
        assert link.get_json()["data"]["link"].startswith(f"{BASE}/api/admin/auth?seq=")
        signed_in_page_session(client, token, host)
        assert page_link(client.get(f"{origin}/api/admin/go/link/face")).startswith(
            f"{BASE}/api/admin/auth?seq="
        )
    # The invitation pages' own sign-in comes back to SERVICE_BASE_URL too.
    with client.session_transaction(base_url="http://127.0.0.1") as session:
        session.clear()
    sign_in = client.get("http://127.0.0.1/api/admin/go/link/face")
    assert redirect_uri(sign_in) == f"{BASE}/api/admin/callback"


def test_without_service_base_url_no_link_is_made(make_app: Callable[..., Flask]) -> None:
    """Only outside production (which requires it): any host is answered, but a link
    needing the service's address is refused, naming the setting."""
    app = make_app(SERVICE_BASE_URL="")
    client = app.test_client()
    assert client.get("/api/ping", headers={"Host": EVIL}).status_code == 200
    token = admin_token(app, client)
    answer = client.get("/api/admin/link/face", headers={"Host": EVIL, **bearer(token)})
    assert answer.status_code == 503
    assert "SERVICE_BASE_URL" in answer.get_json()["error"]
    page = client.get("/signin", headers={"Host": EVIL})
    assert page.status_code == 503 and "Location" not in page.headers


def test_trusted_hosts_follow_the_settings() -> None:
    testing = load_config("testing", environ={})
    assert trusted_hosts(testing) == ["localhost", "127.0.0.1"]
    development = load_config("development", environ={})
    assert trusted_hosts(development) == ["127.0.0.1"]
    assert trusted_hosts({"SERVICE_BASE_URL": "https://Berater.Example.edu.cn:8443/x"}) == [
        "berater.example.edu.cn"
    ]
    assert trusted_hosts({"SERVICE_BASE_URL": ""}) is None
