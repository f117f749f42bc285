"""What `/readyz` checks: the database, the store and the Q&A index, each within about a
second.

The database is asked through an engine of its own (no pool: one short connection per
check, with connect and read timeouts of READY_DB_TIMEOUT), so a hung server cannot keep a
probe waiting for the app pool's 10 s read timeout, and a check never takes a connection a
request needs. The store is PINGed through the app's client, which gives up after
REDIS_SOCKET_TIMEOUT. The Q&A index counts only when QNA_BACKEND answers from it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.pool import NullPool

from berater.errors import StoreUnavailable
from berater.extensions import qna, store

log = logging.getLogger("berater.ops")
ENGINE_KEY = "berater.ops.ready"
OK = "ok"
NOT_USED = "not used"
NOT_MIGRATED = "not migrated: run `flask --app run db upgrade`"


def init_app(app: Flask) -> None:
    """Make the readiness check's engine (it opens nothing until a check runs)."""
    url = sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    timeout = app.config["READY_DB_TIMEOUT"]
    connect_args: dict[str, Any] = dict(
        app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("connect_args", {})
    )
    if url.get_backend_name() == "sqlite":
        connect_args["timeout"] = timeout
    elif url.get_backend_name() in {"mysql", "mariadb"}:
        connect_args |= {
            "connect_timeout": timeout,
            "read_timeout": timeout,
            "write_timeout": timeout,
        }
    app.extensions[ENGINE_KEY] = sa.create_engine(
        url, poolclass=NullPool, connect_args=connect_args
    )


@dataclass
class Readiness:
    """Each part's state: "ok", or what is wrong with it."""

    parts: dict[str, str]

    @property
    def failed(self) -> list[str]:
        """The parts that are neither ok nor unused, in order."""
        return [name for name, state in self.parts.items() if state not in {OK, NOT_USED}]

    @property
    def ready(self) -> bool:
        return not self.failed


def readiness() -> Readiness:
    """Check the current app's database, store and Q&A index, one after the other."""
    return Readiness({"database": database(), "store": store_state(), "qna": qna_state()})


def database() -> str:
    """One short query on a fresh connection: the schema revision (no table: not migrated)."""
    engine: sa.Engine = current_app.extensions[ENGINE_KEY]
    try:
        with engine.connect() as conn:
            revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except sa.exc.SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        if "alembic_version" in str(cause):  # no such table: reachable, never migrated
            return NOT_MIGRATED
        log.warning("readiness: the database is unavailable (%s)", type(cause).__name__)
        return "unavailable"
    return OK if revision else NOT_MIGRATED


def store_state() -> str:
    try:
        store.ping()
    except StoreUnavailable as exc:
        log.warning("readiness: the store is unavailable (%s)", type(exc.__cause__).__name__)
        return "unavailable"
    return OK


def qna_state() -> str:
    if current_app.config["QNA_BACKEND"] == "placeholder":
        return NOT_USED
    if qna.current(current_app) is None:
        return "index not loaded: run `flask --app run qna build`"
    return OK
