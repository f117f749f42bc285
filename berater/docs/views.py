"""The documentation pages' scripts and styles, from the installed packages."""

from __future__ import annotations

from flask import Response, send_file

from berater.docs import bp, pages
from berater.errors import NotFound


@bp.get("/<name>")
def asset(name: str) -> Response:
    """One of `pages.ASSETS` by name (an allowlist: no path from the request reaches the disk)."""
    found = pages.ASSETS.get(name)
    if found is None:
        raise NotFound("no such asset")
    path, mimetype = found
    return send_file(path(), mimetype=mimetype, max_age=pages.ASSET_MAX_AGE, conditional=True)
