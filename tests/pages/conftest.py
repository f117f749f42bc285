"""Fixtures of the page tests: the app with the console SMS backend (its pages carry the
service's CSP), and a
phone-sized Chromium page that saves screenshots and records what went wrong in it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from tests.browser import PHONE, chromium

TIMEOUT = 10


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Extra settings of the app: `@pytest.mark.parametrize("settings", [{...}], indirect=True)`."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def app(make_app: Callable[..., Flask], qna_index: Path, settings: dict[str, Any]) -> Flask:
    """Codes on the console page (/dev/sms), as in the local sandbox; the test handbook."""
    defaults = {"SMS_BACKEND": "console", "QNA_INDEX": str(qna_index), "QNA_MIN_SCORE": 0.005}
    return make_app(**{**defaults, **settings})


@dataclass
class Phone:
    """A Chromium page 360×640: `shot(name)` saves a screenshot of the viewport into the
    test's tmp_path; `problems` collects uncaught script errors and console errors (a script,
    style or handler the CSP refused is one)."""

    page: Any  # playwright.sync_api.Page
    folder: Path
    problems: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        path = self.folder / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        self.shots.append(path)
        return path

    def assert_clean(self) -> None:
        assert self.problems == []

    def overflow(self) -> int:
        """How far the page is wider than the viewport (0: no horizontal scrolling)."""
        return int(
            self.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
        )


@pytest.fixture
def phone(tmp_path: Path, live_server: str) -> Iterator[Phone]:
    with chromium(PHONE) as context:
        page = context.new_page()
        found = Phone(page, tmp_path)
        page.on("pageerror", lambda exc: found.problems.append(f"script error: {exc}"))

        def console(message: Any) -> None:
            # A 4xx answer of the API is logged as a failed resource; the tests check what
            # the page does with it. Anything else (a refused inline script or style) counts.
            if message.type == "error" and not message.text.startswith("Failed to load resource"):
                found.problems.append(f"console: {message.text}")

        page.on("console", console)
        try:
            yield found
        finally:
            found.shot("end")
            print(f"screenshots: {tmp_path}")


def sign_in_at_wechat(phone: Phone, wechat_url: str, openid: str) -> None:
    """On the stand-in WeChat page: type `openid` and sign in."""
    page = phone.page
    page.wait_for_url(re.compile(re.escape(wechat_url) + r"/connect/oauth2/authorize\?"))
    page.fill('input[name="openid"]', openid)
    page.click('button[type="submit"]')


def last_code(base: str, phone_number: str) -> str:
    """The newest code the console backend sent to `phone_number`, from /dev/sms."""
    listing = requests.get(f"{base}/dev/sms", params={"format": "json"}, timeout=TIMEOUT)
    for message in listing.json()["data"]["messages"]:
        if message["phone"] == phone_number:
            return str(message["code"])
    raise AssertionError(f"no code was sent to {phone_number}")
