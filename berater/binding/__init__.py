"""Binding a WeChat user to a candidate or a student (`/api/candidate`, `/api/student`,
`/api/source`)."""

from flask import Blueprint, Flask

bp = Blueprint("binding", __name__)


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the binding routes under `api`."""
    from berater.binding import views  # noqa: F401 - routes register on bp

    api.register_blueprint(bp)
