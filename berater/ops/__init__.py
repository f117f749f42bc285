"""Operations: liveness and readiness (`/healthz`, `/readyz`), Prometheus metrics
(`/metrics`) and backups (`flask backup`, `flask restore`)."""

from flask import Blueprint, Flask

bp = Blueprint("ops", __name__)


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the health and metrics routes on the app (outside `/api`) and the backup
    commands."""
    from berater.ops import cli, health, views

    health.init_app(app)
    app.register_blueprint(bp)
    if app.config["METRICS"]:
        app.add_url_rule("/metrics", "metrics", views.metrics_view, methods=["GET"])
    cli.register(app)
