"""Settings: the table's rows, environment selection, .env files, ranges, production's
refusals, and the documentation (.env.example, the README's table) that lists the rows."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from berater import create_app
from berater.settings import (
    DEV_CRYPTO_KEY,
    ENV_KEYS,
    ENVIRONMENTS,
    ROWS,
    SETTINGS,
    ConfigError,
    default,
    load_config,
    read_setting,
)

ROOT = Path(__file__).resolve().parent.parent
# An EncodingAESKey as WeChat's console makes one: 32 random bytes in 43 base64 characters.
AES_KEY = base64.b64encode(bytes(range(7, 39))).decode()[:-1]
# Keys .env.example holds for docker compose and gunicorn, not for the app.
DEPLOYMENT_KEYS = frozenset(
    {
        "MARIADB_DATABASE",
        "MARIADB_USER",
        "MARIADB_PASSWORD",
        "MARIADB_ROOT_PASSWORD",
        "GUNICORN_BIND",
        "WEB_CONCURRENCY",
    }
)

GOOD_PROD = {
    "BERATER_ENV": "production",
    "SECRET_KEY": "k" * 40,
    "DATABASE_URL": "mysql+pymysql://berater:pw@db/berater",
    "CRYPTO_KEYS": Fernet.generate_key().decode(),
    "WECHAT_APPID": "wx0123456789abcdef",
    "WECHAT_SECRET": "s" * 32,
    "WECHAT_TOKEN": "t" * 32,
    "APP_TOKENS": "face=" + "f" * 32,
    "SMS_ACCESS_KEY": "LTAI5tAbCdEfGhIjKlMnOp",
    "SMS_ACCESS_SECRET": "a" * 30,
    "SMS_SIGN_NAME": "某某大学招生办",
    "SMS_TEMPLATE_CODE": "SMS_123456789",
    "SERVICE_BASE_URL": "https://berater.example.edu.cn",
}


def test_environment_is_picked_by_berater_env():
    assert load_config(environ={"BERATER_ENV": "testing"})["TESTING"] is True
    assert load_config(environ={"BERATER_ENV": "development"})["SMS_BACKEND"] == "console"
    assert load_config(environ=GOOD_PROD)["BERATER_ENV"] == "production"


@pytest.mark.parametrize("unset", [{}, {"BERATER_ENV": ""}, {"BERATER_ENV": "  "}])
def test_an_unset_environment_is_production_and_says_what_it_lacks(unset):
    with pytest.raises(ConfigError) as refused:
        load_config(environ=unset)
    message = str(refused.value)
    # Every missing secret at once, and how to choose another environment.
    for key in ("SECRET_KEY", "CRYPTO_KEYS", "WECHAT_SECRET", "SERVICE_BASE_URL"):
        assert key in message
    assert "BERATER_ENV is not set" in message and "BERATER_ENV=development" in message
    production = {k: v for k, v in GOOD_PROD.items() if k != "BERATER_ENV"}
    settings = load_config(environ={**production, **unset})
    assert settings["BERATER_ENV"] == settings["ENV_NAME"] == "production"
    assert settings["ENABLE_TEST_TOKEN"] is False
    assert settings["TESTING"] is False and settings["SMS_BACKEND"] == "aliyun"


def test_create_app_without_berater_env_is_no_development_app(monkeypatch, tmp_path):
    """No BERATER_ENV and no .env: no development key, no test-token route, no dev pages."""
    monkeypatch.chdir(tmp_path)  # away from any .env file
    monkeypatch.delenv("BERATER_ENV", raising=False)
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="production needs"):
        create_app()
    with pytest.raises(ConfigError, match="production needs"):
        create_app({"INSTANCE_PATH": str(tmp_path)})  # overrides without an environment
    # With production's secrets it starts, as production.
    for key, value in GOOD_PROD.items():
        if key not in {"BERATER_ENV", "DATABASE_URL"}:
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'berater.sqlite3'}")
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    app = create_app()
    try:
        assert app.config["BERATER_ENV"] == "production"
        assert app.config["SECRET_KEY"] == GOOD_PROD["SECRET_KEY"]
        assert DEV_CRYPTO_KEY not in app.config["CRYPTO_KEYS"]
        client, base = app.test_client(), GOOD_PROD["SERVICE_BASE_URL"]
        assert client.get(f"{base}/api/ping").status_code == 200
        assert client.post(f"{base}/api/test/token/o_anyone").status_code == 404
        assert client.get(f"{base}/dev/sms").status_code == 404
        assert client.get(f"{base}/demo/app").status_code == 404
    finally:
        app.extensions["berater.tasks"].shutdown(timeout=5)
        app.extensions["berater.store"].close()


def test_unknown_environment_is_refused_by_name():
    with pytest.raises(ConfigError, match="BERATER_ENV"):
        load_config(environ={"BERATER_ENV": "staging"})


def test_settings_are_read_and_parsed_from_the_environment():
    settings = load_config(
        environ={
            "BERATER_ENV": "development",
            "TOKEN_TTL": "1800",
            "APP_TOKENS": "face=abc, other = def",
            "CRYPTO_KEYS": "k1, k2",
            "LEGACY_STATUS_200": "yes",
        }
    )
    assert settings["TOKEN_TTL"] == 1800
    assert settings["APP_TOKENS"] == {"face": "abc", "other": "def"}
    assert settings["CRYPTO_KEYS"] == ["k1", "k2"]
    assert settings["LEGACY_STATUS_200"] is True


@pytest.mark.parametrize(
    ("key", "value"),
    [("TOKEN_TTL", "soon"), ("LEGACY_STATUS_200", "maybe"), ("APP_TOKENS", "face")],
)
def test_an_unreadable_setting_is_named(key, value):
    with pytest.raises(ConfigError, match=key):
        load_config(environ={key: value})


def test_dotenv_file_is_read_without_overriding_the_environment(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("BERATER_ENV=development\nTOKEN_TTL=1234\nLOG_LEVEL=WARNING\n")
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    monkeypatch.delenv("TOKEN_TTL", raising=False)
    monkeypatch.delenv("BERATER_ENV", raising=False)
    settings = load_config(dotenv_path=env_file)
    assert settings["BERATER_ENV"] == "development"  # .env may choose the environment
    assert settings["TOKEN_TTL"] == 1234
    assert settings["LOG_LEVEL"] == "ERROR"


def test_production_starts_with_every_secret_set():
    settings = load_config(environ=GOOD_PROD)
    assert settings["ENABLE_TEST_TOKEN"] is False


@pytest.mark.parametrize(
    "key", ["SECRET_KEY", "DATABASE_URL", "CRYPTO_KEYS", "WECHAT_APPID", "WECHAT_SECRET"]
)
def test_production_refuses_a_missing_or_empty_secret_and_names_it(key):
    missing = {k: v for k, v in GOOD_PROD.items() if k != key}
    with pytest.raises(ConfigError, match=key):
        load_config(environ=missing)
    with pytest.raises(ConfigError, match=key):
        load_config(environ={**GOOD_PROD, key: "  "})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CRYPTO_KEYS", DEV_CRYPTO_KEY),
        ("SECRET_KEY", "dev-secret-key"),
        ("WECHAT_SECRET", "dev-wechat-secret"),
        ("APP_TOKENS", "face=dev-face-app-token"),
        ("APP_TOKENS", "face=short"),
    ],
)
def test_production_refuses_development_values(key, value):
    with pytest.raises(ConfigError, match=key):
        load_config(environ={**GOOD_PROD, key: value})


def test_production_cannot_switch_the_test_token_route_on():
    with pytest.raises(ConfigError, match="test-token"):
        load_config(environ=GOOD_PROD, overrides={"ENABLE_TEST_TOKEN": True})


def test_a_crypto_key_that_is_not_a_fernet_key_stops_the_app(base_settings):
    with pytest.raises(ConfigError, match="CRYPTO_KEYS entry 2"):
        create_app({**base_settings, "CRYPTO_KEYS": [Fernet.generate_key().decode(), "nope"]})


def test_an_app_cannot_be_named_after_a_persons_role():
    with pytest.raises(ConfigError, match="APP_TOKENS"):
        load_config(environ={"APP_TOKENS": "admin=" + "a" * 32})


# --- the rows ---


def test_each_setting_has_one_row_and_production_requires_only_environment_settings():
    names = [row.name for row in SETTINGS]
    assert len(names) == len(set(names)) == len(ROWS)
    for row in SETTINGS:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", row.name), row.name
        assert row.meaning.strip(), f"{row.name} has no meaning"
        assert not row.required or row.from_environment, f"{row.name}: required but fixed"
        for env in ENVIRONMENTS:
            row.default_for(env)


def test_the_settings_of_each_environment_are_the_rows_defaults():
    for env in ("development", "testing"):
        settings = load_config(env, environ={})
        assert settings == {row.name: row.default_for(env) for row in SETTINGS}
    assert load_config("testing", environ={})["TESTING"] is True
    assert default("SMS_BACKEND", "development") == "console"
    assert default("SMS_BACKEND") == default("SMS_BACKEND", "testing") == "aliyun"
    assert default("PREFERRED_URL_SCHEME") == "https"
    assert default("SESSION_COOKIE_SECURE", "development") is False


def test_a_load_gets_its_own_copy_of_list_defaults():
    first = load_config("development", environ={})
    first["SIGNIN_REDIRECT_HOSTS"].append("evil.example")
    first["APP_TOKENS"]["evil"] = "x"
    second = load_config("development", environ={})
    assert second["SIGNIN_REDIRECT_HOSTS"] == ["127.0.0.1", "localhost"]
    assert second["APP_TOKENS"] == {}


def _as_environment_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, dict):
        return ",".join(f"{name}={secret}" for name, secret in value.items())
    return str(value)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_default_is_inside_its_own_range(env):
    for row in SETTINGS:
        value = row.default_for(env)
        if row.parse is None or value in ("", [], {}):
            continue
        assert row.parse(_as_environment_string(value)) == value, row.name


def test_fixed_settings_are_not_read_from_the_environment_but_overrides_set_them():
    assert "SMS_CODE_TTL" not in ENV_KEYS
    assert load_config("development", environ={"SMS_CODE_TTL": "1"})["SMS_CODE_TTL"] == 300
    settings = load_config("development", environ={}, overrides={"SMS_CODE_TTL": 1})
    assert settings["SMS_CODE_TTL"] == 1


def test_overrides_are_laid_over_without_parsing():
    settings = load_config("development", environ={"TOKEN_TTL": "1800"}, overrides={"TOKEN_TTL": 2})
    assert settings["TOKEN_TTL"] == 2


def test_no_module_restates_a_default_with_config_setdefault():
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "berater").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"config\.setdefault\(", line)
    ]
    assert found == [], f"defaults belong in berater/settings.py: {found}"


# --- ranges: a value outside its range stops the start, naming the setting ---


@pytest.mark.parametrize(
    ("key", "value"),
    [
        # whole numbers
        ("TRUSTED_PROXIES", "-1"),
        ("TOKEN_TTL", "0"),
        ("TOKEN_TTL", "86401"),
        ("TOKEN_TTL", "1.5"),
        ("BERT_PORT", "70000"),
        ("NOVA_NOTIFY_RETRIES", "11"),
        ("FACE_ROWS_PER_HOUR", "0"),
        ("FACE_ROWS_PER_HOUR", "100001"),
        ("MAX_CONTENT_LENGTH", "10"),
        # numbers
        ("REDIS_SOCKET_TIMEOUT", "-1"),
        ("REDIS_SOCKET_TIMEOUT", "0"),
        ("BERT_TIMEOUT", "61"),
        ("BERT_TIMEOUT", "nan"),
        ("QNA_MIN_SCORE", "1.5"),
        ("CANDIDATE_MAX_SCORE", "inf"),
        # choices
        ("QNA_BACKEND", "neural"),
        ("SMS_BACKEND", "twilio"),
        ("LOG_LEVEL", "LOUD"),
        ("WECHAT_TOKEN_ENDPOINT", "fast"),
        # booleans
        ("FACE_SEE_ID_CARDS", "sometimes"),
        # lists
        ("CRYPTO_KEYS", " , "),
        ("CANDIDATE_SUBJECTS", "理科,理科"),
        # name=secret pairs
        ("APP_TOKENS", "face"),
        ("APP_TOKENS", "=secret"),
        ("APP_TOKENS", "face=a,face=b"),
        # URLs
        ("WECHAT_API_BASE", "ftp://api.weixin.qq.com"),
        ("SERVICE_BASE_URL", "berater.example.edu.cn"),
        ("WECHAT_BIND_URL", "https://"),
        ("REDIS_URL", "http://redis:6379/0"),
        ("DATABASE_URL", "berater.sqlite3"),
        # base URLs: no user, query or fragment, a port in range
        ("SERVICE_BASE_URL", "https://berater.example.edu.cn/?next=/"),
        ("SERVICE_BASE_URL", "https://berater.example.edu.cn/#top"),
        ("SERVICE_BASE_URL", "https://admin@berater.example.edu.cn"),
        ("SERVICE_BASE_URL", "https://berater.example.edu.cn:99999"),
        # EncodingAESKeys: 43 characters of base64
        ("WECHAT_AES_KEY", AES_KEY[:-1]),
        ("WECHAT_AES_KEY", AES_KEY + "A"),
        ("WECHAT_AES_KEY", AES_KEY + "="),
        ("WECHAT_AES_KEY", "!" + AES_KEY[1:]),
        ("WECHAT_AES_KEY_PREVIOUS", AES_KEY[:32]),
        # hosts: a name or an address, no scheme, port or path
        ("BERT_HOST", "tcp://10.0.0.8"),
        ("BERT_HOST", "10.0.0.8:5555"),
        ("SIGNIN_REDIRECT_HOSTS", "https://partner.example.edu.cn"),
        ("SIGNIN_REDIRECT_HOSTS", "partner.example.edu.cn:8443"),
        ("SIGNIN_REDIRECT_HOSTS", "partner.example.edu.cn/app"),
        ("SIGNIN_REDIRECT_HOSTS", "a.example.edu.cn, A.example.edu.cn"),
        # patterns
        ("SMS_TEMPLATE_CODE", "123456789"),
    ],
)
def test_a_value_outside_its_range_is_refused_naming_the_setting(key, value):
    with pytest.raises(ConfigError, match=rf"setting {key} is invalid"):
        load_config(environ={key: value})


@pytest.mark.parametrize(
    ("key", "value", "parsed"),
    [
        ("TOKEN_TTL", " 86400 ", 86400),
        ("TRUSTED_PROXIES", "0", 0),
        ("FACE_ROWS_PER_HOUR", "1", 1),
        ("FACE_ROWS_PER_HOUR", "100000", 100_000),
        ("REDIS_SOCKET_TIMEOUT", "60", 60.0),
        ("REVOCATION_SYNC", "0", 0.0),
        ("QNA_BERT_MIN_SCORE", "-0.2", -0.2),
        ("LOG_LEVEL", "warning", "WARNING"),
        ("QNA_BACKEND", " Hybrid ", "hybrid"),
        ("REDIS_URL", "unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("DATABASE_URL", "sqlite:////srv/berater.sqlite3", "sqlite:////srv/berater.sqlite3"),
        ("SMS_ENDPOINT", "http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("SERVICE_BASE_URL", "https://berater.example.edu.cn/", "https://berater.example.edu.cn"),
        (
            "SERVICE_BASE_URL",
            "https://example.edu.cn:8443/berater",
            "https://example.edu.cn:8443/berater",
        ),
        ("WECHAT_AES_KEY", f" {AES_KEY} ", AES_KEY),
        ("WECHAT_AES_KEY_PREVIOUS", AES_KEY, AES_KEY),
        ("BERT_HOST", "Bert-Server.internal", "bert-server.internal"),
        ("BERT_HOST", "10.0.0.8", "10.0.0.8"),
        (
            "SIGNIN_REDIRECT_HOSTS",
            "Partner.example.edu.cn, 10.0.0.8",
            ["partner.example.edu.cn", "10.0.0.8"],
        ),
        ("SMS_TEMPLATE_CODE", " SMS_123456789 ", "SMS_123456789"),
    ],
)
def test_values_at_the_edges_of_their_range_are_read(key, value, parsed):
    assert load_config("development", environ={key: value})[key] == parsed


def test_a_wrong_encoding_aes_key_stops_the_start_without_showing_the_key(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # away from any .env file
    wrong = AES_KEY[:-1]  # 42 characters: WeChat's console would never give it
    monkeypatch.setenv("WECHAT_AES_KEY", wrong)
    with pytest.raises(ConfigError, match="setting WECHAT_AES_KEY is invalid") as refused:
        create_app("testing")
    assert "43 characters" in str(refused.value) and "got 42" in str(refused.value)
    assert wrong not in str(refused.value)
    # Empty stays allowed: plain mode.
    assert load_config("testing", environ={"WECHAT_AES_KEY": ""})["WECHAT_AES_KEY"] == ""


def test_the_app_does_not_start_on_a_value_out_of_range(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # away from any .env file
    monkeypatch.setenv("REDIS_SOCKET_TIMEOUT", "-1")
    with pytest.raises(ConfigError, match="REDIS_SOCKET_TIMEOUT"):
        create_app("testing")


# --- production's required settings ---


@pytest.mark.parametrize("key", [row.name for row in SETTINGS if row.required])
def test_production_refuses_each_required_setting_when_missing(key):
    with pytest.raises(ConfigError, match=rf"production needs {key}"):
        load_config(environ={k: v for k, v in GOOD_PROD.items() if k != key})


def test_production_needs_its_service_base_url_over_https():
    """Every link it gives out and the only host it answers; its session cookie is Secure."""
    with pytest.raises(ConfigError, match="production needs SERVICE_BASE_URL"):
        load_config(environ={k: v for k, v in GOOD_PROD.items() if k != "SERVICE_BASE_URL"})
    plain = {**GOOD_PROD, "SERVICE_BASE_URL": "http://berater.example.edu.cn"}
    with pytest.raises(ConfigError, match="SERVICE_BASE_URL to be an https:// URL"):
        load_config(environ=plain)


def test_production_needs_a_secret_key_of_32_characters():
    with pytest.raises(ConfigError, match="SECRET_KEY of at least 32"):
        load_config(environ={**GOOD_PROD, "SECRET_KEY": "k" * 31})
    assert load_config(environ={**GOOD_PROD, "SECRET_KEY": "k" * 32})["SECRET_KEY"] == "k" * 32


# --- the documentation lists the rows ---


def env_example_keys(text: str) -> list[str]:
    """Keys of `KEY=` and `# KEY=` lines."""
    return re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.MULTILINE)


def readme_table_keys(text: str) -> list[str]:
    """The names in the first column of the README's settings table."""
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [key for row in rows for key in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])]


def disagreement(where: str, named: list[str], others: frozenset[str] = frozenset()) -> str:
    """What `where` misses of the environment settings, and what it names that is no row."""
    missing = [key for key in ENV_KEYS if key not in named]
    extra = sorted({key for key in named if key not in ROWS and key not in others})
    problems = []
    if missing:
        problems.append(f"{where} lacks {', '.join(missing)}")
    if extra:
        problems.append(f"{where} names {', '.join(extra)}, which no row of SETTINGS defines")
    return "; ".join(problems)


def test_env_example_lists_exactly_the_environment_settings():
    named = env_example_keys((ROOT / ".env.example").read_text())
    assert not disagreement(".env.example", named, DEPLOYMENT_KEYS), disagreement(
        ".env.example", named, DEPLOYMENT_KEYS
    )


def test_the_readme_table_lists_exactly_the_environment_settings():
    named = readme_table_keys((ROOT / "README.md").read_text())
    assert not disagreement("README.md", named), disagreement("README.md", named)


def test_a_disagreement_names_the_missing_and_the_extra_keys():
    text = "\n".join(f"{key}=" for key in ENV_KEYS if key != "TOKEN_TTL")
    text += "\n# TOKEN_TTLS=5\nGUNICORN_BIND=0.0.0.0:8000\n"
    message = disagreement(".env.example", env_example_keys(text), DEPLOYMENT_KEYS)
    assert message == (
        ".env.example lacks TOKEN_TTL; "
        ".env.example names TOKEN_TTLS, which no row of SETTINGS defines"
    )
    readme = "# Berater\n\n## Settings\n\n| setting | meaning |\n| --- | --- |\n"
    readme += "".join(f"| `{key}` | x |\n" for key in ENV_KEYS if key != "BERT_PORT")
    readme += "| `BERT_PORTS`, `SMS_CODE_TTL` | x |\n\n## API\n| `NOT_A_ROW` | x |\n"
    assert disagreement("README.md", readme_table_keys(readme)) == (
        "README.md lacks BERT_PORT; README.md names BERT_PORTS, which no row of SETTINGS defines"
    )


def test_gunicorn_conf_reads_its_threads_through_the_row_and_its_range():
    assert read_setting("GUNICORN_THREADS", {"GUNICORN_THREADS": "16"}) == 16
    assert read_setting("GUNICORN_THREADS", {}) == default("GUNICORN_THREADS")
    with pytest.raises(ConfigError, match="GUNICORN_THREADS"):
        read_setting("GUNICORN_THREADS", {"GUNICORN_THREADS": "0"})
