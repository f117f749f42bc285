"""The pages students and candidates use, clicked through in a real headless Chromium at
360×640 against the live service, the stand-in WeChat and the console SMS backend, with the
service's Content-Security-Policy on every page. Each test saves screenshots into its
tmp_path (printed at the end) and fails on a script error or a refused script or style.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from flask import Flask

from berater.db import db
from berater.models import Candidate, Student
from berater.wechat import menu as menus
from tests import factories
from tests.browser import chromium
from tests.helpers import bearer
from tests.pages.conftest import TIMEOUT, Phone, last_code, sign_in_at_wechat

pytestmark = pytest.mark.browser

NO_MATCH = "身份证号码和学号（或录取号）对不上，或者不在录取名单中。请核对后再试。"


def expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def bound_student(app: Flask, openid: str | None = None, **fields: Any) -> dict[str, str]:
    """A row of the admission list (bound to `openid` when given)."""
    with app.app_context():
        row = factories.source_student(**fields)
        if openid:
            factories.student(openid, row)
        found = {
            "id_card": row.id_card,
            "stuid": row.stuid or "",
            "admission_id": row.admission_id or "",
        }
        db.session.commit()
    return found


def send_code(phone: Phone, number: str) -> None:
    page = phone.page
    page.fill("#f-phone", number)
    page.click("[data-send-code]")
    expect()(page.locator("#f-code-sent")).to_contain_text("验证码已发送至")


def open_registration(
    phone: Phone, base: str, wechat_url: str, openid: str, kind: str = "student"
) -> None:
    """From the menu's landing for `kind`, through WeChat, to its registration page."""
    phone.page.goto(f"{base}/?type={kind}")
    sign_in_at_wechat(phone, wechat_url, openid)
    phone.page.wait_for_url(re.compile(rf"/register/{kind}$"))


def verify_by_sms(phone: Phone, base: str, number: str) -> None:
    """Ask for a code for `number` and type it in, as read from the dev SMS page's store."""
    send_code(phone, number)
    phone.page.fill("#f-code", last_code(base, number))


def who(base: str, page: Any) -> dict[str, Any]:
    """What the API says about the token this tab holds."""
    token = page.evaluate("sessionStorage.getItem('berater.token')")
    answer = requests.get(f"{base}/api/token", headers=bearer(token), timeout=TIMEOUT)
    return answer.json()["data"]


# -- the student journey ----------------------------------------------------------------------


def test_a_student_goes_from_the_menu_to_the_partner_app(app, live_server, wechat, phone):
    row = bound_student(app)
    with app.app_context():
        entry = {"type": "oauth", "name": "新生报到", "target": "student"}
        menu = menus.build({"button": [{**entry, "url": f"{live_server}/demo/app"}]})
    page = phone.page

    page.goto(menu["button"][0]["url"])  # the menu item, as WeChat opens it
    sign_in_at_wechat(phone, wechat.url, "o_new_student")
    page.wait_for_url(re.compile(r"/register/student\?next="))
    assert "token" not in page.url  # the fragment is gone from the address bar
    expect()(page.locator("h1")).to_have_text("绑定学生身份")
    expect()(page.locator("#dev-sms")).to_be_visible()
    phone.shot("register")

    send_code(phone, "13812345678")
    button = page.locator("[data-send-code]")
    expect()(button).to_be_disabled()
    expect()(button).to_have_text(re.compile(r"^\d+ 秒后可重发$"))
    seconds = int(button.text_content().split()[0])
    assert 55 <= seconds <= 60
    expect()(page.locator("#f-code-sent")).to_have_text(
        "验证码已发送至 138****5678，5 分钟内有效。"
    )

    # The newcomer reads the code on the console page, in another tab.
    sms = page.context.new_page()
    sms.goto(f"{live_server}/dev/sms")
    code = sms.locator("table.codes tbody tr").first.locator("code").text_content()
    assert code == last_code(live_server, "13812345678")
    sms.close()

    page.fill("#f-code", code)
    page.fill("#f-id_card", row["id_card"].lower())
    page.fill("#f-id", row["admission_id"])
    phone.shot("filled")
    page.click("button[type=submit]")

    page.wait_for_url(f"{live_server}/demo/app")
    expect()(page.locator("#status")).to_have_text("Signed in")
    identity = page.locator("#identity")
    expect()(identity).to_contain_text('"student": true')
    expect()(identity).to_contain_text(row["stuid"])
    phone.shot("landed")
    with app.app_context():
        assert db.session.get(Student, "o_new_student").phone == "13812345678"
    phone.assert_clean()


def test_a_bound_student_goes_straight_on_and_a_refreshed_callback_restarts(
    app, live_server, wechat, phone
):
    bound_student(app, "o_bound")
    page = phone.page
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if "/signin/callback" in r.url else None)

    page.goto(f"{live_server}/?type=student&url=%2Fdemo%2Fapp")
    sign_in_at_wechat(phone, wechat.url, "o_bound")
    page.wait_for_url(f"{live_server}/demo/app")
    expect()(page.locator("#status")).to_have_text("Signed in")

    # Back to the used callback (a refresh, the back button): WeChat again, not an error.
    page.goto(callbacks[-1])
    sign_in_at_wechat(phone, wechat.url, "o_bound")
    page.wait_for_url(f"{live_server}/demo/app")
    expect()(page.locator("#status")).to_have_text("Signed in")
    phone.shot("landed-again")
    phone.assert_clean()


# -- the candidate journey --------------------------------------------------------------------


def test_a_candidate_registers_and_lands_in_the_partner_app(app, live_server, wechat, phone):
    page = phone.page
    page.goto(f"{live_server}/?type=candidate&url={live_server}/demo/app")
    sign_in_at_wechat(phone, wechat.url, "o_new_candidate")
    page.wait_for_url(re.compile(r"/register/candidate\?next="))
    expect()(page.locator("h1")).to_have_text("考生信息登记")

    provinces = page.locator("#f-province option").all_text_contents()
    assert provinces[0] == "请选择" and len(provinces[1:]) == 34
    assert {"北京", "内蒙古", "香港", "澳门", "台湾", "新疆"} <= set(provinces)
    subjects = page.locator("#f-subject option").all_text_contents()[1:]
    assert subjects == app.config["CANDIDATE_SUBJECTS"]
    assert page.get_attribute("#f-score", "max") == "750"
    phone.shot("register")

    # Nothing filled: each blank is named beside its field, and nothing is sent.
    page.click("button[type=submit]")
    expect()(page.locator("#f-phone-error")).to_have_text("请输入手机号码。")
    expect()(page.locator("#f-code-error")).to_have_text("请输入短信验证码。")
    expect()(page.locator("#f-name-error")).to_have_text("请输入姓名。")
    expect()(page.locator("#f-province-error")).to_have_text("请选择省份。")
    expect()(page.locator("#f-score-error")).to_have_text("请输入分数。")
    assert page.get_attribute("#f-name", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "f-phone"
    phone.shot("blanks")

    send_code(phone, "13912345678")
    page.fill("#f-code", last_code(live_server, "13912345678"))
    page.fill("#f-name", "李同学")
    page.select_option("#f-province", "内蒙古")
    page.fill("#f-city", "呼和浩特")
    page.fill("#f-score", "751")
    page.select_option("#f-subject", "物理类")
    page.click("button[type=submit]")
    expect()(page.locator("#f-score-error")).to_have_text("请输入 0 到 750 之间的分数。")

    page.fill("#f-score", "612.5")
    phone.shot("filled")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/demo/app")
    expect()(page.locator("#identity")).to_contain_text('"candidate": true')
    phone.shot("landed")
    with app.app_context():
        row = db.session.get(Candidate, "o_new_candidate")
        assert (row.province, row.city, row.score, row.subject) == (
            "内蒙古",
            "呼和浩特",
            612.5,
            "物理类",
        )
    phone.assert_clean()


# -- what goes wrong --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings", [{}, {"LEGACY_STATUS_200": True}], indirect=True, ids=["status", "legacy"]
)
def test_a_wrong_code_is_shown_beside_the_code_and_the_right_one_binds(
    app, live_server, wechat, phone
):
    row = bound_student(app)
    page = phone.page
    open_registration(phone, live_server, wechat.url, "o_wrong_code")

    # With the keyboard: Enter in the phone field asks for the code.
    page.fill("#f-phone", "13700001111")
    page.press("#f-phone", "Enter")
    expect()(page.locator("#f-code-sent")).to_contain_text("验证码已发送至")
    assert page.evaluate("document.activeElement.id") == "f-code"
    code = last_code(live_server, "13700001111")
    page.fill("#f-code", f"{(int(code) + 1) % 1_000_000:06d}")
    page.fill("#f-id_card", row["id_card"])
    page.fill("#f-id", row["stuid"])
    page.click("button[type=submit]")

    error = page.locator("#f-code-error")
    expect()(error).to_have_text("验证码不对，还可以再试 4 次。")
    assert page.get_attribute("#f-code", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "f-code"
    phone.shot("wrong-code")

    page.fill("#f-code", "12")
    page.click("button[type=submit]")
    expect()(error).to_have_text("请输入短信里的 6 位数字验证码。")

    page.fill("#f-code", code)
    page.press("#f-code", "Enter")  # the form submits from the keyboard too
    page.wait_for_url(f"{live_server}/me")  # no target: my binding
    expect()(page.locator("#student [data-field=stuid]")).to_have_text(row["stuid"])
    phone.shot("bound")
    phone.assert_clean()


@pytest.mark.parametrize("settings", [{"BIND_MAX_FAILURES": 2}], indirect=True)
def test_a_mismatched_id_card_looks_like_a_wrong_number_until_the_daily_limit(
    app, live_server, wechat, phone
):
    row = bound_student(app)
    stranger = factories.id_card(987)  # a valid number that is not on the list
    page = phone.page
    open_registration(phone, live_server, wechat.url, "o_mismatch")
    verify_by_sms(phone, live_server, "13700002222")

    # A number whose check character is wrong: the API names the field and the rule.
    page.fill("#f-id_card", row["id_card"][:17] + ("0" if row["id_card"][17] != "0" else "1"))
    page.fill("#f-id", row["stuid"])
    page.click("button[type=submit]")
    expect()(page.locator("#f-id_card-error")).to_have_text("身份证号码的校验位不对，请逐位核对。")
    phone.shot("check-character")

    # A card that is not on the list, then the right card with a wrong number: one message.
    page.fill("#f-id_card", stranger)
    page.click("button[type=submit]")
    expect()(page.locator("#f-id-error")).to_have_text(NO_MATCH)
    assert page.get_attribute("#f-id_card", "aria-invalid") == "true"
    phone.shot("unknown-card")
    page.fill("#f-id_card", row["id_card"])
    page.fill("#f-id", "2026999999")
    page.click("button[type=submit]")
    expect()(page.locator("#f-id-error")).to_have_text(NO_MATCH)

    # The third wrong try today is past BIND_MAX_FAILURES: the wait is shown.
    page.click("button[type=submit]")
    status = page.locator("#register .form-status")
    expect()(status).to_have_text(
        re.compile(r"^今天失败的次数太多了，请 \d+ 小时( \d+ 分钟)?后再试。$")
    )
    expect()(page.locator("button[type=submit]")).to_be_disabled()
    phone.shot("daily-limit")
    with app.app_context():
        assert db.session.get(Student, "o_mismatch") is None
    phone.assert_clean()


def test_an_id_card_bound_to_another_account_is_said_beside_the_card(
    app, live_server, wechat, phone
):
    row = bound_student(app, openid="o_first_owner")
    page = phone.page
    open_registration(phone, live_server, wechat.url, "o_second_owner")
    verify_by_sms(phone, live_server, "13700003333")
    page.fill("#f-id_card", row["id_card"])
    page.fill("#f-id", row["stuid"])
    page.click("button[type=submit]")
    expect()(page.locator("#f-id_card-error")).to_have_text(
        "这个身份证号码已经绑定了另一个微信账号。如有疑问，请联系招生办。"
    )
    phone.shot("card-taken")
    with app.app_context():
        assert db.session.get(Student, "o_second_owner") is None
    phone.assert_clean()


@pytest.mark.parametrize("settings", [{"SMS_IP_LIMITS": ((1, 3600),)}], indirect=True)
def test_a_send_limit_shows_its_wait(app, live_server, wechat, phone):
    page = phone.page
    open_registration(phone, live_server, wechat.url, "o_limited", "candidate")
    send_code(phone, "13700003333")
    page.reload()  # the token stays in the tab; the button is ready again

    page.fill("#f-phone", "13700004444")
    page.click("[data-send-code]")
    expect()(page.locator("#f-phone-error")).to_have_text(
        re.compile(r"^发送太频繁，请 (60 分钟|59 分钟|1 小时)后再试。$")
    )
    expect()(page.locator("[data-send-code]")).to_have_text(re.compile(r"(分钟|小时)后可重发$"))
    phone.shot("send-limit")
    phone.assert_clean()


@pytest.mark.parametrize(
    "target", ["https://evil.example/x", "//evil.example/app", "javascript:alert(1)"]
)
def test_a_disallowed_target_gets_an_error_page(live_server, wechat, phone, target):
    page = phone.page
    response = page.goto(f"{live_server}/?{urlencode({'type': 'student', 'url': target})}")

    assert response.status == 400
    assert page.url.startswith(live_server)
    expect()(page.locator("h1")).to_have_text("无法继续")
    expect()(page.locator("#hint")).to_contain_text("不在允许的范围内")
    assert wechat.fake.calls_to("/connect/oauth2/authorize") == 0
    phone.shot("refused")
    phone.assert_clean()


# -- the Q&A page -----------------------------------------------------------------------------


def test_the_qna_page_answers_with_sources_and_catches_bad_questions(
    app, live_server, wechat, phone
):
    bound_student(app, "o_asker")
    page = phone.page
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/qna" in r.url else None)

    # The link under a cut reply in the chat: sign in first, then the question is asked.
    page.goto(f"{live_server}/qna?q=图书馆晚上几点关门？")
    sign_in_at_wechat(phone, wechat.url, "o_asker")
    page.wait_for_url(f"{live_server}/qna")
    first = page.locator("#results .answer").first
    expect()(first).to_contain_text("图书馆自习区每天早上七点开放")
    expect()(first.locator(".source")).to_have_text(
        "出处：第三章 图书馆 · 第二节 开放时间 · 第 41 页"
    )
    assert page.input_value("#f-q") == "图书馆晚上几点关门？"
    phone.shot("answer")
    sent = len(asked)

    # Blank, or over 200 characters: caught in the page, nothing is sent.
    page.fill("#f-q", "   ")
    page.click("#ask button[type=submit]")
    expect()(page.locator("#f-q-error")).to_have_text("请输入问题。")
    page.fill("#f-q", "问" * 201)
    expect()(page.locator("#q-count")).to_have_text("201/200")
    page.click("#ask button[type=submit]")
    expect()(page.locator("#f-q-error")).to_have_text("问题最多 200 个字，现在是 201 个字。")
    assert page.get_attribute("#f-q", "aria-invalid") == "true"
    phone.shot("too-long")
    assert len(asked) == sent

    # Asked with the keyboard: Enter in the field is not a submit in a textarea; the button is.
    page.fill("#f-q", "绩点怎么算")
    page.focus("#ask button[type=submit]")
    page.keyboard.press("Enter")
    expect()(page.locator("#results h2")).to_have_text("“绩点怎么算”")
    expect()(page.locator("#results .answer").first.locator(".source")).to_contain_text("第 24 页")
    expect()(page.locator("#f-q-error")).to_be_empty()
    assert page.url == f"{live_server}/qna"  # no reload
    phone.assert_clean()


@pytest.mark.parametrize("settings", [{"QNA_MIN_SCORE": 0.99}], indirect=True)
def test_no_answer_shows_the_suggested_sections(app, live_server, wechat, phone):
    bound_student(app, "o_asker")
    page = phone.page
    page.goto(f"{live_server}/?type=student&url=%2Fqna")
    sign_in_at_wechat(phone, wechat.url, "o_asker")
    page.wait_for_url(f"{live_server}/qna")

    page.fill("#f-q", "图书馆借书")
    page.click("#ask button[type=submit]")
    expect()(page.locator("#results .notice")).to_have_text("学生手册里没有找到确切的答案。")
    suggestions = page.locator("#results ul.suggestions button")
    expect()(suggestions.first).to_contain_text("第三章 图书馆")
    phone.shot("suggestions")
    first = suggestions.first.text_content()
    suggestions.first.click()
    expect()(page.locator("#results h2")).to_have_text(f"“{first}”")
    assert page.input_value("#f-q") == first
    phone.assert_clean()


def test_the_qna_page_is_for_students(app, live_server, wechat, phone):
    page = phone.page
    page.goto(f"{live_server}/signin?next=%2Fqna")  # a sign-in that asks for no binding
    sign_in_at_wechat(phone, wechat.url, "o_not_a_student")
    page.wait_for_url(f"{live_server}/qna")
    page.fill("#f-q", "图书馆")
    page.click("#ask button[type=submit]")
    expect()(page.locator("#results .notice")).to_have_text(
        "问答机器人只对绑定了学生身份的新生开放。"
    )
    expect()(page.locator("#register-link a")).to_be_visible()
    phone.shot("not-a-student")
    phone.assert_clean()


# -- my binding -------------------------------------------------------------------------------


def test_changing_the_phone_and_signing_out(app, live_server, wechat, phone):
    row = bound_student(app, "o_mover", name="王同学")
    page = phone.page
    page.goto(f"{live_server}/me")
    sign_in_at_wechat(phone, wechat.url, "o_mover")
    page.wait_for_url(f"{live_server}/me")
    card = page.locator("#student")
    expect()(card.locator("[data-field=name]")).to_have_text("王同学")
    expect()(card.locator("[data-field=phone]")).to_have_text("138****8000")
    masked = row["id_card"][:6] + "********" + row["id_card"][-4:]
    expect()(card.locator("[data-field=id_card]")).to_have_text(masked)
    expect()(page.locator("#candidate")).to_be_hidden()
    phone.shot("binding")
    token = page.evaluate("sessionStorage.getItem('berater.token')")

    page.click("[data-change=student]")
    expect()(page.locator("#change-phone-title")).to_have_text("修改学生绑定的手机号")
    assert page.evaluate("document.activeElement.id") == "f-phone"
    verify_by_sms(phone, live_server, "13600136000")
    phone.shot("change-phone")
    page.click("#change-phone button[type=submit]")

    expect()(page.locator("#changed")).to_have_text("手机号已改为 136****6000。")
    expect()(card.locator("[data-field=phone]")).to_have_text("136****6000")
    expect()(page.locator("#change-phone")).to_be_hidden()
    with app.app_context():
        assert db.session.get(Student, "o_mover").phone == "13600136000"
    phone.shot("changed")

    page.click("#signout")
    expect()(page.locator("#signed-out")).to_be_visible()
    expect()(card).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('berater.token')") is None
    refused = requests.get(f"{live_server}/api/token", headers=bearer(token), timeout=TIMEOUT)
    assert refused.status_code == 401
    phone.shot("signed-out")
    phone.assert_clean()


def test_a_person_bound_to_nothing_is_offered_both_registrations(app, live_server, wechat, phone):
    page = phone.page
    page.goto(f"{live_server}/me")
    sign_in_at_wechat(phone, wechat.url, "o_nobody")
    page.wait_for_url(f"{live_server}/me")
    expect()(page.locator("#unbound")).to_be_visible()
    phone.shot("unbound")
    page.click("#unbound a.secondary")
    page.wait_for_url(f"{live_server}/register/candidate")
    expect()(page.locator("#register")).to_be_visible()  # the token is still in this tab
    assert who(live_server, page)["kind"] == "wechat"
    phone.assert_clean()


# -- 320 px -----------------------------------------------------------------------------------


def test_nothing_overflows_at_320_pixels(app, live_server, wechat, tmp_path):
    bound_student(app, "o_narrow", name="欧阳娜娜", department="地球科学与工程学院（海洋科学方向）")
    with chromium({"width": 320, "height": 640}) as context:
        page = context.new_page()
        narrow = Phone(page, tmp_path)
        page.on("pageerror", lambda exc: narrow.problems.append(f"script error: {exc}"))

        def fits(name: str) -> None:
            width = page.evaluate("document.documentElement.scrollWidth")
            narrow.shot(f"320-{name}")
            assert width <= 320, f"{name} is {width}px wide at 320px"

        # A bound student: my binding (with the phone form and an error), the Q&A page.
        page.goto(f"{live_server}/me")
        sign_in_at_wechat(narrow, wechat.url, "o_narrow")
        page.wait_for_url(f"{live_server}/me")
        expect()(page.locator("#student [data-field=name]")).to_have_text("欧阳娜娜")
        page.click("[data-change=student]")
        page.fill("#f-phone", "123")
        page.click("[data-send-code]")
        expect()(page.locator("#f-phone-error")).not_to_be_empty()
        fits("binding")
        page.goto(f"{live_server}/qna?q=图书馆借书和开放时间")
        expect()(page.locator("#results .answer").first).to_be_visible()
        fits("qna")
        for name, path in [
            ("refused", "/?type=student&url=https://evil.example/" + "x" * 60),
            ("start", "/"),
            ("sms", "/dev/sms"),
        ]:
            page.goto(f"{live_server}{path}")
            fits(name)

        # Somebody new: both registration pages, with every error beside its field.
        page.evaluate("sessionStorage.clear()")
        page.goto(f"{live_server}/?type=student")
        sign_in_at_wechat(narrow, wechat.url, "o_narrow_new")
        page.wait_for_url(f"{live_server}/register/student")
        page.click("button[type=submit]")
        expect()(page.locator("#f-id-error")).not_to_be_empty()
        fits("register-student")
        page.goto(f"{live_server}/register/candidate")
        page.click("button[type=submit]")
        expect()(page.locator("#f-subject-error")).not_to_be_empty()
        fits("register-candidate")
        narrow.assert_clean()
