"""Imports from an uploaded file: the dry run, the import on the task pool, its state in the
store, one import at a time, failures, the audit row."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from berater.admission import imports
from berater.db import db
from berater.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from berater.extensions import tasks
from berater.identifiers import mask_id_card
from berater.models import AuditLog
from tests.admission.test_admission import CARDS, person, stored, write_csv, write_xlsx
from tests.factories import id_card

pytestmark = [pytest.mark.backends, pytest.mark.usefixtures("no_uploads_left")]

ACTOR = "user:office"


def wait(job: str, *phases: str, timeout: float = 20.0) -> dict:
    """Poll the job's state until its phase is one of `phases`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = imports.state(job)
        if found["phase"] in phases:
            return found
        time.sleep(0.02)
    raise AssertionError(f"still {imports.state(job)['phase']} after {timeout} s")


def upload(path: Path, name: str | None = None) -> str:
    with open(path, "rb") as stream:
        return imports.upload(stream, name or path.name, ACTOR, "127.0.0.1")


def uploads(app) -> list[Path]:
    return sorted((Path(app.instance_path) / "uploads").glob("*"))


def audit_rows() -> list[AuditLog]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditLog).order_by(AuditLog.id)))


def with_rejections(tmp_path: Path, name: str = "list.csv") -> Path:
    """Persons 1 and 8 are in the database (`seed`); lines 3 and 5 are rejected, 2 is an
    update, 4 and 6 are new."""
    return write_csv(
        tmp_path,
        [
            person(1, name="改名"),  # line 2: updated
            person(2, id_card=""),  # line 3: rejected by a check
            person(3),  # line 4: inserted
            person(4, stuid="202600008"),  # line 5: person 8's student number, in the database
            person(5),  # line 6: inserted
        ],
        name=name,
    )


def seed(tmp_path: Path) -> None:
    """Persons 1 and 8, imported."""
    job = upload(write_csv(tmp_path, [person(1), person(8)], name="seed.csv"))
    wait(job, "checked")
    imports.start(job, ACTOR)
    assert wait(job, "done", "failed")["phase"] == "done"


def test_the_dry_run_lists_the_rejected_lines_as_the_cli_does_and_writes_nothing(
    app, ctx, runner, tmp_path
):
    seed(tmp_path)
    before = stored(app)
    path = with_rejections(tmp_path)
    job = upload(path, "名单.csv")
    found = wait(job, "checked", "failed")
    assert found["phase"] == "checked", found
    assert found["file"] == "名单.csv"
    assert found["read"] == 5
    assert found["check"] == {"inserted": 2, "updated": 1, "unchanged": 0, "rejected": 2}
    assert found["counts"] is None
    assert found["rejected_total"] == 2
    lines = imports.rejected_lines(job)
    cli = runner.invoke(args=["admission", "import", str(path), "--dry-run"])
    assert lines == [line for line in cli.stdout.splitlines() if line.startswith("line ")]
    assert lines == [
        "line 3 [-]: id_card is empty",
        f"line 5 [{mask_id_card(CARDS[4])}]: stuid 202600008 already belongs to another ID card "
        f"({mask_id_card(CARDS[8])})",
    ]
    assert stored(app) == before
    assert [p.name for p in uploads(app)] == [f"{job}.csv"]  # kept for the import


def test_the_import_runs_in_the_background_and_reports_the_counts(app, ctx, tmp_path):
    seed(tmp_path)
    job = upload(with_rejections(tmp_path))
    wait(job, "checked")
    started = imports.start(job, "wx-openid-of-the-admin", "10.0.0.7")
    assert started["phase"] in ("queued", "running", "done")
    found = wait(job, "done", "failed")
    assert found["phase"] == "done", found
    assert found["counts"] == {"inserted": 2, "updated": 1, "unchanged": 0, "rejected": 2}
    assert found["rows_done"] == found["rows_total"] == 4  # the valid rows
    assert found["error"] is None
    assert "ip" not in found
    assert [line.split(" [")[0] for line in imports.rejected_lines(job)] == ["line 3", "line 5"]
    rows = stored(app)
    assert set(rows) == {CARDS[1], CARDS[3], CARDS[5], CARDS[8]}
    assert rows[CARDS[1]]["name"] == "改名"
    assert uploads(app) == []  # the file is deleted
    assert imports.current() is None  # the lock is released
    row = audit_rows()[-1]
    assert (row.actor, row.action, row.ip) == (
        "wx-openid-of-the-admin",
        "admission_import",
        "10.0.0.7",
    )
    assert row.target == "inserted 2, updated 1, unchanged 0, rejected 2"
    assert row.role is None


def test_an_xlsx_is_imported_too(app, ctx, tmp_path):
    job = upload(write_xlsx(tmp_path, [person(1), person(2)]))
    assert wait(job, "checked")["check"]["inserted"] == 2
    imports.start(job, ACTOR)
    assert wait(job, "done")["counts"]["inserted"] == 2
    assert set(stored(app)) == {CARDS[1], CARDS[2]}


@pytest.fixture
def one_worker(make_app):
    """An app whose task pool has one thread, and a way to hold that thread busy."""
    app = make_app(TASK_WORKERS=1)
    release = threading.Event()

    def hold() -> None:
        with app.app_context():
            tasks.submit("test.hold", release.wait, 20)

    with app.app_context():
        yield app, hold, release
    release.set()


def test_a_second_import_is_refused_with_409_while_one_is_queued_or_running(one_worker, tmp_path):
    app, hold, release = one_worker
    first = upload(write_csv(tmp_path, [person(1)], name="a.csv"))
    second = upload(write_csv(tmp_path, [person(2)], name="b.csv"))
    wait(first, "checked")
    wait(second, "checked")
    hold()  # the only worker waits: the first import stays queued, holding the lock
    assert imports.start(first, ACTOR)["phase"] == "queued"
    assert imports.current() == first
    with pytest.raises(Conflict) as refused:
        imports.start(second, ACTOR)
    assert refused.value.status == 409
    assert "another import of the admission list is queued or running" in str(refused.value)
    with pytest.raises(Conflict, match="already been started"):
        imports.start(first, ACTOR)
    assert imports.state(second)["phase"] == "checked"  # untouched, can start later
    release.set()
    assert wait(first, "done")["counts"]["inserted"] == 1
    imports.start(second, ACTOR)
    assert wait(second, "done")["counts"]["inserted"] == 1
    assert set(stored(app)) == {CARDS[1], CARDS[2]}


def test_progress_moves_batch_by_batch(ctx, tmp_path, monkeypatch):
    cards = [id_card(500 + n) for n in range(12)]
    rows = [person(1, id_card=c, stuid=f"s{n}", admission_id=f"a{n}") for n, c in enumerate(cards)]
    job = upload(write_csv(tmp_path, rows))
    wait(job, "checked")
    monkeypatch.setattr(imports, "BATCH_SIZE", 5)
    seen: list[tuple[str, int, int | None]] = []
    save = imports._save_state

    def keep(state: dict) -> None:
        seen.append((state["phase"], state["rows_done"], state["rows_total"]))
        save(state)

    monkeypatch.setattr(imports, "_save_state", keep)
    imports.start(job, ACTOR)
    wait(job, "done")
    running = [(done, total) for phase, done, total in seen if phase == "running"]
    assert seen[0][0] == "queued"
    assert (5, 12) in running and (10, 12) in running and (12, 12) in running
    done_values = [done for done, _ in running]
    assert done_values == sorted(done_values)
    assert seen[-1] == ("done", 12, 12)


def test_a_database_failure_leaves_failed_and_only_the_committed_batches(
    app, ctx, tmp_path, refuse_name, monkeypatch
):
    rows = [person(1), person(2), person(3), person(4, name="炸弹"), person(5)]
    job = upload(write_csv(tmp_path, rows))
    assert wait(job, "checked")["check"]["inserted"] == 5  # the dry run writes nothing
    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    imports.start(job, ACTOR)
    found = wait(job, "done", "failed")
    assert found["phase"] == "failed"
    assert found["counts"] == {"inserted": 2, "updated": 0, "unchanged": 0, "rejected": 0}
    assert "the import stopped at lines 4-5" in found["error"]
    assert "the batches before it are committed" in found["error"]
    assert "refused" not in found["error"]  # the database's own text can quote values
    assert set(stored(app)) == {CARDS[1], CARDS[2]}  # batch 1 committed, batch 2 rolled back
    assert uploads(app) == []
    assert imports.current() is None
    assert audit_rows()[-1].target == "stopped: inserted 2, updated 0, unchanged 0, rejected 0"

    db.session.execute(text("DROP TRIGGER test_refuse_name"))
    db.session.commit()
    again = upload(write_csv(tmp_path, rows, name="again.csv"))
    wait(again, "checked")
    imports.start(again, ACTOR)
    assert wait(again, "done")["counts"] == {
        "inserted": 3,
        "updated": 0,
        "unchanged": 2,
        "rejected": 0,
    }


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("名单.xlsx", b"PK\x03\x04 not really a zip", "名单.xlsx: not a readable .xlsx workbook"),
        ("名单.csv", "名单\n甲,乙\n".encode(), "名单.csv: no header in the first 10 rows"),
        (
            "x.csv",
            "身份证号,姓名,学号\n甲,乙,1\n".encode() + b"\xff\xfe\xff,broken\n",
            "x.csv, line 3: the file is not UTF-8 or GB18030 text",
        ),
    ],
)
def test_a_file_that_cannot_be_read_fails_its_check_with_the_cli_message(
    app, ctx, tmp_path, name, content, message
):
    path = tmp_path / "upload"
    path.write_bytes(content)
    job = upload(path, name)
    found = wait(job, "checked", "failed")
    assert found["phase"] == "failed"
    assert message in found["error"]
    assert job not in found["error"]  # the saved name never shows
    assert uploads(app) == []
    with pytest.raises(Conflict):
        imports.start(job, ACTOR)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("list.xls", "old .xls workbooks are not read"),
        ("list.txt", "unknown file type; use .csv or .xlsx"),
        ("list", "unknown file type"),
    ],
)
def test_other_file_types_are_refused_at_once(app, ctx, name, message):
    with pytest.raises(BadRequest, match=message):
        imports.upload(io.BytesIO(b"a,b\n"), name, ACTOR)
    assert uploads(app) == []


def test_an_empty_file_is_refused(app, ctx):
    with pytest.raises(BadRequest, match="the file is empty"):
        imports.upload(io.BytesIO(b""), "list.csv", ACTOR)
    assert uploads(app) == []


def test_a_file_past_the_limit_is_refused_and_not_kept(make_app):
    app = make_app(ADMISSION_UPLOAD_MAX=1024 * 1024)
    with app.app_context():
        with pytest.raises(PayloadTooLarge) as refused:
            imports.upload(io.BytesIO(b"x" * (1024 * 1024 + 1)), "big.csv", ACTOR)
        assert refused.value.status == 413
        assert uploads(app) == []
        job = imports.upload(io.BytesIO(b"x" * (1024 * 1024)), "fits.csv", ACTOR)
        assert wait(job, "failed", "checked")["phase"] == "failed"  # no header, but it fitted


def test_the_upload_folder_is_private(app, ctx, tmp_path):
    job = upload(write_csv(tmp_path, [person(1)]))
    wait(job, "checked")
    folder = Path(app.instance_path) / "uploads"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert [p.stat().st_mode & 0o777 for p in uploads(app)] == [0o600]


def test_discarding_a_checked_upload_deletes_its_file(app, ctx, tmp_path):
    job = upload(write_csv(tmp_path, [person(1)]))
    wait(job, "checked")
    assert imports.discard(job)["phase"] == "discarded"
    assert uploads(app) == []
    with pytest.raises(Conflict):
        imports.start(job, ACTOR)
    assert stored(app) == {}


@pytest.mark.parametrize("job", ["", "nope", "../../etc/passwd", "a" * 22])
def test_an_unknown_job_is_404(ctx, job):
    with pytest.raises(NotFound):
        imports.state(job)
    with pytest.raises(NotFound):
        imports.start(job, ACTOR)


def test_an_import_whose_process_ended_is_shown_failed(ctx, tmp_path, monkeypatch):
    job = upload(write_csv(tmp_path, [person(1)]))
    wait(job, "checked")
    imports._update(job, phase="running")  # as a worker that died mid-import leaves it
    assert imports.state(job)["phase"] == "running"
    later = time.time() + imports.STALE_AFTER + 1
    monkeypatch.setattr(imports, "clock", lambda: later)
    found = imports.state(job)
    assert found["phase"] == "failed"
    assert "upload the same file again to finish" in found["error"]


def test_no_personal_data_in_the_logs_or_the_audit_row(app, ctx, tmp_path, log_records, caplog):
    caplog.set_level("DEBUG")
    path = with_rejections(tmp_path)
    job = upload(path)
    wait(job, "checked")
    imports.start(job, ACTOR)
    wait(job, "done")
    logged = "\n".join(record.getMessage() for record in log_records)
    assert "admission import" in logged
    row = audit_rows()[-1]
    for card in CARDS[1:6]:
        assert card not in logged and card not in row.target
    for n in range(1, 6):
        assert f"学生{n}" not in logged and f"20260{n:04d}" not in logged
        assert f"学生{n}" not in row.target
