"""The WeChat webhook at /chat/: handshake, messages, and replies the way WeChat expects."""

from flask import Blueprint

bp = Blueprint("chat", __name__, url_prefix="/chat")

from berater.chat import views  # noqa: E402, F401 - registers the routes on bp
