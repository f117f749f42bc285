"""Authentication comes before validation: a caller without a valid token learns nothing
about what a request should look like, and a caller without the role gets 403, not 400.
The body check itself (415, 400, 413) comes after the token on every protected route, and
before anything else on the others."""

from __future__ import annotations

import re

import pytest

from berater.db import db
from berater.http import JSON_METHODS
from berater.identity.roles import GRANTABLE
from tests import factories
from tests.helpers import bearer, post_chunked, token_for

pytestmark = pytest.mark.backends


def protected_operations(client) -> list[tuple[str, str]]:
    """(method, path) of every documented operation that needs a token."""
    spec = client.get("/openapi.json").get_json()
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if operation.get("security"):
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "x", path)))
    return found


def send_nonsense(client, method: str, path: str, headers: dict[str, str]):
    body = None if method in ("GET", "DELETE") else {"not_a_field": ["x" * 10]}
    return client.open(
        path,
        method=method,
        query_string={"not_a_parameter": "1"},
        json=body,
        headers=headers,
    )


def test_every_protected_operation_is_found(client):
    operations = protected_operations(client)
    assert ("GET", "/api/qna") in operations and ("POST", "/api/student") in operations
    assert len(operations) >= 25


def test_without_a_token_a_malformed_request_is_401_not_400(client):
    for method, path in protected_operations(client):
        response = send_nonsense(client, method, path, {})
        assert response.status_code == 401, (method, path, response.get_json())
        assert response.get_json()["data"] is None


def test_without_the_role_a_malformed_request_is_403_not_400(client):
    stranger = bearer(token_for(client, "o_no_roles_at_all"))
    for path in ("/api/qna", "/api/bert", "/api/source", "/api/nova/admin/registrations"):
        response = send_nonsense(client, "GET", path, stranger)
        assert response.status_code == 403, (path, response.get_json())


# Bodies that the body check refuses, and what an authorised caller gets for each.
DEEP = b'{"a":' * 40 + b"1" + b"}" * 40


def bad_bodies(limit: int) -> list[tuple[str, str, bytes, int]]:
    """(name, Content-Type, body, status for a caller who may call) of each kind of bad body."""
    return [
        ("not JSON", "text/plain", b"hello", 415),
        ("a form", "application/x-www-form-urlencoded", b"a=1", 415),
        ("broken JSON", "application/json", b'{"a": ', 400),
        ("an array", "application/json", b"[1]", 400),
        ("too deep", "application/json", DEEP, 400),
        ("too large", "application/json", b'{"a": "' + b"x" * limit + b'"}', 413),
    ]


def protected_routes(app) -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path, roles) of every route behind `token_required`, from the app's url_map
    (documented or not), with each path variable filled in."""
    found = []
    for rule in app.url_map.iter_rules():
        roles = getattr(app.view_functions[rule.endpoint], "required_roles", None)
        if roles is None:
            continue
        path = re.sub(r"<[^>]+>", "x", rule.rule)
        found.extend((method, path, roles) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return found


def send(client, method: str, path: str, content_type: str, body: bytes, headers=None):
    return client.open(
        path, method=method, data=body, content_type=content_type, headers=headers or {}
    )


def test_every_route_behind_token_required_is_walked(app):
    routes = {(method, path) for method, path, _ in protected_routes(app)}
    assert {
        ("PUT", "/api/token"),
        ("POST", "/api/student"),
        ("GET", "/api/face/students"),
    } <= routes
    assert len(routes) >= 30
    assert ("POST", "/api/token") not in routes  # signing in needs no token


def test_without_a_token_every_protected_route_is_401_whatever_the_body(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    wrong = []
    for method, path, _ in protected_routes(app):
        for name, content_type, body, _ in bad_bodies(limit):
            for headers in ({}, {"Authorization": "Bearer not-a-token"}):
                response = send(client, method, path, content_type, body, headers)
                if response.status_code != 401 or response.get_json()["code"] != 401:
                    wrong.append((method, path, name, bool(headers), response.status_code))
    assert wrong == []


def test_with_a_token_the_body_is_still_checked(app, client):
    with app.app_context():
        openid = "o_holds_every_role"
        factories.student(openid)
        factories.candidate(openid)
        for role in sorted(GRANTABLE):
            factories.privilege(openid, role)
        db.session.commit()
    everything = bearer(token_for(client, openid))
    limit = app.config["MAX_CONTENT_LENGTH"]
    checked, wrong = 0, []
    for method, path, _ in protected_routes(app):
        if method not in JSON_METHODS:
            continue  # a GET's body is never read
        for name, content_type, body, status in bad_bodies(limit):
            response = send(client, method, path, content_type, body, everything)
            checked += 1
            if response.status_code != status or response.get_json()["code"] != status:
                wrong.append((method, path, name, response.status_code, status))
    assert wrong == []
    assert checked >= 15 * len(bad_bodies(limit))


def test_without_the_role_a_bad_body_is_403(app, client):
    stranger = bearer(token_for(client, "o_no_roles_at_all"))
    limit = app.config["MAX_CONTENT_LENGTH"]
    for method, path in (("PATCH", "/api/student"), ("POST", "/api/admin/users")):
        for name, content_type, body, _ in bad_bodies(limit):
            response = send(client, method, path, content_type, body, stranger)
            assert response.status_code == 403, (method, path, name, response.status_code)


def test_unprotected_routes_still_check_the_body_first(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    for method, path in (("POST", "/api/token"), ("POST", "/api/nowhere")):
        for name, content_type, body, status in bad_bodies(limit):
            response = send(client, method, path, content_type, body)
            assert response.status_code == status, (method, path, name, response.status_code)


def test_over_http_a_chunked_body_over_the_limit_without_a_token_is_401(app, live_server):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = b'{"a": "' + b"x" * (2 * limit) + b'"}'
    for path in ("/api/student", "/api/code"):
        status, answer = post_chunked(live_server, path, body, "application/json")
        assert status == 401, (path, answer)
    status, _ = post_chunked(live_server, "/api/token", body, "application/json")
    assert status == 413  # the sign-in itself is not protected: the body is checked first
