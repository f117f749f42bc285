"""The WeChat webhook at /chat/: handshake, messages, and replies the way WeChat expects."""

from flask import Blueprint, Flask

bp = Blueprint("chat", __name__, url_prefix="/chat")


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the blueprint."""
    from berater.chat import views  # noqa: F401 - routes register on bp

    app.register_blueprint(bp)
