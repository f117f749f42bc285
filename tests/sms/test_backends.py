"""The SMS extension: backends by setting, the Aliyun client against the stand-in over real
HTTP (signature, timeouts, no retry, error mapping), the console backend, and the settings."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server

from berater.errors import ApiError
from berater.ext.sms import BEIJING, AliyunBackend, ConsoleBackend, SmsDeliveryUnknown
from berater.extensions import sms
from berater.settings import ConfigError, default, load_config
from standins.aliyun import MESSAGES, FakeAliyunSms
from tests.test_settings import GOOD_PROD

PHONE = "13800138000"
# An error code, a 5xx or an HTML page is an answer: the failure is reported at once, well
# within the read timeout (1.5 s in tests), with no retry.
ANSWERED_FAILURE = 1.0


def logged(records: list[logging.LogRecord]) -> str:
    return "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records)


def send(app, phone: str = PHONE, code: str = "424242") -> None:
    with app.app_context():
        sms.send_code(phone, code)


def failure(app, phone: str = PHONE, code: str = "424242") -> ApiError:
    with pytest.raises(ApiError) as caught:
        send(app, phone, code)
    return caught.value


def quick_failure(app) -> ApiError:
    """`failure`, which must come within ANSWERED_FAILURE seconds."""
    started = time.monotonic()
    error = failure(app)
    took = time.monotonic() - started
    assert took < ANSWERED_FAILURE, f"{error.status} after {took:.2f}s"
    return error


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- backends ---------------------------------------------------------------------------------


def test_the_backend_is_chosen_by_sms_backend(make_app):
    assert isinstance(make_app().extensions["berater.sms"], AliyunBackend)
    assert isinstance(make_app(SMS_BACKEND="console").extensions["berater.sms"], ConsoleBackend)


def test_an_unknown_backend_stops_the_app(make_app):
    with pytest.raises(ConfigError, match="SMS_BACKEND"):
        make_app(SMS_BACKEND="twilio")


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://dysmsapi.aliyuncs.com",
        "dysmsapi.aliyuncs.com",
        "https://x.test/sms",
        "https://x.test/?a=b",
        "https://user:pw@x.test",
    ],
)
def test_an_unusable_endpoint_stops_the_app(make_app, endpoint):
    with pytest.raises(ConfigError, match="SMS_ENDPOINT"):
        make_app(SMS_ENDPOINT=endpoint)


def test_a_second_registration_is_refused(app):
    with pytest.raises(RuntimeError, match="already registered"):
        sms.init_app(app)


# --- the Aliyun backend against the stand-in --------------------------------------------------


def test_the_code_goes_out_in_one_signed_post(make_app, aliyun):
    send(make_app(), code="013579")
    [message] = aliyun.fake.sent
    assert message.phone == PHONE
    assert message.template_param == {"code": "013579"}
    assert (message.sign_name, message.template_code) == ("Berater", "SMS_000000001")
    assert message.method == "POST"  # phone and code in the body, never in a URL
    assert aliyun.fake.calls == 1


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("isv.MOBILE_NUMBER_ILLEGAL", 400),
        ("isv.BUSINESS_LIMIT_CONTROL", 429),
        ("isv.DAY_LIMIT_CONTROL", 429),
        ("isv.OUT_OF_SERVICE", 503),
        ("isv.AMOUNT_NOT_ENOUGH", 503),
        ("isp.SYSTEM_ERROR", 503),
        ("isv.SMS_TEMPLATE_ILLEGAL", 502),
        ("isv.SOMETHING_NEW", 502),
    ],
)
def test_provider_error_codes_map_to_clear_statuses(make_app, aliyun, code, status):
    app = make_app()
    aliyun.fake.fail(code)
    error = quick_failure(app)
    assert error.status == status
    assert MESSAGES.get(code, "stand-in fault") not in error.message
    assert code not in error.message
    if status == 429:
        assert int(error.headers["Retry-After"]) >= 1
    assert aliyun.fake.sent == []


def test_the_daily_quota_waits_until_midnight_in_beijing(make_app, aliyun):
    aliyun.fake.fail("isv.DAY_LIMIT_CONTROL")
    error = failure(make_app())
    now = datetime.now(BEIJING)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert abs(int(error.headers["Retry-After"]) - (midnight - now).total_seconds()) < 5


def test_only_code_ok_is_a_success(make_app, aliyun):
    # An answer without Code, or with HTML, is a failure even with HTTP 200.
    app = make_app()
    aliyun.fake.fail("html")
    assert quick_failure(app).status == 502
    aliyun.fake.fail("http500")
    assert quick_failure(app).status == 502
    send(app)  # and the next one goes through
    assert len(aliyun.fake.sent) == 1


def test_a_timeout_is_reported_in_time_and_never_retried(make_app, aliyun):
    app = make_app()  # read timeout 1.5 s in tests; the stand-in answers after 2.5 s
    aliyun.fake.fail("timeout")
    started = time.monotonic()
    error = failure(app)
    assert isinstance(error, SmsDeliveryUnknown)
    assert error.status == 502
    assert time.monotonic() - started < 2.3
    assert aliyun.fake.calls == 1  # one SendSms, no automatic retry
    assert len(aliyun.fake.sent) == 1  # the stand-in did send it


def test_an_unreachable_provider_fails_fast(make_app):
    app = make_app(SMS_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert failure(app).status == 502
    assert time.monotonic() - started < 1.5


def test_a_wrong_secret_is_a_502_logged_by_code_only(make_app, aliyun, log_records):
    app = make_app(SMS_ACCESS_SECRET="not-the-secret", LOG_LEVEL="DEBUG")
    assert failure(app, code="975310").status == 502
    text = logged(log_records)
    assert "SignatureDoesNotMatch" in text
    assert PHONE not in text
    assert "975310" not in text
    assert "string to sign" not in text  # neither the provider's message
    assert not [r for r in log_records if r.name.startswith("aliyunsdkcore")]


def test_the_sdk_logs_nothing_even_at_debug(make_app, aliyun, log_records):
    app = make_app(LOG_LEVEL="DEBUG")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        send(app, code="864200")
        aliyun.fake.fail("isp.SYSTEM_ERROR")
        failure(app, code="864201")
        aliyun.fake.fail("html")
        failure(app, code="864202")
    finally:
        root.setLevel(level)
    assert not [r for r in log_records if r.name.startswith("aliyunsdkcore")]
    text = logged(log_records)
    assert PHONE not in text
    assert "86420" not in text
    assert "SMS code sent" in text


@pytest.fixture
def tls_aliyun(aliyun, tmp_path):
    """A stand-in with the session's keys behind TLS, with a self-signed certificate for
    localhost; yields (fake, port, certificate file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    fake = FakeAliyunSms(aliyun.fake.access_key, aliyun.fake.access_secret)
    server = make_server("127.0.0.1", 0, fake.make_app(), threaded=True, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake, server.server_port, cert_file
    # The TLS handshake runs in the serving thread: a client that vanished mid-handshake
    # would block shutdown() for ever, so give it a few seconds only.
    stopper = threading.Thread(target=server.shutdown, daemon=True)
    stopper.start()
    stopper.join(timeout=5)
    server.server_close()


def test_an_https_endpoint_has_its_certificate_checked(make_app, tls_aliyun, monkeypatch):
    fake, port, cert_file = tls_aliyun
    app = make_app(SMS_ENDPOINT=f"https://localhost:{port}")
    with warnings.catch_warnings():
        # The SDK's vendored urllib3 1.24 sets up TLS the pre-3.10 way (it still works).
        for message in ("ssl.PROTOCOL_TLS is deprecated", r"ssl.match_hostname\(\) is deprecated"):
            warnings.filterwarnings("ignore", message, DeprecationWarning)
        assert failure(app).status == 502  # a certificate nobody vouches for
        assert fake.calls == 0
        monkeypatch.setenv("ALIBABA_CLOUD_CA_BUNDLE", str(cert_file))  # the SDK's CA setting
        send(app, code="192837")
    [message] = fake.sent
    assert message.template_param == {"code": "192837"}


# --- the console backend ----------------------------------------------------------------------


@pytest.mark.backends  # the console backend keeps codes in the store
def test_the_console_backend_keeps_codes_and_logs_that_one_was_sent(make_app, aliyun, log_records):
    app = make_app(SMS_BACKEND="console")
    send(app, code="111222")
    send(app, phone="13900139000", code="333444")
    with app.app_context():
        last = sms.last_codes()
    assert [(m["phone"], m["code"]) for m in last] == [
        ("13900139000", "333444"),
        (PHONE, "111222"),
    ]
    assert aliyun.fake.calls == 0
    text = logged(log_records)
    assert "console SMS backend: a code was sent" in text
    assert "111222" not in text and PHONE not in text


@pytest.mark.backends  # the console backend keeps codes in the store
def test_the_console_backend_keeps_only_the_last_twenty(make_app):
    app = make_app(SMS_BACKEND="console")
    for n in range(25):
        send(app, code=f"{n:06d}")
    with app.app_context():
        codes = [m["code"] for m in sms.last_codes()]
    assert codes == [f"{n:06d}" for n in range(24, 4, -1)]


def test_other_backends_show_no_console_codes(app):
    with app.app_context():
        assert sms.last_codes() == []


# --- settings ---------------------------------------------------------------------------------


def test_the_defaults_are_those_of_security_md():
    assert default("SMS_SEND_LIMITS") == ((1, 60), (5, 3600), (10, 86400))
    assert default("SMS_IP_LIMITS") == ((10, 3600), (50, 86400))
    assert (default("SMS_CODE_TTL"), default("SMS_CODE_TRIES")) == (300, 5)
    assert default("SMS_VERIFIED_TTL") == 1800
    assert default("SMS_TIMEOUT") == (2.0, 3.0)
    assert default("SMS_ENDPOINT") == "https://dysmsapi.aliyuncs.com"
    assert (default("SMS_BACKEND"), default("SMS_BACKEND", "development")) == ("aliyun", "console")
    assert default("SMS_ENDPOINT", "testing").startswith("http://127.0.0.1:")


def test_production_starts_with_the_sms_settings():
    settings = load_config(environ=GOOD_PROD)
    assert settings["SMS_BACKEND"] == "aliyun"
    assert settings["SMS_SIGN_NAME"] == GOOD_PROD["SMS_SIGN_NAME"]


@pytest.mark.parametrize(
    "key", ["SMS_ACCESS_KEY", "SMS_ACCESS_SECRET", "SMS_SIGN_NAME", "SMS_TEMPLATE_CODE"]
)
def test_production_refuses_aliyun_without_its_settings(key):
    with pytest.raises(ConfigError, match=key):
        load_config(environ={k: v for k, v in GOOD_PROD.items() if k != key})
    with pytest.raises(ConfigError, match=key):
        load_config(environ={**GOOD_PROD, key: " "})


@pytest.mark.parametrize(
    ("key", "value"),
    [("SMS_ACCESS_KEY", "dev-sms-access-key"), ("SMS_ACCESS_SECRET", "dev-sms-access-secret")],
)
def test_production_refuses_the_development_sms_keys(key, value):
    with pytest.raises(ConfigError, match=key):
        load_config(environ={**GOOD_PROD, key: value})


def test_production_refuses_the_console_backend():
    with pytest.raises(ConfigError, match="SMS_BACKEND=console"):
        load_config(environ={**GOOD_PROD, "SMS_BACKEND": "console"})


def test_production_needs_https_except_on_loopback():
    with pytest.raises(ConfigError, match="SMS_ENDPOINT"):
        load_config(environ={**GOOD_PROD, "SMS_ENDPOINT": "http://dysmsapi.aliyuncs.com"})
    relay = load_config(environ={**GOOD_PROD, "SMS_ENDPOINT": "http://127.0.0.1:8080"})
    assert relay["SMS_ENDPOINT"] == "http://127.0.0.1:8080"
