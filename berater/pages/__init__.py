"""The pages students and candidates use in WeChat's browser: registration as a student or a
candidate (`/register/student`, `/register/candidate`), my binding (`/me`) and the Q&A page
(`/qna`). Server-rendered templates and a little plain JavaScript from berater/static; the
scripts call the same JSON API partner apps use, with the token the sign-in put in the
fragment."""

from flask import Blueprint, Flask

bp = Blueprint("pages", __name__)


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the pages."""
    from berater.pages import views  # noqa: F401 - routes register on bp

    app.register_blueprint(bp)
