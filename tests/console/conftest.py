"""Fixtures of the console tests: the app over real HTTP, staff to sign in as, and real
headless Chromium pages at a phone's and a desktop's size that save their screenshots.

Screenshots are kept after the run as artifacts, in build/screenshots/<test>/ (or under
$BERATER_SCREENSHOTS), one file per `shot(name)`, numbered in the order taken.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from berater.db import db
from berater.identity.subjects import ACCOUNT_PREFIX
from tests import factories
from tests.browser import PHONE, chromium

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = {"width": 1280, "height": 800}
SIZES = {"phone": PHONE, "desktop": DESKTOP}
PASSWORD = "console-test-pass-2026"
TIMEOUT = 10


def screenshot_root() -> Path:
    return Path(os.environ.get("BERATER_SCREENSHOTS") or ROOT / "build" / "screenshots")


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Extra settings of the app: `@pytest.mark.parametrize("settings", [{...}], indirect=True)`."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def app(make_app: Callable[..., Flask], settings: dict[str, Any]) -> Flask:
    return make_app(**{"SMS_BACKEND": "console", **settings})


@dataclass
class Staff:
    """Make people who may (or may not) use the console, in the app's database."""

    app: Flask

    def account(self, username: str, *roles: str, disabled: bool = False) -> str:
        """A password account holding `roles`; returns its username."""
        with self.app.app_context():
            factories.auth_user(username, PASSWORD, disabled=disabled)
            for role in roles:
                factories.privilege(f"{ACCOUNT_PREFIX}{username}", role)
            db.session.commit()
        return username

    def wechat(self, openid: str, *roles: str) -> str:
        """A WeChat user holding `roles`; returns the openid."""
        with self.app.app_context():
            for role in roles:
                factories.privilege(openid, role)
            db.session.commit()
        return openid


@pytest.fixture
def staff(app: Flask) -> Staff:
    return Staff(app)


def send_form(http: requests.Session, url: str, csrf: str, **fields: Any) -> requests.Response:
    """POST a console form with the CSRF token `csrf`; the answer, not followed."""
    return http.post(
        url, data={"csrf_token": csrf, **fields}, allow_redirects=False, timeout=TIMEOUT
    )


def post_sign_in(
    http: requests.Session,
    base: str,
    username: str,
    password: str = PASSWORD,
    next_page: str | None = None,
) -> requests.Response:
    """Fill in and send the console's password form in `http`; the answer, not followed."""
    page = http.get(f"{base}/admin/signin", allow_redirects=False, timeout=TIMEOUT)
    form = {"username": username, "password": password}
    if next_page is not None:
        form["next"] = next_page
    return send_form(http, f"{base}/admin/signin", csrf_of(page.text), **form)


def sign_in_http(base: str, username: str, password: str = PASSWORD) -> requests.Session:
    """A `requests` browser signed in to the console with a password account."""
    http = requests.Session()
    answer = post_sign_in(http, base, username, password)
    assert answer.status_code == 303, answer.text
    return http


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a console page."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


@dataclass
class Screen:
    """A Chromium page of one size: `shot(name)` saves a screenshot of the whole page;
    `problems` collects script errors and console errors (a script, style or handler the
    CSP refused is one)."""

    page: Any  # playwright.sync_api.Page
    size: str
    folder: Path
    problems: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        path = self.folder / f"{self.size}-{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path

    def overflow(self) -> int:
        """How far the page is wider than the viewport (0: no horizontal scrolling)."""
        return int(
            self.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
        )

    def sign_in(self, base: str, username: str, password: str = PASSWORD) -> None:
        """Sign in to the console with a password account, from its start page."""
        self.page.goto(f"{base}/admin/")
        self.page.fill("#username", username)
        self.page.fill("#password", password)
        self.page.click("#signin")
        self.page.wait_for_selector("#who")


def _watch(page: Any, problems: list[str]) -> None:
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))

    def console(message: Any) -> None:
        # A 4xx answer is logged as a failed resource; the tests check what the page does.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console: {message.text}")

    page.on("console", console)


@pytest.fixture(params=sorted(SIZES))
def screen(request: pytest.FixtureRequest, live_server: str) -> Iterator[Screen]:
    """A Chromium page at a phone's size and, in a second run of the test, a desktop's."""
    size = str(request.param)
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    folder = screenshot_root() / name
    folder.mkdir(parents=True, exist_ok=True)
    with chromium(SIZES[size]) as context:
        page = context.new_page()
        found = Screen(page, size, folder)
        _watch(page, found.problems)
        try:
            yield found
        finally:
            found.shot("end")
            print(f"screenshots: {folder}")


@pytest.fixture
def second_screen(screen: Screen) -> Iterator[Screen]:
    """Another person's browser (own cookies and session), the same size as `screen`."""
    context = screen.page.context.browser.new_context(locale="zh-CN", viewport=SIZES[screen.size])
    page = context.new_page()
    found = Screen(page, f"{screen.size}-second", screen.folder)
    _watch(page, found.problems)
    try:
        yield found
    finally:
        found.shot("end")
        context.close()
