"""CORS: partner origins (SIGNIN_REDIRECT_HOSTS, http or https, any port) on the endpoints
partner browser code calls, preflight included; nothing for any other origin or endpoint."""

from __future__ import annotations

import pytest

from berater.cors import PARTNER_ROUTES, vary
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends

# Testing: SIGNIN_REDIRECT_HOSTS = 127.0.0.1, localhost, partner.test
ALLOWED = [
    "https://partner.test",
    "http://partner.test",
    "https://partner.test:8443",
    "http://localhost:3000",
    "http://127.0.0.1:8080",
]
REFUSED = [
    "https://evil.example",
    "https://partner.test.evil.example",
    "https://evilpartner.test",
    "null",
    "ftp://partner.test",
    "https://partner.test/",
    "https://partner.test/app",
    "https://user@partner.test",
    "file://",
    "http://[::1",
]
PARTNER_CALLS = [
    ("GET", "/api/token"),
    ("PUT", "/api/token"),
    ("DELETE", "/api/token"),
    ("GET", "/api/wechat/jssdk?url=https://partner.test/app"),
    ("GET", "/api/qna?q=%E7%BC%93%E8%80%83"),
]
# Endpoints (and methods) partner browser code has no business calling.
OTHER_CALLS = [
    ("POST", "/api/token"),
    ("GET", "/api/ping"),
    ("GET", "/api/source"),
    ("POST", "/api/code"),
    ("GET", "/api/bert?q=x"),
    ("GET", "/api/admin/audit"),
    ("GET", "/openapi.json"),
    ("GET", "/docs/openapi.json"),
    ("GET", "/signin"),
    ("POST", "/api/qna"),  # not a method of the route: 405
    ("GET", "/api/nowhere"),
]
CORS_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Credentials",
    "Access-Control-Max-Age",
    "Access-Control-Expose-Headers",
)


def call(client, method: str, path: str, origin: str | None, token: str | None = None):
    headers = {"Origin": origin} if origin else {}
    if token:
        headers.update(bearer(token))
    kwargs = {"json": {}} if method in ("POST",) else {}
    return client.open(path, method=method, headers=headers, **kwargs)


def cors_headers(response) -> dict[str, str]:
    return {name: response.headers[name] for name in CORS_HEADERS if name in response.headers}


@pytest.fixture
def token(client) -> str:
    return token_for(client, "o_cors_user")


@pytest.mark.parametrize("origin", ALLOWED)
@pytest.mark.parametrize(("method", "path"), PARTNER_CALLS, ids=lambda v: str(v))
def test_an_allowed_origin_may_read_the_partner_endpoints(
    client, wechat, token, method, path, origin
):
    response = call(client, method, path, origin, token)
    assert cors_headers(response) == {"Access-Control-Allow-Origin": origin}
    assert "Origin" in response.vary


@pytest.mark.parametrize(("method", "path"), PARTNER_CALLS, ids=lambda v: str(v))
def test_an_error_answer_is_readable_too(client, method, path):
    response = call(client, method, path, "https://partner.test")  # no token: 401
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == "https://partner.test"


@pytest.mark.parametrize("origin", [*REFUSED, None])
@pytest.mark.parametrize(("method", "path"), PARTNER_CALLS, ids=lambda v: str(v))
def test_another_origin_gets_no_cors_header(client, wechat, token, method, path, origin):
    response = call(client, method, path, origin, token)
    assert cors_headers(response) == {}
    assert "Origin" in response.vary  # the answer depends on it: caches must know


@pytest.mark.parametrize(("method", "path"), OTHER_CALLS, ids=lambda v: str(v))
def test_other_endpoints_get_no_cors_header_even_for_a_partner(client, token, method, path):
    response = call(client, method, path, "https://partner.test", token)
    assert cors_headers(response) == {}
    if path.split("?")[0] not in PARTNER_ROUTES:
        assert "Origin" not in response.vary


def preflight(client, path: str, origin: str, method: str, headers: str | None = None):
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        request_headers["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=request_headers)


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/token", "GET"),
        ("/api/token", "PUT"),
        ("/api/token", "DELETE"),
        ("/api/wechat/jssdk", "GET"),
        ("/api/qna", "GET"),
    ],
)
def test_the_preflight_allows_the_method_authorization_and_content_type(client, path, method):
    response = preflight(
        client, path, "http://localhost:3000", method, "authorization,content-type"
    )
    assert response.status_code == 200
    headers = cors_headers(response)
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert method in headers["Access-Control-Allow-Methods"].split(", ")
    assert "POST" not in headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"authorization", "content-type"}
    assert headers["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Allow-Credentials" not in headers
    assert "Origin" in response.vary


@pytest.mark.parametrize(
    ("path", "origin", "method"),
    [
        ("/api/token", "https://evil.example", "GET"),
        ("/api/token", "null", "PUT"),
        ("/api/token", "https://partner.test", "POST"),  # sign-in is not for partner pages
        ("/api/token", "https://partner.test", "PATCH"),
        ("/api/token", "https://partner.test", ""),
        ("/api/qna", "https://partner.test", "DELETE"),
        ("/api/source", "https://partner.test", "GET"),
        ("/api/code", "https://partner.test", "POST"),
        ("/api/admin/audit", "https://partner.test", "GET"),
    ],
)
def test_a_preflight_for_anything_else_gets_no_cors_header(client, path, origin, method):
    response = preflight(client, path, origin, method, "authorization")
    assert cors_headers(response) == {}


def test_an_empty_allowlist_allows_no_origin(make_app, wechat) -> None:
    client = make_app(SIGNIN_REDIRECT_HOSTS=[]).test_client()
    token = token_for(client, "o_cors_user")
    response = call(client, "GET", "/api/token", "http://localhost:3000", token)
    assert response.status_code == 200
    assert cors_headers(response) == {}
    assert cors_headers(preflight(client, "/api/token", "http://localhost:3000", "GET")) == {}


def test_every_partner_route_exists_with_its_methods(app) -> None:
    for path, methods in PARTNER_ROUTES.items():
        registered = {
            method
            for rule in app.url_map.iter_rules()
            if rule.rule == path
            for method in rule.methods
        }
        assert methods <= registered, path


def test_vary_origin_joins_a_vary_header_already_there() -> None:
    cases = [
        ([], [("Vary", "Origin")]),
        ([("Vary", "Accept-Encoding")], [("Vary", "Accept-Encoding, Origin")]),
        ([("vary", "Cookie, origin")], [("vary", "Cookie, origin")]),
        (
            [("Content-Type", "text/plain"), ("Vary", "")],
            [("Content-Type", "text/plain"), ("Vary", "Origin")],
        ),
    ]
    for before, after in cases:
        headers = list(before)
        vary(headers, "Origin")
        assert headers == after, before
