"""Berater: sign-in and identity for the admissions office's WeChat service account."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from berater.config import load_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# What create_app imports (with what they import): ~1.5 s on a 2-core machine.
APP_MODULES = (
    "berater.cli",
    "berater.errors",
    "berater.http",
    "berater.logs",
    "berater.revocation",
    "berater.extensions",
    "berater.api",
    "berater.api.codes",
    "berater.signin",
    "berater.admin",
    "berater.chat",
    "berater.face",
    "berater.nova",
    "berater.ext.wechat.client",
    "berater.admission",
    "berater.cli_admission",
    "berater.menu",
    "berater.qna.cli",
    "berater.qna.evaluate",
)


def prefork(settings: Mapping[str, Any]) -> None:
    """What a server's master does once before forking workers, which then share it: import
    the app's modules (no connections, no threads) and, when there is a Q&A index to serve,
    load jieba's dictionary (~0.6 s and ~80 MB, MEASURED.md). A new or restarted worker then
    starts in a fraction of a second instead of importing and loading them itself."""
    from berater.ext.qna import index_file
    from berater.qna import segment

    for name in APP_MODULES:
        importlib.import_module(name)
    if index_file(settings).exists():
        segment.warm()


def create_app(config: str | Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings, extensions, blueprints, error handlers and CLI commands.

    `config` is an environment name ("development", "testing", "production") or a mapping
    of settings laid over the environment's (tests pass {"BERATER_ENV": "testing", ...}).
    """
    from berater import cli, errors, http, logs, revocation
    from berater.api import bp as api_bp
    from berater.api import testing_bp
    from berater.extensions import crypto, db, migrate, spec, store, wechat
    from berater.signin import bp as signin_bp

    app = Flask(__name__, instance_path=str(PROJECT_ROOT / "instance"))
    settings = load_config(config) if isinstance(config, str) else load_config(overrides=config)
    app.config.update(settings)
    app.instance_path = instance_path(settings)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"] or (
        f"sqlite:///{Path(app.instance_path) / 'berater.sqlite3'}"
    )
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(app.config)

    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    logs.configure(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    store.init_app(app)
    crypto.init_app(app)
    wechat.init_app(app)
    revocation.init_app(app)
    # SMS codes (berater/ext/sms.py): Aliyun or the console backend, by SMS_BACKEND.
    from berater.extensions import sms

    sms.init_app(app)

    app.before_request(http.read_json_body)
    app.register_blueprint(api_bp)
    if app.config["ENABLE_TEST_TOKEN"]:
        app.register_blueprint(testing_bp)
    app.register_blueprint(signin_bp)
    # The console SMS backend's page of recent codes: development and testing only.
    if app.config["ENABLE_TEST_TOKEN"]:
        from berater.api.codes import dev_bp as sms_dev_bp

        app.register_blueprint(sms_dev_bp)
    # Admin: invitation links, roles, audit trail, password accounts.
    from berater.admin import bp as admin_bp

    app.register_blueprint(admin_bp)
    # The WeChat webhook at /chat/ (its own error handler) and the Q&A engine it asks.
    from berater.chat import bp as chat_bp
    from berater.extensions import qna

    qna.init_app(app)
    app.register_blueprint(chat_bp)
    # The photo app's admission-list query at /api/face (app token `face`).
    from berater.face import bp as face_bp

    app.register_blueprint(face_bp)
    # Nova club registration at /api/nova (student; nova_admin for the list and exports).
    from berater.nova import bp as nova_bp

    app.register_blueprint(nova_bp)
    errors.register_error_handlers(app)
    spec.register(app)

    @app.get("/openapi.json")
    def openapi() -> Response:
        return app.json.response(spec.spec)

    cli.register(app)
    return app


def instance_path(settings: Mapping[str, Any]) -> str:
    """The folder of the SQLite file and the embedded store."""
    return str(settings.get("INSTANCE_PATH") or PROJECT_ROOT / "instance")


def _engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    url = config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite"):
        # Concurrent workers on one file: wait for the lock instead of failing at once.
        return {"connect_args": {"timeout": 5}}
    options: dict[str, Any] = {"pool_pre_ping": True, "pool_recycle": 1800}
    if url.startswith("mysql"):
        options["connect_args"] = {
            "connect_timeout": 2,
            "read_timeout": 10,
            "write_timeout": 10,
            "ssl_disabled": True,  # on loopback or a private network; saves ~20 ms a connect
        }
    return options
