"""BERT hangs: the stand-in server takes every question and never answers.

End to end over real sockets: the webhook and the API over HTTP to a live server, the
question to the stand-in BERT over ZeroMQ, the webhook's answer to the stand-in WeChat's
customer-service API. Whatever waits for BERT gives up at BERT_TIMEOUT: a webhook question
is answered from the handbook index in `hybrid` and in `bert` mode (the backend falls back to
the index), `/api/bert` answers a clear 503, and `/api/qna` (the index alone) never waits.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from berater.db import db
from standins.bert import RunningBert
from standins.wechat import RunningWeChat
from tests import factories
from tests.chat.helpers import signed_query, text_xml, url
from tests.helpers import bearer, token_for
from tests.qna.conftest import BERT_TEST_TIMEOUT

pytestmark = pytest.mark.backends

# On top of BERT_TIMEOUT: the index search, the access token and the send to the stand-in.
MARGIN = 1.0
QUESTION = "缓考什么时候考"
HANDBOOK_ANSWER = "学生因病或者其他特殊原因不能参加期末考试"
HANDBOOK_SOURCE = "——第二章 考试与成绩 第一节 缓考 21页"
PARALLEL = 4  # TASK_WORKERS' default: four background answers wait for BERT at once


@pytest.fixture
def qna_backend() -> str:
    return "hybrid"


@pytest.fixture
def app(make_app: Any, bert_index: Path, bert_settings: dict[str, Any], qna_backend: str) -> Flask:
    """The app the live server serves: a Q&A backend that asks BERT, pointed at the stand-in."""
    return make_app(
        QNA_INDEX=str(bert_index),
        QNA_BACKEND=qna_backend,
        QNA_MIN_SCORE=0.005,
        QNA_BERT_MIN_SCORE=0.1,
        **bert_settings,
    )


@pytest.fixture
def student(app: Flask) -> dict[str, str]:
    with app.app_context():
        factories.student("o_hang_student", factories.source_student())
        db.session.commit()
    return bearer(token_for(app.test_client(), "o_hang_student"))


def ask_webhook(base: str, sender: str, question: str = QUESTION) -> requests.Response:
    """One text message, signed as WeChat signs it, on a connection of its own."""
    body = text_xml(question, sender=sender).encode()
    headers = {"Content-Type": "text/xml"}
    return requests.post(base + url(signed_query()), data=body, headers=headers, timeout=10)


class SendWatch:
    """Notes when each customer-service message reaches the stand-in WeChat."""

    def __init__(self, wechat: RunningWeChat) -> None:
        self.wechat = wechat
        self.arrived: dict[str, float] = {}  # recipient -> monotonic time of arrival
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for sent in self.wechat.fake.sent:
                self.arrived.setdefault(sent["touser"], now)
            time.sleep(0.01)

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrived) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.mark.parametrize("qna_backend", ["hybrid", "bert"])
def test_a_hung_bert_server_leaves_webhook_questions_answered_from_the_handbook_in_time(
    live_server: str, bert: RunningBert, wechat: RunningWeChat, qna_backend: str
) -> None:
    bert.down = True
    senders = [f"o_hang_{n}" for n in range(PARALLEL)]
    watch = SendWatch(wechat)
    asked: dict[str, float] = {}

    def deliver(sender: str) -> requests.Response:
        asked[sender] = time.monotonic()
        return ask_webhook(live_server, sender)

    with ThreadPoolExecutor(PARALLEL) as pool:
        replies = list(pool.map(deliver, senders))
    # A slow backend: WeChat gets `success` at once, the answer follows through the API.
    for sender, reply in zip(senders, replies, strict=True):
        assert reply.status_code == 200 and reply.text == "success"
        assert reply.elapsed.total_seconds() < 1.0, sender

    watch.wait(PARALLEL, timeout=BERT_TEST_TIMEOUT + MARGIN + 3)
    assert sorted(watch.arrived) == senders, f"answers sent: {wechat.fake.sent}"
    for sender in senders:
        took = watch.arrived[sender] - asked[sender]
        assert took < BERT_TEST_TIMEOUT + MARGIN, f"{sender} answered after {took:.2f}s"
    for sent in wechat.fake.sent:
        content = sent["text"]["content"]
        assert content.startswith(HANDBOOK_ANSWER) and content.endswith(HANDBOOK_SOURCE)
    assert len(wechat.fake.sent) == PARALLEL  # one answer each
    # BERT was asked and kept the question: the answers did not come from it.
    assert bert.config_requests + bert.requests >= 1
    assert bert.answered == 0


@pytest.mark.parametrize("mode", ["bert", "hybrid"])
def test_while_bert_hangs_the_api_answers_503_in_time_and_the_index_at_once(
    live_server: str, bert: RunningBert, student: dict[str, str], mode: str
) -> None:
    bert.down = True
    # A webhook question holds the process's BERT connection for BERT_TIMEOUT meanwhile.
    assert ask_webhook(live_server, "o_hang_busy").text == "success"

    started = time.monotonic()
    lexical = requests.get(
        live_server + "/api/qna", params={"q": QUESTION}, headers=student, timeout=10
    )
    took = time.monotonic() - started
    assert lexical.status_code == 200, lexical.json()
    assert lexical.json()["data"]["answers"][0]["text"].startswith(HANDBOOK_ANSWER)
    assert took < 0.5, f"/api/qna waited {took:.2f}s"

    started = time.monotonic()
    refused = requests.get(
        live_server + "/api/bert",
        params={"q": QUESTION, "mode": mode},
        headers=student,
        timeout=10,
    )
    took = time.monotonic() - started
    assert refused.status_code == 503
    body = refused.json()
    assert body["code"] == 503 and body["data"] is None
    assert "BERT" in body["error"] and f"within {BERT_TEST_TIMEOUT:g} s" in body["error"]
    assert took < BERT_TEST_TIMEOUT + MARGIN, f"/api/bert answered after {took:.2f}s"


def test_when_bert_answers_again_the_next_question_uses_it(
    live_server: str, bert: RunningBert, wechat: RunningWeChat, student: dict[str, str]
) -> None:
    bert.down = True
    assert ask_webhook(live_server, "o_hang_before").text == "success"
    watch = SendWatch(wechat)
    watch.wait(1, timeout=BERT_TEST_TIMEOUT + MARGIN)
    assert list(watch.arrived) == ["o_hang_before"]

    bert.down = False
    answered = bert.answered
    started = time.monotonic()
    response = requests.get(
        live_server + "/api/bert",
        params={"q": QUESTION, "mode": "hybrid"},
        headers=student,
        timeout=10,
    )
    assert response.status_code == 200, response.json()
    assert response.json()["data"]["answers"][0]["id"] == "2.1.1"
    assert time.monotonic() - started < BERT_TEST_TIMEOUT
    assert bert.answered > answered  # from BERT this time, on a new connection
