"""The OpenAPI document (`/openapi.json`, `/docs/openapi.json`) and the API documentation
pages (`/docs/swagger/`, `/docs/redoc/`, `/docs/scalar/`), served when API_DOCS is on (off in
production: all of them are 404). The pages come without a CDN: spectree renders them from
`pages.PAGE_TEMPLATES`, whose scripts and styles this feature serves under `/docs/assets/`,
and they carry a Content-Security-Policy of their own (`pages.DOCS_POLICY`)."""

from typing import cast

from flask import Blueprint, Flask, Response

bp = Blueprint("docs", __name__, url_prefix="/docs/assets")


def init_app(app: Flask, api: Blueprint) -> None:
    """With API_DOCS: the document, the pages with their policy, and the pages' assets."""
    if not app.config["API_DOCS"]:
        return
    from berater import http
    from berater.docs import pages, views  # noqa: F401 - routes register on bp
    from berater.extensions import spec

    app.register_blueprint(bp)
    spec.register(app)  # /docs/openapi.json and the pages
    for endpoint in pages.PAGE_ENDPOINTS:
        http.page_policy(pages.DOCS_POLICY)(app.view_functions[endpoint])

    @app.get("/openapi.json")
    def openapi() -> Response:
        return cast(Response, app.json.response(spec.spec))
