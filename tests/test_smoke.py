import pytest


@pytest.mark.backends
def test_ping_answers_the_envelope(client):
    response = client.get("/api/ping")
    assert response.status_code == 200
    assert response.get_json() == {"code": 200, "error": "", "data": {"pong": True}}


def test_a_coroutine_view_is_still_handed_to_flasks_async_support(app):
    # The app remembers which functions are plain; a coroutine function never is.
    def plain():
        return None

    async def coroutine():
        return None

    assert app.ensure_sync(plain) is plain
    assert app.ensure_sync(plain) is plain
    for _ in range(2):
        try:
            wrapped = app.ensure_sync(coroutine)
        except RuntimeError as exc:  # Flask installed without its async extra
            assert "async" in str(exc)
        else:
            assert wrapped is not coroutine
