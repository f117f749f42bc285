"""The WeChat template message on register and cancel, sent in the background with retries."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from berater.extensions import tasks
from tests.apps.nova.helpers import GOOD, PHONE, auth, make_nova_admin, make_student, wait_for

pytestmark = pytest.mark.backends

TEMPLATE = "/cgi-bin/message/template/send"


@pytest.fixture
def app(make_app):
    return make_app(NOVA_TEMPLATE_ID="tmpl_nova", NOVA_NOTIFY_RETRIES=2, NOVA_NOTIFY_BACKOFF=0.05)


@pytest.fixture
def student(ctx, client):
    make_student("o_note", stuid="202600777", name="赵六", department="数学系")
    return auth(client, "o_note")


def templates(wechat) -> list[dict]:
    return [m for m in wechat.fake.sent if m["kind"] == "template"]


def idle(app) -> Callable[[], bool]:
    """No nova message waiting or being sent (nor its retry, queued before its try ends)."""
    return lambda: app.extensions["berater.tasks"].pending == 0


def test_registering_sends_a_template_message_without_the_phone(client, wechat, student):
    assert client.post("/api/nova/info", json=GOOD, headers=student).status_code == 200
    assert wait_for(lambda: len(templates(wechat)) == 1)
    message = templates(wechat)[0]
    assert message["touser"] == "o_note"
    assert message["template_id"] == "tmpl_nova"
    assert message["data"]["keyword1"]["value"] == "赵六"
    assert message["data"]["keyword2"]["value"] == "202600777"
    assert "报名" in message["data"]["first"]["value"]
    assert PHONE not in str(message) and GOOD["qq"] not in str(message)


def test_cancelling_sends_a_template_message(client, wechat, student):
    client.post("/api/nova/info", json=GOOD, headers=student)
    assert wait_for(lambda: len(templates(wechat)) == 1)
    assert client.delete("/api/nova/info", headers=student).status_code == 200
    assert wait_for(lambda: len(templates(wechat)) == 2)
    assert "取消" in templates(wechat)[1]["data"]["first"]["value"]


def test_an_admin_cancellation_tells_the_student(client, wechat, student):
    client.post("/api/nova/info", json=GOOD, headers=student)
    assert wait_for(lambda: len(templates(wechat)) == 1)  # two workers: order is not kept
    make_nova_admin("o_admin")
    admin = auth(client, "o_admin")
    response = client.post("/api/nova/admin/registrations/202600777/cancel", headers=admin)
    assert response.status_code == 200
    assert wait_for(lambda: len(templates(wechat)) == 2)
    assert templates(wechat)[1]["touser"] == "o_note"
    assert "取消" in templates(wechat)[1]["data"]["first"]["value"]


def test_a_refused_registration_sends_nothing(app, client, wechat, student):
    client.post("/api/nova/info", json=GOOD, headers=student)
    assert wait_for(lambda: len(templates(wechat)) == 1)
    assert client.post("/api/nova/info", json=GOOD, headers=student).status_code == 409
    assert wait_for(idle(app))
    assert len(templates(wechat)) == 1


def test_no_template_id_sends_nothing(make_app, wechat):
    app = make_app(NOVA_TEMPLATE_ID="")
    client = app.test_client()
    with app.app_context():
        make_student("o_quiet", stuid="202600778")
    response = client.post("/api/nova/info", json=GOOD, headers=auth(client, "o_quiet"))
    assert response.status_code == 200
    assert wait_for(idle(app))
    assert wechat.fake.calls_to(TEMPLATE) == 0


def test_two_http_500s_are_retried_and_the_message_arrives(client, wechat, student):
    wechat.fake.fail(TEMPLATE, "http500", times=2)
    assert client.post("/api/nova/info", json=GOOD, headers=student).status_code == 200
    assert wait_for(lambda: len(templates(wechat)) == 1)
    assert wechat.fake.calls_to(TEMPLATE) == 3


def test_a_failed_send_is_tried_again_in_the_background(app, client, wechat, student, log_records):
    # A refusal the client does not retry by itself: only the background retry sends it.
    wechat.fake.fail(TEMPLATE, "errcode", errcode=40037, times=1)
    assert client.post("/api/nova/info", json=GOOD, headers=student).status_code == 200
    assert wait_for(lambda: len(templates(wechat)) == 1)
    assert wait_for(idle(app))
    assert wechat.fake.calls_to(TEMPLATE) == 2
    assert any("retry 1 of 2" in r.getMessage() for r in log_records)


def test_a_permanent_failure_never_fails_the_registration(
    app, client, wechat, student, log_records
):
    wechat.fake.fail(TEMPLATE, "errcode", errcode=40037, times=None)
    response = client.post("/api/nova/info", json=GOOD, headers=student)
    assert response.status_code == 200
    assert client.get("/api/nova/info", headers=student).status_code == 200
    assert wait_for(idle(app))
    assert wechat.fake.calls_to(TEMPLATE) == 3  # the first try and NOVA_NOTIFY_RETRIES more
    assert templates(wechat) == []
    failures = [r for r in log_records if "not sent after 3 attempts" in r.getMessage()]
    assert len(failures) == 1 and "WeChatError" in failures[0].getMessage()
    assert not any(PHONE in r.getMessage() for r in log_records)


def test_wechat_down_still_answers_the_registration_at_once(app, client, wechat, student):
    import time

    wechat.fake.fail(TEMPLATE, "http500", times=None)
    started = time.monotonic()
    assert client.post("/api/nova/info", json=GOOD, headers=student).status_code == 200
    assert time.monotonic() - started < 1.0
    assert wait_for(idle(app), timeout=15)
    assert templates(wechat) == []


def test_a_student_who_does_not_follow_the_account_is_not_retried(app, client, wechat, student):
    wechat.fake.refuse("o_note", 43004)
    assert client.post("/api/nova/info", json=GOOD, headers=student).status_code == 200
    assert wait_for(idle(app))
    assert wechat.fake.calls_to(TEMPLATE) == 1


def test_a_retry_waits_its_pause_without_holding_a_worker(make_app, wechat, log_records):
    app = make_app(
        NOVA_TEMPLATE_ID="tmpl_nova", NOVA_NOTIFY_BACKOFF=1.0, TASK_WORKERS=1, TASK_QUEUE=5
    )
    client = app.test_client()
    with app.app_context():
        make_student("o_note", stuid="202600777")
    wechat.fake.fail(TEMPLATE, "errcode", errcode=40037, times=1)
    response = client.post("/api/nova/info", json=GOOD, headers=auth(client, "o_note"))
    assert response.status_code == 200
    assert wait_for(lambda: any("retry 1 of 3" in r.getMessage() for r in log_records))
    # The only worker is free during the pause: another task runs at once.
    ran = threading.Event()
    with app.app_context():
        assert tasks.submit("test.meanwhile", ran.set)
    assert ran.wait(0.5)
    assert templates(wechat) == []
    assert wait_for(lambda: len(templates(wechat)) == 1)
    assert wechat.fake.calls_to(TEMPLATE) == 2
