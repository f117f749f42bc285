"""`flask --app run admission import FILE`: the admission list from a CSV or .xlsx file."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from berater import PROJECT_ROOT
from berater.admission import services as admission
from berater.db import db, transaction
from berater.identifiers import mask_id_card
from berater.identity import audit
from berater.models import SourceStudent

log = logging.getLogger("berater.admission")
admission_cli = AppGroup("admission", help="The admission list (source_student).")
# The local sandbox's admission list: made-up people with valid ID card numbers.
DEMO_LIST = PROJECT_ROOT / "data" / "demo-admission.csv"


@dataclass
class ImportReport:
    """What an import did: counts, rejected rows (by line), columns ignored."""

    counts: admission.Counts = field(default_factory=admission.Counts)
    rejected: list[admission.Rejection] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def add(self, counts: admission.Counts, rejected: list[admission.Rejection]) -> None:
        """Add a batch's outcome; rejections stay sorted by line."""
        self.counts.add(counts)
        self.rejected = sorted([*self.rejected, *rejected], key=lambda r: r.line)


class ImportStopped(Exception):
    """The database failed at `lines`; when `writing`, the batches before are committed."""

    def __init__(
        self, report: ImportReport, lines: tuple[int, int], cause: str, writing: bool
    ) -> None:
        super().__init__(f"stopped at lines {lines[0]}-{lines[1]}: {cause}")
        self.report, self.lines, self.cause, self.writing = report, lines, cause, writing


def run_import(
    path: str | Path,
    *,
    batch_size: int = 1000,
    dry_run: bool = False,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Read and check the file, then import its valid rows (see import_rows)."""
    parsed = admission.read_file(path)
    return import_rows(
        parsed, batch_size=batch_size, dry_run=dry_run, strict=strict, progress=progress
    )


def import_rows(
    parsed: admission.ParsedFile,
    *,
    batch_size: int = 1000,
    dry_run: bool = False,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Upsert the valid rows of a checked file, one transaction per batch.

    Raises ImportStopped when the database fails part way (earlier batches stay committed).
    With `strict`, any rejected row, in the file or against the database, means nothing
    is written. `progress` is called with the number of rows of each batch done.
    """
    report = ImportReport(ignored_columns=parsed.ignored_columns)
    report.add(admission.Counts(rejected=len(parsed.rejected)), parsed.rejected)
    if strict and not dry_run:
        # Check the database too (numbers owned by other ID cards) before writing anything.
        check = ImportReport()
        _upsert(parsed, batch_size, check, write=False, progress=None)
        if report.rejected or check.rejected:
            report.add(admission.Counts(rejected=check.counts.rejected), check.rejected)
            return report
    _upsert(parsed, batch_size, report, write=not dry_run, progress=progress)
    return report


def _upsert(
    parsed: admission.ParsedFile,
    batch_size: int,
    report: ImportReport,
    *,
    write: bool,
    progress: Callable[[int], None] | None,
) -> None:
    rows = parsed.rows
    for batch in (rows[start : start + batch_size] for start in range(0, len(rows), batch_size)):
        try:
            if write:
                with transaction() as session:
                    result = admission.upsert_batch(session, batch, parsed.fields)
            else:
                result = admission.upsert_batch(db.session, batch, parsed.fields, write=False)
                db.session.rollback()  # end the read transaction; nothing was written
        except SQLAlchemyError as exc:
            lines = (batch[0].line, batch[-1].line)
            raise ImportStopped(report, lines, _cause(exc), writing=write) from exc
        report.add(result.counts, result.rejected)
        if progress:
            progress(len(batch))


def load_demo_list(path: str | Path = DEMO_LIST) -> ImportReport | None:
    """Import the demo admission list when the admission list is empty (the first start of
    the local sandbox, `python run.py`), so a newcomer can bind as a student; None when the
    list holds rows already, which are never touched."""
    has_rows = db.session.scalar(select(SourceStudent.id_card).limit(1)) is not None
    db.session.rollback()  # end the read; the import writes in transactions of its own
    if has_rows:
        return None
    return run_import(path, strict=True)


def _cause(exc: SQLAlchemyError) -> str:
    """The kind of database error, without its message: that can quote the row's values."""
    orig = getattr(exc, "orig", None)
    args = getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    kind = type(orig if orig is not None else exc).__name__
    return f"database error {kind}" + (f" {code}" if code is not None else "")


@admission_cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Read, check and compare; write nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 5000),
    default=1000,
    show_default=True,
    help="Rows per transaction.",
)
@click.option("--strict", is_flag=True, help="Write nothing, and fail, if any row is rejected.")
def import_command(file: Path, dry_run: bool, batch_size: int, strict: bool) -> None:
    """Import the admission list from FILE (.csv or .xlsx) into source_student.

    \b
    Headings (English or Chinese, any order; other columns are ignored):
      id_card 身份证号 | name 姓名 | stuid 学号 | admission_id 录取号 考生号
      origin 生源地 | gender 性别 | department 院系 学院
    id_card and name are required, and stuid or admission_id (or both).

    The whole file is read and checked first: if it cannot be read nothing is written.
    Rejected rows are listed with their line number and reason (the ID card masked), and
    are not imported; a row whose stuid or admission_id belongs to another ID card in the
    database is rejected too. Valid rows are inserted or updated in batches of
    --batch-size rows, each batch its own transaction. If the database fails part way,
    the batches before it stay committed, the failing batch is rolled back, and the
    command says at which lines it stopped: run it again with the same file to finish
    (a re-run changes nothing that is already up to date). Rows not in the file are kept.

    Exit status: 0 when the import ran, even with rejected rows; 1 when the file cannot
    be read, when the database failed part way, or with --strict when any row is rejected
    (then nothing is written).
    """
    click.echo(f"reading {file} ...", err=True)
    try:
        parsed = admission.read_file(file)
        click.echo(
            f"{len(parsed.rows) + len(parsed.rejected)} rows read, "
            f"{len(parsed.rejected)} rejected by the checks",
            err=True,
        )
        if parsed.ignored_columns:
            click.echo(f"ignored columns: {', '.join(parsed.ignored_columns)}", err=True)
        label = "comparing" if dry_run else "importing"
        with click.progressbar(length=len(parsed.rows), label=label, file=sys.stderr) as bar:
            report = import_rows(
                parsed, batch_size=batch_size, dry_run=dry_run, strict=strict, progress=bar.update
            )
    except admission.ImportFileError as exc:
        raise click.ClickException(str(exc)) from None
    except ImportStopped as stopped:
        where = f"the import stopped at lines {stopped.lines[0]}-{stopped.lines[1]}"
        if not stopped.writing:  # a dry run, or the check of --strict
            raise click.ClickException(f"{where} ({stopped.cause}); nothing was written") from None
        _print_report(stopped.report)
        audit_import(audit.CLI_ACTOR, stopped.report.counts, failed=True)
        raise click.ClickException(
            f"{where} ({stopped.cause}): that batch was rolled back and the batches before it "
            "are committed; run the same file again to finish"
        ) from None
    _print_report(report)
    if dry_run:
        click.echo("dry run: nothing was written")
    elif strict and report.rejected:
        raise click.ClickException(
            f"--strict: {len(report.rejected)} rows rejected, nothing was written"
        )
    else:
        audit_import(audit.CLI_ACTOR, report.counts, failed=False)


def audit_import(
    actor: str, counts: admission.Counts, *, failed: bool, ip: str | None = None
) -> None:
    """One audit row for an import that wrote (or began to): who, and the counts, never a
    row's data. A database that fails here (it may be why the import stopped) is logged."""
    target = ("stopped: " if failed else "") + str(counts)
    try:
        with transaction():
            audit.record(actor, audit.ADMISSION_IMPORT, target[:80], ip=ip)
    except Exception as exc:
        log.warning("admission import audit row not written: %s", type(exc).__name__)


def _print_report(report: ImportReport) -> None:
    """One line per rejected row (the ID card masked), then the counts."""
    for rejection in report.rejected:
        click.echo(rejection_line(rejection))
    click.echo(str(report.counts))


def rejection_line(rejection: admission.Rejection) -> str:
    """A rejected row as the report shows it: `line N [masked ID card]: reason`."""
    return f"line {rejection.line} [{_masked(rejection.id_card)}]: {rejection.reason}"


def _masked(id_card: str | None) -> str:
    """The ID card masked for display, or "-" when there is none worth showing."""
    if not id_card or len(id_card) > 20:  # not an ID card at all: show nothing of it
        return "-"
    return mask_id_card(id_card) or "-"
