"""HTTP only: the handshake and the message webhook; failures answered as WeChat expects."""

from __future__ import annotations

import logging

from flask import Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from berater import logs
from berater.chat import bp, services
from berater.chat.messages import MAX_BODY, MalformedMessage
from berater.errors import ApiError
from berater.http import checks_body_after_auth, read_body

log = logging.getLogger("berater.chat")


def _plain(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


@bp.url_value_preprocessor
def check_and_read(endpoint: str | None, values: dict | None) -> None:
    """Runs before the app's own hooks: the signature first, then the body, read once here
    (up to 64 KiB instead of the app's JSON limit); `receive` is marked so that the app's
    JSON body check leaves it alone."""
    services.check_request(request.args)
    if request.method != "POST":
        return
    request.max_content_length = MAX_BODY
    try:
        g.chat_body = read_body(cache=False)
    except RequestEntityTooLarge:
        raise MalformedMessage("the message is too large") from None


@bp.get("/")
def handshake() -> Response:
    """WeChat's server check: echo `echostr` once the signature holds."""
    return _plain(services.echo(request.args))


@bp.post("/")
@checks_body_after_auth  # its XML body is read by check_and_read once the signature holds
def receive() -> Response:
    """A pushed message or event: the reply, or `success`."""
    args = request.args
    message, aes_key = services.open_body(args, g.chat_body)
    body, mimetype = services.render(services.respond(args, message), aes_key)
    return _plain(body) if mimetype == "text/plain" else Response(body, mimetype=mimetype)


@bp.errorhandler(ApiError)
def refused(exc: ApiError) -> Response:
    # WeChat reads no JSON: a status with a short fixed text, never the caller's input.
    return _plain("" if exc.status in (401, 403) else exc.message, exc.status)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    return _plain("" if status >= 500 else (exc.name or "error"), status)


@bp.errorhandler(Exception)
def unexpected(exc: Exception) -> Response:
    request_id = logs.request_id()
    log.error("chat: unhandled error, request id %s", request_id, exc_info=exc)
    return _plain("", 500)  # WeChat retries; the dedupe claim was released
