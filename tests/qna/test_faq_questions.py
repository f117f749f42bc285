"""The FAQ's questions as a field of the paragraphs they name: a question in a student's
words that is not close enough to a variant to be answered by the FAQ first still finds
the paragraph the office wrote such a question for."""

from __future__ import annotations

import numpy as np
import pytest

from berater.qna import faq
from berater.qna.corpus import load
from berater.qna.engine import Engine, Thresholds
from berater.qna.evaluate import Question, evaluate
from berater.qna.index import Index, asked_texts, blend
from tests.conftest import HANDBOOK

FAQ = """问：开学赶不上到校怎么办
问：晚几天到学校行不行
见：1.1.2

问：图书馆几点关门
见：3.2.1
"""
QUESTION = "开学赶不上回学校"  # shares words with the first entry, yet is not its variant


@pytest.fixture(scope="module")
def paragraphs():
    return load(HANDBOOK)


@pytest.fixture(scope="module")
def entries(tmp_path_factory):
    path = tmp_path_factory.mktemp("faq") / "faq.txt"
    path.write_text(FAQ, encoding="utf-8")
    return faq.load(path)


def test_each_paragraph_holds_the_variants_of_the_entries_naming_it(paragraphs, entries):
    index = Index.build(paragraphs, faq=entries)
    texts = asked_texts(paragraphs, index.faq.entries)
    by_id = dict(zip([p.id for p in paragraphs], texts, strict=True))
    assert by_id["1.1.2"] == "开学赶不上到校\n晚几天到学校"  # 行不行 only frames it
    assert by_id["3.2.1"] == "图书馆几点关门"
    assert all(not t for pid, t in by_id.items() if pid not in ("1.1.2", "3.2.1"))
    assert Index.build(paragraphs).asked is None  # no FAQ, no field


def test_a_question_near_an_faq_variant_ranks_its_paragraph_first(paragraphs, entries):
    with_field = Index.build(paragraphs, faq=entries, asked_weight=2.0)
    without = Index.build(paragraphs, faq=entries, asked_weight=0.0)
    engine = Engine(with_field, thresholds=Thresholds(lexical=0.01))
    assert engine.faq_match(QUESTION) is None  # not answered by the FAQ first
    result = engine.search(QUESTION, k=3)
    assert result.hits[0].id == "1.1.2" and not result.hits[0].faq
    ids = [p.id for p in paragraphs]
    assert ids[int(without.lexical_scores(QUESTION).argmax())] != "1.1.2"


def test_a_paragraph_scores_the_better_of_its_text_and_its_faq_questions(
    paragraphs, entries, tmp_path
):
    index = Index.build(paragraphs, faq=entries, asked_weight=2.0)
    parts = index.components(QUESTION, words=False)
    bare = Index.build(paragraphs, faq=entries, asked_weight=0.0)
    assert parts.asked is not None and parts.asked.max() > 0
    weights = 1 + index.heading_weight + index.sentence_weight
    alone = blend(parts, 1.0, index.heading_weight, index.sentence_weight)  # without the field
    beside = (alone * weights + 2 * parts.asked) / (weights + 2)
    known = parts.coverage**index.coverage_weight
    assert np.allclose(index.lexical_scores(QUESTION), np.maximum(alone, beside) * known)
    assert (beside > alone).any() and (beside < alone).any()  # each side wins somewhere
    # A question in the handbook's own words scores as it would without the field.
    text = "逾期未还的图书，每册每天收取滞纳金"
    assert int(index.lexical_scores(text).argmax()) == int(bare.lexical_scores(text).argmax())
    index.save(tmp_path / "i.npz")
    loaded = Index.load(tmp_path / "i.npz")
    assert loaded.asked is not None and loaded.asked.terms == index.asked.terms
    assert loaded.asked_weight == 2.0
    assert np.allclose(loaded.lexical_scores(QUESTION), index.lexical_scores(QUESTION))


def test_eval_without_the_faq_leaves_its_questions_out_of_the_ranking(paragraphs, entries):
    index = Index.build(paragraphs, faq=entries, asked_weight=2.0)
    engine = Engine(index, thresholds=Thresholds(lexical=0.01))
    asked = [Question(QUESTION, frozenset({"1.1.2"}))]
    assert evaluate(engine, asked).top1 == 1.0
    assert evaluate(engine, asked, use_faq=False).top1 == 0.0
    assert index.asked_weight == 2.0  # the engine's own index is left as it was


def test_the_faqs_words_count_as_known_to_the_coverage(paragraphs, entries):
    """A word of the office's questions (赶不上) is a word of the handbook's topics; one
    neither uses (火锅) is not."""
    with_faq = Index.build(paragraphs, faq=entries)
    bare = Index.build(paragraphs)
    handbook = bare.components("赶不上", words=False).coverage
    assert handbook < 1  # the handbook has 不, not 赶 or 赶不
    assert with_faq.components("赶不上", words=False).coverage == 1.0
    mixed = with_faq.components("赶不上火锅", words=False).coverage
    assert 0 < mixed < 1 and mixed > bare.components("赶不上火锅", words=False).coverage
    # Without the FAQ's field (as `qna eval` measures without the FAQ), the handbook alone.
    assert with_faq.components("赶不上", words=False, asked=False).coverage == handbook
