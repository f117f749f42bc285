"""The invitation pages in a real headless Chromium at 360×640, with the service's
Content-Security-Policy: an admin makes a link in WeChat, the invitee opens it, previews and
confirms. Screenshots in the test's tmp_path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.admin.helpers import ADMIN, holders
from tests.browser import PHONE, chromium

pytestmark = pytest.mark.browser


def refused(message) -> bool:
    """A console error other than a failed resource (the stand-in WeChat has no favicon):
    something the CSP refused, for one."""
    return message.type == "error" and not message.text.startswith("Failed to load resource")


def page_policy(response, base: str) -> str | None:
    """The Content-Security-Policy of a page of the service ("" without one); None for
    anything else (a redirect, a script, the stand-in WeChat)."""
    if not response.url.startswith(base) or response.request.resource_type != "document":
        return None
    if response.status != 200:
        return None
    return response.headers.get("content-security-policy", "")


def sign_in(page, wechat_url: str, openid: str) -> None:
    page.wait_for_url(re.compile(re.escape(wechat_url) + r"/connect/oauth2/authorize\?"))
    page.fill('input[name="openid"]', openid)
    page.click('button[type="submit"]')


def test_an_invitation_is_made_previewed_and_confirmed_in_a_phone(
    app, live_server, wechat, grant, tmp_path: Path
):
    from playwright.sync_api import expect

    grant(app, ADMIN, "admin")
    problems: list[str] = []
    policies: list[str] = []  # of every page of the service the two browsers were sent
    with chromium(PHONE) as admin_side:
        admin = admin_side.new_page()
        # Another person: a context of their own (cookies, session) in the same browser.
        invitee = admin_side.browser.new_context(locale="zh-CN", viewport=PHONE).new_page()
        for page in (admin, invitee):
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("console", lambda m: problems.append(m.text) if refused(m) else None)
            page.on("response", lambda r: policies.append(page_policy(r, live_server)))

        admin.goto(f"{live_server}/api/admin/go/link/face")
        sign_in(admin, wechat.url, ADMIN)
        expect(admin.locator("#role")).to_have_text("face")
        link = (admin.locator("#link").text_content() or "").strip()
        assert link.startswith(f"{live_server}/api/admin/auth?seq=")
        admin.screenshot(path=str(tmp_path / "01-link.png"))
        width = admin.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]  # the long link wraps

        invitee.goto(link)
        sign_in(invitee, wechat.url, "o_invitee")
        expect(invitee.locator("#role")).to_have_text("face")
        assert holders(app, "face") == []  # the preview grants nothing
        invitee.screenshot(path=str(tmp_path / "02-preview.png"))
        invitee.click("#confirm")
        expect(invitee.locator("h1")).to_contain_text("已授予")
        invitee.screenshot(path=str(tmp_path / "03-granted.png"))

    assert holders(app, "face") == ["o_invitee"]
    assert problems == []
    policies = [policy for policy in policies if policy is not None]
    assert len(policies) == 3  # the link, the preview, the grant
    assert {policy[:19] for policy in policies} == {"default-src 'self';"}  # the service's own
    print(f"screenshots: {tmp_path}")
