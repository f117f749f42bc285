"""SMS delivery: Aliyun SMS (dysmsapi) in production, a console backend in development.

The backend is picked by SMS_BACKEND from BACKENDS. The Aliyun backend sends one
`SendSms` RPC (version 2017-05-25) through aliyun-python-sdk-core to SMS_ENDPOINT, with
connect/read timeouts of SMS_TIMEOUT and no automatic retry: a SendSms that timed out may
have been delivered, and sending it again would text the user twice.

Provider answers become clear API errors (400, 429, 502, 503); the provider's own message
is never shown to the caller nor logged, only its error code and request id.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol
from urllib.parse import urlsplit

from flask import Flask

from berater import metrics
from berater.errors import (
    ApiError,
    BadRequest,
    ServiceUnavailable,
    TooManyRequests,
    UpstreamError,
)
from berater.ext import Extension
from berater.ext.store import Store
from berater.settings import ConfigError, default

log = logging.getLogger("berater.sms")

SENDSMS_VERSION = "2017-05-25"
BEIJING = timezone(timedelta(hours=8))
# Anything we log from the provider must look like one of its codes or request ids.
SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
CONSOLE_AREA, CONSOLE_KEY, CONSOLE_KEEP = "sms", "console", 20


class SmsDeliveryUnknown(UpstreamError):
    """The provider did not answer in time: the message may or may not have been sent."""

    message = "the SMS service did not answer; the code may still arrive, wait before asking again"


class Backend(Protocol):
    """Delivers one verification code to one normalised mainland mobile number."""

    name: str

    def send_code(self, phone: str, code: str) -> None: ...


# --- Aliyun ---------------------------------------------------------------------------------


def _beijing_midnight_in() -> int:
    """Seconds until Aliyun's daily quotas reset (00:00 Beijing time)."""
    now = datetime.now(BEIJING)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


def provider_error(code: str) -> ApiError:
    """The API error for an Aliyun error `Code`; the provider's message is deliberately unused."""
    if code in {"isv.MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_COUNT_OVER_LIMIT"}:
        return BadRequest("the SMS service refused this phone number")
    if code == "isv.BUSINESS_LIMIT_CONTROL":
        # Our own 1/min limit passed, so the provider's hourly or daily one is the cause.
        return TooManyRequests("too many codes were sent to this phone; try again later", 3600)
    if code == "isv.DAY_LIMIT_CONTROL":
        return TooManyRequests(
            "today's SMS quota is used up; try again after midnight (Beijing time)",
            _beijing_midnight_in(),
        )
    if code in {"isv.OUT_OF_SERVICE", "isv.AMOUNT_NOT_ENOUGH"}:
        return ServiceUnavailable("SMS codes cannot be sent at the moment; try again later")
    if code == "isp.SYSTEM_ERROR" or code.startswith("Throttling"):
        return ServiceUnavailable("the SMS service is busy; try again shortly")
    # Signature, key, sign name or template problems: ours to fix, not the caller's.
    return UpstreamError("the SMS service failed")


def _safe(value: Any) -> str:
    text = str(value or "")
    return text if SAFE_TOKEN.match(text) else "-"


class AliyunBackend:
    """SendSms through aliyun-python-sdk-core, to SMS_ENDPOINT."""

    name = "aliyun"

    def __init__(self, config: Mapping[str, Any]) -> None:
        # Imported here: development on the console backend never loads the SDK.
        from aliyunsdkcore.client import AcsClient
        from aliyunsdkcore.http import protocol_type

        parts = urlsplit(config["SMS_ENDPOINT"])
        usable = parts.scheme in {"http", "https"} and parts.hostname and "@" not in parts.netloc
        if not usable or parts.path not in {"", "/"} or parts.query or parts.fragment:
            raise ConfigError(
                "SMS_ENDPOINT must be an http(s) URL without a path, "
                f"e.g. {default('SMS_ENDPOINT')}"
            )
        # The SDK joins scheme, host and path itself; the port rides in the host, and the
        # client's port must stay 80 so that it adds none of its own.
        self.host = parts.netloc
        self.protocol = protocol_type.HTTPS if parts.scheme == "https" else protocol_type.HTTP
        self.region = config["SMS_REGION"]
        self.sign_name = config["SMS_SIGN_NAME"]
        self.template_code = config["SMS_TEMPLATE_CODE"]
        connect, read = config["SMS_TIMEOUT"]
        self.client = AcsClient(
            config["SMS_ACCESS_KEY"],
            config["SMS_ACCESS_SECRET"],
            region_id=self.region,
            auto_retry=False,  # NO_RETRY_POLICY: never send a SendSms twice
            max_retry_time=0,
            port=80,
            connect_timeout=connect,
            timeout=read,
        )

    def _request(self, phone: str, code: str) -> Any:
        from aliyunsdkcore.request import CommonRequest

        request = CommonRequest(domain=self.host, version=SENDSMS_VERSION, action_name="SendSms")
        request.set_method("POST")
        request.set_protocol_type(self.protocol)
        request.add_query_param("RegionId", self.region)
        # Business parameters go in the form body: a URL (and any error quoting it) never
        # carries the phone or the code.
        request.add_body_params("PhoneNumbers", phone)
        request.add_body_params("SignName", self.sign_name)
        request.add_body_params("TemplateCode", self.template_code)
        request.add_body_params("TemplateParam", json.dumps({"code": code}))
        return request

    def send_code(self, phone: str, code: str) -> None:
        """Send the code; raise an ApiError unless Aliyun answers `Code == "OK"`."""
        from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException

        started = time.monotonic()
        with metrics.upstream("aliyun", "SendSms") as call:
            try:
                raw = self.client.do_action_with_exception(self._request(phone, code))
            except ServerException as exc:  # an HTTP error status with an Aliyun error body
                error_code = str(exc.get_error_code() or "")
                log.warning(
                    "SMS provider refused the request: code %s, request id %s",
                    _safe(error_code),
                    _safe(exc.get_request_id()),
                )
                raise self._refused(call, error_code) from None
            except ClientException as exc:
                if exc.get_error_code() == "SDK.HttpError":  # timeout or connection failure
                    log.warning(
                        "SMS provider unreachable or too slow after %.1fs",
                        time.monotonic() - started,
                    )
                    call["error"] = "unreachable"
                    metrics.SMS_SENDS.labels(self.name, "unknown").inc()
                    raise SmsDeliveryUnknown() from None
                log.error("SMS request failed in the SDK: %s", _safe(exc.get_error_code()))
                call["error"] = "sdk"
                metrics.SMS_SENDS.labels(self.name, "failed").inc()
                raise UpstreamError("the SMS service failed") from None
            try:
                answer = json.loads(raw)
            except (TypeError, ValueError):
                answer = None
            if not isinstance(answer, dict):
                log.warning("SMS provider answered something that is not a JSON object")
                call["error"] = "unreadable"
                metrics.SMS_SENDS.labels(self.name, "failed").inc()
                raise UpstreamError("the SMS service failed")
            if answer.get("Code") != "OK":
                error_code = str(answer.get("Code") or "")
                log.warning(
                    "SMS provider refused the message: code %s, request id %s",
                    _safe(error_code),
                    _safe(answer.get("RequestId")),
                )
                raise self._refused(call, error_code)
        metrics.SMS_SENDS.labels(self.name, "sent").inc()
        log.info("SMS code sent, provider request id %s", _safe(answer.get("RequestId")))

    def _refused(self, call: dict[str, str], error_code: str) -> ApiError:
        """Count a refusal under the provider's code (as logged: only if it looks like one)."""
        call["error"] = "refused"
        metrics.SMS_SENDS.labels(self.name, "refused").inc()
        metrics.SMS_PROVIDER_ERRORS.labels(_safe(error_code)).inc()
        return provider_error(error_code)


# --- console ------------------------------------------------------------------------------


class ConsoleBackend:
    """Development: nothing is sent; the code is kept for the /dev/sms page."""

    name = "console"

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.keep_for = config["SMS_CODE_TTL"] * 12
        self._store = Store()  # resolves the current app's store when called

    def send_code(self, phone: str, code: str) -> None:
        entry = json.dumps({"phone": phone, "code": code, "sent_at": int(time.time())})
        key = Store.key(CONSOLE_AREA, CONSOLE_KEY)
        self._store.script(
            "redis.call('LPUSH', KEYS[1], ARGV[1]);"
            "redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1);"
            "redis.call('PEXPIRE', KEYS[1], ARGV[3])"
        )(keys=[key], args=[entry, CONSOLE_KEEP, int(self.keep_for * 1000)])
        metrics.SMS_SENDS.labels(self.name, "sent").inc()
        # The code itself is never logged, not even here: the page shows it.
        log.info("console SMS backend: a code was sent (not delivered; see /dev/sms)")

    def last_codes(self) -> list[dict[str, Any]]:
        """The most recent codes, newest first."""
        key = Store.key(CONSOLE_AREA, CONSOLE_KEY)
        entries = self._store.script("return redis.call('LRANGE', KEYS[1], 0, -1)")(keys=[key])
        return [json.loads(entry) for entry in entries or []]


BACKENDS: dict[str, Callable[[Mapping[str, Any]], Backend]] = {
    "aliyun": AliyunBackend,
    "console": ConsoleBackend,
}


# --- the extension --------------------------------------------------------------------------


class Sms(Extension[Backend]):
    """Flask extension: `sms.send_code(phone, code)` through the configured backend."""

    extension_key = "berater.sms"
    label = "the SMS extension"

    def create(self, app: Flask) -> Backend:
        config = app.config
        factory = BACKENDS.get(config["SMS_BACKEND"])
        if factory is None:
            raise ConfigError(f"SMS_BACKEND must be one of {', '.join(BACKENDS)}")
        _silence_sdk_logs()
        return factory(config)

    @property
    def backend(self) -> Backend:
        """The backend of the current app."""
        return self.state

    def send_code(self, phone: str, code: str) -> None:
        """Deliver `code` to `phone` (11 digits, already normalised), or raise an ApiError."""
        self.backend.send_code(phone, code)

    def last_codes(self) -> list[dict[str, Any]]:
        """The console backend's recent codes, newest first (empty for other backends)."""
        backend = self.backend
        return backend.last_codes() if isinstance(backend, ConsoleBackend) else []


def _silence_sdk_logs() -> None:
    """Keep the SDK quiet: its debug lines print request parameters (phone, code) and its
    error lines quote URLs and provider messages. We log what is safe ourselves."""
    off = logging.CRITICAL + 1
    logging.getLogger("aliyunsdkcore").setLevel(off)
    # This one sets its own DEBUG level and handler on import, so the parent's does not apply.
    logging.getLogger("aliyunsdkcore.http.http_response").setLevel(off)


__all__ = ["BACKENDS", "Sms", "SmsDeliveryUnknown", "provider_error"]
