"""The Q&A engine's interface: `qna.answer(question)` gives the best answer or None.

The backend is chosen by QNA_BACKEND. Until the handbook engine lands, the only backend is
"placeholder", which knows no answers; callers then say the bot is getting ready.
"""

from __future__ import annotations

from typing import Protocol

from flask import Flask, current_app


class Backend(Protocol):
    # True when an answer may take seconds (a remote model): the webhook then answers
    # through the customer-service API instead of inside WeChat's 5 s reply.
    slow: bool

    def answer(self, question: str) -> str | None: ...


class PlaceholderBackend:
    """Knows nothing yet: every question is unanswered."""

    slow = False

    def answer(self, question: str) -> str | None:
        return None


BACKENDS: dict[str, type[Backend]] = {"placeholder": PlaceholderBackend}


class Qna:
    """Flask extension: the configured Q&A backend of the current app."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if "berater.qna" in app.extensions:
            raise RuntimeError("qna is already registered on this app")
        name = app.config.setdefault("QNA_BACKEND", "placeholder")
        if name not in BACKENDS:
            raise RuntimeError(f"QNA_BACKEND must be one of {', '.join(BACKENDS)}, not {name!r}")
        app.extensions["berater.qna"] = BACKENDS[name]()

    @property
    def backend(self) -> Backend:
        """The backend of the current app."""
        try:
            backend: Backend = current_app.extensions["berater.qna"]
        except KeyError:
            raise RuntimeError(
                "qna is not registered on this app; did you forget init_app?"
            ) from None
        return backend

    def answer(self, question: str) -> str | None:
        """The best answer to `question`, or None when there is none."""
        return self.backend.answer(question)

    @property
    def slow(self) -> bool:
        """Whether the current backend's answers may take seconds."""
        return bool(self.backend.slow)
