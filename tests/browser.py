"""A real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for the tests
that click through pages. Never `playwright install`: the tests drive Debian's Chromium.
The service sends its own Content-Security-Policy with every page (berater/http.py), so
Chromium refuses inline scripts, styles and handlers there as it will in production."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
