"""The app's own path through a request (`berater.Berater`) does what Flask does, in fewer
steps: the same hooks in the same order, the same signals to whoever listens."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask, Response, abort, after_this_request, signals

from berater.http import envelope

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
