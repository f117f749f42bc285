"""Settings: environment selection, .env files, and production's refusals."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from berater import create_app
from berater.settings import DEV_CRYPTO_KEY, ConfigError, load_config

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
}


def test_environment_is_picked_by_berater_env():
    assert load_config(environ={"BERATER_ENV": "testing"})["TESTING"] is True
    assert load_config(environ={})["BERATER_ENV"] == "development"


def test_unknown_environment_is_refused_by_name():
    with pytest.raises(ConfigError, match="BERATER_ENV"):
        load_config(environ={"BERATER_ENV": "staging"})


def test_settings_are_read_and_parsed_from_the_environment():
    settings = load_config(
        environ={
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
    env_file.write_text("TOKEN_TTL=1234\nLOG_LEVEL=WARNING\n")
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    monkeypatch.delenv("TOKEN_TTL", raising=False)
    settings = load_config(dotenv_path=env_file)
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
