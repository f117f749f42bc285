"""The account's menu (`flask wechat menu create|show|check|delete`) and the JS-SDK
signatures partner pages need for `wx.config` (`/api/wechat/jssdk`, `flask wechat ticket`)."""

from flask import Blueprint, Flask

bp = Blueprint("wechat", __name__, url_prefix="/wechat")


def init_app(app: Flask, api: Blueprint) -> None:
    """Register the JS-SDK route under `api` and `flask wechat menu|ticket ...`."""
    from berater.wechat import cli, views  # noqa: F401 - routes register on bp
    from berater.wechat.menu import register_cli

    register_cli(app)
    cli.register(app)
    api.register_blueprint(bp)
