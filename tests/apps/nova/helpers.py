"""Rows and tokens the nova tests share."""

from __future__ import annotations

import time
from collections.abc import Callable

from berater.db import db
from tests import factories
from tests.helpers import bearer, token_for

FACE_APP = {"Authorization": "Bearer face dev-face-app-token"}
PHONE = "13912345678"
GOOD = {"phone": PHONE, "qq": "123456789", "intro": "喜欢编程和天文。"}


def make_student(openid: str, **source: object) -> None:
    """A bound student whose admission record has the given fields; committed."""
    factories.student(openid, factories.source_student(**source))
    db.session.commit()


def make_nova_admin(openid: str) -> None:
    factories.privilege(openid, "nova_admin")
    db.session.commit()


def auth(client, openid: str) -> dict[str, str]:
    return bearer(token_for(client, openid))


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll until `condition()` holds (background sends), False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
