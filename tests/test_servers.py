"""Self-check of tests/servers.py: the throwaway MariaDB and Redis servers really start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import sqlalchemy as sa

from tests.servers import MariaDBServer, RedisServer, start_mariadb, start_redis


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    server = start_mariadb(tmp_path_factory.mktemp("mariadb"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def test_mariadb_stores_utf8mb4(mariadb: MariaDBServer) -> None:
    engine = sa.create_engine(mariadb.url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL)")
            )
            conn.execute(sa.text("INSERT INTO people VALUES (1, :name)"), {"name": "张三😀"})
        with engine.connect() as conn:
            name = conn.execute(sa.text("SELECT name FROM people WHERE id = 1")).scalar_one()
            charset = conn.execute(
                sa.text(
                    "SELECT default_character_set_name FROM information_schema.schemata "
                    "WHERE schema_name = 'berater_test'"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert name == "张三😀"
    assert charset == "utf8mb4"


def test_redis_set_get(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    try:
        client.set("greeting", "你好")
        assert client.get("greeting") == "你好".encode()
    finally:
        client.close()


def test_redis_restart_answers_on_same_url(redis_server: RedisServer) -> None:
    url = redis_server.url
    redis_server.restart()
    assert redis_server.url == url
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        assert client.ping() is True
    finally:
        client.close()
