"""Backups of the database: every table in one gzip-compressed file of JSON lines.

The first line is the header: the format and its version, the Alembic revision of the schema,
the time (UTC), the database it came from, and each table's columns and row count, in the
order of the tables' dependencies. Each further line is one row, `{"table": ..., "row":
{column: value}}`, the tables in that order, each table's rows in primary-key order.

Values are written so that any backend reads them back the same: datetimes, dates and times
in ISO 8601 (naive UTC, as stored), decimals as strings, bytes in base64, everything else as
JSON has it. A restore converts them back by the column's type, so a backup of the SQLite file
restores into MariaDB and back.

A backup reads one snapshot: a REPEATABLE READ transaction started WITH CONSISTENT SNAPSHOT
on MariaDB/MySQL (writers go on), a read transaction on SQLite (a writer waits for it, up to
SQLite's lock timeout, then fails). A restore writes in one transaction: a file that turns out
damaged, short or of another schema half way through leaves the database as it was.
"""

from __future__ import annotations

import base64
import gzip
import math
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from berater import models  # noqa: F401 - registers the tables
from berater.db import db, transaction

FORMAT = "berater-backup"
VERSION = 1
BATCH = 1000  # rows per INSERT
REVISION_TABLE = "alembic_version"
Progress = Callable[[int], None]


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why, for the operator."""


@dataclass
class Header:
    """The first line of a backup."""

    revision: str
    created_at: str
    source: str
    tables: dict[str, int]
    columns: dict[str, list[str]]
    # Tables the database holds that are not part of the schema (never written).
    ignored: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def line(self) -> bytes:
        return orjson.dumps(
            {
                "format": FORMAT,
                "version": VERSION,
                "revision": self.revision,
                "created_at": self.created_at,
                "source": self.source,
                "tables": self.tables,
                "columns": self.columns,
            }
        )

    @classmethod
    def parse(cls, line: bytes) -> Header:
        try:
            found = orjson.loads(line)
        except orjson.JSONDecodeError:
            found = None
        if not isinstance(found, dict) or found.get("format") != FORMAT:
            raise BackupError("this is not a Berater backup (its first line is no header)")
        if found.get("version") != VERSION:
            raise BackupError(
                f"this backup is in format version {found.get('version')!r}; "
                f"this version of Berater reads version {VERSION}"
            )
        try:
            header = cls(
                revision=str(found["revision"]),
                created_at=str(found["created_at"]),
                source=str(found["source"]),
                tables={str(k): int(v) for k, v in found["tables"].items()},
                columns={str(k): [str(c) for c in v] for k, v in found["columns"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BackupError("the backup's header is damaged") from None
        return header


def tables() -> list[sa.Table]:
    """The schema's tables, each after the tables it refers to."""
    return list(db.metadata.sorted_tables)


def revision(conn: Connection) -> str | None:
    """The database's Alembic revision; None when it was never migrated."""
    if not sa.inspect(conn).has_table(REVISION_TABLE):
        return None
    return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def _count(conn: Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# --- backup ---


@contextmanager
def snapshot(engine: sa.Engine) -> Iterator[Connection]:
    """A connection whose reads all see the database at one moment, written to by nobody."""
    with engine.connect() as plain:
        # Our own BEGIN and ROLLBACK: the drivers' implicit transactions would not give a
        # snapshot (pysqlite does not begin one before a SELECT).
        conn = plain.execution_options(isolation_level="AUTOCOMMIT")
        dialect = engine.dialect.name
        if dialect == "sqlite":
            conn.exec_driver_sql("BEGIN")
        elif dialect in {"mysql", "mariadb"}:
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        else:
            raise BackupError(f"backups read SQLite and MariaDB/MySQL, not {dialect}")
        try:
            yield conn
        finally:
            conn.exec_driver_sql("ROLLBACK")


def write(
    target: Path | BinaryIO,
    on_header: Callable[[Header], None] | None = None,
    progress: Progress | None = None,
) -> Header:
    """Back up the current app's database to `target`: a path (replaced only once the file
    is complete; readable by its owner only: it holds personal data) or a binary stream
    (stdout)."""
    if not isinstance(target, Path):
        with gzip.GzipFile(fileobj=target, mode="wb", compresslevel=6) as out:
            return _dump(out, on_header, progress)
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as out,
        ):
            header = _dump(out, on_header, progress)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return header


def _dump(
    out: gzip.GzipFile, on_header: Callable[[Header], None] | None, progress: Progress | None
) -> Header:
    with snapshot(db.engine) as conn:
        found = revision(conn)
        if found is None:
            raise BackupError("the database has no schema: run `flask --app run db upgrade`")
        schema = tables()
        counts = {str(table.name): _count(conn, table) for table in schema}
        known = {table.name for table in schema} | {REVISION_TABLE}
        header = Header(
            revision=found,
            created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            source=db.engine.dialect.name,
            tables=counts,
            columns={str(t.name): [str(column.name) for column in t.columns] for t in schema},
            ignored=sorted(set(sa.inspect(conn).get_table_names()) - known),
        )
        out.write(header.line() + b"\n")
        if on_header:
            on_header(header)
        streaming = conn.execution_options(stream_results=True, yield_per=BATCH)
        for table in schema:
            written = 0
            order = list(table.primary_key.columns) or list(table.columns)
            result = streaming.execute(sa.select(table).order_by(*order))
            for row in result.mappings():
                out.write(_row_line(table.name, row))
                written += 1
                if progress and written % BATCH == 0:
                    progress(BATCH)
            if progress and written % BATCH:
                progress(written % BATCH)
            if written != counts[table.name]:  # a snapshot cannot change; a bug if it did
                raise BackupError(
                    f"{table.name}: counted {counts[table.name]} rows, read {written}"
                )
    return header


def _row_line(name: str, row: sa.RowMapping) -> bytes:
    return (
        orjson.dumps({"table": name, "row": {str(k): _encode(name, k, v) for k, v in row.items()}})
        + b"\n"
    )


def _encode(table: str, column: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BackupError(f"{table}.{column} holds {value}, which JSON cannot carry")
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    raise BackupError(f"{table}.{column}: no backup format for {type(value).__name__}")


# --- restore ---


@contextmanager
def read(
    source: Path | BinaryIO,
) -> Iterator[tuple[Header, Iterator[tuple[int, dict[str, Any]]]]]:
    """The header of the backup at `source` (a path, or a binary stream such as stdin) and
    its rows, as (line number, parsed line); any damage (a broken or cut gzip stream, a line
    that is no JSON) is a BackupError naming the line."""
    try:
        # Closed by the `with` below.
        stream = (
            gzip.open(source, "rb")  # noqa: SIM115
            if isinstance(source, Path)
            else gzip.GzipFile(fileobj=source, mode="rb")
        )
    except OSError as exc:
        raise BackupError(f"cannot open {source}: {exc.strerror or exc}") from None
    with stream:
        try:
            first = stream.readline()
        except EOFError:
            raise BackupError("the file is cut short (line 1)") from None
        except (OSError, zlib.error):
            raise BackupError("this is not a Berater backup (not a gzip file)") from None
        yield Header.parse(first), _lines(stream)


def _lines(stream: gzip.GzipFile) -> Iterator[tuple[int, dict[str, Any]]]:
    number = 1
    while True:
        number += 1
        try:
            line = stream.readline()
        except EOFError:
            raise BackupError(f"the file is cut short (line {number})") from None
        except (OSError, zlib.error) as exc:
            raise BackupError(f"the file is damaged near line {number} ({exc})") from None
        if not line:
            return
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise BackupError(f"line {number} is damaged (not JSON)") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("row"), dict):
            raise BackupError(f"line {number} is damaged (not a row)")
        yield number, parsed


def restore(
    source: Path | BinaryIO,
    *,
    force: bool = False,
    on_header: Callable[[Header], None] | None = None,
    progress: Progress | None = None,
) -> Header:
    """Restore the backup at `source` (a path or a binary stream) into the current app's
    database, in one transaction.

    Refused, with nothing written, when the file is no backup or is damaged or short, when
    its schema revision is not the database's, and when the database holds rows (unless
    `force`: then they are deleted first, in the same transaction).
    """
    schema = tables()
    by_name = {table.name: table for table in schema}
    with read(source) as (header, lines):
        expected = {table.name: [column.name for column in table.columns] for table in schema}
        if header.columns != expected:
            raise BackupError("the backup's tables or columns differ from this schema's")
        with transaction() as session:
            conn = session.connection()
            found = revision(conn)
            if found != header.revision:
                raise BackupError(
                    f"the backup is of schema revision {header.revision}, the database is at "
                    f"{found or 'none (run `flask --app run db upgrade`)'}: restore with the "
                    "version of Berater that made the backup, then upgrade"
                )
            held = {table.name: n for table in schema if (n := _count(conn, table))}
            if held and not force:
                listed = ", ".join(
                    f"{name} ({n} row{'s' if n != 1 else ''})" for name, n in held.items()
                )
                raise BackupError(f"the database is not empty: {listed}; --force replaces its data")
            if on_header:
                on_header(header)
            for table in reversed(schema):
                if table.name in held:
                    conn.execute(table.delete())
            counts = _insert(conn, lines, by_name, [t.name for t in schema], progress)
            if counts != {name: n for name, n in header.tables.items() if n}:
                raise BackupError(
                    "the file's rows do not match its header's counts: it is incomplete"
                )
    return header


def _insert(
    conn: Connection,
    lines: Iterator[tuple[int, dict[str, Any]]],
    by_name: dict[str, sa.Table],
    order: list[str],
    progress: Progress | None,
) -> dict[str, int]:
    """Insert the rows of `lines` in batches; the rows counted per table."""
    counts: dict[str, int] = {}
    batch: list[dict[str, Any]] = []
    current: sa.Table | None = None
    truncate = conn.dialect.name in {"mysql", "mariadb"}

    def flush() -> None:
        if batch and current is not None:
            conn.execute(current.insert(), batch)
            if progress:
                progress(len(batch))
            batch.clear()

    for number, parsed in lines:
        table = by_name.get(str(parsed.get("table")))
        if table is None:
            raise BackupError(f"line {number} names no table of this schema")
        if table is not current:
            if current is not None and order.index(table.name) <= order.index(current.name):
                raise BackupError(f"line {number}: {table.name} is out of order")
            flush()
            current = table
        try:
            batch.append(_decode_row(table, parsed["row"], truncate))
        except (KeyError, TypeError, ValueError, ArithmeticError):
            raise BackupError(
                f"line {number} is damaged (a value does not fit its column)"
            ) from None
        counts[table.name] = counts.get(table.name, 0) + 1
        if len(batch) >= BATCH:
            flush()
    flush()
    return counts


def _decode_row(table: sa.Table, row: dict[str, Any], truncate: bool) -> dict[str, Any]:
    if set(row) != set(table.columns.keys()):
        raise KeyError(table.name)
    return {name: _decode(table.columns[name], value, truncate) for name, value in row.items()}


def _decode(column: sa.Column[Any], value: Any, truncate_seconds: bool) -> Any:
    """The Python value of `value` as `_encode` wrote it, for `column`'s type."""
    if value is None:
        return None
    kind = column.type
    if isinstance(kind, sa.DateTime):
        moment = datetime.fromisoformat(value)
        # MariaDB's DATETIME keeps whole seconds (the app's own writes lose the rest too);
        # cut them here rather than leave rounding or cutting to the server.
        return moment.replace(microsecond=0) if truncate_seconds else moment
    if isinstance(kind, sa.Date):
        return date.fromisoformat(value)
    if isinstance(kind, sa.Time):
        return time.fromisoformat(value)
    if isinstance(kind, sa.Boolean):
        if not isinstance(value, bool):
            raise TypeError(column.name)
        return value
    if isinstance(kind, sa.Float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(column.name)
        return float(value)
    if isinstance(kind, sa.Numeric):
        return Decimal(str(value))
    if isinstance(kind, sa.Integer):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(column.name)
        return value
    if isinstance(kind, sa.LargeBinary):
        return base64.b64decode(value, validate=True)
    if isinstance(kind, sa.String):
        if not isinstance(value, str):
            raise TypeError(column.name)
        return value
    return value
