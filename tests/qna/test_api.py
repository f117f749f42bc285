"""GET /api/qna: answers from the handbook index with sources, for students."""

from __future__ import annotations

import pytest

from berater.db import db
from tests import factories
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends


@pytest.fixture
def qna_app(make_app, qna_index):
    return make_app(QNA_INDEX=str(qna_index), QNA_MIN_SCORE=0.005)


@pytest.fixture
def qna_client(qna_app):
    return qna_app.test_client()


@pytest.fixture
def student(qna_app, qna_client) -> dict[str, str]:
    with qna_app.app_context():
        factories.student("o_qna_student", factories.source_student())
        db.session.commit()
    return bearer(token_for(qna_client, "o_qna_student"))


def ask(client, headers, **query):
    return client.get("/api/qna", query_string=query, headers=headers)


def test_a_student_gets_answers_with_their_sources(qna_client, student):
    response = ask(qna_client, student, q="图书馆晚上几点关门？")
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert data["answered"] is True and data["mode"] == "lexical"
    best = data["answers"][0]
    assert best["id"] == "3.2.1"
    assert (best["chapter"], best["section"], best["page"]) == (
        "第三章 图书馆",
        "第二节 开放时间",
        41,
    )
    assert best["source"] == "第三章 图书馆 第二节 开放时间 41页"
    assert best["text"].startswith("图书馆自习区每天早上七点开放")
    assert 0 < best["score"] <= 1
    assert len(data["answers"]) <= 3 and data["suggestions"] == []
    assert best["highlight"] == best["text"]  # one sentence: all of it
    assert best["faq"] is False and data["faq"] is False


def test_the_original_text_format_is_in_the_answer(qna_client, student):
    data = ask(qna_client, student, q="图书馆借书和开放时间", k=2).get_json()["data"]
    blocks = data["text"].split("\n\n")
    assert len(blocks) == len(data["answers"]) == 2
    for block, answer in zip(blocks, data["answers"], strict=True):
        assert block == f"{answer['source']}\n{answer['text']}"


def test_k_limits_the_answers(qna_client, student):
    data = ask(qna_client, student, q="图书馆借书和开放时间", k=1).get_json()["data"]
    assert len(data["answers"]) == 1


def test_a_question_the_handbook_does_not_answer_says_so(qna_client, student):
    data = ask(qna_client, student, q="今天天气怎么样").get_json()["data"]
    assert data["answered"] is False and data["answers"] == []
    assert data["text"].startswith("手册里没有")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "问" * 201}, "q"),
        ({"q": "图书馆", "k": 0}, "k"),
        ({"q": "图书馆", "k": 11}, "k"),
        ({"q": "图书馆", "k": "many"}, "k"),
        ({"q": "图书馆", "extra": "1"}, "extra"),
    ],
)
def test_a_bad_question_is_a_400_naming_the_field(qna_client, student, query, field):
    response = ask(qna_client, student, **query)
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == 400 and field in body["error"]


def test_a_question_of_200_characters_is_accepted(qna_client, student):
    assert ask(qna_client, student, q="图书馆" * 66 + "吗").status_code == 200


def test_only_students_may_ask(qna_client, qna_app):
    assert ask(qna_client, {}, q="图书馆").status_code == 401
    stranger = bearer(token_for(qna_client, "o_not_bound"))
    response = ask(qna_client, stranger, q="图书馆")
    assert response.status_code == 403


def test_without_an_index_the_endpoint_says_how_to_build_it(make_app, tmp_path):
    app = make_app(QNA_INDEX=str(tmp_path / "missing.npz"))
    client = app.test_client()
    with app.app_context():
        factories.student("o_qna_student2", factories.source_student())
        db.session.commit()
    response = ask(client, bearer(token_for(client, "o_qna_student2")), q="图书馆")
    assert response.status_code == 503
    assert "qna build" in response.get_json()["error"]


def test_an_faq_answer_is_marked_and_carries_its_best_sentence(make_app, tmp_path):
    from berater.qna import faq
    from berater.qna.corpus import load
    from berater.qna.index import Index
    from tests.conftest import HANDBOOK

    path = tmp_path / "faq.txt"
    path.write_text("问：图书馆几点关门\n答：晚上十一点。\n见：3.2.1\n", encoding="utf-8")
    index = tmp_path / "faq-index.npz"
    Index.build(load(HANDBOOK), faq=faq.load(path)).save(index)
    app = make_app(QNA_INDEX=str(index))
    client = app.test_client()
    with app.app_context():
        factories.student("o_qna_faq", factories.source_student())
        db.session.commit()
    data = ask(client, bearer(token_for(client, "o_qna_faq")), q="請問圖書館幾點關門？").get_json()
    answers = data["data"]["answers"]
    assert data["data"]["faq"] is True
    assert [(a["id"], a["faq"], a["source"]) for a in answers[:2]] == [
        ("faq:1", True, "常见问题"),
        ("3.2.1", True, "第三章 图书馆 第二节 开放时间 41页"),
    ]
    assert answers[0]["text"] == answers[0]["highlight"] == "晚上十一点。"
