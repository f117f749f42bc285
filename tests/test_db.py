"""`berater.db`: the transaction boundary and the hooks that wait for its commit.

Marked `backends`: on SQLite in `pytest`, on MariaDB in `pytest -m backends --db=mariadb`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from berater.db import after_commit, began_at, db, transaction
from berater.models import Candidate
from tests import factories

pytestmark = pytest.mark.backends


def committed_candidates() -> set[str]:
    """The candidates another connection sees: what is committed."""
    with db.engine.connect() as conn:
        return set(conn.scalars(sa.select(Candidate.openid)))


def recorder(calls: list[str], name: str) -> Callable[[], None]:
    """A hook that notes its name and what was committed when it ran."""

    def hook() -> None:
        calls.append(f"{name}:{','.join(sorted(committed_candidates()))}")

    return hook


def test_hooks_run_once_in_order_after_the_commit(ctx):
    calls: list[str] = []
    with transaction():
        factories.candidate("o_a")
        after_commit(recorder(calls, "first"))
        after_commit(recorder(calls, "second"))
        db.session.flush()
        assert calls == []
    # Both ran after the commit: the row was visible to another connection.
    assert calls == ["first:o_a", "second:o_a"]
    with transaction():
        factories.candidate("o_b")
    db.session.commit()
    assert calls == ["first:o_a", "second:o_a"]  # never again


def test_hooks_of_a_failed_transaction_never_run(ctx):
    calls: list[str] = []
    with pytest.raises(RuntimeError, match="after the write"), transaction():
        factories.candidate("o_a")
        after_commit(recorder(calls, "rolled back"))
        raise RuntimeError("failure after the write")
    with transaction():
        factories.candidate("o_b")
        after_commit(recorder(calls, "next"))
    assert calls == ["next:o_b"]


def test_hooks_run_on_a_commit_outside_transaction(ctx):
    """CLI commands and tests that call `session.commit()` themselves run the hooks too."""
    calls: list[str] = []
    factories.candidate("o_a")
    after_commit(recorder(calls, "direct"))
    db.session.commit()
    assert calls == ["direct:o_a"]


def test_hooks_of_a_closed_session_are_discarded(ctx):
    calls: list[str] = []
    factories.candidate("o_a")
    after_commit(recorder(calls, "closed"))
    db.session.close()
    factories.candidate("o_b")
    db.session.commit()
    assert calls == []
    assert committed_candidates() == {"o_b"}


def test_a_savepoint_keeps_its_hooks_for_the_outer_commit_or_drops_them_with_itself(ctx):
    calls: list[str] = []
    with transaction() as session:
        factories.candidate("o_a")
        with pytest.raises(RuntimeError), session.begin_nested():
            factories.candidate("o_b")
            after_commit(recorder(calls, "rolled-back savepoint"))
            raise RuntimeError("undo the savepoint")
        with session.begin_nested():
            factories.candidate("o_c")
            after_commit(recorder(calls, "released savepoint"))
        with session.begin_nested():
            with session.begin_nested():
                after_commit(recorder(calls, "inner of a rolled-back savepoint"))
            session().get_nested_transaction().rollback()
        assert calls == []  # releasing a savepoint is not the commit
    assert calls == ["released savepoint:o_a,o_c"]


def test_a_savepoint_that_is_the_first_write_rolls_back_with_its_transaction(ctx):
    """On SQLite too: the savepoint's RELEASE does not commit the row on its own."""
    with pytest.raises(RuntimeError), transaction():
        db.session.get(Candidate, "o_first")  # a read first, as the binding does
        with db.session.begin_nested():
            factories.candidate("o_first")
        raise RuntimeError("a failure after the savepoint")
    assert committed_candidates() == set()
    with transaction(), db.session.begin_nested():
        factories.candidate("o_first")
    assert committed_candidates() == {"o_first"}


def test_hooks_run_in_a_test_session_whose_outer_transaction_is_rolled_back(ctx):
    """A test session joined to an outer transaction (rolled back at the end of the test)
    commits as far as it knows: its hooks run then, and the data still goes away."""
    calls: list[str] = []
    with db.engine.connect() as conn:
        outer = conn.begin()
        conn.execute(sa.insert(Candidate).values(**candidate_row("o_outer")))
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        session.add(Candidate(**candidate_row("o_inner")))
        after_commit(lambda: calls.append("ran"), session=session)
        session.commit()
        assert calls == ["ran"]
        session.close()
        outer.rollback()
    assert committed_candidates() == set()


def test_a_failing_hook_keeps_the_commit_runs_the_rest_and_raises(ctx, log_records):
    calls: list[str] = []

    def failing_hook() -> None:
        raise KeyError("o_secret_openid 13800138000")

    with pytest.raises(KeyError), transaction():
        factories.candidate("o_kept")
        after_commit(failing_hook)
        after_commit(recorder(calls, "later"))
    assert calls == ["later:o_kept"]
    assert committed_candidates() == {"o_kept"}
    logged = [r.getMessage() for r in log_records if r.name == "berater.db"]
    assert len(logged) == 1
    assert "failing_hook" in logged[0] and "KeyError" in logged[0]
    assert "o_secret" not in logged[0] and "13800138000" not in logged[0]
    # The session is usable at once.
    with transaction():
        factories.candidate("o_next")
    assert committed_candidates() == {"o_kept", "o_next"}


def test_a_failing_hook_raises_from_a_direct_commit_too(ctx):
    def failing_hook() -> None:
        raise LookupError("the store said no")

    factories.candidate("o_kept")
    after_commit(failing_hook)
    with pytest.raises(LookupError):
        db.session.commit()
    assert committed_candidates() == {"o_kept"}
    assert not db.session().in_transaction()


def test_a_hook_needs_a_transaction(ctx):
    db.session.commit()
    with pytest.raises(RuntimeError, match="transaction in progress"):
        after_commit(lambda: None)


def test_began_at_is_the_start_of_the_transaction_in_progress(ctx):
    db.session.commit()
    assert began_at() is None
    before = time.time()
    db.session.execute(sa.select(sa.func.count()).select_from(Candidate))
    started = began_at()
    assert started is not None and before <= started <= time.time()
    time.sleep(0.01)
    factories.candidate("o_a")
    assert began_at() == started
    db.session.commit()
    assert began_at() is None


def candidate_row(openid: str) -> dict[str, object]:
    return {
        "openid": openid,
        "phone": "13900139000",
        "name": "李四",
        "province": "江苏",
        "city": "南京",
        "score": 600.0,
        "subject": "物理类",
    }
