"""A real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for the tests
that click through pages. Never `playwright install`: the tests drive Debian's Chromium.
The service sends its own Content-Security-Policy with every page (berater/http.py), so
Chromium refuses inline scripts, styles and handlers there as it will in production.

`chromium(viewport)` gives a fresh browser context; `with page(tmp_path) as (page, seen):`
a fresh page at the size of WeChat's in-app browser that records what it saw: every URL it
asked for (`seen.requests`; `seen.blocked` those its Content-Security-Policy refused before
they left) and its uncaught script and console errors (`seen.errors`); a screenshot of
wherever it ends is saved to tmp_path/end.png."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000
PHONE = {"width": 360, "height": 640}  # WeChat's in-app browser on a common phone
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@contextmanager
def chromium(viewport: dict[str, int], locale: str = "zh-CN", **options: Any) -> Iterator[Any]:
    """A fresh browser context (playwright.sync_api.BrowserContext)."""
    if not (CHROMIUM.is_file() and CHROMIUM.stat().st_mode & 0o111):
        pytest.fail(
            f"{CHROMIUM} not found: install the Debian package chromium "
            "(apt-get install -y chromium); scripts/test.sh installs it. "
            "Do not use `playwright install`: the tests drive Debian's Chromium."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(locale=locale, viewport=viewport, **options)
        context.set_default_timeout(WAIT_MS)
        try:
            yield context
        finally:
            context.close()
            browser.close()


@dataclass
class Seen:
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # refused by the page's own policy

    def left(self) -> list[str]:
        """Requests to another machine the browser did not refuse itself (policy)."""
        return [url for url in self.off_loopback() if url not in self.blocked]

    def off_loopback(self) -> list[str]:
        """Requested URLs that would leave this machine (data: and blob: stay in the page)."""
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "blob")
            and urlsplit(url).hostname not in LOOPBACK
        ]


@contextmanager
def page(tmp_path: Path, viewport: dict[str, int] | None = None) -> Iterator[tuple[Any, Seen]]:
    """A fresh page (playwright.sync_api.Page) in a new browser, and what it has seen."""
    seen = Seen()
    with chromium(viewport or PHONE) as context:
        opened = context.new_page()
        opened.on("request", lambda request: seen.requests.append(request.url))
        opened.on(
            "requestfailed",
            lambda request: (
                seen.blocked.append(request.url)
                if "csp" in (request.failure or "").lower()
                else None
            ),
        )
        opened.on("pageerror", lambda exc: seen.errors.append(f"pageerror: {exc}"))
        opened.on(
            "console",
            lambda msg: seen.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        try:
            yield opened, seen
        finally:
            opened.screenshot(path=str(tmp_path / "end.png"))
            print(f"screenshot: {tmp_path / 'end.png'}")
