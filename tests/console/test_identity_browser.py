"""The console's roles, invitations, password accounts and audit trail in a real headless
Chromium, at a phone's and a desktop's size, under the console's strict policy. Screenshots
in build/screenshots/<test>/."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

import pytest
import segno
from flask import Flask

from berater.db import db
from berater.identity import audit, roles
from tests.admin.helpers import audit_rows, holders
from tests.admin.test_qr import modules
from tests.console.conftest import Screen, Staff

pytestmark = pytest.mark.browser


def at_wechat(screen: Screen, wechat_url: str, openid: str) -> None:
    """On the stand-in WeChat page: type `openid` and sign in."""
    page = screen.page
    page.wait_for_url(re.compile(re.escape(wechat_url) + r"/connect/oauth2/authorize\?"))
    page.fill('input[name="openid"]', openid)
    page.click('button[type="submit"]')


def nav_to(screen: Screen, label: str) -> None:
    """Open a section from the navigation, as a person would."""
    screen.page.click(f"nav.sections a:has-text('{label}')")


def account_state(app: Flask, username: str) -> bool:
    from berater.models import AuthUser

    with app.app_context():
        disabled = db.session.get(AuthUser, username).disabled
        db.session.remove()
    return disabled


# -- roles -------------------------------------------------------------------------------------


def test_roles_show_holders_their_audit_rows_and_revoke_after_a_confirmation(
    app: Flask, live_server: str, staff: Staff, screen: Screen
) -> None:
    from playwright.sync_api import expect

    staff.account("office", roles.ADMIN)
    holder = staff.wechat("o_photo_desk_0123456789abcdef", roles.FACE)
    staff.wechat("o_club_lead_0123456789abcdef", roles.NOVA_ADMIN)
    with app.app_context():
        audit.record("cli", audit.GRANT, holder, roles.FACE)
        db.session.commit()
    page = screen.page
    screen.sign_in(live_server, "office")
    nav_to(screen, "Roles")

    face = page.locator("#role-face")
    expect(face.locator(f"li[data-subject='{holder}']")).to_be_visible()
    expect(page.locator("#role-nova_admin li")).to_have_count(1)
    expect(page.locator("#role-admin li[data-subject='user:office'] .tag")).to_contain_text("you")
    screen.shot("roles")
    assert screen.overflow() == 0

    face.locator(f"li[data-subject='{holder}'] a:has-text('Audit')").click()
    expect(page.locator("#f-target")).to_have_value(holder)
    expect(page.locator("#rows tbody tr")).to_have_count(1)
    screen.shot("holder-audit")
    page.go_back()

    face.locator(f"li[data-subject='{holder}'] button.revoke").click()
    expect(page.locator("#confirm-subject")).to_contain_text(holder)
    screen.shot("revoke-confirm")
    assert screen.overflow() == 0
    assert holders(app, roles.FACE) == [holder]  # asking grants and revokes nothing
    page.click("#confirm")

    expect(page.locator("[data-notice=done]")).to_contain_text("revoked")
    expect(page.locator("#role-face .empty")).to_be_visible()
    screen.shot("revoked")
    assert holders(app, roles.FACE) == []
    assert ("user:office", "revoke", holder, "face", "127.0.0.1") in audit_rows(app, "revoke")
    assert screen.problems == []


def test_keeping_a_role_on_the_confirmation_page_changes_nothing(
    app: Flask, live_server: str, staff: Staff, screen: Screen
) -> None:
    staff.account("office", roles.ADMIN)
    holder = staff.wechat("o_stays_0123456789abcdef", roles.NOVA_ADMIN)
    screen.sign_in(live_server, "office")
    screen.page.goto(f"{live_server}/admin/roles")
    screen.page.click(f"li[data-subject='{holder}'] button.revoke")
    screen.page.click("#cancel")
    screen.page.wait_for_selector(f"li[data-subject='{holder}']")
    assert holders(app, roles.NOVA_ADMIN) == [holder]
    assert audit_rows(app, "revoke") == []


# -- invitations -------------------------------------------------------------------------------


def test_an_invitation_with_its_qr_code_is_accepted_in_a_second_browser(
    app: Flask, live_server: str, wechat, staff: Staff, screen: Screen, second_screen: Screen
) -> None:
    from playwright.sync_api import expect

    staff.account("office", roles.ADMIN)
    page = screen.page
    screen.sign_in(live_server, "office")
    nav_to(screen, "Invitations")
    expect(page.locator("#no-pending")).to_be_visible()
    screen.shot("invitations")
    page.select_option("#role", roles.NOVA_ADMIN)
    page.click("#make-link")

    expect(page.locator("#link-role")).to_have_attribute("data-role", roles.NOVA_ADMIN)
    link = (page.locator("#link").text_content() or "").strip()
    assert link.startswith(f"{live_server}/api/admin/auth?seq=")
    svg = page.locator("#qr svg").evaluate("svg => svg.outerHTML")
    assert modules(svg) == [list(row) for row in segno.make(link, error="m", micro=False).matrix]
    box = page.locator("#qr svg").bounding_box()
    assert box is not None and box["width"] >= 200 and abs(box["width"] - box["height"]) < 1
    screen.shot("link-and-qr")
    assert screen.overflow() == 0

    page.click("#back")
    expect(page.locator("#pending tbody tr")).to_have_count(1)
    expect(page.locator("#pending")).to_contain_text("nova_admin")
    assert link.split("seq=")[1] not in page.content()  # the list never shows the link
    screen.shot("pending")

    invitee = second_screen.page
    invitee.goto(link)
    at_wechat(second_screen, wechat.url, "o_new_club_lead")
    expect(invitee.locator("#role")).to_have_text(roles.NOVA_ADMIN)
    second_screen.shot("preview")
    invitee.click("#confirm")
    expect(invitee.locator("h1")).to_contain_text("已授予")
    second_screen.shot("granted")

    assert holders(app, roles.NOVA_ADMIN) == ["o_new_club_lead"]
    page.reload()
    expect(page.locator("#no-pending")).to_be_visible()
    nav_to(screen, "Roles")
    expect(page.locator("li[data-subject='o_new_club_lead']")).to_be_visible()
    actions = [row[1] for row in audit_rows(app)]
    assert actions == ["invite_create", "grant"]
    assert screen.problems == [] and second_screen.problems == []


def test_a_cancelled_invitation_can_no_longer_be_opened(
    app: Flask, live_server: str, wechat, staff: Staff, screen: Screen, second_screen: Screen
) -> None:
    from playwright.sync_api import expect

    staff.account("office", roles.ADMIN)
    page = screen.page
    screen.sign_in(live_server, "office")
    page.goto(f"{live_server}/admin/invitations")
    page.select_option("#role", roles.FACE)
    page.click("#make-link")
    link = (page.locator("#link").text_content() or "").strip()
    page.click("#back")

    questions: list[str] = []

    def answer(dialog, accept: bool) -> None:
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    page.click("#pending button.cancel")
    expect(page.locator("#pending tbody tr")).to_have_count(1)  # "no": nothing happened
    page.once("dialog", lambda dialog: answer(dialog, True))
    page.click("#pending button.cancel")
    expect(page.locator("[data-notice=done]")).to_contain_text("cancelled")
    expect(page.locator("#no-pending")).to_be_visible()
    screen.shot("cancelled")
    assert len(questions) == 2 and "face" in questions[0]
    assert [row[1] for row in audit_rows(app)] == ["invite_create", "invite_cancel"]

    second_screen.page.goto(link)
    expect(second_screen.page.locator("#message")).to_contain_text("no such invitation")
    second_screen.shot("cancelled-link")
    assert holders(app, roles.FACE) == []


# -- password accounts -------------------------------------------------------------------------


def test_accounts_are_created_reset_disabled_and_enabled(
    app: Flask, live_server: str, staff: Staff, screen: Screen, second_screen: Screen
) -> None:
    from playwright.sync_api import expect

    staff.account("office", roles.ADMIN)
    page = screen.page
    screen.sign_in(live_server, "office")
    nav_to(screen, "Accounts")
    rules = page.locator("#create-form #rules")
    expect(rules).to_contain_text("8")
    expect(rules).to_contain_text("128")
    expect(rules).to_contain_text("common password")
    expect(rules).to_contain_text("username")
    screen.shot("accounts")
    assert screen.overflow() == 0

    page.fill("#username", "Photo-Desk")
    page.fill("#password", "photo-desk-2026")
    page.fill("#password2", "photo-desk-2026")
    page.click("#create")
    expect(page.locator("#create-error")).to_contain_text("too easy to guess")
    expect(page.locator("#username")).to_have_value("Photo-Desk")  # kept; the password is not
    expect(page.locator("#password")).to_have_value("")
    screen.shot("weak-password")
    page.fill("#password", "Gentle-Harbour-71")
    page.fill("#password2", "Gentle-Harbour-71")
    page.click("#create")
    expect(page.locator("[data-notice=done]")).to_contain_text("photo-desk")
    row = page.locator("tr[data-username='photo-desk']")
    expect(row.locator(".state")).to_contain_text("active")
    screen.shot("created")

    row.locator("a:has-text('Reset password')").click()
    expect(page.locator("#account")).to_have_text("photo-desk")
    expect(page.locator("#rules")).to_contain_text("8")
    page.fill("#password", "Quiet-Meadow-42")
    page.fill("#password2", "Quiet-Meadow-43")
    page.click("#reset")
    expect(page.locator("#reset-error")).to_contain_text("differ")
    page.fill("#password", "Quiet-Meadow-42")
    page.fill("#password2", "Quiet-Meadow-42")
    screen.shot("reset")
    page.click("#reset")
    expect(page.locator("[data-notice=done]")).to_contain_text("signed out everywhere")

    # The new password works (a second browser signs in and is refused only for its role).
    other = second_screen.page
    other.goto(f"{live_server}/admin/signin")
    other.fill("#username", "photo-desk")
    other.fill("#password", "Quiet-Meadow-42")
    other.click("#signin")
    expect(other.locator("#error")).to_contain_text("admin or nova_admin")

    row.locator("button.disable").click()
    expect(page.locator("#confirm-account")).to_have_text("photo-desk")
    screen.shot("disable-confirm")
    assert account_state(app, "photo-desk") is False
    page.click("#confirm")
    expect(row.locator(".state")).to_contain_text("disabled")
    assert account_state(app, "photo-desk") is True
    screen.shot("disabled")
    row.locator("button.enable").click()
    expect(row.locator(".state")).to_contain_text("active")
    assert account_state(app, "photo-desk") is False

    assert [r[1] for r in audit_rows(app)] == [
        "user_create",
        "user_reset",
        "user_disable",
        "user_enable",
    ]
    assert all(r[0] == "user:office" for r in audit_rows(app))
    assert screen.problems == []


# -- the audit trail ---------------------------------------------------------------------------


def test_the_audit_trail_is_filtered_paged_and_downloaded(
    app: Flask, live_server: str, staff: Staff, screen: Screen
) -> None:
    from playwright.sync_api import expect

    staff.account("office", roles.ADMIN)
    with app.app_context():
        for day in range(1, 4):
            for i in range(30):
                row = audit.record("cli", audit.GRANT, f"o_person_{day}_{i:02d}", roles.FACE)
                row.at = datetime(2026, 3, day, 2, i)  # 10:xx Beijing time
        audit.record("o_formula", audit.REVOKE, "=cmd|' /C calc'!A0", roles.FACE)
        db.session.commit()
    page = screen.page
    screen.sign_in(live_server, "office")
    nav_to(screen, "Audit trail")
    expect(page.locator("#total")).to_have_text("91")
    expect(page.locator("#rows tbody tr")).to_have_count(50)
    screen.shot("audit")
    assert screen.overflow() == 0
    page.click("#older")
    expect(page.locator("#rows tbody tr")).to_have_count(41)

    page.select_option("#f-action", audit.GRANT)
    page.fill("#f-from", "2026-03-02")
    page.fill("#f-to", "2026-03-02")
    page.click("#apply")
    expect(page.locator("#total")).to_have_text("30")
    expect(page.locator("#rows tbody tr").first).to_contain_text("2026-03-02 10:29:00")
    screen.shot("filtered")

    with page.expect_download() as download:
        page.click("#export")
    body = download.value.path().read_bytes()
    lines = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert lines[0][:3] == ["时间 (北京时间)", "操作人", "操作"]
    assert len(lines) == 31
    assert {line[3] for line in lines[1:]} == {f"o_person_2_{i:02d}" for i in range(30)}

    page.goto(f"{live_server}/admin/audit?actor=o_formula")
    with page.expect_download() as download:
        page.click("#export")
    lines = list(csv.reader(io.StringIO(download.value.path().read_bytes().decode("utf-8-sig"))))
    assert lines[1][3] == "'=cmd|' /C calc'!A0"  # a spreadsheet shows it, never runs it

    page.goto(f"{live_server}/admin/audit?from=2026-03-05&to=2026-03-01")
    expect(page.locator("#e-to")).to_be_visible()
    screen.shot("bad-filter")
    assert screen.problems == []


# -- who may, and how ----------------------------------------------------------------------------


def test_a_club_admin_sees_none_of_these_sections_and_is_refused(
    live_server: str, staff: Staff, screen: Screen
) -> None:
    from playwright.sync_api import expect

    staff.account("club", roles.NOVA_ADMIN)
    screen.sign_in(live_server, "club")
    for label in ("Roles", "Invitations", "Accounts", "Audit trail"):
        expect(screen.page.locator(f"nav.sections a:has-text('{label}')")).to_have_count(0)
    for path in ("roles", "invitations", "accounts", "audit", "audit/export.csv"):
        screen.page.goto(f"{live_server}/admin/{path}")
        expect(screen.page.locator("#status")).to_have_text("403")
    screen.shot("refused")


def test_a_change_without_its_csrf_token_is_refused(
    app: Flask, live_server: str, staff: Staff, screen: Screen
) -> None:
    from playwright.sync_api import expect

    staff.account("office", roles.ADMIN)
    holder = staff.wechat("o_kept_0123456789abcdef", roles.FACE)
    page = screen.page
    screen.sign_in(live_server, "office")
    page.goto(f"{live_server}/admin/roles")
    page.click(f"li[data-subject='{holder}'] button.revoke")
    # A forged confirmation: the same form without its hidden token.
    page.evaluate("document.querySelector('#confirm').form.csrf_token.remove()")
    page.click("#confirm")
    expect(page.locator("#status")).to_have_text("403")
    expect(page.locator("#message")).to_contain_text("did not come from the console")
    screen.shot("csrf-refused")
    assert holders(app, roles.FACE) == [holder]

    page.goto(f"{live_server}/admin/accounts")
    page.fill("#username", "forged")
    page.fill("#password", "Gentle-Harbour-71")
    page.fill("#password2", "Gentle-Harbour-71")
    page.evaluate("document.querySelector('#create-form').csrf_token.remove()")
    page.click("#create")
    expect(page.locator("#status")).to_have_text("403")
    assert audit_rows(app) == []
