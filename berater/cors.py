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
`POST /api/token` would get them too; this hook checks the path's rule and the method.
"""

from __future__ import annotations

from flask import Flask, Response, request

from berater.urls import partner_origin

# The path of the route (its rule, as registered) and the methods partner pages may use.
PARTNER_ROUTES: dict[str, frozenset[str]] = {
    "/api/token": frozenset({"GET", "PUT", "DELETE"}),
    "/api/wechat/jssdk": frozenset({"GET"}),
    "/api/qna": frozenset({"GET"}),
}
ALLOW_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight's answer


def init_app(app: Flask) -> None:
    """Add the headers after every request (error answers included)."""
    app.after_request(add_headers)


def add_headers(response: Response) -> Response:
    """The CORS headers for an allowed origin on a partner route; nothing elsewhere."""
    rule = request.url_rule
    methods = PARTNER_ROUTES.get(rule.rule) if rule is not None else None
    if methods is None:
        return response
    response.vary.add("Origin")
    origin = request.headers.get("Origin", "")
    if not origin or not partner_origin(origin):
        return response
    if request.method == "OPTIONS":
        if request.headers.get("Access-Control-Request-Method", "") not in methods:
            return response
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(methods))
        response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    elif request.method in methods or (request.method == "HEAD" and "GET" in methods):
        response.headers["Access-Control-Allow-Origin"] = origin
    return response
