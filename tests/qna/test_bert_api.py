"""GET /api/bert, the hybrid mode, BERT at index build, and the webhook's BERT fallback."""

from __future__ import annotations

import time

import numpy as np
import pytest

from berater.db import db
from berater.extensions import qna
from berater.qna.corpus import load
from berater.qna.index import Index
from tests import factories
from tests.conftest import HANDBOOK
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends


@pytest.fixture
def bert_app(make_app, bert_index, bert_settings):
    return make_app(
        QNA_INDEX=str(bert_index), QNA_MIN_SCORE=0.005, QNA_BERT_MIN_SCORE=0.1, **bert_settings
    )


def student_headers(app, openid: str = "o_bert_student") -> dict[str, str]:
    with app.app_context():
        factories.student(openid, factories.source_student())
        db.session.commit()
    return bearer(token_for(app.test_client(), openid))


def ask(app, headers, **query):
    return app.test_client().get("/api/bert", query_string=query, headers=headers)


def test_bert_answers_with_sources(bert_app, bert):
    response = ask(bert_app, student_headers(bert_app), q="图书馆自习区晚上几点关闭")
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert data["mode"] == "bert" and data["answered"]
    best = data["answers"][0]
    assert best["id"] == "3.2.1" and best["source"] == "第三章 图书馆 第二节 开放时间 41页"
    assert bert.texts_seen >= 1


def test_hybrid_blends_the_lexical_and_bert_scores(bert_app, bert):
    headers = student_headers(bert_app)
    data = ask(bert_app, headers, q="缓考什么时候考", mode="hybrid").get_json()["data"]
    assert data["mode"] == "hybrid" and data["answers"][0]["id"] == "2.1.1"
    with bert_app.app_context():
        engine = qna.engine
        lexical = engine.scores("缓考什么时候考", "lexical")
        cosine = engine.scores("缓考什么时候考", "bert")
        hybrid = engine.scores("缓考什么时候考", "hybrid")
    assert np.allclose(hybrid, 0.5 * lexical + 0.5 * np.clip(cosine, 0, None), atol=1e-5)


def test_a_silent_bert_server_is_a_503_within_the_timeout(bert_app, bert, bert_settings):
    headers = student_headers(bert_app)
    bert.down = True
    started = time.monotonic()
    response = ask(bert_app, headers, q="图书馆几点关门")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert "BERT" in response.get_json()["error"]
    # The server's internal address is logged, never told to the client.
    assert f"{bert_settings['BERT_HOST']}:" not in response.get_json()["error"]
    assert elapsed < bert_settings["BERT_TIMEOUT"] + 1.5


def test_a_slow_bert_server_is_a_503_and_the_next_question_works(bert_app, bert, bert_settings):
    headers = student_headers(bert_app)
    bert.delay = bert_settings["BERT_TIMEOUT"] + 0.5
    started = time.monotonic()
    assert ask(bert_app, headers, q="图书馆几点关门").status_code == 503
    assert time.monotonic() - started < bert_settings["BERT_TIMEOUT"] + 1.5
    bert.delay = 0
    response = ask(bert_app, headers, q="缓考安排在什么时候")
    assert response.status_code == 200
    assert response.get_json()["data"]["answers"][0]["id"] == "2.1.1"


def test_without_a_bert_server_configured_bert_is_a_503(make_app, bert_index):
    app = make_app(QNA_INDEX=str(bert_index), BERT_HOST="")
    response = ask(app, student_headers(app, "o_bert_2"), q="图书馆")
    assert response.status_code == 503
    assert "not configured" in response.get_json()["error"]


def test_an_index_without_embeddings_says_to_rebuild(make_app, tmp_path, bert_settings):
    path = tmp_path / "plain.npz"
    Index.build(load(HANDBOOK)).save(path)
    app = make_app(QNA_INDEX=str(path), **bert_settings)
    response = ask(app, student_headers(app, "o_bert_3"), q="图书馆")
    assert response.status_code == 503
    assert "qna build" in response.get_json()["error"]


def test_bad_bert_queries_are_400(bert_app):
    headers = student_headers(bert_app)
    assert ask(bert_app, headers, q="图书馆", mode="magic").status_code == 400
    assert ask(bert_app, headers, q="").status_code == 400
    assert ask(bert_app, headers, q="问" * 201).status_code == 400


def test_a_hybrid_webhook_answer_falls_back_to_the_index_when_bert_is_down(
    make_app, bert_index, bert_settings, bert
):
    # The test handbook is tiny: most of a question's terms are new to it, which its
    # coverage discounts, so its threshold is lower than the demo's.
    app = make_app(
        QNA_INDEX=str(bert_index), QNA_BACKEND="hybrid", QNA_MIN_SCORE=0.01, **bert_settings
    )
    bert.down = True
    with app.test_request_context():
        assert qna.slow is True
        answer = qna.answer("缓考什么时候考")
        assert qna.answer("   ") is None
    assert answer is not None and answer.startswith("学生因病或者其他特殊原因不能参加期末考试")
    assert answer.endswith("——第二章 考试与成绩 第一节 缓考 21页")


def test_the_build_command_stores_embeddings_when_bert_answers(make_app, bert_settings, tmp_path):
    app = make_app(**bert_settings)
    out = tmp_path / "built.npz"
    result = app.test_cli_runner().invoke(
        args=["qna", "build", "--corpus", str(HANDBOOK), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "BERT embeddings: yes" in result.output
    vectors = Index.load(out).vectors
    assert vectors is not None and vectors.shape[0] == 9
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_the_build_command_goes_on_without_bert_when_it_is_down(
    make_app, bert_settings, bert, tmp_path
):
    bert.down = True
    app = make_app(**bert_settings)
    out = tmp_path / "built.npz"
    result = app.test_cli_runner().invoke(
        args=["qna", "build", "--corpus", str(HANDBOOK), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "BERT embeddings: no" in result.output
    assert Index.load(out).vectors is None
