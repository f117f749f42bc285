"""The background task pool (berater/ext/tasks.py): bounded, in the app's context, fork-safe."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, current_app

from berater.ext.tasks import THREAD_PREFIX, Pool, Tasks
from berater.extensions import tasks
from berater.settings import ConfigError, load_config

PHONE = "13800138000"  # stands for the personal data a task's arguments may hold


def pool_of(app: Flask) -> Pool:
    return app.extensions["berater.tasks"]


def submit(app: Flask, kind: str, fn: Callable[..., Any], *args: Any, delay: float = 0.0) -> bool:
    with app.app_context():
        return tasks.submit(kind, fn, *args, delay=delay)


def task_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)}


def messages(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records]


def pool_warnings(records: list[logging.LogRecord]) -> list[str]:
    return [
        r.getMessage()
        for r in records
        if r.name == "berater.tasks" and r.levelno >= logging.WARNING
    ]


def test_a_task_runs_in_the_context_of_the_app_that_submitted_it(make_app) -> None:
    first, second = make_app(TEST_NAME="first"), make_app(TEST_NAME="second")
    seen: dict[str, Any] = {}
    done = threading.Event()

    def record(label: str) -> None:
        seen[label] = (current_app._get_current_object(), current_app.config["TEST_NAME"])
        if len(seen) == 2:
            done.set()

    assert submit(first, "test.context", record, "a") is True
    assert submit(second, "test.context", record, "b") is True
    assert done.wait(5)
    assert seen == {"a": (first, "first"), "b": (second, "second")}


def test_no_thread_starts_before_the_first_submit(make_app) -> None:
    before = task_threads()
    app = make_app(TASK_WORKERS=3)
    # Creating the app starts nothing: gunicorn's master may create it before forking.
    assert task_threads() == before
    assert pool_of(app).threads == []
    ran = threading.Event()
    assert submit(app, "test.first", ran.set)
    assert ran.wait(5)
    started = pool_of(app).threads
    assert len(started) == 3 and all(t.is_alive() for t in started)
    assert set(started) <= task_threads()


def test_a_full_queue_refuses_the_next_task_and_logs_its_kind(make_app, log_records) -> None:
    app = make_app(TASK_WORKERS=2, TASK_QUEUE=3)
    pool = pool_of(app)
    release, ran, lock = threading.Event(), [], threading.Lock()
    busy = threading.Semaphore(0)

    def block(label: str) -> None:
        busy.release()
        release.wait(10)
        with lock:
            ran.append(label)

    def note(label: str, phone: str) -> None:
        with lock:
            ran.append(label)

    try:
        # Both workers busy, then three tasks waiting: the queue is full.
        assert submit(app, "test.block", block, "w1") and submit(app, "test.block", block, "w2")
        assert busy.acquire(timeout=5) and busy.acquire(timeout=5)
        for label in ("q1", "q2", "q3"):
            assert submit(app, "test.queued", note, label, PHONE) is True
        started = time.monotonic()
        assert submit(app, "test.overflow", note, "dropped", PHONE) is False
        assert time.monotonic() - started < 0.5  # refused at once, not after a wait
        assert pool.dropped == 1
        assert pool.pending == 5
    finally:
        release.set()
    assert pool.wait_idle(5)
    assert sorted(ran) == ["q1", "q2", "q3", "w1", "w2"]
    assert pool_warnings(log_records) == [
        "task test.overflow dropped: the queue is full (3 waiting)"
    ]
    assert not any(PHONE in m for m in messages(log_records))
    # Room again: the next task is accepted and runs.
    done = threading.Event()
    assert submit(app, "test.after", done.set)
    assert done.wait(5)


def test_a_failing_task_is_logged_and_its_worker_goes_on(make_app, log_records) -> None:
    app = make_app(TASK_WORKERS=1)
    pool = pool_of(app)

    def fail(phone: str) -> None:
        raise ValueError(f"cannot reach {phone}")

    def exit_thread() -> None:
        raise SystemExit(1)

    after = threading.Event()
    assert submit(app, "test.fail", fail, PHONE)
    assert submit(app, "test.exit", exit_thread)
    assert submit(app, "test.after", after.set)
    assert after.wait(5)
    assert pool.wait_idle(5)
    assert pool_warnings(log_records) == [
        "task test.fail failed: ValueError",
        "task test.exit failed: SystemExit",
    ]
    assert not any(PHONE in m for m in messages(log_records))
    [worker] = pool.threads
    assert worker.is_alive()


def test_a_delayed_task_waits_without_holding_a_worker(make_app) -> None:
    app = make_app(TASK_WORKERS=1)
    order: list[tuple[str, float]] = []
    started = time.monotonic()

    def note(label: str) -> None:
        order.append((label, time.monotonic() - started))

    assert submit(app, "test.later", note, "later", delay=0.4)
    assert submit(app, "test.now", note, "now")
    assert pool_of(app).pending == 2  # a delayed task counts against TASK_QUEUE
    assert pool_of(app).wait_idle(5)
    assert [label for label, _ in order] == ["now", "later"]
    assert order[0][1] < 0.3 <= 0.4 <= order[1][1]


def test_a_forked_child_gets_an_empty_pool_of_its_own(make_app) -> None:
    app = make_app(TASK_WORKERS=2)
    pool = pool_of(app)
    release, busy = threading.Event(), threading.Event()

    def block() -> None:
        busy.set()
        release.wait(10)

    assert submit(app, "test.block", block)
    assert busy.wait(5)
    assert submit(app, "test.waiting", time.sleep, 0, delay=60)  # the parent's: never the child's
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, leave without the parent's exit hooks
        status = 1
        try:
            state = (pool.pending, len(pool.threads))
            ran = threading.Event()
            submitted = submit(app, "test.child", ran.set)
            report = f"{state} {submitted} {ran.wait(5)} {len(pool.threads)}"
            os.write(writer, report.encode())
            status = 0
        finally:
            os._exit(status)
    os.close(writer)
    try:
        with os.fdopen(reader) as pipe:
            report = pipe.read()
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
    assert os.waitstatus_to_exitcode(status) == 0
    # In the child: nothing inherited, then a task runs on threads of its own.
    assert report == "(0, 0) True True 2"
    # The parent keeps its own: the released task ends, the delayed one still waits.
    deadline = time.monotonic() + 5
    while pool.pending != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pool.pending == 1
    assert pool.shutdown(timeout=0.2) == 1


def bare_app() -> Flask:
    """A Flask app with the testing settings and no extension registered."""
    app = Flask(__name__)
    app.config.update(load_config("testing", environ={}))
    return app


def test_tasks_register_once_per_app() -> None:
    app = bare_app()
    extension = Tasks(app)
    with pytest.raises(RuntimeError, match="already registered"):
        extension.init_app(app)
    with Flask(__name__).app_context(), pytest.raises(RuntimeError, match="not registered"):
        tasks.submit("test.nowhere", print)


@pytest.mark.parametrize("setting", ["TASK_WORKERS", "TASK_QUEUE"])
def test_a_pool_needs_a_worker_and_room_for_a_task(setting: str) -> None:
    app = bare_app()
    app.config[setting] = 0
    with pytest.raises(ConfigError, match=setting):
        Tasks(app)


def test_the_pool_is_sized_from_the_environment() -> None:
    settings = load_config("testing", environ={"TASK_WORKERS": "2", "TASK_QUEUE": "50"})
    assert (settings["TASK_WORKERS"], settings["TASK_QUEUE"]) == (2, 50)
    defaults = load_config("testing", environ={})
    assert (defaults["TASK_WORKERS"], defaults["TASK_QUEUE"]) == (4, 500)


def test_a_stopped_pool_refuses_tasks(make_app, log_records) -> None:
    app = make_app()
    assert pool_of(app).shutdown(timeout=1) == 0
    assert submit(app, "test.late", print) is False
    assert pool_warnings(log_records) == ["task test.late dropped: the pool is stopped"]
