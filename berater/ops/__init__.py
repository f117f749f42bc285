"""Operations: liveness and readiness (`/healthz`, `/readyz`) and backups (`flask backup`,
`flask restore`)."""

from flask import Blueprint, Flask

bp = Blueprint("ops", __name__)


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the health routes on the app (outside `/api`) and the backup commands."""
    from berater.ops import cli, health, views  # noqa: F401 - routes

    health.init_app(app)
    app.register_blueprint(bp)
    cli.register(app)
