"""Admission-list imports from an uploaded file: a dry run, then the import, in the background.

The console's way through `flask admission import`, with the same reading, checks, report
and batches (`berater.admission.cli.import_rows`), but never inside a request:

1. `upload` saves the file (.csv or .xlsx, at most ADMISSION_UPLOAD_MAX bytes) under the
   instance folder's private `uploads/` (0700, the file 0600, a random name) and queues its
   dry run. Each upload is a job with a random id.
2. The dry run (phase `checking`, then `checked`) reads and checks every row and compares the
   valid ones with the database, writing nothing: the counts an import would give and the
   rejected lines with their reasons, each as the CLI prints it (`line N [masked ID card]:
   reason`). A file that cannot be read ends `failed`, with the CLI's message, and is deleted.
3. `start` imports a checked job: one import at a time (the store lock `admission-import:lock`
   names the job; a second start is a Conflict, 409). The job is `queued`, then `running`
   with rows done out of the valid rows for a progress display, and ends `done` with the
   counts inserted, updated, unchanged and rejected, or `failed` with a message. Either way
   the uploaded file is deleted, the lock released and one audit row (`admission_import`,
   the counts as its target: no name, number or ID card) recorded.

Both steps run on the shared task pool (`berater.extensions.tasks`), and the job's state is
a small JSON object in the store (`state`), so any worker process can answer a progress poll.

What a failed import leaves: the rows are written in batches of BATCH_SIZE, each batch its
own transaction, as by the CLI. When the database fails part way, the batches before the
failing one stay committed, the failing batch is rolled back whole and nothing after it is
written; the job's counts are those of the committed batches and its message names the lines
where it stopped. No row is ever half-written, and rows not in the file are never touched.
Importing the same file again finishes the work (rows already up to date come back
unchanged). A worker process that ends mid-import (a restart) leaves the same, and its job
is reported `failed` once its heartbeat is older than STALE_AFTER seconds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from flask import current_app

from berater.admission import services as admission
from berater.admission.cli import (
    ImportReport,
    ImportStopped,
    audit_import,
    import_rows,
    rejection_line,
)
from berater.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, ServiceUnavailable
from berater.extensions import store, tasks

log = logging.getLogger("berater.admission")

AREA = "admission-import"
LOCK = "lock"
BATCH_SIZE = 1000
SUFFIXES = (".csv", ".xlsx")
CHUNK = 1024 * 1024
STATE_TTL = 7 * 86400  # seconds a job's state (and its rejected lines) stay readable
UPLOAD_TTL = 86400  # an upload never confirmed is deleted after this, at a later upload
STALE_AFTER = 600.0  # an active job without a heartbeat for this long has stopped
MAX_LISTED = 2000  # rejected lines kept for display; the count says how many there were
NAME_MAX = 100
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
ACTIVE = ("checking", "queued", "running")
clock = time.time  # the heartbeat's clock; tests move it

# The lock is released, and refreshed, only by the job that holds it.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"
_REFRESH = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end"
)


# --------------------------------------------------------------------------- the upload


def upload_folder() -> Path:
    """`uploads/` in the instance folder, readable by this user only."""
    folder = Path(current_app.instance_path) / "uploads"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def display_name(filename: str | None) -> str:
    """The file's own name for display: no folders, no control characters, not too long."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C")).strip()
    if len(name) > NAME_MAX:
        stem, dot, suffix = name.rpartition(".")
        name = stem[: NAME_MAX - len(suffix) - 2] + "…" + dot + suffix if dot else name[:NAME_MAX]
    return name or "upload"


def upload(stream: IO[bytes], filename: str | None, actor: str, ip: str | None = None) -> str:
    """Save an uploaded file and queue its dry run; the job's id.

    400 for another type than .csv or .xlsx or an empty file, 413 past ADMISSION_UPLOAD_MAX
    bytes (the file is never kept), 503 when the task pool refuses the dry run.
    """
    name = display_name(filename)
    suffix = Path(name).suffix.lower()
    if suffix == ".xls":
        raise BadRequest(f"{name}: old .xls workbooks are not read; save as .xlsx or .csv")
    if suffix not in SUFFIXES:
        raise BadRequest(f"{name}: unknown file type; use .csv or .xlsx")
    folder = upload_folder()
    _remove_old_uploads(folder)
    job = secrets.token_urlsafe(16)
    path = folder / f"{job}{suffix}"
    size = _save(stream, path, int(current_app.config["ADMISSION_UPLOAD_MAX"]))
    if size == 0:
        path.unlink(missing_ok=True)
        raise BadRequest(f"{name}: the file is empty")
    now = clock()
    _save_state(
        {
            "id": job,
            "file": name,
            "suffix": suffix,
            "size": size,
            "phase": "checking",
            "actor": actor,
            "ip": ip,
            "created_at": now,
            "beat": now,
            "read": None,
            "rows_done": 0,
            "rows_total": None,
            "check": None,
            "counts": None,
            "rejected_total": 0,
            "ignored_columns": [],
            "error": None,
        }
    )
    if not tasks.submit("admission.check", _check, job):
        path.unlink(missing_ok=True)
        _update(job, phase="failed", error="the server is busy; upload the file again shortly")
        raise ServiceUnavailable("the server is busy; upload the file again shortly")
    log.info("admission list uploaded: job %s, %d bytes", job, size)
    return job


def _save(stream: IO[bytes], path: Path, limit: int) -> int:
    """Copy `stream` to a new file readable by this user only; its size. PayloadTooLarge, and
    no file, past `limit` bytes."""
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the file is larger than {limit // (1024 * 1024)} MiB")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return size


def _remove_old_uploads(folder: Path) -> None:
    """Delete uploads older than UPLOAD_TTL: dry runs nobody confirmed or discarded."""
    cutoff = time.time() - UPLOAD_TTL
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            continue  # another worker removed it first


def _path(state: dict[str, Any]) -> Path:
    return upload_folder() / f"{state['id']}{state['suffix']}"


# --------------------------------------------------------------------------- the state


def _key(job: str) -> str:
    return f"job:{job}"


def _save_state(state: dict[str, Any]) -> None:
    store.set(AREA, _key(state["id"]), json.dumps(state, ensure_ascii=False), ttl=STATE_TTL)


def _load(job: str) -> dict[str, Any]:
    raw = store.get(AREA, _key(job)) if JOB_ID.fullmatch(job or "") else None
    if raw is None:
        raise NotFound("no such import; it may be more than a week old")
    state: dict[str, Any] = json.loads(raw)
    return state


def _update(job: str, **changes: Any) -> dict[str, Any]:
    """Change fields of a job's state and beat its heart (only the job's task writes it)."""
    state = _load(job) | changes | {"beat": clock()}
    _save_state(state)
    return state


def state(job: str) -> dict[str, Any]:
    """A job's state for display (404 for an unknown or expired job).

    `phase` is checking, checked, queued, running, done, failed or discarded; `rows_done` of
    `rows_total` for progress; `check` the dry run's counts, `counts` the import's; `read` the
    rows read; `rejected_total`; `ignored_columns`; `error` when failed. An active job whose
    heartbeat is older than STALE_AFTER has stopped with its process, and is shown failed.
    """
    found = _load(job)
    if found["phase"] in ACTIVE and clock() - found["beat"] > STALE_AFTER:
        found["phase"] = "failed"
        found["error"] = (
            "the work stopped without finishing (the server may have restarted); the batches "
            "imported before it stay committed: upload the same file again to finish"
        )
    return {key: value for key, value in found.items() if key not in ("ip", "suffix")}


def rejected_lines(job: str) -> list[str]:
    """The job's rejected lines as the CLI prints them, the first MAX_LISTED of them."""
    _load(job)
    raw = store.get(AREA, f"{_key(job)}:rejected")
    return list(json.loads(raw)) if raw else []


def current() -> str | None:
    """The id of the import queued or running now, if any."""
    return store.get(AREA, LOCK)


def discard(job: str) -> dict[str, Any]:
    """Drop a checked job that will not be imported: its file is deleted."""
    found = _load(job)
    if found["phase"] != "checked":
        raise Conflict(f"this import is {found['phase']}; only a checked one can be discarded")
    _path(found).unlink(missing_ok=True)
    return _update(job, phase="discarded")


def _save_report(job: str, report: ImportReport) -> None:
    lines = [rejection_line(rejection) for rejection in report.rejected[:MAX_LISTED]]
    store.set(AREA, f"{_key(job)}:rejected", json.dumps(lines, ensure_ascii=False), STATE_TTL)


def _counts(counts: admission.Counts) -> dict[str, int]:
    return {
        "inserted": counts.inserted,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "rejected": counts.rejected,
    }


def _progress(job: str, total: int, refresh_lock: bool) -> Callable[[int], None]:
    """A progress callback that counts rows done into the job's state after every batch."""
    done = 0

    def advance(rows: int) -> None:
        nonlocal done
        done += rows
        _update(job, rows_done=done, rows_total=total)
        if refresh_lock:
            store.script(_REFRESH)(keys=[store.key(AREA, LOCK)], args=[job, _ms(STALE_AFTER)])

    return advance


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _file_error(exc: admission.ImportFileError, found: dict[str, Any]) -> str:
    """The reader's message with the file's own name in place of the saved one."""
    return str(exc).replace(_path(found).name, found["file"])


# --------------------------------------------------------------------------- the dry run


def _check(job: str) -> None:
    """The dry run, on the task pool: read, check and compare; nothing is written."""
    found = _update(job, phase="checking")
    path = _path(found)
    try:
        parsed = admission.read_file(path)
        read = len(parsed.rows) + len(parsed.rejected)
        _update(job, read=read, rows_total=len(parsed.rows), ignored_columns=parsed.ignored_columns)
        report = import_rows(
            parsed,
            batch_size=BATCH_SIZE,
            dry_run=True,
            progress=_progress(job, len(parsed.rows), refresh_lock=False),
        )
    except admission.ImportFileError as exc:
        path.unlink(missing_ok=True)
        _update(job, phase="failed", error=_file_error(exc, found))
        return
    except ImportStopped as stopped:
        path.unlink(missing_ok=True)
        where = f"the check stopped at lines {stopped.lines[0]}-{stopped.lines[1]}"
        _update(job, phase="failed", error=f"{where} ({stopped.cause}); nothing was written")
        return
    except Exception as exc:
        path.unlink(missing_ok=True)
        log.warning("admission check %s failed: %s", job, type(exc).__name__)
        _update(job, phase="failed", error=f"the check failed ({type(exc).__name__})")
        return
    _save_report(job, report)
    _update(
        job,
        phase="checked",
        check=_counts(report.counts),
        rejected_total=len(report.rejected),
    )


# --------------------------------------------------------------------------- the import


def start(job: str, actor: str, ip: str | None = None) -> dict[str, Any]:
    """Queue the import of a checked job; 409 when another import is queued or running, or
    when this one is not waiting to be started; 503 when the task pool refuses it."""
    phase = state(job)["phase"]
    if phase in ("queued", "running", "done"):
        raise Conflict("this import has already been started")
    if phase != "checked":
        raise Conflict(f"this import is {phase}, not waiting to be started")
    if not store.set_if_absent(AREA, LOCK, job, ttl=STALE_AFTER):
        raise Conflict(
            "another import of the admission list is queued or running; "
            "wait until it has finished, then start this one"
        )
    _update(job, phase="queued", actor=actor, ip=ip, rows_done=0, error=None)
    if not tasks.submit("admission.import", _import, job):
        store.script(_RELEASE)(keys=[store.key(AREA, LOCK)], args=[job])
        _update(job, phase="checked")
        raise ServiceUnavailable("the server is busy; start the import again shortly")
    log.info("admission import %s queued", job)
    return state(job)


def _import(job: str) -> None:
    """The import, on the task pool: batches of BATCH_SIZE rows, one transaction each."""
    found = _update(job, phase="running", rows_done=0)
    path = _path(found)
    outcome: dict[str, Any]
    try:
        parsed = admission.read_file(path)
        _update(job, read=len(parsed.rows) + len(parsed.rejected), rows_total=len(parsed.rows))
        report = import_rows(
            parsed,
            batch_size=BATCH_SIZE,
            progress=_progress(job, len(parsed.rows), refresh_lock=True),
        )
        outcome = {"phase": "done", "counts": _counts(report.counts)}
    except admission.ImportFileError as exc:
        report = ImportReport()
        outcome = {"phase": "failed", "error": f"{_file_error(exc, found)}; nothing was written"}
    except ImportStopped as stopped:
        report = stopped.report
        outcome = {
            "phase": "failed",
            "counts": _counts(report.counts),
            "error": (
                f"the import stopped at lines {stopped.lines[0]}-{stopped.lines[1]} "
                f"({stopped.cause}): that batch was rolled back and the batches before it are "
                "committed; upload the same file again to finish"
            ),
        }
    except Exception as exc:
        log.warning("admission import %s failed: %s", job, type(exc).__name__)
        report = ImportReport()
        outcome = {
            "phase": "failed",
            "error": (
                f"the import failed ({type(exc).__name__}); the batches imported before it "
                "stay committed: upload the same file again to finish"
            ),
        }
    finally:
        path.unlink(missing_ok=True)
    try:
        _save_report(job, report)
        audit_import(
            found["actor"], report.counts, failed=outcome["phase"] == "failed", ip=found["ip"]
        )
        _update(job, **outcome, rejected_total=len(report.rejected))
    finally:
        store.script(_RELEASE)(keys=[store.key(AREA, LOCK)], args=[job])
    log.info("admission import %s %s: %s", job, outcome["phase"], report.counts)
