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


def test_the_functions_asked_on_every_request_are_answered_from_a_bounded_table(app):
    from berater import SYNC_REMEMBERED

    class Teardown:
        def close(self, exc):
            return exc

    hook = Teardown()
    assert app.ensure_sync(hook.close) == hook.close  # a new bound method at each asking
    assert app.ensure_sync(hook.close) == hook.close
    before = len(app._sync)
    for number in range(SYNC_REMEMBERED + 10):  # closures made per call
        app.ensure_sync(lambda number=number: number)
    assert before <= len(app._sync) <= SYNC_REMEMBERED
