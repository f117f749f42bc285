"""Links to this service that leave it (OAuth callbacks, invitation links): built on
SERVICE_BASE_URL, never on the request's Host header, which the client chooses.

create_app also answers only SERVICE_BASE_URL's host (`HostCheck`, on the hosts of
`settings.trusted_hosts`): another Host, or X-Forwarded-Host through a trusted proxy, is 400.

Partner pages live on SIGNIN_REDIRECT_HOSTS: `partner_origin` and `partner_page` say whether
an Origin header or a page URL is one of theirs (CORS and the JS-SDK signature ask them).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

from flask import current_app

from berater.errors import ServiceUnavailable
from berater.http import envelope

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


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


class HostCheck:
    """WSGI middleware: a request whose Host (X-Forwarded-Host once ProxyFix has applied it)
    is not one of `hosts` gets a 400 envelope before Flask sees it.

    Flask's TRUSTED_HOSTS does the same, but walks and IDNA-encodes the list twice a request;
    this is one set look-up. The port is not part of the check, and neither is case. The
    Host values found trusted are remembered as sent (up to KNOWN_HOSTS of them), so the
    usual request costs one look-up of its header.
    """

    KNOWN_HOSTS = 64

    def __init__(self, app: WSGIApplication, hosts: Collection[str], legacy_200: bool) -> None:
        self.app, self.legacy_200 = app, legacy_200
        self.hosts = frozenset(name.lower() for name in hosts)
        self.known: set[str] = set()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST")
        if host is None or host in self.known:  # no Host (HTTP/1.0): the server's own name
            return self.app(environ, start_response)
        if host_name(host) in self.hosts:
            if len(self.known) < self.KNOWN_HOSTS:
                self.known.add(host)
            return self.app(environ, start_response)
        refused = envelope(400, f"Host {host!r} is not trusted", None)
        if self.legacy_200:
            refused.status_code = 200
        return refused(environ, start_response)


def host_name(host: str) -> str:
    """The name in a Host value, without its port and lower-cased ("[::1]:80" -> "::1"); ""
    when what follows the name is not a port."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") or not rest else "-"
    else:
        name, _, port = host.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return ""
    return name.lower()


MAX_PAGE_URL = 1024
WEB_SCHEMES = frozenset({"http", "https"})


def partner_origin(origin: str, hosts: Collection[str] | None = None) -> bool:
    """Whether `origin` (an Origin header: scheme, host and any port, nothing else) is a
    partner page's: http or https on a host of `hosts`, by default the current app's
    SIGNIN_REDIRECT_HOSTS."""
    parts = _web_url(origin)
    if parts is None or parts.path or parts.query or parts.fragment or origin.endswith("#"):
        return False
    if hosts is None:
        hosts = current_app.config["SIGNIN_REDIRECT_HOSTS"]
    return parts.hostname in hosts


def partner_page(url: str) -> bool:
    """Whether `url` is an http(s) page on SIGNIN_REDIRECT_HOSTS or on SERVICE_BASE_URL's
    host (any port, path and query; no user name or password in it)."""
    parts = _web_url(url)
    if parts is None:
        return False
    service = urlsplit(str(current_app.config.get("SERVICE_BASE_URL") or "")).hostname
    hosts = current_app.config["SIGNIN_REDIRECT_HOSTS"]
    return parts.hostname in hosts or (service is not None and parts.hostname == service)


def _web_url(url: str) -> SplitResult | None:
    """`url` split, when it is an absolute http(s) URL with a host, no credentials and no
    characters that browsers and servers read differently; None otherwise."""
    if not url or len(url) > MAX_PAGE_URL or any(ch in url for ch in "\r\n\t\\ "):
        return None
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a broken IPv6 literal or port
        return None
    if parts.scheme not in WEB_SCHEMES or not parts.hostname or not port_ok:
        return None
    if parts.username is not None or "@" in parts.netloc:
        return None
    return parts
