"""Stand-in Aliyun SMS endpoint (dysmsapi) speaking Aliyun's RPC protocol (tests, development).

It checks every request as Aliyun does: the common parameters, the AccessKeyId, the
timestamp (within 15 minutes), a fresh SignatureNonce, and the HMAC-SHA1 signature
recomputed from the received parameters:

    StringToSign = Method + "&" + percentEncode("/") + "&" + percentEncode(canonical query)
    canonical query = "&".join(percentEncode(k) + "=" + percentEncode(v)), sorted by key,
                      over the query and the form body, without Signature
    Signature = base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))

with RFC 3986 percent-encoding (only A-Z a-z 0-9 - _ . ~ left as they are). Accepted
messages are recorded in `sent`; any error Code, an HTTP 500, HTML or a timeout can be
queued with `fail()`. Run it in-process with :func:`running`, or as a process with
``python -m standins.aliyun --port 5002``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, request

from standins import serving

_log = logging.getLogger(__name__)

VERSION = "2017-05-25"
MAX_SKEW = 15 * 60  # seconds a Timestamp may differ from the server's clock
REQUIRED = (
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
    "Signature",
)
MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
# Messages as Aliyun words them (never to be shown to Berater's callers).
MESSAGES = {
    "OK": "OK",
    "isv.BUSINESS_LIMIT_CONTROL": "触发号码天级流控Permits:10",
    "isv.MOBILE_NUMBER_ILLEGAL": "非法手机号",
    "isv.DAY_LIMIT_CONTROL": "触发日发送限额",
    "isv.OUT_OF_SERVICE": "业务停机",
    "isv.AMOUNT_NOT_ENOUGH": "账户余额不足",
    "isv.SMS_SIGNATURE_ILLEGAL": "该账号下找不到对应签名",
    "isv.SMS_TEMPLATE_ILLEGAL": "该账号下找不到对应模板",
    "isv.INVALID_JSON_PARAM": "JSON参数不合法，只接受字符串值",
    "isv.MOBILE_COUNT_OVER_LIMIT": "手机号码数量超过限制，最多支持1000条",
    "isp.SYSTEM_ERROR": "isp.SYSTEM_ERROR",
}
FAULT_MODES = ("timeout", "http500", "html")
CONTROL_PREFIX = "/_standin/"


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8, as Aliyun's signature uses it."""
    return quote(value, safe="~")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """Aliyun RPC StringToSign over every parameter except Signature."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"


def sign(method: str, params: Mapping[str, str], secret: str) -> str:
    """The Signature Aliyun expects for these parameters."""
    digest = hmac.new(
        f"{secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class SentSms:
    """One accepted message, as the stand-in received it."""

    phone: str
    sign_name: str
    template_code: str
    template_param: dict[str, Any]
    biz_id: str
    method: str


@dataclass
class _Fault:
    code: str  # an Aliyun error Code, or one of FAULT_MODES
    remaining: int | None  # None: until cleared


class FakeAliyunSms:
    """State of the stand-in: credentials, used nonces, accepted messages, queued faults."""

    def __init__(
        self,
        access_key: str = "dev-sms-access-key",
        access_secret: str = "dev-sms-access-secret",  # noqa: S107 - a development value
        sign_name: str | None = None,
        template_code: str | None = None,
        timeout_sleep: float = 5.0,
        latency: float = 0.0,
    ) -> None:
        self.access_key = access_key
        self.access_secret = access_secret
        self.sign_name = sign_name  # None: any sign name is accepted
        self.template_code = template_code  # None: any template code is accepted
        self.timeout_sleep = timeout_sleep
        # Seconds every SendSms waits before it is handled, as a real provider takes 100-300
        # ms (bench/results_day.py); settable while serving.
        self.latency = latency
        self._lock = threading.Lock()
        self._sent: list[SentSms] = []
        self._nonces: set[str] = set()
        self._faults: list[_Fault] = []
        self._calls = 0

    def __repr__(self) -> str:  # never show the secret
        return f"FakeAliyunSms(access_key={self.access_key!r})"

    @property
    def sent(self) -> list[SentSms]:
        """A snapshot of the accepted messages, oldest first."""
        with self._lock:
            return list(self._sent)

    def last_to(self, phone: str) -> SentSms | None:
        """The newest accepted message to ``phone``, if any (searched from the newest, so a
        message just sent is found at once however many came before)."""
        with self._lock:
            for message in reversed(self._sent):
                if message.phone == phone:
                    return message
        return None

    @property
    def calls(self) -> int:
        """SendSms requests received, accepted or not."""
        with self._lock:
            return self._calls

    def reset(self) -> None:
        """Forget messages, calls and queued faults (used nonces stay used)."""
        with self._lock:
            self._sent.clear()
            self._faults.clear()
            self._calls = 0

    def fail(self, code: str, times: int | None = 1) -> None:
        """Answer the next `times` valid requests with `code` (an Aliyun error Code such as
        isv.BUSINESS_LIMIT_CONTROL, or timeout/http500/html); None or 0: until cleared."""
        if not code or code == "OK":
            raise ValueError("code must be an Aliyun error Code or one of " + str(FAULT_MODES))
        if times is not None and times < 0:
            raise ValueError("times must be >= 0 (0 or None: until cleared)")
        with self._lock:
            self._faults.append(_Fault(code, int(times) if times else None))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.pop(0)
            return fault

    # -- the protocol ----------------------------------------------------------------------

    def make_app(self) -> Flask:
        """A Flask app serving the RPC endpoint at / and the control endpoints."""
        app = Flask(__name__)
        app.add_url_rule("/", "rpc", self._rpc, methods=["GET", "POST"])
        app.add_url_rule(CONTROL_PREFIX + "sent", "sent", self._control_sent, methods=["GET"])
        app.add_url_rule(CONTROL_PREFIX + "reset", "reset", self._control_reset, methods=["POST"])
        app.add_url_rule(CONTROL_PREFIX + "fail", "fail", self._control_fail, methods=["POST"])
        return app

    def _params(self) -> dict[str, str] | None:
        """Query and form parameters in one dict; None when a name is repeated."""
        params: dict[str, str] = {}
        sources = [request.args]
        if request.method == "POST":
            sources.append(request.form)
        for source in sources:
            for key, value in source.items(multi=True):
                if key in params:
                    return None
                params[key] = value
        return params

    def _rpc(self) -> Response:
        if self.latency > 0:
            time.sleep(self.latency)
        with self._lock:
            self._calls += 1
        params = self._params()
        if params is None:
            return _error(400, "InvalidParameter", "A parameter is specified more than once.")
        missing = [name for name in REQUIRED if not params.get(name)]
        if missing:
            return _error(400, f"Missing{missing[0]}", f"{missing[0]} is mandatory.")
        if params["Action"] != "SendSms":
            return _error(404, "InvalidAction.NotFound", "Specified api is not found.")
        if params["Version"] != VERSION:
            return _error(400, "InvalidVersion", "Specified parameter Version is not valid.")
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            return _error(400, "InvalidSignatureMethod", "Only HMAC-SHA1 1.0 is supported.")
        if params["AccessKeyId"] != self.access_key:
            return _error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        error = _check_timestamp(params["Timestamp"])
        if error is not None:
            return error
        expected = sign(request.method, params, self.access_secret)
        if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
            # Aliyun puts its StringToSign after a colon; the SDK compares it with its own.
            sts = string_to_sign(request.method, params)
            return _error(
                400,
                "SignatureDoesNotMatch",
                f"Specified signature is not matched with our calculation. "
                f"server string to sign is:{sts}",
            )
        with self._lock:
            if params["SignatureNonce"] in self._nonces:
                return _error(
                    400, "SignatureNonceUsed", "Specified signature nonce was used already."
                )
            self._nonces.add(params["SignatureNonce"])
        return self._send_sms(params)

    def _send_sms(self, params: Mapping[str, str]) -> Response:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                return _error(400, f"Missing{name}", f"{name} is mandatory for this action.")
        fault = self._next_fault()
        if fault is not None and fault.code not in FAULT_MODES:
            return _answer(fault.code)
        if fault is not None and fault.code == "http500":
            return Response("Internal Server Error", 500, mimetype="text/plain")
        if fault is not None and fault.code == "html":
            return Response("<html><body>busy</body></html>", 200, mimetype="text/html")
        phones = params["PhoneNumbers"].split(",")
        if len(phones) > 1000:
            return _answer("isv.MOBILE_COUNT_OVER_LIMIT")
        if not all(MOBILE.fullmatch(phone) for phone in phones):
            return _answer("isv.MOBILE_NUMBER_ILLEGAL")
        if self.sign_name is not None and params["SignName"] != self.sign_name:
            return _answer("isv.SMS_SIGNATURE_ILLEGAL")
        if self.template_code is not None and params["TemplateCode"] != self.template_code:
            return _answer("isv.SMS_TEMPLATE_ILLEGAL")
        try:
            template_param = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            template_param = None
        if not isinstance(template_param, dict) or not all(
            isinstance(v, str) for v in template_param.values()
        ):
            return _answer("isv.INVALID_JSON_PARAM")
        biz_id = f"{int(time.time() * 1000)}^{uuid.uuid4().int % 10**10}"
        with self._lock:
            for phone in phones:
                self._sent.append(
                    SentSms(
                        phone,
                        params["SignName"],
                        params["TemplateCode"],
                        template_param,
                        biz_id,
                        request.method,
                    )
                )
        if fault is not None:  # timeout: the message goes out, the answer comes too late
            time.sleep(self.timeout_sleep)
        return _answer("OK", BizId=biz_id)

    # -- control endpoints (for a stand-in running as its own process) -------------------------

    def _control_sent(self) -> Response:
        return _json({"sent": [asdict(message) for message in self.sent], "calls": self.calls})

    def _control_reset(self) -> Response:
        self.reset()
        return _json({"ok": True})

    def _control_fail(self) -> Response:
        body = request.get_json(silent=True) or {}
        try:
            self.fail(str(body.get("code", "")), body.get("times", 1))
        except (TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"ok": True})


def _check_timestamp(value: str) -> Response | None:
    try:
        stamp = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return _error(400, "InvalidTimeStamp.Format", "Specified time stamp is not valid.")
    if abs((datetime.now(UTC) - stamp).total_seconds()) > MAX_SKEW:
        return _error(400, "InvalidTimeStamp.Expired", "Specified time stamp is expired.")
    return None


def _json(body: Mapping[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status, mimetype="application/json")


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _answer(code: str, **extra: str) -> Response:
    """A SendSms answer: HTTP 200 with Code (OK or a business error) and Message."""
    body = {
        "Code": code,
        "Message": MESSAGES.get(code, "stand-in fault"),
        "RequestId": _request_id(),
    }
    return _json(body | extra)


def _error(status: int, code: str, message: str) -> Response:
    """A gateway error: an HTTP error status with Aliyun's error body."""
    body = {
        "Code": code,
        "Message": message,
        "RequestId": _request_id(),
        "HostId": "dysmsapi.aliyuncs.com",
        "Recommend": "https://next.api.aliyun.com/troubleshoot",
    }
    return _json(body, status)


RunningAliyunSms = serving.Running[FakeAliyunSms]


def running(
    fake: FakeAliyunSms | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningAliyunSms:
    """Start a threaded stand-in server (port 0 = any free port) and return its handle."""
    fake = FakeAliyunSms() if fake is None else fake
    return serving.Running(fake, host, port, _log)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the stand-in in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="Stand-in Aliyun SMS endpoint (development).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--access-key", default="dev-sms-access-key")
    parser.add_argument("--access-secret", default="dev-sms-access-secret")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    fake = FakeAliyunSms(
        access_key=args.access_key, access_secret=args.access_secret, latency=args.latency
    )
    serving.serve_forever(fake, args.host, args.port, _log, "Aliyun SMS stand-in")


if __name__ == "__main__":
    main()
