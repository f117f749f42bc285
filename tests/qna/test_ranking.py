"""The ranking beyond the paragraph's words: its best sentence, the kind of fact a question
asks for, and the question's coverage, which decides what is declined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from berater.qna import faq, kinds, segment
from berater.qna.corpus import load
from berater.qna.engine import Engine, Thresholds
from berater.qna.index import Index
from berater.qna.normalise import Synonyms

ROOT = Path(__file__).resolve().parents[2]

# Two neighbours in each section. In 门禁, 1.1.1 holds 晚归, 值班室 and 登记 more often but
# in three sentences; 1.1.2 holds each once, in one sentence. In 收费, both name 住宿费;
# only 1.2.2 says how much it is.
DORMITORY = """# 第一章 宿舍
## 第一节 门禁
晚归学生按晚归处理，不得无故晚归。值班室每晚有人值班，值班室电话公布在楼下。学生信息有变的须登记，登记表在楼栋领取。

学生晚归的，须在值班室登记姓名。宿舍楼内禁止使用大功率电器，禁止饲养宠物，禁止留宿外人。

## 第二节 收费
住宿费按学年收取，在开学时与学费一并缴纳。

住宿费标准为每人每学年一千二百元，开学时缴纳。
"""


@pytest.fixture(scope="module")
def dormitory(tmp_path_factory: pytest.TempPathFactory) -> list:
    path = tmp_path_factory.mktemp("dormitory") / "handbook.txt"
    path.write_text(DORMITORY, encoding="utf-8")
    return load(path)


def _order(index: Index, question: str) -> list[str]:
    scores = index.lexical_scores(question)
    return [index.paragraphs[i].id for i in np.argsort(-scores, kind="stable")]


def test_words_that_meet_in_one_sentence_outrank_the_same_words_spread_out(dormitory):
    question = "晚归了要在值班室登记吗"
    without = Index.build(dormitory, sentence_weight=0.0)
    assert _order(without, question)[:2] == ["1.1.1", "1.1.2"]  # more of the words
    assert _order(Index.build(dormitory), question)[:2] == ["1.1.2", "1.1.1"]


def test_a_sentence_holding_the_kind_of_fact_asked_for_outranks_its_neighbour(dormitory):
    question = "住宿费要交多少钱"
    without = Index.build(dormitory, kind_weight=0.0)
    assert _order(without, question)[:2] == ["1.2.1", "1.2.2"]
    assert _order(Index.build(dormitory), question)[:2] == ["1.2.2", "1.2.1"]  # 一千二百元


def test_the_kinds_weigh_only_questions_that_ask_for_one(dormitory):
    question = "住宿费怎么缴纳"  # asks for no amount, date, place ...
    assert kinds.question_kinds(question) == 0
    plain = Index.build(dormitory, kind_weight=0.0)
    assert np.allclose(
        Index.build(dormitory).lexical_scores(question), plain.lexical_scores(question)
    )


@pytest.mark.parametrize(
    ("question", "sentence"),
    [
        ("国家励志奖学金有多少钱", "奖励标准为每人每年六千元。"),
        ("宿舍几点锁门", "宿舍楼大门晚上十一点半关闭。"),
        ("补考什么时候考", "补考安排在新学期第一周。"),
        ("休学最长多久", "休学一般以一年为期。"),
        ("一学期最多能选几门课", "每学期修读学分一般为18至28学分。"),
        ("学生证丢了去哪补办", "到学生事务中心窗口补办。"),
    ],
)
def test_a_question_and_a_sentence_that_holds_its_answer_share_a_kind(question, sentence):
    assert kinds.question_kinds(question) & kinds.sentence_kinds(sentence)


def test_a_number_that_counts_nothing_is_no_count():
    count = 1 << list(kinds.KINDS).index("count")
    assert not kinds.sentence_kinds("在开学时与学费一并缴纳，由学校统一安排。") & count
    assert kinds.sentence_kinds("每人限借二十册。") & count


def test_the_coverage_keeps_the_order_and_lowers_what_the_handbook_has_no_words_for(dormitory):
    plain = Index.build(dormitory, coverage_weight=0.0)
    covered = Index.build(dormitory, coverage_weight=1.5)
    known, unknown = "住宿费标准", "住宿费标准火锅奶茶"
    for question in (known, unknown):
        a, b = plain.lexical_scores(question), covered.lexical_scores(question)
        assert list(np.argsort(-a, kind="stable")) == list(np.argsort(-b, kind="stable"))
    coverage = covered.components(unknown, words=False).coverage
    assert 0 < coverage < 1
    assert np.allclose(
        covered.lexical_scores(unknown), plain.lexical_scores(unknown) * coverage**1.5
    )
    assert covered.components(known, words=False).coverage == 1.0
    assert np.allclose(covered.lexical_scores(known), plain.lexical_scores(known))


@pytest.fixture(scope="module")
def demo() -> Engine:
    index = Index.build(
        load(ROOT / "data/qna/handbook"),
        segment.read_userdict(ROOT / "data/jieba-userdict.txt"),
        synonyms=Synonyms.load(ROOT / "data/qna/synonyms.txt"),
        faq=faq.load(ROOT / "data/qna/faq.txt"),
    )
    return Engine(index)


@pytest.mark.parametrize("question", ["学校周边有没有便宜的理发店", "怎么减肥最快", "股票怎么开户"])
def test_a_question_the_handbook_has_no_words_for_is_declined(demo, question):
    assert not demo.search(question).answered


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("图书能续借几次", "renewing-books"),
        ("校园卡丢了怎么办", "campus-card-loss"),
        ("图书馆几点开门", "library-hours"),
    ],
)
def test_a_terse_question_about_the_handbook_is_answered(demo, question, expected):
    result = demo.search(question)
    assert result.answered and result.hits[0].id == expected


def test_the_best_sentence_shown_holds_the_kind_of_fact_asked_for(tmp_path):
    path = tmp_path / "h.txt"
    path.write_text(
        "# 第一章 宿舍\n住宿费按学年收取，在开学时与学费一并缴纳。"
        "住宿费标准为每人每学年一千二百元。\n",
        encoding="utf-8",
    )
    paragraphs = load(path)
    question = "住宿费要交多少钱"
    plain = Engine(Index.build(paragraphs, kind_weight=0.0), thresholds=Thresholds(lexical=0.0))
    assert (
        plain.search(question, k=1).hits[0].highlight
        == "住宿费按学年收取，在开学时与学费一并缴纳。"
    )
    engine = Engine(Index.build(paragraphs), thresholds=Thresholds(lexical=0.0))
    assert engine.search(question, k=1).hits[0].highlight == "住宿费标准为每人每学年一千二百元。"
