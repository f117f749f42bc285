"""Background tasks: one bounded pool of threads for the work a request hands off.

`tasks.submit("chat.answer", fn, *args)` runs `fn(*args)` later on one of TASK_WORKERS
threads, inside an app context of the app that submitted it, and returns True. At most
TASK_QUEUE tasks wait; past that a new one is refused at once: it never runs, the request
never blocks, `submit` returns False and the refusal is logged with the task's kind and the
queue's length (never its arguments: they may hold openids or phones). A task that raises is
logged by kind and exception type only, and its worker goes on with the next.

`delay=` runs a task no earlier than that many seconds from now (a retry with backoff), without
holding a worker while it waits; a delayed task counts against TASK_QUEUE like any other.

No thread starts before the first submit: gunicorn's master imports this module and may create
the app before forking, and threads do not survive a fork. A forked child starts with an empty
pool of its own (the parent's waiting tasks stay the parent's). At exit, the process waits up
to DRAIN_AT_EXIT seconds for the tasks already accepted.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from berater import metrics
from berater.ext import Extension
from berater.settings import ConfigError

log = logging.getLogger("berater.tasks")

# Under gunicorn's graceful_timeout (20 s), which ends a stopping worker by force.
DRAIN_AT_EXIT = 10.0
THREAD_PREFIX = "berater-task"

_pools: weakref.WeakSet[Pool] = weakref.WeakSet()
_drain_registered = False


@dataclass(frozen=True)
class _Task:
    app: Flask
    kind: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]


class Pool:
    """The threads, the waiting tasks (earliest due first) and the drop count of one app."""

    def __init__(self, workers: int, limit: int) -> None:
        self.workers = workers
        self.limit = limit
        self._reset()
        _pools.add(self)

    def _reset(self) -> None:
        """An empty pool with no threads: at creation, and in a forked child, where the
        parent's threads do not exist and its locks may have been held at the fork."""
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # a task was added, or the pool stops
        self._done = threading.Condition(self._lock)  # a task finished
        self._waiting: list[tuple[float, int, _Task]] = []
        self._order = itertools.count()  # equal due times run in the order submitted
        self._running = 0
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self.dropped = 0  # tasks refused in this process

    @property
    def pending(self) -> int:
        """Tasks waiting or running now."""
        with self._lock:
            return len(self._waiting) + self._running

    @property
    def threads(self) -> list[threading.Thread]:
        """The worker threads started so far (none before the first submit)."""
        with self._lock:
            return list(self._threads)

    def submit(
        self, app: Flask, kind: str, fn: Callable[..., Any], args: tuple, delay: float
    ) -> bool:
        with self._lock:
            waiting = len(self._waiting)
            if not self._stopped and waiting < self.limit:
                task = _Task(app, kind, fn, args)
                due = time.monotonic() + max(0.0, delay)
                heapq.heappush(self._waiting, (due, next(self._order), task))
                metrics.TASKS_WAITING.inc()
                self._start()
                self._ready.notify()
                return True
            self.dropped += 1
            stopped = self._stopped
        metrics.TASKS_DROPPED.labels("stopped" if stopped else "full").inc()
        if stopped:
            log.warning("task %s dropped: the pool is stopped", kind)
        else:
            log.warning("task %s dropped: the queue is full (%d waiting)", kind, waiting)
        return False

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no task waits or runs; False when `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._waiting or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
            return True

    def shutdown(self, timeout: float) -> int:
        """Let the accepted tasks finish for up to `timeout` seconds, then stop the threads;
        the number of tasks left unrun. Later submits are refused."""
        deadline = time.monotonic() + timeout
        self.wait_idle(timeout)
        with self._lock:
            self._stopped = True
            left = len(self._waiting)
            self._waiting.clear()
            metrics.TASKS_WAITING.dec(left)
            self._ready.notify_all()
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if left:
            log.warning("%d tasks not run: the pool stopped", left)
        return left

    def _start(self) -> None:
        """Start the workers on the first submit (the lock is held)."""
        if self._threads:
            return
        _register_drain()
        for number in range(1, self.workers + 1):
            thread = threading.Thread(
                target=self._work, name=f"{THREAD_PREFIX}-{number}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                task = self._next()
                if task is None:
                    return
                self._running += 1
            try:
                _run(task)
            finally:
                with self._lock:
                    self._running -= 1
                    self._done.notify_all()

    def _next(self) -> _Task | None:
        """The next due task, waiting for one; None once the pool stops (the lock is held)."""
        while not self._stopped:
            if not self._waiting:
                self._ready.wait()
                continue
            left = self._waiting[0][0] - time.monotonic()
            if left <= 0:
                metrics.TASKS_WAITING.dec()
                return heapq.heappop(self._waiting)[2]
            self._ready.wait(left)
        return None


def _run(task: _Task) -> None:
    try:
        with task.app.app_context():
            task.fn(*task.args)
    except BaseException as exc:  # a worker has nobody to raise to, and must go on
        # The type only: an error's text can hold personal data or a URL with a token.
        log.warning("task %s failed: %s", task.kind, type(exc).__name__)


def _register_drain() -> None:
    """At exit, wait for accepted tasks; registered at the first thread start, so that it runs
    before the exit hooks of what the tasks use (the embedded store), which start earlier."""
    global _drain_registered
    if not _drain_registered:
        _drain_registered = True
        atexit.register(_drain)


def _drain() -> None:
    deadline = time.monotonic() + DRAIN_AT_EXIT
    for pool in list(_pools):
        pool.shutdown(max(0.0, deadline - time.monotonic()))


def _after_fork_in_child() -> None:
    for pool in list(_pools):
        pool._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Tasks(Extension[Pool]):
    """Flask extension: `tasks.submit(kind, fn, *args, delay=0.0)` runs `fn` in the background."""

    extension_key = "berater.tasks"
    label = "tasks"

    def create(self, app: Flask) -> Pool:
        workers, limit = int(app.config["TASK_WORKERS"]), int(app.config["TASK_QUEUE"])
        if workers < 1:
            raise ConfigError("TASK_WORKERS must be at least 1")
        if limit < 1:
            raise ConfigError("TASK_QUEUE must be at least 1")
        return Pool(workers, limit)

    @property
    def pool(self) -> Pool:
        """The pool of the current app."""
        return self.state

    def submit(self, kind: str, fn: Callable[..., Any], /, *args: Any, delay: float = 0.0) -> bool:
        """Run `fn(*args)` in the background, in this app's context, no earlier than `delay`
        seconds from now; False (logged with `kind`) when TASK_QUEUE tasks already wait."""
        pool = self.pool
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        return pool.submit(app, kind, fn, args, delay)
