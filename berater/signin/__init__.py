"""The sign-in landing: start WeChat OAuth, come back with a code, hand a token to the app."""

from flask import Blueprint

bp = Blueprint("signin", __name__)

from berater.signin import views  # noqa: E402,F401  (routes register on import)
