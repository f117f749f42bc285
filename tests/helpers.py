"""Small helpers the API tests share."""

from __future__ import annotations


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a user token."""
    return {"Authorization": f"Bearer {token}"}


def token_for(client, openid: str) -> str:
    """A token for `openid` with the roles it holds, from the test-token route."""
    response = client.post(f"/api/test/token/{openid}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["token"]
