"""A newcomer clicks through the sign-in in a real headless Chromium (Debian's /usr/bin/chromium).

Start page -> "Sign in and open the demo app" -> the stand-in WeChat page -> pick a user ->
the demo partner app shows who is signed in -> sign out -> the same token is refused.
Screenshots of each step land in the test's tmp_path (printed on failure).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from berater.db import db
from tests import factories
from tests.browser import chromium

# Playwright raises no warning here, so pyproject's filterwarnings = error needs no exception.
pytestmark = pytest.mark.browser


@pytest.fixture
def page(tmp_path: Path) -> Iterator:  # playwright.sync_api.Page
    """A fresh Chromium page; a screenshot of wherever it ends is saved to tmp_path."""
    with chromium({"width": 800, "height": 900}) as context:
        page = context.new_page()
        try:
            yield page
        finally:
            shot = tmp_path / "end.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")


def test_a_newcomer_signs_in_to_the_demo_app_and_out_again(
    app, live_server, wechat, page, tmp_path
):
    from playwright.sync_api import expect

    with app.app_context():
        source = factories.source_student()
        factories.student("o_dev_student", source)
        stuid = source.stuid
        db.session.commit()
    script_errors: list[str] = []  # uncaught JavaScript errors (a 404 favicon is not one)
    blocked: list[str] = []  # what the service's Content-Security-Policy refused
    page.on("pageerror", lambda exc: script_errors.append(str(exc)))
    page.on(
        "console",
        lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None,
    )

    start = page.goto(f"{live_server}/")
    assert start is not None
    assert start.headers["content-security-policy"].startswith("default-src 'self';")
    expect(page.locator("h1")).to_contain_text("Berater")
    # The stylesheet, a file of the service, applied: the start page is not bare HTML.
    assert page.locator("body").evaluate("e => getComputedStyle(e).margin") == "0px"
    page.screenshot(path=str(tmp_path / "start.png"), full_page=True)
    page.click("#signin-demo")

    page.wait_for_url(re.compile(re.escape(wechat.url) + r"/connect/oauth2/authorize\?"))
    expect(page.locator("h1")).to_contain_text("WeChat sign-in (stand-in)")
    page.screenshot(path=str(tmp_path / "authorize.png"), full_page=True)
    page.click('button[name="preset"][value="o_dev_student"]')

    status = page.locator("#status")
    expect(status).to_have_text("Signed in")
    assert page.url == f"{live_server}/demo/app"  # the fragment with the token is gone
    assert "token" not in page.url
    identity = page.locator("#identity")
    expect(identity).to_contain_text('"kind": "wechat"')
    data = json.loads(identity.text_content() or "null")
    assert data["kind"] == "wechat"
    assert data["student"] is True
    assert data["stuid"] == stuid
    assert "o_dev_student" not in (identity.text_content() or "")  # never the openid
    page.screenshot(path=str(tmp_path / "demo_app.png"), full_page=True)

    expect(page.locator("#signout")).to_be_visible()
    page.click("#signout")
    expect(status).to_have_text(re.compile(r"^Refused"))
    expect(page.locator("#signout")).to_be_hidden()
    assert script_errors == []
    assert blocked == []
