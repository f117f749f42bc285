"""The API documentation pages (`/docs/swagger/`, `/docs/redoc/`, `/docs/scalar/`) without a
CDN: spectree renders them from `pages.PAGE_TEMPLATES`, whose scripts and styles this
feature serves under `/docs/assets/`, and they carry their own Content-Security-Policy."""

from flask import Blueprint, Flask

bp = Blueprint("docs", __name__, url_prefix="/docs/assets")


def init_app(app: Flask, api: Blueprint) -> None:
    """Serve the assets and set the pages' Content-Security-Policy."""
    from berater.docs import pages, views  # noqa: F401 - routes register on bp

    app.register_blueprint(bp)
    app.after_request(pages.page_policy)
