"""The JSON API under /api: tokens now; codes, binding and Q&A join it."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")
testing_bp = Blueprint("api_testing", __name__, url_prefix="/api/test")

from berater.api import binding, codes, qna, testing, views  # noqa: E402,F401  (routes register on import)
