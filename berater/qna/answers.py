"""The Q&A engine of the app: the handbook index loaded once, and the webhook's backend.

At start the extension loads the index file (QNA_INDEX, built by `flask qna build`) and
jieba's dictionary, once per process: apps in one process share an unchanged file's index.
Without an index file the service still starts; the Q&A endpoints then answer 503 and the
webhook says the bot is getting ready.

QNA_BACKEND picks how the webhook answers: `lexical` (the index alone), `bert` or `hybrid`
(both slow: they ask the BERT server, so the webhook answers through the customer-service
API; when BERT is unavailable they answer from the index alone), or `placeholder` (no
answers).
"""

from __future__ import annotations

import logging
import threading
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
        engine = current_app.extensions["berater.qna"].engine
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


class QnaState:
    """What the extension keeps per app."""

    def __init__(self, engine: Engine | None, backend: Backend, problem: str | None) -> None:
        self.engine = engine
        self.backend = backend
        self.problem = problem


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

    def load(self, app: Flask) -> None:
        """(Re)load the app's index file; without one, Q&A answers 503 until it is built."""
        state: QnaState = app.extensions["berater.qna"]
        path = index_path(app)
        try:
            index = load_index(path)
        except IndexUnavailable as exc:
            state.engine, state.problem = None, str(exc)
            log.warning("Q&A is off: %s", state.problem)
            return
        segment.warm(words=index.ngram_weight < 1)  # characters alone need no jieba
        thresholds = Thresholds.from_config(app.config)
        state.engine = Engine(index, encoder_from_config(app.config), thresholds)
        state.problem = None

    @property
    def engine(self) -> Engine:
        """The current app's engine; 503 when its index is not built."""
        state = self.state
        if state.engine is None:
            raise QnaUnavailable(state.problem)
        return state.engine

    def answer(self, question: str) -> str | None:
        """The webhook's answer to `question`, or None when the bot is not ready."""
        return self.state.backend.answer(question)

    @property
    def slow(self) -> bool:
        """Whether the current backend's answers may take seconds."""
        return bool(self.state.backend.slow)
