"""Identity: tokens (`/api/token`), the token check, roles and grants, revocation, password
accounts and the audit trail; operator commands `flask user|role|token|keys`."""

from flask import Blueprint, Flask

bp = Blueprint("token", __name__)
# `POST /api/test/token/<openid>`: registered under development and testing settings only.
testing_bp = Blueprint("testing", __name__, url_prefix="/test")


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the token routes under `api`, the revocation copy and the CLI commands."""
    from berater.identity import cli, revocation, testing, views  # noqa: F401 - routes

    revocation.init_app(app)
    api.register_blueprint(bp)
    if app.config["ENABLE_TEST_TOKEN"]:
        api.register_blueprint(testing_bp)
    cli.register(app)
