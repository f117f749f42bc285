"""Berater: sign-in and identity for the admissions office's WeChat service account."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import CodeType
from typing import Any, NamedTuple

from flask import Blueprint, Flask, Response, request, signals
from flask.ctx import AppContext
from flask.globals import _cv_app, request_ctx
from werkzeug.middleware.proxy_fix import ProxyFix

from berater.settings import load_config, trusted_hosts

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The features, in the order their routes and commands register. A partner app is one
# package under berater/apps/ and one line here.
FEATURES = (
    "berater.identity",
    "berater.sms",
    "berater.binding",
    "berater.admission",
    "berater.qna",
    "berater.chat",
    "berater.signin",
    "berater.pages",
    "berater.admin",
    "berater.console",
    "berater.wechat",
    "berater.docs",
    "berater.apps.face",
    "berater.apps.nova",
    "berater.ops",
)
# The shared modules `create_app` needs beside the features.
SHARED_MODULES = (
    "berater.errors",
    "berater.http",
    "berater.logs",
    "berater.metrics",
    "berater.urls",
    "berater.cors",
    "berater.extensions",
)
# How many plain callables `Berater.ensure_sync` answers from one look-up (every view and
# hook has room; closures made per call do not grow it past this).
SYNC_REMEMBERED = 4096
# A teardown called without its error finds it in sys.exc_info(), as Flask's does.
_NO_ERROR: Any = object()


class Hooks(NamedTuple):
    """An endpoint's hooks, each list in the order Flask calls it, each hook ready to call."""

    url_values: tuple[Any, ...]  # the URL value preprocessors: the app's, then outer to inner
    before: tuple[Any, ...]  # before_request: the app's, then outer to inner blueprint
    after: tuple[Any, ...]  # after_request: inner blueprint to the app, each last-added first
    teardown: tuple[Any, ...]  # teardown_request: as after_request


class QuietAppContext(AppContext):
    """Flask's app context, which sends its pushed and popped signals only to receivers:
    blinker's `send` to nobody costs a request two calls each, and the code they run is out
    of the CPU's caches by the next request (nothing in berater listens; a receiver
    connected at any time is still sent each signal)."""

    def push(self) -> None:
        self._cv_tokens.append(_cv_app.set(self))
        if signals.appcontext_pushed.receivers:
            signals.appcontext_pushed.send(self.app, _async_wrapper=self.app.ensure_sync)

    def pop(self, exc: BaseException | None = _NO_ERROR) -> None:
        try:
            if len(self._cv_tokens) == 1:
                if exc is _NO_ERROR:
                    exc = sys.exc_info()[1]
                self.app.do_teardown_appcontext(exc)
        finally:
            ctx = _cv_app.get()
            _cv_app.reset(self._cv_tokens.pop())
        if ctx is not self:
            raise AssertionError(f"Popped wrong app context. ({ctx!r} instead of {self!r})")
        if signals.appcontext_popped.receivers:
            signals.appcontext_popped.send(self.app, _async_wrapper=self.app.ensure_sync)


class Berater(Flask):
    """Flask, with a leaner path through every request:

    - `preprocess_request` does Flask's work (the URL value preprocessors, then the
      `before_request` hooks of the app and of the endpoint's blueprints) from lists made
      once per endpoint (hooks cannot be added once requests are served), and in between
      what every request needs before its view: first of all the matched rule's
      `http.Route` into the environ (for the answer's headers and the metrics), then the
      JSON body check (`http.check_body_before_view`);
    - `process_response` and `do_teardown_request` call the endpoint's `after_request` and
      `teardown_request` hooks from the same lists, instead of walking the blueprints;
    - Flask's request signals (request_started, request_finished, request_tearing_down,
      appcontext_tearing_down, and the app context's, `QuietAppContext`) are sent only
      when something is connected to them;
    - `ensure_sync`, which Flask asks before every call of a view or a hook, answers from
      what it found the first time for that function's code instead of inspecting it again
      (berater has no coroutine views or hooks; one would still be wrapped).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain: dict[CodeType, bool] = {}  # one entry per def, not per closure
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}  # plain ones, as asked
        # Per endpoint (None: no rule matched): its hooks, ready to call, in Flask's order.
        self._hooks: dict[str | None, Hooks] = {}
        from berater import cors, http  # not at the top: importing berater stays cheap

        self.request_class = http.BeraterRequest
        self.routes = http.Routes(self, cors.PARTNER_ROUTES)
        self._route_key = http.ROUTE_KEY
        self._check_body = http.check_body_before_view
        self._blueprints_of = http.blueprints_of

    def full_dispatch_request(self) -> Response:
        self._got_first_request = True
        try:
            if signals.request_started.receivers:
                signals.request_started.send(self, _async_wrapper=self.ensure_sync)
            answer = self.preprocess_request()
            if answer is None:
                answer = self.dispatch_request()
        except Exception as error:
            answer = self.handle_user_exception(error)
        return self.finalize_request(answer)

    def finalize_request(self, rv: Any, from_error_handler: bool = False) -> Response:
        response = self.make_response(rv)
        try:
            response = self.process_response(response)
            if signals.request_finished.receivers:
                signals.request_finished.send(
                    self, _async_wrapper=self.ensure_sync, response=response
                )
        except Exception:
            if not from_error_handler:
                raise
            self.logger.exception("Request finalizing failed with an error while handling an error")
        return response

    def preprocess_request(self) -> Any:
        req = request._get_current_object()  # type: ignore[attr-defined]
        rule = req.url_rule
        route = endpoint = None
        if rule is not None:
            route = req.environ[self._route_key] = self.routes.of(rule)
            endpoint = rule.endpoint
        hooks = self._hooks_for(endpoint)
        for url_func in hooks.url_values:
            url_func(endpoint, req.view_args)
        self._check_body(req, route)
        for before_func in hooks.before:
            answer = before_func()
            if answer is not None:
                return answer
        return None

    def process_response(self, response: Response) -> Response:
        ctx = request_ctx._get_current_object()  # type: ignore[attr-defined]
        for func in ctx._after_request_functions:
            response = self.ensure_sync(func)(response)
        rule = ctx.request.url_rule
        for func in self._hooks_for(None if rule is None else rule.endpoint).after:
            response = func(response)
        session = ctx._session
        if not self.session_interface.is_null_session(session):
            self.session_interface.save_session(self, session, response)
        return response

    def do_teardown_request(self, exc: BaseException | None = _NO_ERROR) -> None:
        if exc is _NO_ERROR:
            exc = sys.exc_info()[1]
        rule = request.url_rule
        for func in self._hooks_for(None if rule is None else rule.endpoint).teardown:
            func(exc)
        if signals.request_tearing_down.receivers:
            signals.request_tearing_down.send(self, _async_wrapper=self.ensure_sync, exc=exc)

    def do_teardown_appcontext(self, exc: BaseException | None = _NO_ERROR) -> None:
        if exc is _NO_ERROR:
            exc = sys.exc_info()[1]
        for func in reversed(self.teardown_appcontext_funcs):
            self.ensure_sync(func)(exc)
        if signals.appcontext_tearing_down.receivers:
            signals.appcontext_tearing_down.send(self, _async_wrapper=self.ensure_sync, exc=exc)

    def app_context(self) -> AppContext:
        return QuietAppContext(self)

    def _hooks_for(self, endpoint: str | None) -> Hooks:
        hooks = self._hooks.get(endpoint)
        if hooks is None:
            hooks = self._hooks[endpoint] = self._hooks_of(endpoint)
        return hooks

    def _hooks_of(self, endpoint: str | None) -> Hooks:
        blueprints = self._blueprints_of(endpoint) if endpoint else []
        outward = (*blueprints, None)  # the endpoint's blueprint first, the app's last
        inward = tuple(reversed(outward))

        def ready(hooks: Mapping[str | None, list[Any]], last_first: bool) -> tuple[Any, ...]:
            names = outward if last_first else inward
            return tuple(
                self.ensure_sync(hook)
                for name in names
                for hook in (reversed if last_first else iter)(hooks.get(name, ()))
            )

        return Hooks(
            tuple(f for name in inward for f in self.url_value_preprocessors.get(name, ())),
            ready(self.before_request_funcs, last_first=False),
            ready(self.after_request_funcs, last_first=True),
            ready(self.teardown_request_funcs, last_first=True),
        )

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        # The views and teardown functions asked on every request: one look-up. A bound
        # method is a new object at each asking, but hashes and compares as its function
        # and instance do.
        try:
            return self._sync[func]
        except (KeyError, TypeError):  # not asked yet, or unhashable
            pass
        # A function's or a bound method's coroutine flag is its code's (what Flask checks).
        code = getattr(getattr(func, "__func__", func), "__code__", None)
        if type(code) is not CodeType:  # a partial, a callable object: ask Flask each time
            return super().ensure_sync(func)
        plain = self._plain.get(code)
        if plain is None:
            plain = self._plain[code] = super().ensure_sync(func) is func
        if not plain:
            return super().ensure_sync(func)
        if len(self._sync) < SYNC_REMEMBERED:  # closures made per call would grow it
            self._sync[func] = func
        return func


def app_modules() -> list[str]:
    """Every module `create_app` may import: the shared ones and each feature's package."""
    names = list(SHARED_MODULES)
    for feature in FEATURES:
        package = importlib.import_module(feature)
        names.append(feature)
        names.extend(info.name for info in pkgutil.walk_packages(package.__path__, f"{feature}."))
    return names


def prefork(settings: Mapping[str, Any]) -> None:
    """What a server's master does once before forking workers, which then share it: import
    the app's modules (no connections, no threads) and, when there is a Q&A index to serve,
    load jieba's dictionary (~0.6 s and ~80 MB). A new or restarted worker then starts in a
    fraction of a second instead of importing and loading them itself."""
    from berater.qna import segment
    from berater.qna.answers import index_file

    for name in app_modules():
        importlib.import_module(name)
    if index_file(settings).exists():
        segment.warm()


def create_app(config: str | Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings, extensions, each feature, error handlers, security headers.

    `config` is an environment name ("development", "testing", "production") or a mapping
    of settings laid over the environment's (tests pass {"BERATER_ENV": "testing", ...}).
    Without either, $BERATER_ENV chooses, and unset means production.
    """
    from berater import cors, errors, http, logs, metrics, urls
    from berater.extensions import crypto, db, migrate, sms, store, tasks, upstream, wechat

    app = Berater(__name__, instance_path=str(PROJECT_ROOT / "instance"))
    app.session_interface = http.CookieSessions()
    settings = load_config(config) if isinstance(config, str) else load_config(overrides=config)
    app.config.update(settings)
    app.instance_path = instance_path(settings)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"] or (
        f"sqlite:///{Path(app.instance_path) / 'berater.sqlite3'}"
    )
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(app.config)
    # Only SERVICE_BASE_URL's host is answered (inside ProxyFix, so X-Forwarded-Host too):
    # another Host gets 400 before any view runs.
    hosts = trusted_hosts(app.config)
    if hosts is not None:
        app.wsgi_app = urls.HostCheck(app.wsgi_app, hosts, app.config["LEGACY_STATUS_200"])  # type: ignore[method-assign]
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    # Outermost: nosniff on every answer, before Flask too; the headers of the answer's route
    # and media type (no-store, CORS, the pages'); each answer counted when METRICS is on.
    logs.configure(
        app,
        http.EVERY_ANSWER,
        metrics.observe_request if app.config["METRICS"] else None,
        http.answer_headers(app, cors.add_headers),
    )
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    store.init_app(app)
    crypto.init_app(app)
    upstream.init_app(app)
    wechat.init_app(app)
    sms.init_app(app)
    tasks.init_app(app)

    if app.config["LEGACY_STATUS_200"]:
        app.after_request(http.legacy_status_line)
    # The JSON API's features nest their blueprints in this one, made per app.
    api = Blueprint("api", __name__, url_prefix="/api")
    for feature in FEATURES:
        importlib.import_module(feature).init_app(app, api)
    app.register_blueprint(api)
    errors.register_error_handlers(app)
    return app


def instance_path(settings: Mapping[str, Any]) -> str:
    """The folder of the SQLite file and the embedded store."""
    return str(settings.get("INSTANCE_PATH") or PROJECT_ROOT / "instance")


def _engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    url = config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite"):
        # Concurrent workers on one file: wait for the lock instead of failing at once.
        return {"connect_args": {"timeout": 5}}
    # One connection per request thread (gthread), and room for the background pool's
    # threads on top, so no request waits for a connection another thread holds.
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_recycle": 1800,
        "pool_size": config["GUNICORN_THREADS"],
        "max_overflow": config["TASK_WORKERS"],
    }
    if url.startswith("mysql"):
        options["connect_args"] = {
            "connect_timeout": 2,
            "read_timeout": 10,
            "write_timeout": 10,
            "ssl_disabled": True,  # on loopback or a private network; saves ~20 ms a connect
        }
    return options
