"""The photo app's admission-list query (`GET /api/face/students`, app token `face`)."""

from flask import Blueprint, Flask

bp = Blueprint("face", __name__, url_prefix="/api/face")


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the blueprint."""
    from berater.apps.face import views  # noqa: F401 - routes register on bp

    app.register_blueprint(bp)
