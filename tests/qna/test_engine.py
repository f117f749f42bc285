"""The lexical index and the engine: ranking, thresholds, sources, and the index file."""

from __future__ import annotations

import numpy as np
import pytest

from berater.qna import segment
from berater.qna.corpus import load
from berater.qna.engine import Engine, Result, Thresholds, reply_text
from berater.qna.index import Index, IndexUnavailable
from tests.conftest import HANDBOOK

# Neither the best sentence nor the question's coverage: the blend of words, characters and
# headings alone.
TEXT_ONLY = {"sentence_weight": 0.0, "coverage_weight": 0.0}


@pytest.fixture(scope="module")
def index() -> Index:
    return Index.build(load(HANDBOOK), ["校园卡", "绩点", "缓考"])


@pytest.fixture
def engine(index: Index) -> Engine:
    return Engine(index, thresholds=Thresholds(lexical=0.005))


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("新生报到要带身份证吗", "1.1.1"),
        ("生病了能休学多久", "1.2.1"),
        ("期末考试那天发烧了怎么办，能缓考吗", "2.1.1"),
        ("考了87分绩点是多少", "2.2.1"),
        ("本科生能借多少册图书", "3.1.1"),
        ("图书逾期了要交滞纳金吗", "3.1.2"),
        ("图书馆晚上几点关门？", "3.2.1"),
    ],
)
def test_a_question_finds_the_paragraph_that_answers_it(engine, question, expected):
    result = engine.search(question, k=3)
    assert result.answered
    assert result.hits[0].id == expected
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)


def test_an_answer_carries_its_source_in_the_original_format(engine):
    result = engine.search("图书馆晚上几点关门", k=1)
    hit = result.hits[0]
    assert (hit.chapter, hit.section, hit.page) == ("第三章 图书馆", "第二节 开放时间", 41)
    assert hit.source == "第三章 图书馆 第二节 开放时间 41页"
    assert result.text() == f"第三章 图书馆 第二节 开放时间 41页\n{hit.text}"
    assert "——第三章 图书馆 第二节 开放时间 41页" in reply_text(result)


def test_several_answers_are_joined_by_blank_lines(engine):
    result = engine.search("图书馆借书和开放时间", k=2)
    assert len(result.hits) == 2
    first, second = result.text().split("\n\n")
    assert first.startswith(result.hits[0].source + "\n")
    assert second.startswith(result.hits[1].source + "\n")


def test_scores_are_normalised_between_zero_and_one(engine, index):
    scores = index.lexical_scores("图书馆借阅图书续借")
    assert scores.shape == (len(index),)
    assert 0 < scores.max() <= 1 and scores.min() >= 0
    assert not index.lexical_scores("¿").any()


def test_an_off_topic_question_gets_no_answer(engine):
    result = engine.search("今天天气怎么样，推荐一部电影", k=3)
    assert not result.answered and result.hits == []
    assert reply_text(result).startswith("手册里没有")


def test_no_answer_suggests_the_closest_sections(index):
    strict = Engine(index, thresholds=Thresholds(lexical=0.99))
    result = strict.search("借阅图书可以续借吗", k=3)
    assert not result.answered
    assert result.suggestions[0] == "第三章 图书馆 第一节 借阅"
    assert len(result.suggestions) == len(set(result.suggestions)) <= 3
    assert "· 第三章 图书馆 第一节 借阅" in reply_text(result)


def test_the_character_ngram_share_blends_the_two_scores(index):
    words_only = Index.build(index.paragraphs, ngram_weight=0.0, heading_weight=0.0, **TEXT_ONLY)
    blended = Index.build(index.paragraphs, ngram_weight=0.4, heading_weight=0.0, **TEXT_ONLY)
    question = "自习区几点开门"
    words = words_only.words.scores(segment.words(question))
    grams = words_only.chars.scores(segment.chars(question))
    assert np.allclose(words_only.lexical_scores(question), words)
    assert np.allclose(blended.lexical_scores(question), 0.6 * words + 0.4 * grams)
    assert grams.argmax() == words.argmax() == 8


def test_the_heading_field_counts_beside_the_text(index):
    plain = Index.build(index.paragraphs, ngram_weight=0.4, heading_weight=0.0, **TEXT_ONLY)
    boosted = Index.build(index.paragraphs, ngram_weight=0.4, heading_weight=0.5, **TEXT_ONLY)
    question = "图书馆的规定"  # names a chapter, not what its paragraphs say
    text = plain.lexical_scores(question)
    headings = boosted.headings.scores(segment.chars(question))
    assert np.allclose(boosted.lexical_scores(question), (text + 0.5 * headings) / 1.5)
    library = [i for i, p in enumerate(index.paragraphs) if p.chapter == "第三章 图书馆"]
    assert headings[library].min() > 0 and np.delete(headings, library).max() == 0
    assert boosted.lexical_scores(question).argmax() in library


def test_the_index_file_round_trips(index, tmp_path):
    index.vectors = None
    path = tmp_path / "deep" / "qna.npz"
    size = index.save(path)
    assert path.stat().st_size == size > 0
    loaded = Index.load(path)
    assert loaded.build_id == index.build_id
    assert loaded.paragraphs == index.paragraphs
    assert loaded.vectors is None
    question = "缓考什么时候考"
    assert np.allclose(loaded.lexical_scores(question), index.lexical_scores(question))
    assert not list(tmp_path.rglob("*.partial"))


def test_vectors_are_kept_in_the_index_file(index, tmp_path):
    vectors = np.eye(len(index), 8, dtype=np.float32)
    copy = Index(**{**index.__dict__, "vectors": vectors})
    copy.save(tmp_path / "v.npz")
    assert np.array_equal(Index.load(tmp_path / "v.npz").vectors, vectors)


def test_a_missing_or_foreign_file_is_refused_clearly(tmp_path):
    with pytest.raises(IndexUnavailable, match="qna build"):
        Index.load(tmp_path / "none.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not an index")
    with pytest.raises(IndexUnavailable, match="not a Q&A index"):
        Index.load(junk)
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(IndexUnavailable, match="not a Q&A index"):
        Index.load(tmp_path / "other.npz")


def test_user_dictionary_words_stay_whole():
    segment.add_words(["学分绩点"])
    assert "学分绩点" in segment.words("我的学分绩点怎么算")


def test_segmentation_drops_question_words_and_normalises_width():
    words = segment.words("请问ＣＥＴ４怎么报名？")
    assert "cet4" in words or "cet" in words
    assert "请问" not in words and "怎么" not in words and "？" not in words
    assert segment.chars("图书馆，借书吗") == [
        "图",
        "书",
        "馆",
        "图书",
        "书馆",
        "借",
        "书",
        "借书",
        "书吗",
    ]


def test_the_result_of_an_empty_ranking_is_unanswered():
    assert not Result("q", "lexical", [], []).answered
