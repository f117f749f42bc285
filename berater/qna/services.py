"""The Q&A index for the office: its status, the last `qna eval` figures, and a rebuild that
runs in the background.

`status()` tells what the index file holds (when it was built, paragraphs, vocabulary, FAQ
entries, synonym groups, size), what the worker asked serves (workers load a new file by
themselves, berater/qna/answers.py), the last evaluation and the last rebuild.

`flask qna eval` saves the figures it printed next to the index file (`qna-index.eval.json`
beside `qna-index.npz`), written whole or not at all; `last_eval()` reads them back.

`start_rebuild(actor)` builds the index file again from the configured handbook, FAQ and
synonyms, as `flask qna build` does with its defaults: a task of the background pool runs
the build in a process of its own (berater/qna/rebuild.py: the worker keeps none of the
build's libraries and memory) and follows its report. One rebuild runs at a time across
workers and instances: it holds a lock in the store (area "qna") that it renews while it
makes progress, so a worker that dies with it frees it within LOCK_TTL; a second start
meanwhile is a 409. Its state (queued, running, done, failed, with its step and the build's
report) lives in the store beside the lock and is written only by the lock's holder. The
index file is replaced in one step (a file beside it, then a rename): workers never read
half a file.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import current_app
from pydantic import ValidationError

from berater import PROJECT_ROOT
from berater.db import after_commit
from berater.errors import Conflict, ServiceUnavailable
from berater.extensions import qna, store, tasks
from berater.identity import audit
from berater.qna import rebuild
from berater.qna.answers import QnaState, file_key, index_path
from berater.qna.evaluate import Metrics, mean
from berater.qna.index import FORMAT, IndexUnavailable, read_meta
from berater.qna.schemas import (
    EvalFigures,
    IndexFile,
    IndexStatus,
    LoadedIndex,
    RebuildState,
    RebuildStatus,
)

log = logging.getLogger("berater.qna")

AREA = "qna"
STATE = "rebuild"
LOCK = "rebuild:lock"
LOCK_TTL = 60.0  # seconds; renewed at each step, so only a stopped rebuild lets it lapse
STATE_TTL = 30 * 86400.0  # the last rebuild is shown for a month
WRITE_EVERY = 0.5  # seconds between two progress writes to the store
HEARTBEAT = 5.0  # seconds: the lock is renewed at least this often while the build runs
LIMIT = 1800.0  # seconds: a build still running then is stopped
NOTES = 200  # lines of the build's report kept, each cut to NOTE_LENGTH characters
NOTE_LENGTH = 300
QUEUED: RebuildStatus = "queued"
RUNNING: RebuildStatus = "running"
DONE: RebuildStatus = "done"
FAILED: RebuildStatus = "failed"
INTERRUPTED = "interrupted: the worker running it stopped before it finished"

# Write the state only while holding the lock; then renew the lock, or release it (ARGV[4]
# is 0). A rebuild whose lock lapsed, and that another one replaced, cannot overwrite the
# newer state.
_WRITE_IF_HELD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if ARGV[4] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
"""


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _now() -> datetime:
    return datetime.now(UTC)


# --- the last evaluation ------------------------------------------------------------------


def eval_path(index: Path) -> Path:
    """Where `flask qna eval` keeps its last figures: beside the index file."""
    return index.with_name(f"{index.stem}.eval.json")


def eval_figures(
    runs: Sequence[Metrics],
    mode: str,
    questions_file: str,
    corpus: str,
    cv_folds: int | None = None,
) -> EvalFigures:
    """The figures to keep: one run's, or with `cv_folds` the mean of the held-out folds'
    (the question counts and FAQ hits added up)."""
    averaged = mean(runs)
    return EvalFigures(
        ran_at=_now(),
        mode=mode,
        questions=sum(m.questions for m in runs),
        unanswerable=sum(m.unanswerable for m in runs),
        faq_hits=sum(m.faq_questions for m in runs),
        cv_folds=cv_folds,
        questions_file=questions_file,
        corpus=corpus,
        **averaged,
    )


def save_eval(figures: EvalFigures, index: Path | None = None) -> Path:
    """Write `figures` beside the index file (the current app's by default), whole or not
    at all; the file's path."""
    target = eval_path(index or index_path(current_app))
    _write_atomically(target, figures.model_dump_json(indent=2).encode())
    return target


def last_eval(index: Path | None = None) -> EvalFigures | None:
    """The figures of the last `flask qna eval`; None when it never ran (or its file is not
    readable)."""
    path = eval_path(index or index_path(current_app))
    try:
        return EvalFigures.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        log.warning("Q&A: the last evaluation's figures cannot be read (%s)", type(exc).__name__)
        return None


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


# --- status ------------------------------------------------------------------------------


def index_facts(path: Path) -> IndexFile:
    """What the index file at `path` holds, from its metadata; IndexUnavailable when it is
    missing or not an index."""
    try:
        stat = path.stat()
    except OSError:
        raise IndexUnavailable(f"no index at {path}: run `flask --app run qna build`") from None
    meta, bert = read_meta(path)
    return IndexFile(
        path=str(path),
        built_at=_at(float(meta.get("built_at") or stat.st_mtime)),
        build_id=str(meta.get("build_id") or ""),
        current_format=meta.get("format") == FORMAT,
        paragraphs=len(meta.get("paragraphs") or ()),
        words=len(meta.get("words") or ()),
        characters=len(meta.get("chars") or ()),
        faq_entries=len(meta.get("faq") or ()),
        synonym_groups=len(meta.get("synonyms") or ()),
        bert=bert,
        size=stat.st_size,
        modified_at=_at(stat.st_mtime),
    )


def _loaded(state: QnaState, path: Path) -> LoadedIndex:
    engine = state.engine
    if engine is None:
        return LoadedIndex(
            pid=os.getpid(),
            loaded=False,
            build_id=None,
            paragraphs=0,
            loaded_at=None,
            modified_at=None,
            current=False,
            problem=state.failed or state.problem,
        )
    return LoadedIndex(
        pid=os.getpid(),
        loaded=True,
        build_id=engine.index.build_id,
        paragraphs=len(engine.index),
        loaded_at=_at(state.loaded_at) if state.loaded_at is not None else None,
        modified_at=_at(state.loaded_mtime) if state.loaded_mtime is not None else None,
        current=state.loaded_key is not None and state.loaded_key == file_key(path),
        problem=state.failed,
    )


def served_here() -> LoadedIndex:
    """The index this worker serves, after a look at the file (a changed file starts loading
    here too)."""
    qna.check(current_app)
    return _loaded(current_app.extensions[qna.extension_key], index_path(current_app))


def status() -> IndexStatus:
    """The index file, the index this worker serves, the last evaluation and rebuild."""
    path = index_path(current_app)
    worker = served_here()
    facts, problem = None, None
    try:
        facts = index_facts(path)
    except IndexUnavailable as exc:
        problem = str(exc)
    return IndexStatus(
        file=facts,
        problem=problem,
        worker=worker,
        last_eval=last_eval(path),
        rebuild=rebuild_state(),
    )


# --- the rebuild ---------------------------------------------------------------------------


def rebuild_state() -> RebuildState | None:
    """The last rebuild's state; None when there was none (or it was long ago). A rebuild
    still marked queued or running whose lock is gone was cut short: it is shown failed."""
    raw = store.get(AREA, STATE)
    if raw is None:
        return None
    try:
        state = RebuildState.model_validate_json(raw)
    except ValidationError:
        log.warning("Q&A: the rebuild's state in the store is not readable; ignored")
        return None
    if state.status in (QUEUED, RUNNING) and store.get(AREA, LOCK) != state.id:
        state = state.model_copy(update={"status": FAILED, "error": INTERRUPTED})
    return state


def start_rebuild(actor: str, ip: str | None = None) -> RebuildState:
    """Queue a rebuild of the index file by `actor` (a subject) and add its audit row; the
    task starts once the caller's transaction commits. 409 while another rebuild runs; 503
    when the background queue is full."""
    run_id = secrets.token_hex(16)
    if not store.set_if_absent(AREA, LOCK, run_id, LOCK_TTL):
        running = rebuild_state()
        raise Conflict(
            "an index rebuild is already running; wait for it to finish",
            {"rebuild": running.model_dump(mode="json") if running else None},
        )
    state = RebuildState(id=run_id, status=QUEUED, actor=actor, queued_at=_now())
    try:
        _write(state)
        audit.record(actor, audit.QNA_REBUILD, index_path(current_app).name, ip=ip)
    except BaseException:
        _release(run_id)
        raise
    after_commit(lambda: _submit(state))
    return state


def _submit(state: RebuildState) -> None:
    if tasks.submit("qna.rebuild", _rebuild, state):
        return
    _write(_failed(state, "the background queue is full; try again shortly"), release=True)
    raise ServiceUnavailable("the background queue is full; try the rebuild again shortly")


def _failed(state: RebuildState, error: str) -> RebuildState:
    return state.model_copy(update={"status": FAILED, "error": error, "finished_at": _now()})


def _write(state: RebuildState, release: bool = False) -> bool:
    """Store `state` if its rebuild still holds the lock, renewing (or releasing) the lock;
    False when it lost it."""
    written = store.script(_WRITE_IF_HELD)(
        keys=[store.key(AREA, LOCK), store.key(AREA, STATE)],
        args=[
            state.id,
            state.model_dump_json(),
            int(STATE_TTL * 1000),
            0 if release else int(LOCK_TTL * 1000),
        ],
    )
    return bool(written)


def _release(run_id: str) -> None:
    store.script("if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end")(
        keys=[store.key(AREA, LOCK)], args=[run_id]
    )


class _Lost(Exception):
    """The rebuild's lock lapsed: another may have started; this one stops."""


class _Run:
    """A running rebuild's state, written to the store at most every WRITE_EVERY seconds."""

    def __init__(self, state: RebuildState) -> None:
        self.state = state
        self.written = time.monotonic()
        self.notes: list[str] = []

    def update(self, force: bool = False, release: bool = False, **changes: Any) -> None:
        self.state = self.state.model_copy(update={**changes, "notes": self.notes[:NOTES]})
        now = time.monotonic()
        if force or release or now - self.written >= WRITE_EVERY:
            self.written = now
            if not _write(self.state, release):
                raise _Lost()

    def progress(self, phase: str, done: int, total: int) -> None:
        self.update(force=phase != self.state.phase, phase=phase, done=done, total=total)

    def fail(self, error: str) -> None:
        self.update(release=True, status=FAILED, error=error, finished_at=_now())

    def note(self, text: str) -> None:
        for line in str(text).splitlines():
            self.notes.append(line[:NOTE_LENGTH])


def _rebuild(queued: RebuildState) -> None:
    """The task: build the index file in a process of its own (berater/qna/rebuild.py), then
    serve it in this worker at once (the others notice the new file by themselves)."""
    run = _Run(queued)
    started = time.monotonic()
    try:
        run.update(force=True, status=RUNNING, started_at=_now(), worker=os.getpid())
        result = _build_apart(run)
        if result[0] != "done":
            run.fail(result[1])
            log.warning("Q&A rebuild failed: %s", result[1])
            return
        path = Path(result[1])
        qna.load(current_app)
        run.update(release=True, status=DONE, finished_at=_now(), index=index_facts(path), phase="")
        log.info("Q&A index rebuilt in %.1f s", time.monotonic() - started)
    except _Lost:
        log.warning("Q&A rebuild stopped: its lock lapsed (another rebuild may run)")


def _build_apart(run: _Run) -> tuple[str, str]:
    """Run the build's process, passing its report and steps to `run` (which renews the lock
    meanwhile, at least every HEARTBEAT seconds); ("done", path) or ("failed", message)."""
    config = current_app.config
    settings = {name: config.get(name) for name in rebuild.SETTINGS}
    settings["QNA_INDEX"] = str(index_path(current_app))
    # The build serves no metrics: it must not add files to the workers' metrics folder.
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    process = subprocess.Popen(
        [sys.executable, "-m", "berater.qna.rebuild"],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(settings).encode())
        process.stdin.close()
        result = _follow(process, process.stdout.fileno(), run)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    if result is None:
        return "failed", f"the build process stopped (exit status {process.returncode})"
    return result


def _follow(process: subprocess.Popen[bytes], fd: int, run: _Run) -> tuple[str, str] | None:
    """Read the build's report until its last line; None when it ended without one."""
    deadline = time.monotonic() + LIMIT
    pending = b""
    while True:
        if time.monotonic() > deadline:
            return "failed", f"the build took longer than {LIMIT / 60:.0f} minutes and was stopped"
        ready, _, _ = select.select([fd], [], [], HEARTBEAT)
        if not ready:
            run.update(force=True)  # a long silent step: the lock stays ours
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            kind, *values = json.loads(line)
            if kind == "note":
                run.note(values[0])
            elif kind == "progress":
                run.progress(*values)
            else:
                return str(kind), str(values[0])
