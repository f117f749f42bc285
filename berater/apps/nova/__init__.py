"""Nova club registration: the student's own registration, and the club admins' list and exports.

`views` is the JSON API (`student` for one's own registration, `nova_admin` for the list,
cancellations and exports); `services` does the work; `notify` sends the WeChat template
message in the background; `export` writes CSV and .xlsx.
"""

from flask import Blueprint, Flask

bp = Blueprint("nova", __name__, url_prefix="/api/nova")


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the blueprint."""
    from berater.apps.nova import views  # noqa: F401 - routes register on bp

    app.register_blueprint(bp)
