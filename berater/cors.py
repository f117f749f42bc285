"""CORS for partner pages: the one place that says which browser code on another origin may
call which endpoint.

A partner page on a host of SIGNIN_REDIRECT_HOSTS (http or https, any port, as the sign-in
lands there on any port) may call, from its own origin, the endpoints in PARTNER_ROUTES with
the methods listed there, preflight included; every other origin, endpoint and method gets
no CORS header at all, so the browser keeps the answer from the page. The answer to an
allowed origin names that origin (never `*`) and no credentials: partner code sends the
token in `Authorization`, never a cookie. `Vary: Origin` is on every answer of those
endpoints, so a cache never hands one origin's answer to another.

flask-cors matches resources by path alone and adds its headers whatever the method, so a
`POST /api/token` would get them too; here the matched rule and the method decide. The
headers are added at the WSGI edge (`http.answer_headers` calls `add_headers` for the
answers of a partner route, error answers included).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from berater.urls import partner_origin

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

# The path of the route (its rule, as registered) and the methods partner pages may use.
PARTNER_ROUTES: dict[str, frozenset[str]] = {
    "/api/token": frozenset({"GET", "PUT", "DELETE"}),
    "/api/wechat/jssdk": frozenset({"GET"}),
    "/api/qna": frozenset({"GET"}),
}
ALLOW_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight's answer


def add_headers(
    environ: WSGIEnvironment,
    methods: frozenset[str],
    headers: list[tuple[str, str]],
    hosts: Collection[str],
) -> None:
    """The CORS headers of an answer of a partner route (one allowing `methods`) for an
    origin on `hosts` (SIGNIN_REDIRECT_HOSTS), added to the WSGI `headers`; only
    `Vary: Origin` for any other origin or method."""
    vary(headers, "Origin")
    origin = environ.get("HTTP_ORIGIN", "")
    if not origin or not partner_origin(origin, hosts):
        return
    method = environ.get("REQUEST_METHOD", "")
    if method == "OPTIONS":
        if environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "") not in methods:
            return
        headers.append(("Access-Control-Allow-Origin", origin))
        headers.append(("Access-Control-Allow-Methods", ", ".join(sorted(methods))))
        headers.append(("Access-Control-Allow-Headers", ALLOW_HEADERS))
        headers.append(("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE)))
    elif method in methods or (method == "HEAD" and "GET" in methods):
        headers.append(("Access-Control-Allow-Origin", origin))


def vary(headers: list[tuple[str, str]], name: str) -> None:
    """Add `name` to the answer's Vary header (WSGI `headers`, changed in place), once."""
    for index, (header, value) in enumerate(headers):
        if header.lower() == "vary":
            names = {part.strip().lower() for part in value.split(",")}
            if name.lower() not in names:
                headers[index] = (header, f"{value}, {name}" if value.strip() else name)
            return
    headers.append(("Vary", name))
