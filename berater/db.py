"""The database handle, the model base class, the one transaction boundary, and the work that
waits for it to commit (`after_commit`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Connection, Engine, MetaData, event
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction

log = logging.getLogger("berater.db")

# Named constraints keep migrations identical on SQLite, MySQL and MariaDB.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Kept in `session.info`: hooks waiting for the commit, as (transaction registered in, hook);
# hooks whose transaction committed, to run once it has ended; when the transaction began.
PENDING = "berater.after_commit.pending"
READY = "berater.after_commit.ready"
BEGAN_AT = "berater.began_at"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Database(SQLAlchemy):
    """Flask-SQLAlchemy, whose end of each app context removes the context's session only
    when there is one: a request that never touched the database (a token check, a health
    check) skips scoped_session's two look-ups of the current context."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The sessions of the contexts that have one, by context (scoped_session's registry
        # when it keeps them in a dict, as it does with Flask-SQLAlchemy's scope).
        sessions = getattr(self.session.registry, "registry", None)
        self._sessions: dict[Any, Session] | None = sessions if type(sessions) is dict else None

    def _teardown_session(self, exc: BaseException | None) -> None:
        if self._sessions is not None and not self._sessions:
            return  # no session in any context: nothing to close or forget
        super()._teardown_session(exc)


db = Database(model_class=Base)


def utcnow() -> datetime:
    """Naive UTC, as stored in DATETIME columns on every backend."""
    return datetime.now(UTC).replace(tzinfo=None)


@contextmanager
def transaction() -> Iterator[Session]:
    """Commit when the block succeeds, roll back and re-raise when it fails.

    Services add and flush only; views and CLI commands own this boundary. Hooks registered
    with `after_commit` in the block run during `commit()`, once the data is committed; if
    one of them fails, its error comes out of this block (the rollback then has nothing left
    to undo: the data stays committed).
    """
    session = db.session
    try:
        yield session  # type: ignore[misc]  # the scoped proxy stands for the Session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def after_commit(hook: Callable[[], Any], session: Session | None = None) -> None:
    """Run `hook()` once the current transaction of `session` (db.session) has committed.

    For work outside the database that must follow a change in it, never precede it: store
    writes such as revocation marks. A hook registered while a transaction is in progress:

    - runs after the outermost transaction commits, whoever commits it: `transaction()`, a
      CLI command or a test calling `session.commit()`. A savepoint (`begin_nested()`) that
      is released only hands its hooks on to the transaction around it.
    - is discarded when that transaction, or the savepoint it was registered in, rolls
      back, and when the session is closed without committing.
    - runs in the order of registration, at most once, in the app context of the commit.

    Hooks run from SQLAlchemy's session events (`after_commit` marks them ready, the end of
    the committed transaction runs them), not from the exit of `transaction()`: so they run
    for every commit path, and by the time they run the connection is back in the pool and
    every other connection sees the committed data. A test session joined to an outer
    transaction that is rolled back at the end of the test (`join_transaction_mode=
    "create_savepoint"`) commits as far as the session knows, and its hooks run then; the
    test's final rollback is outside the session and runs none.

    A hook should not use the database: it would start a new transaction nobody commits.

    When a hook raises, the later hooks still run; each failure is logged with the hook's
    name and the exception's type only (never its message, which may hold personal data),
    and the first error is raised out of `commit()`. The committed data stays committed: the
    caller learns that a consequence is missing (a store outage: 503) instead of reporting
    success.

    Raises RuntimeError when no transaction is in progress: a hook needs a change to follow.
    """
    session = db.session() if session is None else session
    owner = session.get_nested_transaction() or session.get_transaction()
    if owner is None:
        raise RuntimeError("after_commit needs a transaction in progress")
    session.info.setdefault(PENDING, []).append((owner, hook))


def began_at(session: Session | None = None) -> float | None:
    """When the current transaction of `session` (db.session) began, as time.time(); None
    when none is in progress.

    Taken just before the transaction's first statement, so a snapshot the database keeps
    for it (MariaDB's REPEATABLE READ) is not older: whatever was committed before this time
    is visible to every read of the transaction.
    """
    session = db.session() if session is None else session
    return session.info.get(BEGAN_AT)


@event.listens_for(Engine, "savepoint")
def _begin_before_savepoint(conn: Connection, name: str | None) -> None:
    """Open SQLite's transaction before a SAVEPOINT. pysqlite (before Python 3.12's
    `autocommit`) begins a transaction only before an INSERT, UPDATE or DELETE; a SAVEPOINT
    sent first opens a transaction of its own, and its RELEASE commits it, so a savepoint
    that is a transaction's first write could not be rolled back with the rest."""
    if conn.dialect.name == "sqlite":
        raw = conn.connection.dbapi_connection
        if raw is not None and not raw.in_transaction:
            raw.execute("BEGIN")


@event.listens_for(Session, "after_begin")
def _began(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    if transaction.parent is None and BEGAN_AT not in session.info:
        session.info[BEGAN_AT] = time.time()


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released: its hooks wait for the outermost commit
    pending = session.info.pop(PENDING, [])
    session.info[READY] = [hook for _, hook in pending]


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(PENDING)
    if pending:
        session.info[PENDING] = [
            (owner, hook) for owner, hook in pending if not _inside(owner, previous_transaction)
        ]


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    session.info.pop(BEGAN_AT, None)
    session.info.pop(PENDING, None)  # never committed: rolled back, or closed
    ready = session.info.pop(READY, None)
    if ready:
        _run(ready)


def _inside(owner: SessionTransaction | None, ended: SessionTransaction) -> bool:
    """True when `owner` is `ended` or a savepoint within it."""
    while owner is not None:
        if owner is ended:
            return True
        owner = owner.parent
    return False


def _run(hooks: list[Callable[[], Any]]) -> None:
    failure: Exception | None = None
    for hook in hooks:
        try:
            hook()
        except Exception as exc:
            log.error(
                "after-commit hook %s failed (%s); the commit stands",
                _name(hook),
                type(exc).__name__,
            )
            failure = failure or exc
    if failure is not None:
        raise failure


def _name(hook: Callable[[], Any]) -> str:
    target = getattr(hook, "func", hook)  # functools.partial
    module = getattr(target, "__module__", "") or ""
    name = getattr(target, "__qualname__", type(target).__name__)
    return f"{module}.{name}" if module else name
