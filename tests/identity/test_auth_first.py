"""Authentication comes before validation: a caller without a valid token learns nothing
about what a request should look like, and a caller without the role gets 403, not 400."""

from __future__ import annotations

import re

import pytest

from tests.helpers import bearer, token_for

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
