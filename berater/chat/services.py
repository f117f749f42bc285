"""The webhook's work: check the signature, open the body, run the route once, build the reply.

Order matters: the query signature and timestamp are checked before the body is read or
parsed; each query signature is bound to the first message it carried (another message under
it is refused, see `respond`); a message is handled once per dedupe key within DEDUPE_TTL (a
repeat gets the stored reply); a slow route answers `success` at once and sends its text
through the API later, from a background task (when the task queue is full, it answers
BUSY_REPLY instead).

The binding of the signature and the message's dedupe entry are one atomic store step (a Lua
script, `_SETTLE`). Two ways to keep "once" (routes.py says which route takes which):
* a route with side effects, or a slow one, is claimed before it runs: the step binds the
  signature and claims the message; of parallel deliveries only the first runs it, the
  others wait for its stored reply (two store round trips: the step, then the reply);
* a pure route (it only reads) is answered first, and the step binds the signature and keeps
  the reply unless a delivery kept one before: a repeat may run it again but gets the first
  reply, byte for byte (one round trip; this is the common text question, answered inside
  the reply). A message refused under a reused signature was answered for nothing: its
  reply is dropped, nothing is kept or sent, and its answer is a 403 as before.
The step hands a repeat the first delivery's value, so a repeat costs no further round trip
unless the first is still being made.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import current_app

from berater import metrics
from berater.chat import crypto
from berater.chat.messages import MalformedMessage, Message, parse_message, parse_xml
from berater.chat.replies import SUCCESS, encrypted_envelope, fit_text, text_reply
from berater.chat.routes import Handler, route_for
from berater.errors import BadRequest, Forbidden
from berater.extensions import store, tasks
from berater.pages import links

log = logging.getLogger("berater.chat")

AREA = "chat"
DEDUPE_TTL = 300  # seconds a delivery is remembered (WeChat retries within 15 s, 3 times)
MAX_SKEW = 300  # seconds a request's timestamp may differ from our clock
# A signature passes the timestamp check for up to 2 * MAX_SKEW after we first see it (its
# timestamp may be MAX_SKEW ahead of our clock); a minute more covers the other workers' clocks.
SIGNATURE_TTL = 2 * MAX_SKEW + 60
SIGNATURE = "sig:"
WAIT_FOR_FIRST = 3.5  # seconds a parallel repeat waits for the first delivery's reply
PENDING = "pending"
DONE = "reply:"
MAX_ECHOSTR = 256
# The reply to a slow message when the background queue is full: its answer would never come.
BUSY_REPLY = "现在提问的人很多，请稍后再问一次。"


class SignatureRefused(Forbidden):
    message = "signature refused"


class SignatureReused(SignatureRefused):
    message = "signature already used for another message"


# One step per message. KEYS[1] is the query signature's key, KEYS[2] the message's dedupe
# key; ARGV[1] the message's digest and ARGV[2] how long (ms) the signature stays bound;
# ARGV[3] the value to keep for the message (its reply, or PENDING) and ARGV[4] for how long.
# A signature bound to another message: {0}, nothing written. Else the signature is bound (if
# it was not) and ARGV[3] kept unless a value was kept first: {1}, or {2, the first value}.
_SETTLE = """
local bound = redis.call('GET', KEYS[1])
if bound and bound ~= ARGV[1] then return {0} end
if not bound then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then return {1} end
return {2, redis.call('GET', KEYS[2])}
"""
REFUSED, KEPT = 0, 1


def check_request(args: Mapping[str, str]) -> None:
    """The query's `signature` over token, timestamp and nonce, and a fresh timestamp."""
    timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
    signature = args.get("signature", "")
    token = current_app.config.get("WECHAT_TOKEN") or ""
    if not (signature and timestamp and nonce):
        raise SignatureRefused()
    if not crypto.check_signature(token, signature, timestamp, nonce):
        raise SignatureRefused()
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise SignatureRefused()
    if abs(int(time.time()) - int(timestamp)) > MAX_SKEW:
        raise SignatureRefused("timestamp out of range")


def echo(args: Mapping[str, str]) -> str:
    """The handshake's `echostr`, once the signature has been checked."""
    echostr = args.get("echostr", "")
    if not echostr or len(echostr) > MAX_ECHOSTR:
        raise BadRequest("echostr is missing or too long")
    return echostr


def _aes_keys() -> list[str]:
    cfg = current_app.config
    return [k for k in (cfg.get("WECHAT_AES_KEY"), cfg.get("WECHAT_AES_KEY_PREVIOUS")) if k]


def open_body(args: Mapping[str, str], body: bytes) -> tuple[Message, str | None]:
    """The message in `body`, and the AES key that opened it (None in plaintext mode)."""
    encrypt_type = args.get("encrypt_type") or "raw"
    if encrypt_type == "raw":
        return parse_message(body), None
    if encrypt_type != "aes":
        raise BadRequest("unknown encrypt_type")
    keys = _aes_keys()
    if not keys:
        log.warning("a safe-mode message arrived but WECHAT_AES_KEY is not set")
        raise BadRequest("safe mode is not configured")
    encrypted = parse_xml(body).get("Encrypt", "").strip()
    if not encrypted:
        raise MalformedMessage("safe mode without <Encrypt>")
    cfg = current_app.config
    try:
        plain, key = crypto.decrypt_message(
            cfg["WECHAT_TOKEN"],
            keys,
            cfg["WECHAT_APPID"],
            args.get("msg_signature", ""),
            args.get("timestamp", ""),
            args.get("nonce", ""),
            encrypted,
        )
    except crypto.CryptoError as exc:
        log.info("safe-mode message refused: %s", exc.reason)
        if exc.reason == "invalid_signature":
            raise SignatureRefused("msg_signature refused") from None
        raise BadRequest("the encrypted message was refused") from None
    return parse_message(plain), key


def respond(args: Mapping[str, str], message: Message) -> str:
    """The plaintext reply (XML or `success`) to `message`, which came under the signed
    query `args`; a repeat delivery gets the first one's reply.

    The query `signature` covers token, timestamp and nonce, not the body: a signed query
    copied from a log could carry a forged message while its timestamp is fresh. Each
    signature is therefore bound, for SIGNATURE_TTL, to a digest of the first message it
    carried (its fields, decrypted in safe mode: a retry re-encrypted by WeChat is still the
    same message). WeChat's retry of the same message passes and gets the stored reply;
    anything else under that signature is a 403 (SignatureReused), logged without its
    content, and nothing of it is kept or sent. Safe mode is bound too: its query carries the
    same `signature`, and a copy of it sent as plaintext would otherwise pass.
    """
    route = route_for(message)
    slow = route.is_slow()
    settle = _Settle(args, message)
    if route.pure and not slow:
        return _answer_and_keep(route.handler, message, settle)
    return _claim_and_run(route.handler, slow, message, settle)


class _Settle:
    """The store step of one message (`_SETTLE`): its signature bound, its value kept."""

    __slots__ = ("digest", "keys")

    def __init__(self, args: Mapping[str, str], message: Message) -> None:
        signature = args.get("signature", "").strip().lower()  # as check_signature compares it
        canonical = json.dumps(message.fields, sort_keys=True, ensure_ascii=False)
        self.digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        self.keys = [store.key(AREA, SIGNATURE + signature), store.key(AREA, message.dedupe_key)]

    def __call__(self, message: Message, value: str) -> str | None:
        """Bind the signature and keep `value` for the message: None when this delivery's
        value was kept, else the value kept first (a repeat); SignatureReused when the
        signature carried another message."""
        args = [self.digest, SIGNATURE_TTL * 1000, value, DEDUPE_TTL * 1000]
        outcome = _settle_script()(keys=self.keys, args=args)
        if outcome[0] == REFUSED:
            metrics.WEBHOOK_REPLAYS.inc()
            log.warning("chat: refused a message under a signature that carried another one")
            raise SignatureReused()
        metrics.webhook_message(message.msg_type, message.event)
        if outcome[0] == KEPT:
            return None
        metrics.WEBHOOK_DUPLICATES.inc()
        return str(outcome[1]) if len(outcome) > 1 else ""


def _settle_script() -> Callable[..., Any]:
    """`_SETTLE`, registered once per app."""
    script = current_app.extensions.get("berater.chat.settle")
    if script is None:
        script = current_app.extensions["berater.chat.settle"] = store.script(_SETTLE)
    return script


def _answer_and_keep(handler: Handler, message: Message, settle: _Settle) -> str:
    """A pure route: answer, then keep the reply unless a delivery kept one first."""
    reply = _reply(handler, message)
    first = settle(message, DONE + reply)
    if first is None:
        _answered(message)
        return reply
    return _reply_of_first(message.dedupe_key, first)


def _claim_and_run(handler: Handler, slow: bool, message: Message, settle: _Settle) -> str:
    """A route with side effects, or a slow one: claim the message, then run it once."""
    key = message.dedupe_key
    first = settle(message, PENDING)
    if first is not None:
        return _reply_of_first(key, first)
    try:
        if slow:
            reply = SUCCESS if _run_later(handler, message) else _busy(message)
        else:
            reply = _reply(handler, message)
            _answered(message)
    except BaseException:
        store.delete(AREA, key)  # let WeChat's retry run it again
        raise
    store.set(AREA, key, DONE + reply, DEDUPE_TTL)
    return reply


def _reply(handler: Handler, message: Message) -> str:
    """The handler's text as a reply to `message`, or `success` when it has nothing to say."""
    text = handler(message)
    # Cut here with the answers page as the link; Q&A answers come already cut, with a link
    # to their own question.
    text = fit_text(text, links.answer_url) if text else ""
    return text_reply(message.sender, message.account, text) if text else SUCCESS


def _answered(message: Message) -> None:
    log.info("chat %s/%s answered", message.msg_type, message.event or "-")


def _reply_of_first(key: str, value: str | None) -> str:
    """A repeat: the first delivery's reply from the `value` it stored, waiting briefly while
    the first is still making it."""
    deadline = time.monotonic() + WAIT_FOR_FIRST
    while value == PENDING and time.monotonic() < deadline:
        time.sleep(0.05)
        value = store.get(AREA, key)
    if value is not None and value.startswith(DONE):
        return value[len(DONE) :]
    return SUCCESS  # the first failed or is slow: never run the handler twice


def _run_later(handler: Handler, message: Message) -> bool:
    """Queue a slow handler; False when the background queue is full."""
    if not tasks.submit("chat.answer", _send_later, handler, message):
        return False
    log.info("chat %s/%s answered later", message.msg_type, message.event or "-")
    return True


def _send_later(handler: Handler, message: Message) -> None:
    """Run a slow handler (a background task, in the app's context) and send its text as a
    customer-service message (WeChat allows this within 48 h of the user's last message).
    A failure is logged by the pool, by exception type only."""
    text = handler(message)
    if text:
        from berater.ext.wechat.client import send_text  # written alongside this

        send_text(message.sender, text)


def _busy(message: Message) -> str:
    log.info("chat %s/%s not answered: the queue is full", message.msg_type, message.event or "-")
    return text_reply(message.sender, message.account, BUSY_REPLY)


def render(reply: str, aes_key: str | None) -> tuple[str, str]:
    """The body and media type to send: `success` as text, a reply as (encrypted) XML."""
    if reply == SUCCESS:
        return SUCCESS, "text/plain"
    if aes_key is None:
        return reply, "application/xml"
    cfg = current_app.config
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    encrypted, signature = crypto.encrypt_message(
        cfg["WECHAT_TOKEN"], aes_key, cfg["WECHAT_APPID"], reply, timestamp, nonce
    )
    return encrypted_envelope(encrypted, signature, timestamp, nonce), "application/xml"
