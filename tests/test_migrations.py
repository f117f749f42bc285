"""The migrations build exactly the models' schema, on a fresh database, and undo it.

Marked `backends`: on SQLite (a new file) in `pytest`, and on MariaDB (a new database,
`berater_test_mig`) in `pytest -m backends --db=mariadb --store=redis`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy.exc import IntegrityError

from berater import PROJECT_ROOT
from berater.db import db
from berater.models import SourceStudent, Student
from tests import factories, servers

pytestmark = pytest.mark.backends

FRESH_DATABASE = "berater_test_mig"  # the berater user may create berater_test_% databases
MODEL_TABLES = frozenset(db.metadata.tables)


@pytest.fixture
def fresh_url(tmp_path: Path, backend_servers: dict[str, servers.Server]) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new MariaDB database."""
    mariadb = backend_servers.get("mariadb")
    if mariadb is None:
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    admin = sa.create_engine(mariadb.admin_url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {FRESH_DATABASE}")
            # latin1 on purpose: only the migration's own table options can make utf8mb4 tables.
            conn.exec_driver_sql(
                f"CREATE DATABASE {FRESH_DATABASE} CHARACTER SET latin1 COLLATE latin1_swedish_ci"
            )
        url = sa.make_url(mariadb.url).set(database=FRESH_DATABASE)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {FRESH_DATABASE}")
        admin.dispose()


@pytest.fixture
def fresh_app(app: Flask, make_app: Callable[..., Flask], fresh_url: str) -> Iterator[Flask]:
    """An app on the fresh database, inside its app context. (`app` is built first on
    purpose: make_app empties the tables of the first app it built, which must be the
    session's migrated database, not this one.)"""
    fresh = make_app(DATABASE_URL=fresh_url)
    with fresh.app_context():
        try:
            yield fresh
        finally:
            db.session.remove()
            db.engine.dispose()  # before the fresh database is dropped


def test_upgrade_on_a_fresh_database_creates_every_table_of_the_models(fresh_app: Flask) -> None:
    assert _tables() == set()

    upgrade()

    assert _tables() == MODEL_TABLES | {"alembic_version"}
    head = ScriptDirectory(str(PROJECT_ROOT / "migrations")).get_current_head()
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head


def test_autogenerate_finds_no_difference_between_migrations_and_models(fresh_app: Flask) -> None:
    upgrade()

    assert _differences() == []


def test_downgrade_to_base_removes_the_tables_and_upgrade_works_again(fresh_app: Flask) -> None:
    upgrade()

    downgrade(revision="base")

    assert _tables() & MODEL_TABLES == set()
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is None

    upgrade()

    assert _tables() == MODEL_TABLES | {"alembic_version"}
    assert _differences() == []
    factories.source_student(name="王五")
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SourceStudent)) == 1


def test_tables_are_utf8mb4_and_keep_chinese_and_emoji(
    fresh_app: Flask, backend_servers: dict[str, servers.Server]
) -> None:
    upgrade()
    row = factories.source_student(name="张三😀", department="计算机科学与技术系")
    db.session.commit()
    id_card = row.id_card
    db.session.expunge_all()

    assert db.session.get(SourceStudent, id_card).name == "张三😀"
    with db.engine.connect() as conn:  # a new connection, not the session's identity map
        raw = conn.execute(
            sa.text("SELECT name, department FROM source_student WHERE id_card = :id"),
            {"id": id_card},
        ).one()
    assert tuple(raw) == ("张三😀", "计算机科学与技术系")

    if "mariadb" in backend_servers:
        with db.engine.connect() as conn:
            collations = dict(
                conn.execute(
                    sa.text(
                        "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
                        "WHERE TABLE_SCHEMA = DATABASE()"
                    )
                ).all()
            )
            charsets = set(
                conn.execute(
                    sa.text(
                        "SELECT DISTINCT CHARACTER_SET_NAME FROM information_schema.COLUMNS "
                        "WHERE TABLE_SCHEMA = DATABASE() AND CHARACTER_SET_NAME IS NOT NULL "
                        "AND TABLE_NAME <> 'alembic_version'"
                    )
                ).scalars()
            )
        collations.pop("alembic_version")  # alembic's own table holds ASCII revision ids
        assert collations == dict.fromkeys(MODEL_TABLES, "utf8mb4_unicode_ci")
        assert charsets == {"utf8mb4"}


def test_two_students_cannot_share_an_id_card(fresh_app: Flask) -> None:
    upgrade()
    source = factories.source_student()
    factories.student("o_first", source)
    db.session.commit()

    with pytest.raises(IntegrityError):
        factories.student("o_second", source)
    db.session.rollback()

    assert db.session.scalars(sa.select(Student.openid)).all() == ["o_first"]


def _tables() -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def _differences() -> list[object]:
    with db.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), db.metadata)
