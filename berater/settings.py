"""Settings: the only module that reads the environment.

`SETTINGS` is the table: one row per setting, with how its environment string is read (and
the range it must fall in), its default in each environment, whether production requires it,
and what it means. `load_config(env)` starts from the defaults of `BERATER_ENV`, overlays
every setting found in the environment (a `.env` file is loaded first, never overriding real
variables), and, in production, refuses to start on a missing or development secret.

An unset (or empty) `BERATER_ENV` means production: development and testing are chosen by
name (`python run.py`, `scripts/dev.sh` and the test fixtures do), so a server started
without its settings refuses to start instead of running with development keys.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import load_dotenv

from berater.identity import roles

ENVIRONMENTS = ("development", "testing", "production")
# Fernet keys shipped for development and tests only. Production refuses them.
DEV_CRYPTO_KEY = "ZGV2LW9ubHktYmVyYXRlci1rZXktZG8tbm90LXVzZS0="
TEST_CRYPTO_KEY = "dGVzdC1vbmx5LWJlcmF0ZXIta2V5LWRvLW5vdC11c2U="
DEV_VALUES = frozenset(
    {
        DEV_CRYPTO_KEY,
        TEST_CRYPTO_KEY,
        "dev-secret-key",
        "dev-wechat-secret",
        "dev-wechat-token",
        "dev-face-app-token",
        "wx_dev_appid",
        "dev-sms-access-key",
        "dev-sms-access-secret",
        "changeme",
        "secret",
    }
)
MIN_SECRET_KEY_CHARS = 32
MIN_APP_TOKEN_CHARS = 22  # 128 bits of base64
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class ConfigError(RuntimeError):
    """A setting is missing or unusable; the message names it."""


# --- parsers: an environment string to a value, or ValueError saying what was expected ---

Parser = Callable[[str], Any]


def text(value: str) -> str:
    return value


def integer(low: int, high: int) -> Parser:
    """A whole number from `low` to `high`, both included."""

    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
        return number

    return parse


def real(low: float, high: float, *, above: bool = False) -> Parser:
    """A number in [low, high], or in (low, high] when `above`."""

    def parse(value: str) -> float:
        try:
            number = float(value.strip())
        except ValueError:
            number = math.nan
        if not (low < number if above else low <= number) or not number <= high:
            span = f"({low:g}, {high:g}]" if above else f"[{low:g}, {high:g}]"
            raise ValueError(f"expected a number in {span}, got {value!r}")
        return number

    return parse


def choice(*values: str) -> Parser:
    """One of `values`, in any case; the value is spelt as listed."""

    def parse(value: str) -> str:
        for allowed in values:
            if value.strip().lower() == allowed.lower():
                return allowed
        raise ValueError(f"expected one of {', '.join(values)}, got {value.strip()!r}")

    return parse


def boolean(value: str) -> bool:
    if value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if value.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def items(value: str) -> list[str]:
    """`a, b` -> ["a", "b"]; at least one item, none twice."""
    found = [item.strip() for item in value.split(",") if item.strip()]
    if not found:
        raise ValueError(f"expected comma-separated items, got {value!r}")
    if len(set(found)) < len(found):
        raise ValueError("an item is listed twice")
    return found


def pairs(value: str) -> dict[str, str]:
    """`face=secret,other=secret` -> {"face": "secret", "other": "secret"}."""
    found: dict[str, str] = {}
    for item in items(value):
        name, sep, secret = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected name=secret, got {name.strip()!r}")
        if name.strip() in found:
            raise ValueError(f"{name.strip()!r} is named twice")
        found[name.strip()] = secret.strip()
    return found


def url(*schemes: str, host: bool = True) -> Parser:
    """A URL with one of `schemes` (any scheme when none) and, when `host`, a host."""

    def parse(value: str) -> str:
        parts = urlsplit(value.strip())
        if schemes:
            scheme_ok = parts.scheme in schemes
        else:
            scheme_ok = bool(re.fullmatch(r"[a-z][a-z0-9+.-]*", parts.scheme))
        if not scheme_ok or "://" not in value or (host and not parts.hostname):
            wanted = f" with scheme {' or '.join(schemes)}" if schemes else ""
            wanted += " and a host" if host else ""
            raise ValueError(f"expected a URL{wanted}, got {value!r}")
        return value.strip()

    return parse


PORT = integer(1, 65535)
SECONDS = real(0, 60, above=True)
HTTP = url("http", "https")


def base_url(value: str) -> str:
    """An http(s) URL with a host and nothing after its path; kept without a trailing "/"."""
    found = HTTP(value)
    parts = urlsplit(found)
    try:
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        raise ValueError(f"expected a port from 1 to 65535 in {value!r}") from None
    if parts.username is not None or "?" in found or "#" in found:
        raise ValueError(f"expected a base URL without user, query or fragment, got {value!r}")
    return found.rstrip("/")


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")


def host(value: str) -> str:
    """A host name or an IP address, without scheme, port or path; in lower case."""
    name = value.strip().lower()
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not _DNS_NAME.fullmatch(name):
        raise ValueError(
            f"expected a host name or an IP address (no scheme or port), got {value!r}"
        )
    return name


def hosts(value: str) -> list[str]:
    """`a.example, 10.0.0.1` -> ["a.example", "10.0.0.1"]: items, each a `host`."""
    found = [host(item) for item in items(value)]
    if len(set(found)) < len(found):
        raise ValueError("a host is listed twice")
    return found


def pattern(regex: str, wanted: str) -> Parser:
    """A value that matches `regex` whole; `wanted` says what that is."""

    def parse(value: str) -> str:
        if not re.fullmatch(regex, value.strip()):
            raise ValueError(f"expected {wanted}, got {value.strip()!r}")
        return value.strip()

    return parse


AES_KEY_CHARS = 43


def encoding_aes_key(value: str) -> str:
    """A WeChat EncodingAESKey: 43 characters of base64 that decode (with a trailing "=") to
    the 32 bytes of an AES-256 key. The value is a secret: the error tells only its length."""
    key = value.strip()
    try:
        decoded = base64.b64decode(key + "=", validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(key) != AES_KEY_CHARS or len(decoded) != 32:
        raise ValueError(
            f"expected {AES_KEY_CHARS} characters of base64 (A-Z, a-z, 0-9, + and /), "
            f"got {len(key)} characters{'' if decoded else ' that are not base64'}"
        )
    return key


# --- the table ---


class _Same:
    def __repr__(self) -> str:
        return "SAME"


_SAME: Any = _Same()  # a row's default applies in this environment


@dataclass(frozen=True)
class Setting:
    """One setting: its environment parser (None: fixed, not read from the environment), its
    default (`dev`, `test` or `prod` replace it in that environment), whether production
    requires it (non-empty, no development value), and what it means."""

    name: str
    parse: Parser | None
    default: Any
    meaning: str
    _: KW_ONLY
    dev: Any = _SAME
    test: Any = _SAME
    prod: Any = _SAME
    required: bool = False

    @property
    def from_environment(self) -> bool:
        return self.parse is not None

    def default_for(self, env: str) -> Any:
        value = {"development": self.dev, "testing": self.test, "production": self.prod}[env]
        return copy.deepcopy(self.default if value is _SAME else value)


def fixed(name: str, default: Any, meaning: str, **per_env: Any) -> Setting:
    """A setting not read from the environment; tests override it through `overrides`."""
    return Setting(name, None, default, meaning, **per_env)


# fmt: off
SETTINGS: tuple[Setting, ...] = (
    # --- core ---
    Setting("BERATER_ENV", choice(*ENVIRONMENTS), "production",
            "the set of defaults; unset: production", dev="development", test="testing"),
    fixed("ENV_NAME", "production", "the environment's name", dev="development",
          test="testing"),
    Setting("SECRET_KEY", text, "dev-secret-key",
            f"signs the sign-in session; production: {MIN_SECRET_KEY_CHARS}+ characters",
            prod="", required=True),
    Setting("INSTANCE_PATH", text, "", "folder of the SQLite file and the embedded store"),
    Setting("LOG_LEVEL", choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), "INFO",
            "level of the app's own logs", dev="DEBUG"),
    Setting("LOG_FORMAT", choice("text", "json"), "text",
            "log lines as text, or one JSON object per line"),
    Setting("METRICS", boolean, True,
            "count requests and outside calls, served at /metrics (Prometheus)"),
    Setting("PROMETHEUS_MULTIPROC_DIR", text, "",
            "the workers' shared metrics folder; gunicorn.conf.py sets it; empty: this process"),
    Setting("LEGACY_STATUS_200", boolean, False, "status line 200, the real code in the body"),
    Setting("TRUSTED_PROXIES", integer(0, 10), 0,
            "reverse proxies trusted for X-Forwarded-* (nginx in front: 1)"),
    Setting("MAX_CONTENT_LENGTH", integer(1024, 16 * 1024 * 1024), 16 * 1024,
            "largest request body, bytes (larger: 413)"),
    Setting("API_DOCS", boolean, False,
            "serve /openapi.json and the /docs pages (else 404)", dev=True, test=True),
    fixed("MAX_AUTH_HEADER", 4096, "longest Authorization header, bytes"),
    fixed("ENABLE_TEST_TOKEN", True, "the test-token route and /dev pages", prod=False),
    fixed("TESTING", False, "Flask's testing mode", test=True),
    fixed("JSON_SORT_KEYS", False, "Flask: keep JSON keys in their order"),
    fixed("PREFERRED_URL_SCHEME", "http", "Flask: scheme of URLs built outside a request",
          prod="https"),
    fixed("SESSION_COOKIE_SECURE", False, "Flask: the session cookie only over HTTPS", prod=True),
    fixed("SESSION_COOKIE_SAMESITE", "Lax", "Flask: SameSite of the session cookie"),
    # --- database and store ---
    Setting("DATABASE_URL", url(host=False), "",
            "SQLAlchemy URL; empty: a SQLite file in the instance folder", required=True),
    Setting("REDIS_URL", url("redis", "rediss", "unix", host=False), "",
            "Redis URL; empty: the embedded store in the instance folder"),
    Setting("REDIS_SOCKET_TIMEOUT", SECONDS, 1.0, "seconds before a store call gives up"),
    fixed("READY_DB_TIMEOUT", 1.0, "seconds /readyz waits for the database"),
    # --- tokens ---
    Setting("CRYPTO_KEYS", items, [DEV_CRYPTO_KEY], "Fernet keys, newest first",
            test=[TEST_CRYPTO_KEY], prod=[], required=True),
    Setting("TOKEN_TTL", integer(1, 86400), 3600, "token lifetime, seconds"),
    Setting("TOKEN_MAX_AGE", integer(1, 365 * 86400), 7 * 86400,
            "seconds after sign-in until which a token may be refreshed"),
    Setting("CONSOLE_IDLE_SECONDS", integer(1, 86400), 1800,
            "an idle console session (/admin/) ends after this long, seconds"),
    Setting("REVOCATION_SYNC", real(0, 60), 1.0,
            "seconds a worker may trust its copy of the revocation list"),
    Setting("APP_TOKENS", pairs, {}, "partner app secrets, name=secret",
            test={"face": "dev-face-app-token"}),
    fixed("ARGON2_MEMORY_KIB", 19 * 1024, "Argon2id memory of a password hash", test=1024),
    fixed("ARGON2_TIME_COST", 2, "Argon2id passes", test=1),
    fixed("ARGON2_PARALLELISM", 1, "Argon2id lanes"),
    fixed("INVITE_TTL", 30 * 60, "seconds an admin invitation is valid"),
    # --- WeChat ---
    Setting("WECHAT_APPID", text, "wx_dev_appid", "the service account's AppID", prod="",
            required=True),
    Setting("WECHAT_SECRET", text, "dev-wechat-secret", "the service account's AppSecret",
            prod="", required=True),
    Setting("WECHAT_TOKEN", text, "dev-wechat-token", "the webhook Token", prod="",
            required=True),
    Setting("WECHAT_AES_KEY", encoding_aes_key, "",
            "the webhook EncodingAESKey (43 characters); empty: plain mode"),
    Setting("WECHAT_AES_KEY_PREVIOUS", encoding_aes_key, "",
            "the previous EncodingAESKey while rotating"),
    Setting("WECHAT_API_BASE", HTTP, "https://api.weixin.qq.com", "WeChat API base URL"),
    Setting("WECHAT_OAUTH_BASE", HTTP, "https://open.weixin.qq.com", "WeChat OAuth pages"),
    fixed("WECHAT_TIMEOUT", (2.0, 3.0), "connect and read seconds of WeChat calls"),
    Setting("WECHAT_TOKEN_ENDPOINT", choice("stable", "classic"), "stable",
            "the access token from /cgi-bin/stable_token or /cgi-bin/token"),
    fixed("WECHAT_TOKEN_WAIT", 3.0, "seconds a worker waits for another renewing the token"),
    Setting("SERVICE_BASE_URL", base_url, "",
            "this service's public base URL: every link it gives out; the only Host it answers",
            dev="http://127.0.0.1:5000", test="http://localhost", required=True),
    fixed("EXTRA_HOSTS", [], "Host values answered besides SERVICE_BASE_URL's host",
          test=["127.0.0.1"]),
    # --- webhook /chat/ ---
    Setting("WECHAT_WELCOME_TEXT", text,
            "欢迎关注！发送文字即可向问答机器人提问，菜单里可以查询学号、绑定身份。",
            "the text sent to a new follower"),
    Setting("WECHAT_DEFAULT_REPLY", text,
            "你好！这类消息暂时无法处理，请发送文字提问，或使用下方菜单。",
            "the answer to messages without a route"),
    Setting("WECHAT_QNA_NOT_READY", text, "问答机器人正在准备中，请稍后再来提问。",
            "the answer while the Q&A bot has none"),
    Setting("WECHAT_STUID_KEY", text, "STUID", "menu CLICK key of the student number"),
    Setting("WECHAT_BIND_URL", HTTP, "",
            "where a user who is not bound yet binds; empty: the page on SERVICE_BASE_URL"),
    Setting("WECHAT_ANSWER_URL", HTTP, "",
            "the full answer, linked from a cut reply; empty: the Q&A page on SERVICE_BASE_URL"),
    # --- Q&A ---
    Setting("QNA_BACKEND", choice("lexical", "bert", "hybrid", "placeholder"), "lexical",
            "how the webhook answers questions"),
    Setting("QNA_INDEX", text, "", "the index file; empty: qna-index.npz in the instance folder"),
    Setting("QNA_CORPUS", text, "data/qna/handbook", "the handbook `flask qna build` reads"),
    Setting("QNA_USERDICT", text, "data/jieba-userdict.txt", "domain words jieba keeps whole"),
    # Tests build small handbooks of their own: the demo's FAQ and questions would not fit.
    Setting("QNA_FAQ", text, "data/qna/faq.txt", "the office's FAQ file; empty: none", test=""),
    Setting("QNA_SYNONYMS", text, "data/qna/synonyms.txt",
            "the office's synonyms, one group per line; empty: none", test=""),
    # The demo's development questions are checked in development; the office names its own.
    Setting("QNA_QUESTIONS", text, "",
            "question files whose paragraph ids `flask qna build` checks (comma-separated)",
            dev="data/qna/dev-questions.jsonl"),
    Setting("QNA_MIN_SCORE", real(0, 1), 0.09, "lexical score below which there is no answer"),
    Setting("QNA_BERT_MIN_SCORE", real(-1, 1), 0.5, "BERT cosine below which there is none"),
    Setting("QNA_BERT_WEIGHT", real(0, 1), 0.5, "the BERT cosine's share of the hybrid score"),
    Setting("BERT_HOST", host, "", "the bert-serving server; empty: no BERT backend"),
    Setting("BERT_PORT", PORT, 5555, "the server's -port (requests)"),
    Setting("BERT_PORT_OUT", PORT, 5556, "the server's -port_out (answers)"),
    Setting("BERT_TIMEOUT", SECONDS, 3.0, "seconds to wait for a batch of 256 texts"),
    # --- sign-in and binding ---
    Setting("SIGNIN_REDIRECT_HOSTS", hosts, [],
            "partner app hosts: sign-in targets, CORS origins, JS-SDK pages",
            dev=["127.0.0.1", "localhost"], test=["127.0.0.1", "localhost", "partner.test"]),
    Setting("LOGIN_MAX_FAILURES", integer(1, 1000), 10,
            "failed password sign-ins per account in the window"),
    Setting("LOGIN_FAILURE_WINDOW", integer(1, 86400), 15 * 60,
            "seconds over which failed sign-ins count"),
    Setting("BIND_MAX_FAILURES", integer(1, 1000), 5, "failed bindings per openid and day"),
    Setting("CANDIDATE_MAX_SCORE", real(0, 1000, above=True), 750.0,
            "highest exam score a candidate may enter"),
    Setting("CANDIDATE_SUBJECTS", items, ["物理类", "历史类", "理科", "文科", "综合改革"],
            "the subjects a candidate may choose"),
    # --- the admission list ---
    Setting("ADMISSION_UPLOAD_MAX", integer(1024 * 1024, 512 * 1024 * 1024), 32 * 1024 * 1024,
            "largest admission-list file the console accepts, bytes (larger: 413)"),
    # --- apps ---
    Setting("FACE_SEE_ID_CARDS", boolean, False, "the face app sees whole ID card numbers"),
    Setting("FACE_ROWS_PER_HOUR", integer(1, 100_000), 1000,
            "admission-list rows the face app may get per clock hour (then 429)"),
    Setting("NOVA_TEMPLATE_ID", text, "", "template message on nova register and cancel"),
    Setting("NOVA_NOTIFY_RETRIES", integer(0, 10), 3, "further tries of a failed message"),
    fixed("NOVA_NOTIFY_BACKOFF", 2.0, "seconds before the first retry, doubled after each"),
    # --- serving ---
    Setting("GUNICORN_THREADS", integer(1, 64), 12,
            "threads per gunicorn worker (gthread); the database pool is sized from it"),
    Setting("UPSTREAM_MAX_CONCURRENT", integer(1, 1000), 8,
            "WeChat sign-in and SMS calls at once per worker process; one more gets 503"),
    # --- background tasks ---
    Setting("TASK_WORKERS", integer(1, 256), 4,
            "background threads per process, started at the first task"),
    Setting("TASK_QUEUE", integer(1, 100_000), 500,
            "background tasks that may wait; one past that is refused and logged"),
    # --- SMS codes ---
    Setting("SMS_BACKEND", choice("aliyun", "console"), "aliyun",
            "who sends codes (console: logs them, /dev/sms)", dev="console"),
    Setting("SMS_ENDPOINT", HTTP, "https://dysmsapi.aliyuncs.com", "the Aliyun SMS API",
            test="http://127.0.0.1:5002"),
    fixed("SMS_REGION", "cn-hangzhou", "the Aliyun region of the SMS API"),
    Setting("SMS_ACCESS_KEY", text, "", "AccessKey ID allowed dysms:SendSms",
            test="dev-sms-access-key", required=True),
    Setting("SMS_ACCESS_SECRET", text, "", "its AccessKey secret",
            test="dev-sms-access-secret", required=True),
    Setting("SMS_SIGN_NAME", text, "", "the approved SMS signature", test="Berater",
            required=True),
    Setting("SMS_TEMPLATE_CODE", pattern(r"SMS_[0-9]+", "a template code like SMS_123456789"),
            "", "the approved template, one variable ${code}",
            test="SMS_000000001", required=True),
    fixed("SMS_TIMEOUT", (2.0, 3.0), "connect and read seconds of an SMS call (not retried)"),
    fixed("SMS_CODE_TTL", 5 * 60, "seconds an SMS code lives"),
    fixed("SMS_CODE_TRIES", 5, "tries of a code before it is void"),
    fixed("SMS_VERIFIED_TTL", 30 * 60, "seconds a phone stays verified for binding"),
    fixed("SMS_SEND_LIMITS", ((1, 60), (5, 3600), (10, 86400)),
          "(sends, seconds) per phone and per openid"),
    fixed("SMS_IP_LIMITS", ((10, 3600), (50, 86400)), "(sends, seconds) per client IP"),
)
# fmt: on
ROWS: dict[str, Setting] = {row.name: row for row in SETTINGS}
# Read from the environment, in table order.
ENV_KEYS = tuple(row.name for row in SETTINGS if row.from_environment)


def setting(name: str) -> Setting:
    """The row of `name`; KeyError for a name that is not a setting."""
    return ROWS[name]


def default(name: str, env: str = "production") -> Any:
    """The default of `name` in `env` (a fresh copy), for code handed a partial mapping."""
    return ROWS[name].default_for(env)


def load_config(
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv_path: str | Path | None = None,
) -> dict[str, Any]:
    """Return the settings for `env` (default: $BERATER_ENV, else production). `overrides`
    are laid over last, as they are (tests use them for fixed settings too)."""
    if environ is None:
        load_dotenv(dotenv_path or Path.cwd() / ".env", override=False)
        environ = os.environ
    overrides = dict(overrides or {})
    chosen = env or overrides.get("BERATER_ENV") or environ.get("BERATER_ENV", "").strip()
    # Unset is production, never development: a server started without its settings must
    # refuse to start, not run on development keys with the test-token route.
    name = chosen or "production"
    if name not in ENVIRONMENTS:
        raise ConfigError(f"BERATER_ENV must be one of {', '.join(ENVIRONMENTS)}, not {name!r}")
    settings = {row.name: row.default_for(name) for row in SETTINGS}
    for row in SETTINGS:
        # BERATER_ENV picked the defaults above. An empty value means "not set": `KEY=` in
        # .env falls back to the default.
        raw = environ.get(row.name, "")
        if row.parse is None or row.name == "BERATER_ENV" or not raw.strip():
            continue
        try:
            settings[row.name] = row.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"setting {row.name} is invalid: {exc}") from None
    settings.update(overrides)
    for app in settings.get("APP_TOKENS") or {}:
        if app in roles.PEOPLE:
            # An app is given the role named after it: it must not be a person's role.
            raise ConfigError(f"APP_TOKENS cannot name an app {app!r}: that is a person's role")
    if name == "production":
        try:
            check_production(settings)
        except ConfigError as exc:
            if chosen:
                raise
            raise ConfigError(
                f"{exc} (BERATER_ENV is not set, which means production; "
                "set BERATER_ENV=development or testing for those defaults)"
            ) from None
    return settings


def read_setting(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting from the environment (and .env), or its default in $BERATER_ENV's set,
    without loading and checking the others: for gunicorn.conf.py, which needs LOG_FORMAT
    before any app exists. A bad value is a ConfigError naming the setting."""
    if environ is None:
        load_dotenv(Path.cwd() / ".env", override=False)
        environ = os.environ
    row = ROWS[name]
    env = environ.get("BERATER_ENV", "").strip() or "production"
    raw = environ.get(name, "")
    if row.parse is None or not raw.strip():
        return row.default_for(env if env in ENVIRONMENTS else "production")
    try:
        return row.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"setting {name} is invalid: {exc}") from None


def trusted_hosts(settings: Mapping[str, Any]) -> list[str] | None:
    """The Host values the app answers (Flask's TRUSTED_HOSTS): SERVICE_BASE_URL's host and
    EXTRA_HOSTS; None (any host) only where SERVICE_BASE_URL is unset, outside production."""
    base = urlsplit(str(settings.get("SERVICE_BASE_URL") or "")).hostname
    if not base:
        return None
    return [base, *(name for name in settings.get("EXTRA_HOSTS") or () if name != base)]


DEFAULT_DB_PORTS = {"mysql": 3306, "mariadb": 3306, "postgresql": 5432}


def database_server(settings: Mapping[str, Any]) -> str:
    """`host:port` of DATABASE_URL's server, for the container to wait for
    (deploy/entrypoint.sh); "" when there is none to wait for: SQLite (the default, a file)
    or a server reached through a unix socket."""
    from sqlalchemy.engine import make_url

    url = str(settings.get("DATABASE_URL") or "")
    if not url:
        return ""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" or not parsed.host:
        return ""
    port = parsed.port or DEFAULT_DB_PORTS.get(backend)
    if port is None:
        raise ConfigError(f"DATABASE_URL names no port, and {backend} has no default one")
    name = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{name}:{port}"


def check_production(settings: Mapping[str, Any]) -> None:
    """Refuse to run production on a missing, empty, short or development secret."""
    missing = [row.name for row in SETTINGS if row.required and not _values(settings.get(row.name))]
    if len(missing) == 1:
        raise ConfigError(f"production needs {missing[0]}: it is missing or empty")
    if missing:
        raise ConfigError(f"production needs {', '.join(missing)}: they are missing or empty")
    for row in SETTINGS:
        if row.required and any(item in DEV_VALUES for item in _values(settings[row.name])):
            raise ConfigError(f"production refuses {row.name}: it holds a development value")
    if len(str(settings.get("SECRET_KEY")).strip()) < MIN_SECRET_KEY_CHARS:
        raise ConfigError(
            f"production needs SECRET_KEY of at least {MIN_SECRET_KEY_CHARS} random characters"
        )
    for app, secret in (settings.get("APP_TOKENS") or {}).items():
        if secret in DEV_VALUES or 0 < len(secret) < MIN_APP_TOKEN_CHARS:
            raise ConfigError(
                f"production refuses APP_TOKENS for {app!r}: "
                f"use at least {MIN_APP_TOKEN_CHARS} random characters"
            )
    if settings.get("ENABLE_TEST_TOKEN"):
        raise ConfigError("production cannot enable the test-token route")
    # Production texts real phones: Aliyun with real credentials (required above), over HTTPS.
    backend = settings.get("SMS_BACKEND")
    if backend != "aliyun":
        raise ConfigError(
            f"production refuses SMS_BACKEND={backend}: only aliyun sends codes "
            "(the console backend keeps them for a development page)"
        )
    endpoint = urlsplit(str(settings.get("SMS_ENDPOINT") or ""))
    # Plain HTTP would show phones and codes on the wire; a loopback relay is the exception.
    if endpoint.scheme != "https" and endpoint.hostname not in LOOPBACK_HOSTS:
        raise ConfigError("production needs SMS_ENDPOINT to be an https:// URL")
    # The session cookie is Secure in production: the sign-in pages work over HTTPS only.
    if urlsplit(str(settings["SERVICE_BASE_URL"])).scheme != "https":
        raise ConfigError("production needs SERVICE_BASE_URL to be an https:// URL")


def _values(value: Any) -> list[str]:
    """The non-empty items of a setting's value (a list's items, or the value itself)."""
    found = [str(item or "").strip() for item in (value if isinstance(value, list) else [value])]
    return [item for item in found if item]
