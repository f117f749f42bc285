"""The HTTP contract every feature shares: the response envelope and its models, the
documented error answers and security requirements, and the checks every JSON request goes
through at the edge."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar
from urllib.parse import urlsplit

import orjson
from flask import (
    Flask,
    Request,
    Response,
    abort,
    jsonify,
    make_response,
    request,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict
from spectree import SpecTree
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.utils import (
    cached_type_hints,
    default_after_handler,
    default_before_handler,
    get_multidict_items,
)
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import Rule

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

JSON_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_JSON_DEPTH = 32
VALID_BODIES = 1024  # answer bodies remembered as valid for their model (see Validation)
VALID_BODY_BYTES = 2048  # larger bodies are validated every time
URI_HEADERS = frozenset({"location", "content-location"})  # werkzeug makes these URI-safe

# Security requirements of an operation, for `spec.validate(security=...)`: a user token,
# or a partner app's `Bearer <app> <app_token>`; `BEARER + APP` accepts either.
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
APP: list[dict[str, list[str]]] = [{"app": []}]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Strict(BaseModel):
    """Unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Envelope(BaseModel, Generic[T]):
    """Every answer: `code` is the HTTP status of the outcome, `error` empty on success."""

    code: int
    error: str
    data: T | None = None


class ErrorOut(BaseModel):
    """Details of a failure, when there are any (e.g. the invalid fields of a 400)."""

    fields: list[dict[str, str]] | None = None
    retry_after: int | None = None


def errors(*statuses: int, model: type[BaseModel] = ErrorOut) -> dict[str, type[BaseModel]]:
    """The documented failure answers of an operation, for `spectree.Response(**errors(...))`:
    the envelope with `model` as its data, for each of `statuses`."""
    return {f"HTTP_{status}": Envelope[model] for status in statuses}  # type: ignore[valid-type]


class EnvelopeResponse(Response):
    """An answer in the envelope (in legacy mode its status line is rewritten to 200).

    Sent as it stands when nothing is left to fix: its body is still the one bytes object
    `envelope()` gave it (`sole_body`), with its Content-Length header, and the answer
    carries a body (not HEAD, 1xx, 204 or 304), no Location or Content-Location to make
    URI-safe and nothing to call at its close. werkzeug would otherwise copy its headers
    and wrap the body in an iterator with a close, each request, to end with the same
    headers and bytes."""

    def get_wsgi_response(
        self, environ: WSGIEnvironment
    ) -> tuple[Iterable[bytes], str, list[tuple[str, str]]]:
        body = sole_body(self)
        status = self.status_code
        if (
            body is not None
            and status >= 200
            and status != 204
            and status != 304
            and not self._on_close
            and environ["REQUEST_METHOD"] != "HEAD"
        ):
            headers = self.headers.to_wsgi_list()
            names = {name.lower() for name, _ in headers}
            if "content-length" in names and names.isdisjoint(URI_HEADERS):
                return [body], self.status, headers
        return super().get_wsgi_response(environ)


def sole_body(response: Response) -> bytes | None:
    """The body of `response` when it is still the one bytes object `envelope()` gave it
    (werkzeug keeps it in a list), else None: a body that can be checked and sent as it is."""
    chunks = response.response
    if type(chunks) is list and len(chunks) == 1 and type(chunks[0]) is bytes:
        return chunks[0]
    return None


def envelope(status: int, error: str, data: Any, headers: dict[str, str] | None = None) -> Response:
    """Build `{"code", "error", "data"}` with `status` on the status line."""
    body = orjson.dumps({"code": status, "error": error, "data": data})
    return EnvelopeResponse(body, status, headers, content_type="application/json")


def legacy_status_line(response: Response) -> Response:
    """LEGACY_STATUS_200 (an after-request hook only then): an envelope's status line says
    200, its `code` keeps the outcome."""
    if isinstance(response, EnvelopeResponse):
        response.status_code = 200
    return response


def ok(data: Any = None, status: int = 200) -> Response:
    """A success envelope."""
    return envelope(status, "", data)


# Marks a view carries (set by the decorators below; `functools.wraps` keeps them).
BODY_AFTER_AUTH = "checks_body_after_auth"
NO_STORE = "no_store"
PAGE_POLICY = "page_policy"

# The Content-Security-Policy of every HTML page: its scripts, styles and images come from
# berater/static (no inline script, style or event handler), it cannot be framed, carries no
# <base>, and its forms post here or, to start a sign-in, to WeChat's authorize page.
PAGE_CSP = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self' {oauth}; frame-ancestors 'none'"
)
PAGE_REFERRER_POLICY = "same-origin"  # full URL within the service, nothing to other sites
# Sent with every answer by the outermost WSGI layer (berater/logs.py's RequestLog), also
# with those given before Flask (the Host check's 400).
EVERY_ANSWER = (("X-Content-Type-Options", "nosniff"),)


def page_csp(oauth_base: str) -> str:
    """The pages' Content-Security-Policy for an app whose WeChat OAuth pages are at
    `oauth_base` (WECHAT_OAUTH_BASE; its origin is allowed as a form's target)."""
    parts = urlsplit(oauth_base)
    return PAGE_CSP.format(oauth=f"{parts.scheme}://{parts.netloc}")


def no_store(view: F) -> F:
    """Mark `view`: every answer it gives, errors included, carries `Cache-Control: no-store`,
    because it holds a token or personal data. `token_required` marks each view it guards;
    an unguarded view that hands out a token (signing in) is marked with this decorator."""
    setattr(view, NO_STORE, True)
    return view


def page_policy(csp: str) -> Callable[[F], F]:
    """Give the pages of one view a Content-Security-Policy of their own instead of the
    pages' (the API docs pages, whose renderers add inline styles)."""

    def mark(view: F) -> F:
        setattr(view, PAGE_POLICY, csp)
        return view

    return mark


class Route(NamedTuple):
    """What the pipeline needs of a matched URL rule, read once from its view's marks (a
    view's marks do not change once the app serves requests)."""

    rule: str  # its text, `/api/code/<code>`: the metrics' label, never the path
    no_store: bool  # `no_store`: Cache-Control: no-store on every answer
    page_policy: str | None  # `page_policy`: its pages' CSP, None for the pages' own
    body_after_auth: bool  # `checks_body_after_auth`: the view checks the body itself
    partner_methods: frozenset[str] | None  # CORS: the methods partner origins may use


ROUTE_KEY = "berater.route"  # where the matched rule's Route waits in the WSGI environ


class Routes:
    """The Route of each URL rule of `app`, worked out on the rule's first request.
    `partner_routes` maps a rule's text to the methods partner pages may call it with
    (berater/cors.py)."""

    def __init__(self, app: Flask, partner_routes: Mapping[str, frozenset[str]]) -> None:
        self.views = app.view_functions
        self.partner_routes = partner_routes
        # Keyed by id(): werkzeug's rules are unhashable. The rule is kept beside its Route,
        # so its id cannot be reused while the entry lives, and is compared all the same.
        self._known: dict[int, tuple[Rule, Route]] = {}

    def of(self, rule: Rule) -> Route:
        known = self._known.get(id(rule))
        if known is not None and known[0] is rule:
            return known[1]
        view = self.views.get(rule.endpoint)
        route = Route(
            rule.rule,
            bool(getattr(view, NO_STORE, False)),
            getattr(view, PAGE_POLICY, None),
            bool(getattr(view, BODY_AFTER_AUTH, False)),
            self.partner_routes.get(rule.rule),
        )
        self._known[id(rule)] = (rule, route)
        return route


def check_body_before_view(req: Request, route: Route | None) -> None:
    """The JSON body check before any view (the app's `preprocess_request` does this before
    the `before_request` hooks), except for a view that checks the body itself after the
    token (see `checks_body_after_auth`). A request without a body-carrying method (GET,
    HEAD, OPTIONS) costs one set look-up."""
    if req.method in JSON_METHODS and (route is None or not route.body_after_auth):
        check_json_body(req)


class BeraterRequest(Request):
    """Flask's request, whose `blueprints` (asked by Flask after the view and at the end of
    every request) is worked out once per endpoint instead of on each asking."""

    @property
    def blueprints(self) -> list[str]:
        rule = self.url_rule
        return [] if rule is None else blueprints_of(rule.endpoint)


@functools.cache
def blueprints_of(endpoint: str) -> list[str]:
    """The names of an endpoint's blueprint and those around it, innermost first (Flask's
    `Request.blueprints`; the list is shared, as Flask's own is, and never changed)."""
    if "." not in endpoint:
        return []
    name = endpoint.rpartition(".")[0]
    return [name, *blueprints_of(name)] if "." in name else [name]


Headers = list[tuple[str, str]]
JSON_TYPE = "application/json"  # most answers: known at once not to be a page
# The headers of a page that the edge sets itself, whatever the page had (lower-cased).
PAGE_OWN = frozenset({"content-security-policy", "x-frame-options"})
CorsHeaders = Callable[["WSGIEnvironment", frozenset[str], Headers, Collection[str]], None]


def answer_headers(app: Flask, cors: CorsHeaders) -> Callable[[WSGIEnvironment, Headers], None]:
    """The headers an answer gets from its route and its media type, added at the WSGI edge
    (the request log calls the function made here with the headers each answer starts
    with), so they are on every answer, errors included, whoever built it:

    - `Cache-Control: no-store` on the answers of views marked `no_store`;
    - on a partner route, `Vary: Origin` and, for an allowed origin, the CORS headers
      (`cors`, given the app's SIGNIN_REDIRECT_HOSTS: berater/cors.py);
    - on every HTML page, whoever renders it: `Content-Security-Policy` (the view's
      `page_policy`, else the pages' policy), `Referrer-Policy` (unless the page chose a
      stricter one) and `X-Frame-Options: DENY` for browsers without `frame-ancestors`.

    The route is the one Flask matched (`Routes`); an answer without one (404, 405, the
    Host check's 400) gets only the page headers, when it is a page. A JSON answer of a
    route without marks costs a look-up in the environ and a look at its first header.
    """
    config = app.config
    default_csp = page_csp(config["WECHAT_OAUTH_BASE"])

    def add(environ: WSGIEnvironment, headers: Headers) -> None:
        route: Route | None = environ.get(ROUTE_KEY)
        if route is not None:
            if route.no_store:
                # A second Cache-Control would be harmless (a cache that sees no-store
                # stores nothing), so the headers already there are not searched.
                headers.append(("Cache-Control", "no-store"))
            if route.partner_methods is not None:
                cors(environ, route.partner_methods, headers, config["SIGNIN_REDIRECT_HOSTS"])
        for name, value in headers:  # werkzeug sends Content-Type first
            if name == "Content-Type" or name.lower() == "content-type":
                if not value.startswith(JSON_TYPE) and is_html(value):
                    policy = route.page_policy if route is not None else None
                    page_headers(headers, policy or default_csp)
                break

    return add


def is_html(content_type: str) -> bool:
    """Whether a Content-Type value names an HTML document."""
    return content_type.partition(";")[0].strip().lower() == "text/html"


def page_headers(headers: Headers, policy: str) -> None:
    """Make `headers` (a WSGI list, changed in place) a page's: `policy` as its
    Content-Security-Policy, X-Frame-Options DENY, and the pages' Referrer-Policy unless it
    has one of its own."""
    referrer = False
    kept = []
    for name, value in headers:
        lower = name.lower()
        if lower in PAGE_OWN:
            continue
        referrer = referrer or lower == "referrer-policy"
        kept.append((name, value))
    if not referrer:
        kept.append(("Referrer-Policy", PAGE_REFERRER_POLICY))
    kept.append(("Content-Security-Policy", policy))
    kept.append(("X-Frame-Options", "DENY"))
    headers[:] = kept


def checks_body_after_auth(view: F) -> F:
    """Mark `view` as one that calls `check_json_body()` itself, once the caller is known, so
    that a caller without a token gets 401 whatever the body (`token_required` does this).
    The mark survives `functools.wraps`."""
    setattr(view, BODY_AFTER_AUTH, True)
    return view


def check_json_body(req: Request | None = None) -> None:
    """Parse a JSON body once: 415 for other media, 400 for bad or deep JSON or anything but
    an object, 413 past the size limit (`req`: the current request, when the caller holds
    it already).

    The parsed value is cached by Flask, so `request.get_json()` and the validators reuse it.
    A request without a body (GET, HEAD, OPTIONS, or an empty one) costs little.
    """
    if req is None:
        req = request._get_current_object()  # type: ignore[attr-defined]
    if req.method not in JSON_METHODS:
        return
    raw = read_body(cache=True)
    if not raw:
        return
    from berater.errors import BadRequest, UnsupportedMediaType

    if not req.is_json:
        raise UnsupportedMediaType()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadRequest("the body is nested too deeply")
    req._cached_json = (value, value)  # Flask's own cache for get_json()


def read_body(cache: bool) -> bytes:
    """The request body, or RequestEntityTooLarge past `request.max_content_length`, however
    the body is framed.

    Werkzeug refuses a declared Content-Length over the limit, but stops reading a chunked
    body at the limit without an error; the part it read would then be parsed as if whole.
    A chunked body that reaches the limit is therefore refused too.
    """
    raw = request.get_data(cache=cache)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        raise RequestEntityTooLarge()
    return raw


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


M = TypeVar("M", bound=BaseModel)
ERRORS_ONLY = "acts_on_errors_only"
REQUEST_PARTS = ("query", "json", "form", "headers", "cookies")  # spectree's request models


def on_errors_only(hook: F) -> F:
    """Mark a spectree `before` hook that does nothing when the request passed validation,
    so that `Validation` calls it only for a failed one."""
    setattr(hook, ERRORS_ONLY, True)
    return hook


def json_body(model: type[M]) -> M:
    """The body, already validated against `model` by `spec.validate(json=model)`."""
    value = getattr(getattr(request, "context", None), "json", None)
    if not isinstance(value, model):
        from berater.errors import BadRequest

        raise BadRequest("send a JSON object body with Content-Type: application/json")
    return value


def query_args(model: type[M]) -> M:
    """The query string, already validated against `model` by `spec.validate(query=model)`."""
    value = getattr(getattr(request, "context", None), "query", None)
    if not isinstance(value, model):
        from berater.errors import BadRequest

        raise BadRequest("the query string is not valid")
    return value


class Plan(NamedTuple):
    """How `Validation` answers one view on its short path."""

    call_before: bool  # the `before` hook does something for a request that passed
    call_after: bool  # the `after` hook does something for an answer that passed
    models: dict[int, Any]  # the documented model of each status answered so far, or None


class Validation(FlaskPlugin):
    """spectree's Flask plugin, doing only the work a request needs.

    On the way in, only the parts of the request a model is declared for are read (spectree
    copies the query string, headers and cookies into dicts on every request). On the way
    out, a `Response` a view built with `ok()` or `envelope()` is validated from its bytes
    against the model of its status and then answered as it is, instead of being taken
    apart and built again; and a body already found valid for that model is not validated
    again (the last VALID_BODIES bodies of up to VALID_BODY_BYTES are remembered): a health
    check's constant answer, or the identity of a token checked again, costs a look-up
    instead of a pass through pydantic, which costs tens of microseconds under load, when
    its code and tables are no longer in the CPU's caches. The hooks (`before`, `after`)
    are called as spectree calls them, except spectree's own defaults, and a `before` hook
    marked `on_errors_only`, when there is no error for them to act on. What a view needs
    is worked out on its first request (its `Plan`).
    Anything this does not cover (form, header or cookie models, request models taken as
    view arguments, skipped validation, a view that does not return a `Response`) and
    every failed response check go through spectree's own code.
    """

    def __init__(self, spectree: Any) -> None:
        super().__init__(spectree)
        # Per view function: None where spectree's own path is needed, else the short one's.
        self._plans: dict[Any, Plan | None] = {}
        # Raises for an invalid body, which is therefore never remembered.
        self._check_body = functools.lru_cache(maxsize=VALID_BODIES)(self._validate_body)

    def _validate_body(self, model: Any, body: bytes) -> None:
        self.model_adapter.validate_json(model, body)

    def _passes(self, plan: Plan, resp: Any, answer: Response) -> bool:
        """What `validate_response` finds for an `ok()` answer, without its calls: True
        when its status has no model, or its body is known valid for the model (and is then
        remembered); False sends it through `validate_response`, which reports a failure."""
        status = answer.status_code
        model = plan.models.get(status, plan)
        if model is plan:
            model = plan.models[status] = resp.find_model(status)
        if model is None:
            return True
        body = sole_body(answer)
        if body is None or len(body) > VALID_BODY_BYTES:
            return False
        try:
            self._check_body(model, body)
        except self.model_adapter.validation_error:
            return False
        return True

    def validate(
        self,
        func: Any,
        query: Any,
        json: Any,
        form: Any,
        headers: Any,
        cookies: Any,
        resp: Any,
        before: Any,
        after: Any,
        validation_error_status: int,
        skip_validation: bool,
        force_resp_serialize: bool,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        try:
            plan = self._plans[func]
        except KeyError:
            plan = self._plans[func] = self._plan(func, form, headers, cookies, before, after)
        if plan is None or skip_validation:
            return super().validate(
                func,
                query,
                json,
                form,
                headers,
                cookies,
                resp,
                before,
                after,
                validation_error_status,
                skip_validation,
                force_resp_serialize,
                *args,
                **kwargs,
            )
        adapter = self.model_adapter
        if query is not None or json is not None:  # else there is nothing to read
            req = request._get_current_object()  # type: ignore[attr-defined]
            try:
                self.request_validation(req, query, json, None, None, None)
            except adapter.validation_error as error:
                errors = jsonify(adapter.validation_errors(error))
                failed = make_response(errors, validation_error_status)
                before(req, failed, error, None, adapter)
                abort(failed)
        if plan.call_before:
            before(request._get_current_object(), None, None, None, adapter)  # type: ignore[attr-defined]
        answer = func(*args, **kwargs)
        if (
            type(answer) is EnvelopeResponse
            and not plan.call_after
            and not force_resp_serialize
            and resp is not None
            and self._passes(plan, resp, answer)
        ):
            return answer
        return self._checked(answer, resp, after, plan.call_after, force_resp_serialize)

    def _checked(
        self, answer: Any, resp: Any, after: Any, call_after: bool, force_resp_serialize: bool
    ) -> Any:
        """spectree's check of a view's answer, and its `after` hook when the hook acts on
        every answer or the check failed."""
        response, response_error = self.validate_response(answer, resp, False, force_resp_serialize)
        if call_after or response_error is not None:
            after(request._get_current_object(), response, response_error, None, self.model_adapter)  # type: ignore[attr-defined]
        return response

    def lean(
        self, func: Callable[..., Any], validated: Callable[..., Any], options: Mapping[str, Any]
    ) -> Callable[..., Any] | None:
        """The view Flask calls for `func`, decorated by `Spec.validate` with `options`, when
        nothing has to happen before it (no request model, no hook that acts on a request
        that passed) and nothing after it but the answer's check: a wrapper of one call that
        checks the answer as `validate` does. None where `validated`, spectree's wrapper,
        has more to do. `validated` stays reachable as `__wrapped__`, where spectree looks
        for the route's documentation."""
        resp = options.get("resp")
        if (
            resp is None
            or any(options.get(part) is not None for part in REQUEST_PARTS)
            or options.get("skip_validation")
            or options.get("force_resp_serialize")
        ):
            return None
        before = options.get("before") or self.spectree.before
        after = options.get("after") or self.spectree.after
        plan = self._plan(func, None, None, None, before, after)
        if plan is None or plan.call_before or plan.call_after:
            return None
        passes, checked = self._passes, self._checked

        @functools.wraps(func)
        def view(*args: Any, **kwargs: Any) -> Any:
            answer = func(*args, **kwargs)
            if type(answer) is EnvelopeResponse and passes(plan, resp, answer):
                return answer
            return checked(answer, resp, after, False, False)

        view.__wrapped__ = validated
        return view

    def _plan(
        self, func: Any, form: Any, headers: Any, cookies: Any, before: Any, after: Any
    ) -> Plan | None:
        if self._needs_spectree(func, form, headers, cookies):
            return None
        # spectree's own hooks, and one marked `on_errors_only`, do nothing for a request
        # that passed; their calls are left out.
        call_before = before is not default_before_handler and not getattr(
            before, ERRORS_ONLY, False
        )
        return Plan(call_before, after is not default_after_handler, {})

    def _needs_spectree(self, func: Any, form: Any, headers: Any, cookies: Any) -> bool:
        if form is not None or headers is not None or cookies is not None:
            return True
        if not self.config.annotations:
            return False
        hints = cached_type_hints(func)
        return any(hints.get(name) for name in ("query", "json", "form", "headers", "cookies"))

    def request_validation(  # the query and JSON models only (see _needs_spectree)
        self, request: Any, query: Any, json: Any, form: Any, headers: Any, cookies: Any
    ) -> None:
        if form is not None or headers is not None or cookies is not None:
            super().request_validation(request, query, json, form, headers, cookies)
            return
        adapter = self.model_adapter
        body = None
        if (
            json is not None
            and request.method not in ("GET", "DELETE")
            and request.mimetype not in self.FORM_MIMETYPE
        ):
            body = adapter.validate_obj(json, request.get_json(silent=True) or {})
        request.context = Context(
            adapter.validate_obj(query, get_multidict_items(request.args, query))
            if query is not None
            else None,
            body,
            None,
            None,
            None,
        )

    def validate_response(
        self, resp: Any, resp_model: Any, skip_validation: bool, force_resp_serialize: bool
    ) -> Any:
        if not isinstance(resp, Response) or force_resp_serialize:
            return super().validate_response(
                resp, resp_model, skip_validation, force_resp_serialize
            )
        model = None
        if not skip_validation and resp_model is not None:
            model = resp_model.find_model(resp.status_code)
        if model is not None:
            body = sole_body(resp)
            if body is None:
                body = resp.get_data()
            try:
                if len(body) <= VALID_BODY_BYTES:
                    self._check_body(model, body)
                else:
                    self._validate_body(model, body)
            except self.model_adapter.validation_error:
                return super().validate_response(
                    resp, resp_model, skip_validation, force_resp_serialize
                )
        return resp, None


class FreshSession(SecureCookieSession):
    """The empty session of a request that sent no cookie, made in one step: its change
    mark comes from the class's `on_update` instead of a function Flask's session makes for
    each instance (three calls on every API request, which never uses the session)."""

    __init__ = dict.__init__

    def on_update(self, session: SecureCookieSession) -> None:
        self.modified = True


class Spec(SpecTree):
    """spectree, whose `validate` gives Flask `Validation.lean`'s view of one call where
    the check has nothing to do before the view; spectree's own wrapper elsewhere. The
    options are keywords, as everywhere in berater."""

    backend: Validation

    def validate(self, **options: Any) -> Callable[[F], F]:  # type: ignore[override]
        decorate = super().validate(**options)

        def decorate_lean(func: F) -> F:
            validated = decorate(func)
            return self.backend.lean(func, validated, options) or validated  # type: ignore[return-value]

        return decorate_lean


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session (only the admin pages use one), without its cost on
    every other request: the signer is built once per set of keys instead of on each
    request, a request without a cookie gets a `FreshSession`, and an untouched empty
    session is not saved (Flask would first look up seven cookie settings, only to
    return)."""

    def __init__(self) -> None:
        self._signers: dict[tuple[Any, ...], URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        try:
            return self._signers[keys]
        except KeyError:
            signer = self._signers[keys] = super().get_signing_serializer(app)
            return signer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if "HTTP_COOKIE" not in request.environ:  # no cookie, no session to read
            return FreshSession() if app.secret_key else None
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        if session or session.accessed or session.modified:
            super().save_session(app, session, response)
