"""Links to this service that leave it (OAuth callbacks, invitation links): built on
SERVICE_BASE_URL, never on the request's Host header, which the client chooses.

create_app also answers only SERVICE_BASE_URL's host (Flask's TRUSTED_HOSTS, from
`settings.trusted_hosts`): another Host, or X-Forwarded-Host through a trusted proxy, is 400.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app

from berater.errors import ServiceUnavailable


def external_url(endpoint: str, **values: Any) -> str:
    """The absolute URL of `endpoint` (with `values`, as url_for takes them) under
    SERVICE_BASE_URL, whose path, if any, is the prefix the service is mounted at."""
    base = str(current_app.config.get("SERVICE_BASE_URL") or "")
    if not base:
        # Production requires the setting; elsewhere it was emptied on purpose.
        raise ServiceUnavailable("this service's address is not configured (SERVICE_BASE_URL)")
    parts = urlsplit(base)
    adapter = current_app.url_map.bind(
        parts.netloc, script_name=parts.path.rstrip("/") or "/", url_scheme=parts.scheme
    )
    return adapter.build(endpoint, values, force_external=True)
