"""A worker serves a new index file without a restart: it looks at the file's modification
time at most once a second, loads a changed file in a background task and swaps the engine
in one step; a file it cannot load leaves the old index serving."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from flask import Flask

from berater.extensions import qna
from berater.qna.answers import CHECK_EVERY, QnaState
from berater.qna.corpus import load
from berater.qna.index import Index
from tests.conftest import HANDBOOK

QUESTION = "图书馆晚上几点关门？"
OLD_HOURS, NEW_HOURS = "晚上十一点关闭", "晚上十点关闭"


def changed_handbook(folder: Path) -> Path:
    """The test handbook with the library closing an hour earlier."""
    text = HANDBOOK.read_text(encoding="utf-8")
    assert OLD_HOURS in text
    path = folder / "handbook.txt"
    path.write_text(text.replace(OLD_HOURS, NEW_HOURS), encoding="utf-8")
    return path


def build(corpus: Path, out: Path) -> Index:
    index = Index.build(load(corpus), ["缓考", "绩点", "校园卡"])
    index.save(out)
    return index


def state_of(app: Flask) -> QnaState:
    return app.extensions[qna.extension_key]


def best_text(app: Flask) -> str:
    with app.app_context():
        return qna.engine.search(QUESTION, k=1).hits[0].text


def a_second_passes(app: Flask) -> None:
    """As if CHECK_EVERY had passed since the last look at the file."""
    state_of(app).checked -= CHECK_EVERY


def settle(app: Flask) -> None:
    """Wait for the reload task the last question may have started."""
    assert app.extensions["berater.tasks"].wait_idle(10)


@pytest.fixture
def index_file(tmp_path: Path) -> Path:
    path = tmp_path / "served" / "qna-index.npz"
    build(HANDBOOK, path)
    return path


def test_a_new_index_file_is_served_after_the_next_look(make_app, index_file, tmp_path):
    app = make_app(QNA_INDEX=str(index_file))
    assert OLD_HOURS in best_text(app)
    first = state_of(app).engine
    assert first is not None
    loaded_at = state_of(app).loaded_at

    new = build(changed_handbook(tmp_path), index_file)
    # Within a second of the last look the file is not looked at: the old index serves.
    assert OLD_HOURS in best_text(app)
    settle(app)
    assert state_of(app).engine is first

    a_second_passes(app)
    best_text(app)  # this question looks, and starts the reload
    settle(app)
    engine = state_of(app).engine
    assert engine is not None and engine is not first
    assert engine.index.build_id == new.build_id
    assert NEW_HOURS in best_text(app)
    assert state_of(app).loaded_at is not None and loaded_at is not None
    assert state_of(app).loaded_at > loaded_at
    # The old engine a question in flight holds is untouched.
    assert OLD_HOURS in first.search(QUESTION, k=1).hits[0].text


def test_an_unchanged_file_is_not_loaded_again(make_app, index_file):
    app = make_app(QNA_INDEX=str(index_file))
    first = state_of(app).engine
    for _ in range(3):
        a_second_passes(app)
        best_text(app)
        settle(app)
    assert state_of(app).engine is first


def test_a_file_that_cannot_be_loaded_leaves_the_old_index_serving(
    make_app, index_file, tmp_path, log_records
):
    app = make_app(QNA_INDEX=str(index_file))
    first = state_of(app).engine
    partial = index_file.with_name("broken.npz")
    partial.write_bytes(b"PK\x03\x04 not a whole index")
    partial.replace(index_file)

    a_second_passes(app)
    assert OLD_HOURS in best_text(app)
    settle(app)
    assert state_of(app).engine is first
    assert OLD_HOURS in best_text(app)
    warnings = [r.getMessage() for r in log_records if r.name == "berater.qna"]
    assert any("the loaded index still serves" in m and str(index_file) in m for m in warnings)

    # Tried once per version of the file, not at every look.
    a_second_passes(app)
    best_text(app)
    settle(app)
    assert len([m for m in warnings if "still serves" in m]) == 1
    with app.app_context():
        readiness = app.test_client().get("/readyz").get_json()
    assert readiness["data"]["qna"] == "ok"

    # A good file after it is served.
    build(changed_handbook(tmp_path), index_file)
    a_second_passes(app)
    best_text(app)
    settle(app)
    assert NEW_HOURS in best_text(app)


def test_a_worker_started_without_an_index_serves_one_once_it_is_built(make_app, tmp_path):
    path = tmp_path / "later" / "qna-index.npz"
    app = make_app(QNA_INDEX=str(path))
    client = app.test_client()
    assert client.get("/readyz").status_code == 503
    assert state_of(app).engine is None

    build(HANDBOOK, path)
    a_second_passes(app)
    client.get("/readyz")  # looks at the file: the reload starts
    settle(app)
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.get_json()
    assert OLD_HOURS in best_text(app)


def test_questions_during_reloads_see_one_whole_index(make_app, index_file, tmp_path):
    """Threads ask while the file changes back and forth and each change is loaded: every
    answer comes whole from the old handbook or the new one."""
    app = make_app(QNA_INDEX=str(index_file))
    editions = [Index.load(index_file), build(changed_handbook(tmp_path), tmp_path / "new.npz")]
    stop = threading.Event()
    answers: list[str] = []
    failures: list[BaseException] = []

    def ask() -> None:
        try:
            while not stop.is_set():
                with app.app_context():
                    result = qna.engine.search(QUESTION, k=3)
                answers.append(result.hits[0].text)
        except BaseException as exc:  # reported below
            failures.append(exc)

    askers = [threading.Thread(target=ask) for _ in range(4)]
    for thread in askers:
        thread.start()
    try:
        served = set()
        for n in range(12):
            edition = editions[(n + 1) % 2]
            edition.save(index_file)
            a_second_passes(app)
            with app.app_context():
                qna.check(app)
            settle(app)
            engine = state_of(app).engine
            assert engine is not None
            assert engine.index.build_id == edition.build_id
            served.add(engine.index.build_id)
    finally:
        stop.set()
        for thread in askers:
            thread.join(10)
    assert not failures, failures
    assert served == {e.build_id for e in editions}
    texts = {a for a in answers}
    assert texts and texts <= {
        next(p.text for p in e.paragraphs if p.id == "3.2.1") for e in editions
    }
