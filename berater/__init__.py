"""Berater: sign-in and identity for the admissions office's WeChat service account."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from pathlib import Path
from types import CodeType
from typing import Any

from flask import Blueprint, Flask, request
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


class Berater(Flask):
    """Flask, with a leaner path through every request:

    - `preprocess_request` does Flask's work (the URL value preprocessors, then the
      `before_request` hooks of the app and of the endpoint's blueprints) from lists made
      once per endpoint (hooks cannot be added once requests are served), and in between
      what every request needs before its view: first of all the matched rule's
      `http.Route` into the environ (for the answer's headers and the metrics), then the
      JSON body check (`http.check_body_before_view`);
    - `ensure_sync`, which Flask asks before every call of a view or a hook, answers from
      what it found the first time for that function's code instead of inspecting it again
      (berater has no coroutine views or hooks; one would still be wrapped).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain: dict[CodeType, bool] = {}  # one entry per def, not per closure
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}  # plain ones, as asked
        # Per endpoint (None: no rule matched): its URL value preprocessors and its
        # before_request hooks (ready to call), in Flask's order.
        self._hooks: dict[str | None, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
        from berater import cors, http  # not at the top: importing berater stays cheap

        self.request_class = http.BeraterRequest
        self.routes = http.Routes(self, cors.PARTNER_ROUTES)
        self._route_key = http.ROUTE_KEY
        self._check_body = http.check_body_before_view
        self._blueprints_of = http.blueprints_of

    def preprocess_request(self) -> Any:
        req = request._get_current_object()  # type: ignore[attr-defined]
        rule = req.url_rule
        route = endpoint = None
        if rule is not None:
            route = req.environ[self._route_key] = self.routes.of(rule)
            endpoint = rule.endpoint
        hooks = self._hooks.get(endpoint)
        if hooks is None:
            hooks = self._hooks[endpoint] = self._hooks_of(endpoint)
        url_funcs, before_funcs = hooks
        for url_func in url_funcs:
            url_func(endpoint, req.view_args)
        self._check_body(req, route)
        for before_func in before_funcs:
            answer = before_func()
            if answer is not None:
                return answer
        return None

    def _hooks_of(self, endpoint: str | None) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        blueprints = self._blueprints_of(endpoint) if endpoint else []
        names = (None, *reversed(blueprints))  # the app's first, then outermost to innermost
        url_funcs = tuple(f for name in names for f in self.url_value_preprocessors.get(name, ()))
        before = tuple(
            self.ensure_sync(f) for name in names for f in self.before_request_funcs.get(name, ())
        )
        return url_funcs, before

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
