"""The index for the office: its status, the last `qna eval` figures, and the rebuild in the
background (one at a time across workers, its state in the store, its audit row)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from flask import Flask

from berater import PROJECT_ROOT
from berater.db import transaction
from berater.errors import Conflict, ServiceUnavailable
from berater.extensions import qna, store
from berater.identity import audit
from berater.models import AuditLog
from berater.qna import services
from berater.qna.index import Index, read_meta
from berater.settings import ENV_KEYS
from tests.conftest import HANDBOOK
from tests.qna.test_cli import invoke, write_questions
from tests.qna.test_reload import NEW_HOURS, OLD_HOURS, QUESTION, build, changed_handbook

pytestmark = pytest.mark.backends

ADMIN = "o_index_admin"
QUESTIONS = [
    {"q": "图书逾期了要交滞纳金吗", "relevant": ["3.1.2"]},
    {"q": "缓考安排在什么时候", "relevant": ["2.1.1"]},
    {"q": "图书馆几点关门", "relevant": ["3.2.1"]},
    {"q": "新生报到要带什么", "relevant": ["1.1.1"]},
    {"q": "推荐一部电影", "relevant": []},
]


@pytest.fixture
def index_app(make_app, served: Path, tmp_path: Path) -> Flask:
    """An app serving `served`, whose configured handbook is the changed one."""
    return make_app(QNA_INDEX=str(served), QNA_CORPUS=str(changed_handbook(tmp_path)))


def wait_for_tasks(app: Flask) -> None:
    assert app.extensions["berater.tasks"].wait_idle(30)


# --- the last evaluation --------------------------------------------------------------------


def test_eval_saves_the_figures_it_printed_beside_the_index(make_app, tmp_path, served):
    app = make_app(QNA_INDEX=str(served))
    with app.app_context():
        assert services.last_eval() is None
    questions = write_questions(tmp_path / "q.jsonl", QUESTIONS)
    result = invoke(app, "eval", "--corpus", str(HANDBOOK), "--questions", str(questions))
    assert result.exit_code == 0, result.output
    saved = served.with_name("qna-index.eval.json")
    assert f"figures saved for the console: {saved}" in result.output
    printed = dict(re.findall(r"^(top-1|recall@3|MRR@10): ([\d.]+)$", result.output, re.M))
    with app.app_context():
        figures = services.last_eval()
    assert figures is not None
    assert f"{figures.top1:.3f}" == printed["top-1"]
    assert f"{figures.recall3:.3f}" == printed["recall@3"]
    assert f"{figures.mrr10:.3f}" == printed["MRR@10"]
    assert (figures.questions, figures.unanswerable, figures.cv_folds) == (4, 1, None)
    assert f"answered (answerable, above the threshold): {figures.answered:.3f}" in result.output
    assert f"declined (unanswerable, below the threshold): {figures.declined:.3f}" in result.output
    assert figures.faq_hits == 0 and figures.mode == "lexical"
    assert figures.corpus == str(HANDBOOK) and figures.questions_file.endswith("q.jsonl")
    assert figures.ran_at.tzinfo is not None
    # Written whole: no file beside it is left over.
    assert sorted(p.name for p in saved.parent.iterdir()) == ["qna-index.eval.json", served.name]


def test_eval_with_cv_saves_the_held_out_mean(make_app, tmp_path, served):
    app = make_app(QNA_INDEX=str(served))
    questions = write_questions(tmp_path / "q.jsonl", QUESTIONS)
    args = ["eval", "--corpus", str(HANDBOOK), "--questions", str(questions), "--cv", "3"]
    result = invoke(app, *args)
    assert result.exit_code == 0, result.output
    mean = re.search(r"mean: top-1 ([\d.]+), recall@3 ([\d.]+), MRR@10 ([\d.]+)", result.output)
    assert mean is not None
    with app.app_context():
        figures = services.last_eval()
    assert figures is not None and figures.cv_folds == 3
    assert (f"{figures.top1:.3f}", f"{figures.recall3:.3f}", f"{figures.mrr10:.3f}") == (
        mean.groups()
    )
    assert figures.questions + figures.unanswerable == len(QUESTIONS)


def test_a_damaged_figures_file_reads_as_none(make_app, served, log_records):
    app = make_app(QNA_INDEX=str(served))
    served.with_name("qna-index.eval.json").write_text('{"top1": "lots"')
    with app.app_context():
        assert services.last_eval() is None
    assert any("cannot be read" in r.getMessage() for r in log_records)


# --- status ---------------------------------------------------------------------------------


def test_status_tells_what_the_file_holds_and_what_this_worker_serves(index_app, served):
    index = Index.load(served)
    with index_app.app_context():
        status = services.status()
    facts = status.file
    assert facts is not None and status.problem is None
    assert facts.path == str(served) and facts.current_format
    assert facts.built_at.timestamp() == pytest.approx(index.built_at)
    assert facts.build_id == index.build_id
    assert facts.paragraphs == 9
    assert facts.words == len(index.words.terms) and facts.characters == len(index.chars.terms)
    assert facts.faq_entries == 0 and facts.synonym_groups == 0 and not facts.bert
    assert facts.size == served.stat().st_size
    worker = status.worker
    assert worker.loaded and worker.current and worker.build_id == index.build_id
    assert worker.paragraphs == 9 and worker.problem is None
    assert worker.modified_at is not None
    assert worker.modified_at.timestamp() == pytest.approx(served.stat().st_mtime)
    assert status.last_eval is None and status.rebuild is None


def test_status_sees_a_new_file_before_the_worker_serves_it(index_app, served, tmp_path):
    new = build(changed_handbook(tmp_path), served)
    with index_app.app_context():
        index_app.extensions[qna.extension_key].checked = float("inf")  # no look yet
        status = services.status()
    assert status.file is not None and status.file.build_id == new.build_id
    assert not status.worker.current and status.worker.build_id != new.build_id


def test_status_says_when_the_file_on_disk_cannot_be_served(index_app, served):
    broken = served.with_name("broken.npz")
    broken.write_bytes(b"not an index")
    broken.replace(served)
    with index_app.app_context():
        qna.check(index_app, force=True)
        wait_for_tasks(index_app)
        status = services.status()
    assert status.file is None and "is not a Q&A index" in (status.problem or "")
    worker = status.worker
    assert worker.loaded and worker.paragraphs == 9  # the old index still serves
    assert not worker.current and "is not a Q&A index" in (worker.problem or "")


def test_status_without_an_index(make_app, tmp_path):
    missing = tmp_path / "none" / "qna-index.npz"
    app = make_app(QNA_INDEX=str(missing))
    with app.app_context():
        status = services.status()
    assert status.file is None and "no index at" in (status.problem or "")
    assert not status.worker.loaded and "no index at" in (status.worker.problem or "")


def test_status_of_a_file_without_its_build_time_gives_the_files_time(index_app, served):
    import numpy as np

    with np.load(served) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    del meta["built_at"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    older = served.with_name("older.npz")
    np.savez(older, **arrays)
    facts = services.index_facts(older)
    assert facts.built_at.timestamp() == pytest.approx(older.stat().st_mtime)


# --- the rebuild ----------------------------------------------------------------------------


def rebuild(app: Flask, actor: str = ADMIN):
    with app.app_context(), transaction():
        return services.start_rebuild(actor, "203.0.113.9")


def test_a_rebuild_writes_the_configured_handbook_and_this_worker_serves_it(
    index_app, served, tmp_path
):
    before = Index.load(served)
    queued = rebuild(index_app)
    assert queued.status == "queued" and queued.actor == ADMIN
    wait_for_tasks(index_app)
    with index_app.app_context():
        state = services.rebuild_state()
        served_now = qna.engine
        rows = list(AuditLog.query.filter_by(action=audit.QNA_REBUILD))
    assert state is not None and state.status == "done", state
    assert state.id == queued.id and state.error is None
    assert state.started_at and state.finished_at and state.started_at <= state.finished_at
    assert state.index is not None and state.index.paragraphs == 9
    assert any(line == "paragraphs: 9" for line in state.notes)
    after = Index.load(served)
    assert after.build_id == state.index.build_id != before.build_id
    assert NEW_HOURS in next(p.text for p in after.paragraphs if p.id == "3.2.1")
    # This worker serves it at once; no file is left beside it.
    assert served_now.index.build_id == after.build_id
    assert NEW_HOURS in served_now.search(QUESTION, k=1).hits[0].text
    assert [p.name for p in served.parent.iterdir()] == [served.name]
    assert [(r.actor, r.target, r.ip) for r in rows] == [(ADMIN, "qna-index.npz", "203.0.113.9")]
    # The lock is free again.
    assert rebuild(index_app).status == "queued"
    wait_for_tasks(index_app)


def test_a_rebuild_gives_what_flask_qna_build_gives(index_app, served, tmp_path, base_settings):
    rebuild(index_app)
    wait_for_tasks(index_app)
    by_cli = tmp_path / "cli" / "qna-index.npz"
    # `flask qna build` as an operator runs it: in a process of its own (jieba's words are
    # per process, and this one's have been added to by other tests).
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update({k: v for k, v in base_settings.items() if isinstance(v, str)})
    env["QNA_CORPUS"] = index_app.config["QNA_CORPUS"]
    flask = str(Path(sys.executable).parent / "flask")
    result = subprocess.run(
        [flask, "--app", "run", "qna", "build", "--out", str(by_cli)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rebuilt, _ = read_meta(served)
    built, _ = read_meta(by_cli)
    for made in (rebuilt, built):
        del made["build_id"], made["built_at"]
    assert rebuilt == built
    a, b = Index.load(served), Index.load(by_cli)
    for name in ("words", "chars", "headings"):
        assert (getattr(a, name).data == getattr(b, name).data).all()


def test_a_second_rebuild_while_one_runs_is_a_conflict(index_app, make_app, served):
    other_worker = make_app(QNA_INDEX=str(served))
    with index_app.app_context(), transaction():
        first = services.start_rebuild(ADMIN)
        # The first holds the lock until it ends; it has not even started yet.
        with other_worker.app_context(), pytest.raises(Conflict) as refused:
            services.start_rebuild("o_other_admin")
    assert refused.value.status == 409
    assert refused.value.message == "an index rebuild is already running; wait for it to finish"
    assert refused.value.data["rebuild"]["id"] == first.id
    wait_for_tasks(index_app)
    with other_worker.app_context():
        state = services.rebuild_state()
        assert state is not None and state.status == "done"
        assert list(AuditLog.query.filter_by(actor="o_other_admin")) == []


def test_a_failed_rebuild_says_why_and_keeps_the_index(make_app, served, tmp_path):
    app = make_app(QNA_INDEX=str(served), QNA_CORPUS=str(tmp_path / "gone"))
    before = served.read_bytes()
    rebuild(app)
    wait_for_tasks(app)
    with app.app_context():
        state = services.rebuild_state()
        assert OLD_HOURS in qna.engine.search(QUESTION, k=1).hits[0].text
    assert state is not None and state.status == "failed"
    assert state.error and "gone" in state.error and state.finished_at
    assert served.read_bytes() == before
    # The lock was given back: another try is accepted.
    assert rebuild(app).status == "queued"
    wait_for_tasks(app)


def test_a_rebuild_whose_lock_lapsed_is_shown_interrupted_and_writes_nothing(index_app, served):
    before = served.read_bytes()
    with index_app.app_context(), transaction():
        services.start_rebuild(ADMIN)
        store.delete(services.AREA, services.LOCK)  # as if its worker had died long ago
    wait_for_tasks(index_app)
    with index_app.app_context():
        state = services.rebuild_state()
    assert state is not None and state.status == "failed"
    assert state.error == services.INTERRUPTED
    assert served.read_bytes() == before


def test_a_rebuild_never_committed_starts_nothing(index_app, served):
    before = served.read_bytes()
    with index_app.app_context(), pytest.raises(RuntimeError), transaction():
        services.start_rebuild(ADMIN)
        raise RuntimeError("the request failed")
    wait_for_tasks(index_app)
    assert served.read_bytes() == before
    with index_app.app_context():
        assert list(AuditLog.query.filter_by(action=audit.QNA_REBUILD)) == []


def test_a_full_background_queue_refuses_the_rebuild(make_app, served, tmp_path):
    app = make_app(
        QNA_INDEX=str(served),
        QNA_CORPUS=str(changed_handbook(tmp_path)),
        TASK_WORKERS=1,
        TASK_QUEUE=1,
    )
    pool = app.extensions["berater.tasks"]
    running, release = threading.Event(), threading.Event()

    def hold() -> None:
        running.set()
        release.wait(10)

    try:
        assert pool.submit(app, "test.hold", hold, (), 0.0)
        assert running.wait(10)
        assert pool.submit(app, "test.wait", lambda: None, (), 0.0)  # the queue is full now
        with pytest.raises(ServiceUnavailable) as refused:
            rebuild(app)
        assert "queue is full" in refused.value.message
    finally:
        release.set()
    wait_for_tasks(app)
    with app.app_context():
        state = services.rebuild_state()
    assert state is not None and state.status == "failed" and "queue is full" in (state.error or "")
    assert rebuild(app).status == "queued"  # the lock was given back
    wait_for_tasks(app)


def test_a_build_process_that_dies_fails_the_rebuild_and_nothing_else(index_app, served):
    """The build runs in a process of its own: killed, it takes only itself down."""
    before = served.read_bytes()
    rebuild(index_app)
    deadline = time.monotonic() + 30
    builds: list[psutil.Process] = []
    while not builds:
        assert time.monotonic() < deadline, "no build process appeared"
        builds = [child for child in psutil.Process().children() if _is_build(child)]
        time.sleep(0.01)
    os.kill(builds[0].pid, signal.SIGKILL)
    wait_for_tasks(index_app)
    with index_app.app_context():
        state = services.rebuild_state()
        assert OLD_HOURS in qna.engine.search(QUESTION, k=1).hits[0].text
    assert state is not None and state.status == "failed"
    assert state.error == "the build process stopped (exit status -9)"
    assert served.read_bytes() == before
    assert rebuild(index_app).status == "queued"  # the lock was given back
    wait_for_tasks(index_app)


def _is_build(process: psutil.Process) -> bool:
    """A live rebuild process (another child may have ended and be a zombie meanwhile)."""
    try:
        return "berater.qna.rebuild" in " ".join(process.cmdline())
    except psutil.Error:
        return False
