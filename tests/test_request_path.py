"""The app's own path through a request (`berater.Berater`, `http.EnvelopeResponse`) does
what Flask and werkzeug do, in fewer steps: the same hooks in the same order, the same
signals to whoever listens, the same bytes and headers on the wire."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from flask import Blueprint, Flask, Response, abort, after_this_request, signals
from werkzeug.test import create_environ

from berater.http import EnvelopeResponse, envelope

Log = list[str]


def wire(app: Flask, log: Log) -> None:
    """Nested blueprints with hooks of every kind, on the app and on each level, two of a
    kind where the order between them matters."""
    outer = Blueprint("outer", __name__, url_prefix="/hooked")
    inner = Blueprint("inner", __name__, url_prefix="/in")

    def hooks(owner: Flask | Blueprint, name: str) -> None:
        @owner.url_value_preprocessor
        def values(endpoint: str | None, args: dict[str, Any] | None) -> None:
            log.append(f"{name}.values")

        for number in (1, 2):

            def before(number: int = number) -> None:
                log.append(f"{name}.before{number}")

            def after(response: Response, number: int = number) -> Response:
                log.append(f"{name}.after{number}")
                return response

            def teardown(error: BaseException | None, number: int = number) -> None:
                log.append(f"{name}.teardown{number}:{type(error).__name__}")

            owner.before_request(before)
            owner.after_request(after)
            owner.teardown_request(teardown)

    @inner.get("/<word>")
    def view(word: str) -> Response:
        @after_this_request
        def once(response: Response) -> Response:
            log.append("view.after_this_request")
            return response

        log.append(f"view:{word}")
        if word == "conflict":
            abort(409)
        return envelope(200, "", {"word": word})

    hooks(app, "app")
    hooks(outer, "outer")
    hooks(inner, "inner")
    outer.register_blueprint(inner)
    app.register_blueprint(outer)


def flasks_order(paths: Iterable[str]) -> dict[str, Log]:
    """What Flask itself calls, in order, for each path."""
    flask = Flask("plain")
    log: Log = []
    wire(flask, log)
    client = flask.test_client()
    orders = {}
    for path in paths:
        log.clear()
        client.get(path)
        orders[path] = list(log)
    return orders


PATHS = ("/hooked/in/word", "/hooked/in/conflict", "/nothing-here")


def test_hooks_run_as_flask_runs_them_before_and_after_the_first_request(make_app):
    app = make_app()
    log: Log = []
    wire(app, log)
    client = app.test_client()
    expected = flasks_order(PATHS)
    assert "inner.after2" in expected[PATHS[0]]  # the comparison covers every kind of hook
    for _ in range(2):  # the lists are made at the first request of each endpoint
        for path in PATHS:
            log.clear()
            client.get(path)
            assert log == expected[path], path
    assert client.get(PATHS[0]).get_json()["data"] == {"word": "word"}


def test_a_teardown_called_without_its_error_is_told_the_one_being_handled(make_app):
    heard: dict[str, list[str]] = {}
    for name, app in (("berater", make_app()), ("flask", Flask("plain"))):
        told = heard[name] = []
        app.teardown_request(lambda error, told=told: told.append(f"request:{error!r}"))
        app.teardown_appcontext(lambda error, told=told: told.append(f"app:{error!r}"))
        with app.test_request_context("/"):
            try:
                raise LookupError("gone")
            except LookupError:
                app.do_teardown_request()
                app.do_teardown_appcontext()
        context = app.app_context()
        context.push()
        try:
            raise KeyError("popped")
        except KeyError:
            context.pop()
    assert heard["berater"] == heard["flask"]
    assert heard["berater"][:2] == ["request:LookupError('gone')", "app:LookupError('gone')"]
    assert heard["berater"][-1] == "app:KeyError('popped')"


SIGNALS = (
    "request_started",
    "request_finished",
    "request_tearing_down",
    "appcontext_pushed",
    "appcontext_tearing_down",
    "appcontext_popped",
)


def test_flasks_request_signals_reach_a_receiver_connected_at_any_time(app):
    client = app.test_client()
    assert client.get("/api/ping").status_code == 200  # served before anyone listens
    heard: Log = []

    def receiver(name: str) -> Callable[..., None]:
        def hear(sender: Flask, **extra: Any) -> None:
            assert sender is app
            heard.append(name)

        return hear

    receivers = {name: receiver(name) for name in SIGNALS}
    for name, hear in receivers.items():
        getattr(signals, name).connect(hear, app)
    try:
        assert client.get("/api/ping").status_code == 200
    finally:
        for name, hear in receivers.items():
            getattr(signals, name).disconnect(hear, app)
    assert sorted(heard) == sorted(SIGNALS)
    heard.clear()
    assert client.get("/api/ping").status_code == 200
    assert heard == []


def answers(
    change: Callable[[EnvelopeResponse], None], method: str = "GET", status: int = 200
) -> tuple[tuple[Any, ...], tuple[Any, ...], Iterable[bytes]]:
    """What the envelope sends and what werkzeug's own Response sends, for one envelope
    changed by `change` after `envelope()` built it: body, status line and headers."""
    sent = []
    for send in (EnvelopeResponse.get_wsgi_response, Response.get_wsgi_response):
        response = envelope(status, "", {"pong": True})
        assert isinstance(response, EnvelopeResponse)
        change(response)
        body, line, headers = send(response, create_environ("/x", method=method))
        sent.append(((b"".join(body), line, headers), body))
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return sent[0][0], sent[1][0], sent[0][1]


def unchanged(response: EnvelopeResponse) -> None:
    return None


def test_an_envelope_as_built_is_sent_as_it_is():
    ours, werkzeugs, body = answers(unchanged)
    assert ours == werkzeugs
    assert type(body) is list  # the body itself: nothing copied, nothing wrapped


@pytest.mark.parametrize(
    ("change", "method", "status"),
    [
        (unchanged, "HEAD", 200),
        (unchanged, "GET", 204),
        (unchanged, "GET", 304),
        (unchanged, "GET", 101),
        (lambda r: r.headers.set("Location", "/päge?q=ü"), "GET", 201),
        (lambda r: r.headers.set("content-location", "/päge"), "GET", 200),
        (lambda r: r.headers.remove("Content-Length"), "GET", 200),
        (lambda r: r.set_data(b'{"code": 200, "error": "", "data": "longer"}'), "GET", 200),
        (lambda r: setattr(r, "response", iter([b"{", b"}"])), "GET", 200),
        (lambda r: setattr(r, "response", ["{}"]), "GET", 200),
        (lambda r: r.headers.add("Set-Cookie", "a=b"), "GET", 200),
    ],
    ids=[
        "head",
        "204",
        "304",
        "101",
        "location",
        "content-location",
        "no-length",
        "new-body",
        "generator",
        "text-chunk",
        "cookie",
    ],
)
def test_an_envelope_anything_was_done_to_is_sent_as_werkzeug_sends_it(change, method, status):
    ours, werkzeugs, _ = answers(change, method, status)
    assert ours == werkzeugs


def test_an_envelope_closed_with_a_callback_still_calls_it():
    closed: list[bool] = []
    response = envelope(200, "", None)
    response.call_on_close(lambda: closed.append(True))
    body, _, _ = response.get_wsgi_response(create_environ("/x"))
    assert closed == []
    body.close()  # type: ignore[attr-defined]
    assert closed == [True]
