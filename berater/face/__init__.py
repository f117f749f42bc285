"""The photo app's admission-list query (`GET /api/face/students`, app token `face`)."""

from flask import Blueprint

bp = Blueprint("face", __name__, url_prefix="/api/face")

from berater.face import views  # noqa: E402,F401  (routes register on import)
