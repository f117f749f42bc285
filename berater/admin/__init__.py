"""Admin: one-time invitation links that grant a role, roles, the audit trail, accounts.

`views` is the JSON API (a Bearer token holding `admin`); `pages` are the HTML pages a
person opens in WeChat's browser (signed in through WeChat OAuth, kept in the session).
"""

from flask import Blueprint, Flask

bp = Blueprint("admin", __name__, url_prefix="/api/admin")


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the blueprint."""
    from berater.admin import pages, views  # noqa: F401 - routes register on bp

    app.register_blueprint(bp)
