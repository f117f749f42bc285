"""Operations: liveness and readiness (`/healthz`, `/readyz`)."""

from flask import Blueprint, Flask

bp = Blueprint("ops", __name__)


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the health routes on the app (outside `/api`)."""
    from berater.ops import health, views  # noqa: F401 - routes

    health.init_app(app)
    app.register_blueprint(bp)
