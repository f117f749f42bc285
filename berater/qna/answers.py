"""The Q&A engine of the app: the handbook index loaded once, and the webhook's backend.

At start the extension loads the index file (QNA_INDEX, built by `flask qna build`) and
jieba's dictionary, once per process: apps in one process share an unchanged file's index.
Without an index file the service still starts; the Q&A endpoints then answer 503 and the
webhook says the bot is getting ready.

A new index file is served without a restart: a question looks at the file's modification
time at most once a second (CHECK_EVERY; a clock read otherwise), and when it changed a task
of the background pool loads the new file while the questions go on with the old index.
The engine is then swapped in one assignment, so a question sees the old index or the new
one, never a mix. A file that cannot be loaded leaves the old index serving, and is logged.

QNA_BACKEND picks how the webhook answers: `lexical` (the index alone), `bert` or `hybrid`
(both slow: they ask the BERT server, so the webhook answers through the customer-service
API; when BERT is unavailable they answer from the index alone), or `placeholder` (no
answers).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from flask import Flask, current_app

from berater.errors import ServiceUnavailable
from berater.ext import Extension
from berater.qna import segment
from berater.qna.bert import BertUnavailable, encoder_from_config
from berater.qna.engine import MAX_QUESTION, Engine, Mode, Thresholds, reply_text
from berater.qna.index import Index, IndexUnavailable, missing_index

log = logging.getLogger("berater.qna")
INDEX_FILE = "qna-index.npz"


class QnaUnavailable(ServiceUnavailable):
    message = "the Q&A index is not built yet: run `flask --app run qna build`"


class Backend(Protocol):
    # True when an answer may take seconds (a remote model): the webhook then answers
    # through the customer-service API instead of inside WeChat's 5 s reply.
    slow: bool

    def answer(self, question: str) -> str | None: ...


class PlaceholderBackend:
    """Knows nothing: every question is unanswered."""

    slow = False

    def answer(self, question: str) -> str | None:
        return None


def answer_url(question: str) -> str:
    """The full answer's page for `question`: the Q&A page (WECHAT_ANSWER_URL, or the
    service's own) with `q`; "" when there is none."""
    from berater.pages import links

    base = links.answer_url()
    if not base:
        return ""
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}{urlencode({'q': question[:MAX_QUESTION]})}"


class HandbookBackend:
    """Answers from the handbook index, ranked the way `mode` says: the best sentences first,
    with a link to the full answer's page when there is one."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self.slow = mode != "lexical"

    def answer(self, question: str) -> str | None:
        from berater.extensions import qna

        engine = qna.current(current_app)
        question = question.strip()[:MAX_QUESTION]
        if engine is None or not question:
            return None
        try:
            result = engine.search(question, k=1, mode=self.mode)
        except BertUnavailable as exc:
            log.warning("BERT unavailable, answering from the index alone: %s", exc)
            result = engine.search(question, k=1, mode="lexical")
        return reply_text(result, answer_url(question))


BACKENDS: dict[str, Callable[[], Backend]] = {
    "placeholder": PlaceholderBackend,
    "lexical": partial(HandbookBackend, "lexical"),
    "bert": partial(HandbookBackend, "bert"),
    "hybrid": partial(HandbookBackend, "hybrid"),
}

_cache_lock = threading.Lock()
_cache: dict[tuple[str, int, int], Index] = {}


def index_file(settings: Mapping[str, Any]) -> Path:
    """QNA_INDEX, or the index file in the instance folder, from settings (before an app)."""
    from berater import instance_path

    return Path(settings.get("QNA_INDEX") or Path(instance_path(settings)) / INDEX_FILE)


def index_path(app: Flask) -> Path:
    """The app's index file (see index_file)."""
    return index_file(app.config)


def file_key(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of the file from the next (modification time, size, inode),
    or None when there is no file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def load_index(path: Path) -> Index:
    """The index at `path`, read once per process while the file is unchanged."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise IndexUnavailable(missing_index(path)) from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        if key not in _cache:
            _cache.clear()
            _cache[key] = Index.load(path)
        return _cache[key]


CHECK_EVERY = 1.0  # seconds between two looks at the index file, per app and process


class QnaState:
    """What the extension keeps per app: the engine serving now, and the index file's version
    it was loaded from."""

    def __init__(self, engine: Engine | None, backend: Backend, problem: str | None) -> None:
        self.engine = engine
        self.backend = backend
        self.problem = problem
        self.path: Path | None = None
        self.key: tuple[int, int, int] | None = None  # the file version last loaded or tried
        self.loaded_key: tuple[int, int, int] | None = None  # the version the engine is from
        self.failed: str | None = None  # why the last version tried is not served
        self.loaded_at: float | None = None  # when this process loaded its index (time.time)
        self.loaded_mtime: float | None = None  # the loaded file's modification time
        self.checked = -math.inf  # time.monotonic() of the last look at the file
        self.reloading = False  # a reload task is queued or running
        self.lock = threading.Lock()  # guards `checked`, `reloading` and the swap


class Qna(Extension[QnaState]):
    """Flask extension: the handbook engine and the webhook's Q&A backend."""

    extension_key = "berater.qna"
    label = "qna"

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        self.load(app)

    def create(self, app: Flask) -> QnaState:
        name = app.config["QNA_BACKEND"]
        if name not in BACKENDS:
            raise RuntimeError(f"QNA_BACKEND must be one of {', '.join(BACKENDS)}, not {name!r}")
        return QnaState(None, BACKENDS[name](), None)

    def load(self, app: Flask) -> bool:
        """(Re)load the app's index file now; without one, Q&A answers 503 until it is built.
        A file that cannot be loaded while an index serves leaves that index serving. True
        when the file's index serves now."""
        state: QnaState = app.extensions[self.extension_key]
        path = index_path(app)
        key = file_key(path)
        try:
            index = load_index(path)
        except Exception as exc:  # whatever the file holds, the old index keeps serving
            problem = str(exc)
            if not isinstance(exc, IndexUnavailable):  # a file of this format, but damaged
                problem = f"{path} cannot be read as an index ({type(exc).__name__})"
            with state.lock:
                state.path, state.key = path, key  # tried again once the file changes
                state.failed = problem
                serving = state.engine is not None
                if not serving:
                    state.problem = problem
            if serving:
                log.warning("Q&A: the loaded index still serves; the new file: %s", problem)
            else:
                log.warning("Q&A is off: %s", problem)
            return False
        segment.warm(words=index.ngram_weight < 1)  # characters alone need no jieba
        old = state.engine
        encoder = old.encoder if old is not None else encoder_from_config(app.config)
        engine = Engine(index, encoder, Thresholds.from_config(app.config))
        with state.lock:
            state.engine, state.problem = engine, None  # the swap: one assignment
            state.path, state.key, state.loaded_key, state.failed = path, key, key, None
            state.loaded_at = time.time()
            state.loaded_mtime = key[0] / 1e9 if key else None
        if old is not None and old.index is not index:
            log.info("Q&A: loaded the new index (%d paragraphs)", len(index))
        return True

    def check(self, app: Flask, force: bool = False) -> None:
        """Look at the index file at most once every CHECK_EVERY seconds (`force`: now);
        when it changed, load it in a background task. Cheap: a clock read between looks."""
        state: QnaState = app.extensions[self.extension_key]
        now = time.monotonic()
        if not force and now - state.checked < CHECK_EVERY:
            return
        with state.lock:
            if state.reloading or (not force and now - state.checked < CHECK_EVERY):
                return
            state.checked = now
            path = state.path or index_path(app)
            if file_key(path) == state.key:
                return
            state.reloading = True
        from berater.ext.tasks import Tasks

        real: Flask = getattr(app, "_get_current_object", lambda: app)()  # not a proxy
        pool = real.extensions[Tasks.extension_key]
        if not pool.submit(real, "qna.reload", self._reload, (real,), 0.0):
            with state.lock:
                state.reloading = False  # tried again at the next look

    def _reload(self, app: Flask) -> None:
        state: QnaState = app.extensions[self.extension_key]
        try:
            self.load(app)
        finally:
            with state.lock:
                state.reloading = False

    def current(self, app: Flask) -> Engine | None:
        """The engine serving `app` now (None without an index), after a look at the file
        when CHECK_EVERY has passed since the last."""
        state: QnaState = app.extensions[self.extension_key]
        if time.monotonic() - state.checked >= CHECK_EVERY:
            self.check(app)
        return state.engine

    @property
    def engine(self) -> Engine:
        """The current app's engine; 503 when its index is not built."""
        engine = self.current(current_app)
        if engine is None:
            raise QnaUnavailable(self.state.problem)
        return engine

    def answer(self, question: str) -> str | None:
        """The webhook's answer to `question`, or None when the bot is not ready."""
        return self.state.backend.answer(question)

    @property
    def slow(self) -> bool:
        """Whether the current backend's answers may take seconds."""
        return bool(self.state.backend.slow)
