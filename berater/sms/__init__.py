"""SMS codes: send a code to a phone, verify it (`/api/code`), and the development page of
the console backend's codes (`/dev/sms`)."""

from flask import Blueprint, Flask

bp = Blueprint("code", __name__)


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the code routes under `api`; the console page outside production."""
    from berater import logs
    from berater.sms import views

    api.register_blueprint(bp)
    logs.mask_path(app, views.LEGACY_PATH, views.MASKED_PATH)
    if app.config["ENABLE_TEST_TOKEN"]:
        app.register_blueprint(views.dev_bp)
