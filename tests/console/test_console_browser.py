"""The console's sign-in in a real headless Chromium, at a phone's and a desktop's size,
under its strict Content-Security-Policy. Screenshots in build/screenshots/<test>/."""

from __future__ import annotations

import re

import pytest

from berater.identity import roles
from tests.console.conftest import Screen, Staff

pytestmark = pytest.mark.browser


def at_wechat(screen: Screen, wechat_url: str, openid: str) -> None:
    """On the stand-in WeChat page: type `openid` and sign in."""
    page = screen.page
    page.wait_for_url(re.compile(re.escape(wechat_url) + r"/connect/oauth2/authorize\?"))
    page.fill('input[name="openid"]', openid)
    page.click('button[type="submit"]')


def test_an_office_member_signs_in_with_a_password(
    live_server: str, staff: Staff, screen: Screen
) -> None:
    from playwright.sync_api import expect

    staff.account("office", roles.ADMIN)
    screen.page.goto(f"{live_server}/admin/")
    expect(screen.page.locator("#password-form")).to_be_visible()
    screen.shot("signin")
    screen.page.fill("#username", "office")
    screen.page.fill("#password", "not-the-password")
    screen.page.click("#signin")
    expect(screen.page.locator("#error")).to_be_visible()
    screen.shot("wrong-password")
    screen.sign_in(live_server, "office")
    expect(screen.page.locator("#who")).to_have_text("office")
    expect(screen.page.locator("#who-roles")).to_contain_text("administrator")
    screen.shot("home")
    assert screen.overflow() == 0
    screen.page.click("#signout")
    expect(screen.page.locator("#password-form")).to_be_visible()
    expect(screen.page.locator("#reason")).to_have_text("signed out")
    assert screen.problems == []


def test_staff_sign_in_with_wechat_and_others_are_refused(
    live_server: str, wechat, staff: Staff, screen: Screen, second_screen: Screen
) -> None:
    from playwright.sync_api import expect

    openid = staff.wechat("o_console_admin", roles.ADMIN)
    screen.page.goto(f"{live_server}/admin/")
    screen.page.click("#wechat")
    at_wechat(screen, wechat.url, openid)
    expect(screen.page.locator("#who")).to_contain_text("微信用户")
    assert screen.page.url == f"{live_server}/admin/"
    screen.shot("home-wechat")

    other = second_screen.page
    other.goto(f"{live_server}/admin/")
    other.click("#wechat")
    at_wechat(second_screen, wechat.url, "o_a_candidate")
    expect(other.locator("#message")).to_contain_text("admin")
    expect(other.locator("#status")).to_have_text("403")
    second_screen.shot("refused")
    assert screen.problems == [] and second_screen.problems == []


def test_a_form_without_its_csrf_token_is_refused(
    live_server: str, staff: Staff, screen: Screen
) -> None:
    from playwright.sync_api import expect

    staff.account("office", roles.ADMIN)
    screen.sign_in(live_server, "office")
    # A forged form: the same button, without the hidden token.
    screen.page.evaluate("document.querySelector('input[name=csrf_token]').remove()")
    screen.page.click("#signout")
    expect(screen.page.locator("#status")).to_have_text("403")
    expect(screen.page.locator("#message")).to_contain_text("did not come from the console")
    screen.shot("csrf-refused")
    screen.page.goto(f"{live_server}/admin/")
    expect(screen.page.locator("#who")).to_have_text("office")  # nothing changed
