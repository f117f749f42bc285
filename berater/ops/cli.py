"""`flask --app run backup FILE` and `flask --app run restore FILE [--force]`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError
from tqdm import tqdm

from berater.ops import backup


class _Bar:
    """A tqdm bar on stderr, made once the header says how many rows there are."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar: tqdm[None] | None = None

    def start(self, header: backup.Header) -> None:
        self.bar = tqdm(total=header.rows, desc=self.desc, unit="row", file=sys.stderr)

    def update(self, rows: int) -> None:
        if self.bar is not None:
            self.bar.update(rows)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _database_error(exc: SQLAlchemyError) -> click.ClickException:
    cause = getattr(exc, "orig", None) or exc
    return click.ClickException(f"the database failed ({type(cause).__name__}: {cause})")


@click.command("backup")
@click.argument(
    "file", type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path)
)
@with_appcontext
def backup_command(file: Path) -> None:
    """Write every table to FILE (gzip-compressed JSON lines), from one consistent snapshot.

    FILE is replaced only once it is complete, and is readable by its owner only. With
    FILE "-" the backup goes to stdout (and this command's messages to stderr).
    """
    to_stdout = str(file) == "-"
    bar = _Bar("backup")
    try:
        target = sys.stdout.buffer if to_stdout else file
        header = backup.write(target, on_header=bar.start, progress=bar.update)
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise _database_error(exc) from None
    finally:
        bar.close()
    for name in header.ignored:
        click.echo(
            f"warning: table {name} is not part of the schema and was not backed up", err=True
        )
    click.echo(
        f"backed up {header.rows} rows of {len(header.tables)} tables "
        f"(schema revision {header.revision}) to {'stdout' if to_stdout else file}",
        err=to_stdout,
    )


@click.command("restore")
@click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option("--force", is_flag=True, help="Replace the rows the database holds.")
@with_appcontext
def restore_command(file: Path, force: bool) -> None:
    """Restore a backup made by `flask backup` into this database, in one transaction.

    The database must be at the backup's schema revision (`flask db upgrade` on an empty
    database first) and empty, unless --force. Nothing is written when the file is damaged.
    FILE "-" reads the backup from stdin.
    """
    bar = _Bar("restore")
    source = sys.stdin.buffer if str(file) == "-" else file
    try:
        header = backup.restore(source, force=force, on_header=bar.start, progress=bar.update)
    except backup.BackupError as exc:
        raise click.ClickException(f"{exc}; nothing was restored") from None
    except SQLAlchemyError as exc:
        raise _database_error(exc) from None
    finally:
        bar.close()
    click.echo(
        f"restored {header.rows} rows of {len(header.tables)} tables "
        f"(schema revision {header.revision}, backed up {header.created_at} from {header.source})"
    )


def register(app: Flask) -> None:
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
