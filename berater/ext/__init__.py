"""Extensions for what lies outside the process (crypto keys, the store, SMS, WeChat), and
the one shape every Berater extension shares."""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar, cast

from flask import Flask, current_app

S = TypeVar("S")


class Extension(Generic[S]):
    """A Flask extension whose per-app state lives in `app.extensions[extension_key]`.

    Subclasses name `extension_key` and `label` and build the state in `create(app)`; the instance
    itself holds nothing per app, so one instance serves every app a process builds.
    """

    extension_key: ClassVar[str]
    label: ClassVar[str]

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build this app's state; a second registration on one app is a mistake."""
        if self.extension_key in app.extensions:
            raise RuntimeError(f"{self.label} is already registered on this app")
        app.extensions[self.extension_key] = self.create(app)

    def create(self, app: Flask) -> S:
        """The state for `app`, from its settings."""
        raise NotImplementedError

    @property
    def state(self) -> S:
        """The current app's state."""
        try:
            return cast(S, current_app.extensions[self.extension_key])
        except KeyError:
            raise RuntimeError(
                f"{self.label} is not registered on this app; did you forget init_app?"
            ) from None
