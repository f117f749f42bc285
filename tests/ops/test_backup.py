"""`flask backup` and `flask restore`: every row comes back, on SQLite and on MariaDB, and
from SQLite into MariaDB; a damaged, short or foreign file writes nothing.

Marked `backends`: SQLite in `pytest`, MariaDB in `pytest -m backends --db=mariadb
--store=redis`; the SQLite-to-MariaDB test runs in the MariaDB run only.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade

from berater.db import db, transaction
from berater.models import AuditLog, NovaReg, Privilege, Student
from berater.ops import backup
from tests import factories
from tests.helpers import in_thread

pytestmark = pytest.mark.backends

STUDENTS = 2345  # more than two INSERT batches of backup.BATCH


def fill(app: Flask) -> None:
    """Rows in every table: Chinese text, NULLs, booleans, floats, datetimes with
    microseconds, autoincrement ids with a gap."""
    with app.app_context():
        with transaction():
            listed = factories.admission_list(STUDENTS)
            source = factories.source_student(name='𠮷野 O\'Brien "x"', origin=None, gender=None)
            factories.student("o_student_1", source)
            factories.candidate("o_candidate_1")
            factories.auth_user("office", "a long enough password", disabled=True)
            factories.auth_user("desk", "another long password")
            for role in ("admin", "nova_admin", "face"):
                factories.privilege("o_admin_1", role)
            db.session.add(
                NovaReg(
                    openid="o_nova_1",
                    stuid=listed[0]["stuid"],
                    name=listed[0]["name"],
                    department=None,
                    phone="13800138000",
                    qq="12345",
                    intro='第一行\n第二行 ✓ \\ "quoted"',
                    deleted=True,
                )
            )
            db.session.add(
                AuditLog(
                    at=datetime(2026, 7, 1, 8, 30, 15, 123456),
                    actor="cli",
                    action="grant",
                    target="o_admin_1",
                    role="admin",
                    ip=None,
                )
            )
            db.session.add(AuditLog(actor="o_admin_1", action="revoke", target="x", ip="::1"))
        # A gap in the ids: restored rows keep theirs.
        with transaction():
            db.session.execute(sa.delete(Privilege).where(Privilege.role == "nova_admin"))
        db.session.remove()


def dump(app: Flask) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, in primary-key order."""
    with app.app_context():
        rows = {
            table.name: [
                dict(row)
                for row in db.session.execute(
                    sa.select(table).order_by(*table.primary_key.columns)
                ).mappings()
            ]
            for table in db.metadata.sorted_tables
        }
        db.session.remove()
    return rows


def wipe(app: Flask) -> None:
    with app.app_context():
        with transaction() as session:
            for table in reversed(db.metadata.sorted_tables):
                session.execute(table.delete())
        db.session.remove()


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def header_of(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return json.loads(lines.readline())


def rewrite(path: Path, change: Callable[[list[str]], list[str]]) -> None:
    with gzip.open(path, "rt", encoding="utf-8") as text:
        lines = text.read().splitlines()
    with gzip.open(path, "wt", encoding="utf-8") as text:
        text.write("\n".join(change(lines)) + "\n")


def test_backup_wipe_restore_gives_back_every_row(app: Flask, tmp_path: Path) -> None:
    fill(app)
    before = dump(app)
    assert all(before.values()), "every table should hold rows"
    file = tmp_path / "backup.jsonl.gz"

    done = run(app, "backup", str(file))
    assert done.exit_code == 0, done.output
    total = sum(len(rows) for rows in before.values())
    assert f"backed up {total} rows of {len(before)} tables" in done.output
    assert stat.S_IMODE(file.stat().st_mode) == 0o600  # it holds personal data
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    header = header_of(file)
    assert header["format"] == "berater-backup" and header["version"] == 1
    assert header["revision"] == _revision(app)
    assert header["tables"] == {name: len(rows) for name, rows in before.items()}
    assert list(header["tables"]) == [t.name for t in db.metadata.sorted_tables]
    assert header["created_at"].endswith("Z")

    wipe(app)
    assert not any(dump(app).values())
    done = run(app, "restore", str(file))
    assert done.exit_code == 0, done.output
    assert f"restored {total} rows" in done.output
    assert dump(app) == before

    # The restored ids continue where they were: a new row gets the next one.
    with app.app_context():
        with transaction():
            new = factories.privilege("o_after_restore", "admin")
        assert new.id > max(row["id"] for row in before["privilege"])


def test_restore_refuses_a_database_with_rows_unless_forced(app: Flask, tmp_path: Path) -> None:
    fill(app)
    before = dump(app)
    file = tmp_path / "backup.jsonl.gz"
    assert run(app, "backup", str(file)).exit_code == 0
    with app.app_context():
        with transaction():
            factories.candidate("o_after_backup")
        db.session.remove()
    changed = dump(app)

    refused = run(app, "restore", str(file))
    assert refused.exit_code == 1
    assert "the database is not empty" in refused.output
    assert "candidate (2 rows)" in refused.output and "--force" in refused.output
    assert dump(app) == changed

    forced = run(app, "restore", "--force", str(file))
    assert forced.exit_code == 0, forced.output
    assert dump(app) == before


def test_a_backup_of_another_schema_revision_is_refused(app: Flask, tmp_path: Path) -> None:
    fill(app)
    file = tmp_path / "backup.jsonl.gz"
    assert run(app, "backup", str(file)).exit_code == 0
    wipe(app)

    def older(lines: list[str]) -> list[str]:
        header = json.loads(lines[0])
        header["revision"] = "0001"
        return [json.dumps(header), *lines[1:]]

    rewrite(file, older)
    refused = run(app, "restore", str(file))
    assert refused.exit_code == 1
    assert f"schema revision 0001, the database is at {_revision(app)}" in refused.output
    assert "nothing was restored" in refused.output
    assert not any(dump(app).values())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("cut", "the file is cut short"),
        ("flipped", "damaged"),
        ("row removed", "rows do not match its header's counts"),
        ("broken line", "is damaged (not JSON)"),
        ("not gzip", "this is not a Berater backup"),
    ],
)
def test_a_damaged_file_is_refused_and_nothing_is_written(
    app: Flask, tmp_path: Path, damage: str, message: str
) -> None:
    fill(app)
    before = dump(app)
    file = tmp_path / "backup.jsonl.gz"
    assert run(app, "backup", str(file)).exit_code == 0
    data = file.read_bytes()
    if damage == "cut":
        file.write_bytes(data[: len(data) * 2 // 3])
    elif damage == "flipped":
        middle = len(data) * 2 // 3
        file.write_bytes(
            data[:middle]
            + bytes(b ^ 0x5A for b in data[middle : middle + 64])
            + data[middle + 64 :]
        )
    elif damage == "row removed":
        rewrite(file, lambda lines: lines[:-1])
    elif damage == "broken line":
        rewrite(file, lambda lines: [*lines[:-1], lines[-1][:-7]])
    else:
        file.write_bytes(b"-- MariaDB dump\nCREATE TABLE x;\n")

    # Into a database with rows (forced): they must survive a refused restore.
    with app.app_context():
        with transaction():
            factories.candidate("o_kept")
        db.session.remove()
    held = dump(app)
    refused = run(app, "restore", "--force", str(file))
    assert refused.exit_code == 1
    assert message in refused.output, refused.output
    assert "nothing was restored" in refused.output
    assert dump(app) == held != before

    wipe(app)
    refused = run(app, "restore", str(file))
    assert refused.exit_code == 1 and message in refused.output
    assert not any(dump(app).values())


def test_the_backup_is_one_snapshot_while_others_write(app: Flask, tmp_path: Path) -> None:
    """Rows committed while the backup reads are not in it, and the counts in its header
    match its rows. (On SQLite the writer cannot commit while the backup reads; on MariaDB
    it commits and the snapshot does not see it.)"""
    fill(app)
    before = dump(app)
    file = tmp_path / "backup.jsonl.gz"
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    # On SQLite the writer gives up soon instead of waiting out the app's 5 s lock timeout.
    writer = sa.create_engine(
        url, connect_args={"timeout": 0.2} if url.startswith("sqlite") else {}
    )
    outcomes: list[str] = []

    def write_during_backup(rows: int) -> None:
        if outcomes:
            return

        def commit() -> str:
            try:
                with writer.begin() as conn:
                    conn.execute(
                        sa.insert(AuditLog),
                        {
                            "at": datetime(2026, 1, 1),
                            "actor": "late",
                            "action": "grant",
                            "target": "t",
                        },
                    )
                    conn.execute(sa.delete(Student))  # read after source_student
            except sa.exc.OperationalError:
                return "blocked"
            return "committed"

        outcomes.append(in_thread(commit))

    try:
        with app.app_context():
            backup.write(file, progress=write_during_backup)
            db.session.remove()
    finally:
        writer.dispose()
    assert outcomes in (["blocked"], ["committed"])
    if url.startswith("mysql"):
        assert outcomes == ["committed"]

    wipe(app)
    assert run(app, "restore", str(file)).exit_code == 0
    assert dump(app) == before


@pytest.mark.mariadb
def test_a_sqlite_backup_restores_into_mariadb(
    app: Flask, make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    """An office moving from the embedded default to MariaDB: backup on SQLite, restore on
    MariaDB. DATETIME on MariaDB keeps whole seconds, so the microseconds SQLite kept go."""
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("mysql")
    sqlite = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.sqlite3'}")
    with sqlite.app_context():
        upgrade()
    fill(sqlite)
    before = dump(sqlite)
    file = tmp_path / "from-sqlite.jsonl.gz"
    assert run(sqlite, "backup", str(file)).exit_code == 0
    assert header_of(file)["source"] == "sqlite"
    with sqlite.app_context():
        db.engine.dispose()

    done = run(app, "restore", str(file))
    assert done.exit_code == 0, done.output
    assert "from sqlite" in done.output
    whole_seconds = {
        name: [
            {k: v.replace(microsecond=0) if isinstance(v, datetime) else v for k, v in row.items()}
            for row in rows
        ]
        for name, rows in before.items()
    }
    assert any(
        isinstance(v, datetime) and v.microsecond
        for rows in before.values()
        for r in rows
        for v in r.values()
    )
    assert dump(app) == whole_seconds

    # And back: the MariaDB backup restores into an empty SQLite file.
    again = tmp_path / "from-mariadb.jsonl.gz"
    assert run(app, "backup", str(again)).exit_code == 0
    wipe(sqlite)
    assert run(sqlite, "restore", str(again)).exit_code == 0
    assert dump(sqlite) == whole_seconds


def _revision(app: Flask) -> str:
    with app.app_context(), db.engine.connect() as conn:
        found = backup.revision(conn)
    assert found
    return found


def test_the_partial_file_is_removed_when_a_backup_fails(app: Flask, tmp_path: Path) -> None:
    fill(app)
    file = tmp_path / "backup.jsonl.gz"
    file.write_bytes(b"an older backup")

    def fail(rows: int) -> None:
        raise RuntimeError("disk full")

    with app.app_context(), pytest.raises(RuntimeError):
        backup.write(file, progress=fail)
    assert file.read_bytes() == b"an older backup"  # replaced only by a whole backup
    assert os.listdir(tmp_path) == ["backup.jsonl.gz"]


def test_backup_to_stdout_and_restore_from_stdin(app: Flask) -> None:
    """`docker compose exec -T berater flask --app run backup - > file`, and back."""
    fill(app)
    before = dump(app)
    done = app.test_cli_runner().invoke(args=["backup", "-"])
    assert done.exit_code == 0, done.output
    assert done.stdout_bytes[:2] == b"\x1f\x8b"  # only the gzip stream on stdout
    assert b"backed up" in done.stderr_bytes
    wipe(app)
    done = app.test_cli_runner().invoke(args=["restore", "-"], input=done.stdout_bytes)
    assert done.exit_code == 0, done.output
    assert dump(app) == before
