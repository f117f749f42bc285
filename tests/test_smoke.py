import pytest


@pytest.mark.backends
def test_ping_answers_the_envelope(client):
    response = client.get("/api/ping")
    assert response.status_code == 200
    assert response.get_json() == {"code": 200, "error": "", "data": {"pong": True}}
