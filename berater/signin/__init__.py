"""The sign-in landing: start WeChat OAuth, come back with a code, hand a token to the app."""

from flask import Blueprint, Flask

bp = Blueprint("signin", __name__)


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the blueprint."""
    from berater.signin import views  # noqa: F401 - routes register on bp

    app.register_blueprint(bp)
