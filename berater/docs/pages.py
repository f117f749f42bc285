"""The documentation pages spectree renders (its `page_templates`), the files they load, and
their Content-Security-Policy.

Swagger UI, Redoc and Scalar come from the `offapi` package (pinned in requirements.txt),
which ships each one's browser bundle; spectree's own templates would load them from unpkg
and jsDelivr, or, with offapi installed, inline megabytes of script into every page. Here
each page is a few lines of HTML that load the bundle and a small start-up script of ours
(berater/docs/static/) from `/docs/assets/`, with relative URLs so the pages also work when
the service is mounted under a path. No page holds inline script, so they work under
`script-src 'self'`; the start-up scripts turn off what would reach the internet (Swagger
UI's validator badge, Redoc's telemetry, Scalar's web fonts).

The pages get a policy of their own (`DOCS_POLICY`, instead of the pages' policy that
berater/http.py sets): Redoc and Scalar add `<style>` elements while they render and
Swagger UI shows its icons as `data:` images, so styles may be inline and images may be
`data:`; scripts, connections and everything else stay on 'self'.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
ASSET_MAX_AGE = 3600  # seconds; the names stay when the package is upgraded


def _offapi(name: str) -> Callable[[], Path]:
    def path() -> Path:
        return Path(str(resources.files("offapi") / name))

    return path


def _ours(name: str) -> Callable[[], Path]:
    return lambda: STATIC / name


JS = "text/javascript"
CSS = "text/css"
# URL name -> (where the file is, its media type).
ASSETS: dict[str, tuple[Callable[[], Path], str]] = {
    "swagger-ui.css": (_offapi("swagger_style.css"), CSS),
    "swagger-ui-bundle.js": (_offapi("swagger_bundle.js"), JS),
    "swagger-ui-standalone-preset.js": (_offapi("swagger_preset.js"), JS),
    "redoc.standalone.js": (_offapi("redoc.js"), JS),
    "scalar.js": (_offapi("scalar.js"), JS),
    "swagger-init.js": (_ours("swagger-init.js"), JS),
    "redoc-init.js": (_ours("redoc-init.js"), JS),
    "scalar-init.js": (_ours("scalar-init.js"), JS),
    "docs.css": (_ours("docs.css"), CSS),
}

DOCS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_ENDPOINTS = frozenset({"openapi_docs_swagger", "openapi_docs_redoc", "openapi_docs_scalar"})

# spectree fills {spec_url}; the pages use the relative ../openapi.json instead (the same
# document, /docs/openapi.json, and right under a path prefix too), as `data-openapi`: a name
# none of the renderers looks for by itself (Scalar would mount itself on data-spec-url).
# The empty `data:,` icon saves the browser a request for /favicon.ico.
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Berater API · {title}</title>
<link rel="icon" href="data:,">
{head}<link rel="stylesheet" href="../assets/docs.css">
</head>
<body>
{body}
</body>
</html>
"""


def _page(title: str, head: str, body: str) -> str:
    # The result is a str.format template for spectree: no other braces may remain.
    return _PAGE.format(title=title, head=head, body=body)


PAGE_TEMPLATES: dict[str, str] = {
    "swagger": _page(
        "Swagger UI",
        '<link rel="stylesheet" href="../assets/swagger-ui.css">\n',
        '<div id="swagger-ui" data-openapi="../openapi.json"></div>\n'
        '<script src="../assets/swagger-ui-bundle.js"></script>\n'
        '<script src="../assets/swagger-ui-standalone-preset.js"></script>\n'
        '<script src="../assets/swagger-init.js"></script>',
    ),
    "redoc": _page(
        "Redoc",
        "",
        '<div id="redoc" data-openapi="../openapi.json"></div>\n'
        '<script type="module" src="../assets/redoc-init.js"></script>',
    ),
    "scalar": _page(
        "Scalar",
        "",
        '<div id="scalar" data-openapi="../openapi.json"></div>\n'
        '<script src="../assets/scalar.js"></script>\n'
        '<script src="../assets/scalar-init.js"></script>',
    ),
}
