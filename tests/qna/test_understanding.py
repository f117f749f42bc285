"""Questions in students' own words: normalisation, the office's synonyms and FAQ, the
heading field, the best sentence, and what `qna build` and `qna eval` say about them."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from berater.qna import faq
from berater.qna.corpus import load
from berater.qna.engine import Engine, Thresholds, reply_text
from berater.qna.index import Index
from berater.qna.normalise import Synonyms, SynonymsError, fold, question_text, strip_scaffolding
from tests.conftest import HANDBOOK
from tests.qna.test_cli import invoke, write_questions

ROOT = Path(__file__).resolve().parents[2]

# A handbook whose paragraphs hold several sentences, for the best-sentence tests.
LONG = """# 第一章 考试与成绩
## 第一节 补考
课程考核不及格的，学校在下学期开学初安排一次补考。补考时间为新学期第一周至第二周，学生无需报名。补考成绩及格的，按六十分记载。

学生因病不能参加期末考试的，可以申请缓考。缓考申请须在考试三天前提出，并附医院诊断证明。缓考与补考同时进行。
# 第二章 图书馆
## 第一节 借阅
本科生可同时外借图书二十册，借期为三十天。图书到期前可以续借一次，续借期为三十天。逾期归还的，每册每天收取逾期费零点一元。
"""


@pytest.fixture(scope="module")
def long_handbook(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("long") / "handbook.txt"
    path.write_text(LONG, encoding="utf-8")
    return path


# --- normalisation ---------------------------------------------------------------------


def test_traditional_characters_and_full_width_forms_are_folded():
    assert fold("請問獎學金怎麼申請？") == "请问奖学金怎么申请?"
    assert fold("ＣＥＴ４報名") == "cet4报名"
    assert fold("宿舍網路連不上，軟體下載") == "宿舍网络连不上,软件下载"
    assert fold("学校的著名校友") == "学校的著名校友"  # simplified text is left as it is


@pytest.mark.parametrize(
    ("question", "stripped"),
    [
        ("请问新生报到要带什么？", "新生报到要带什么"),
        ("我想问一下，挂科了怎么办", "挂科了"),
        ("图书可以续借吗", "图书可以续借"),
        ("老师好，缓考什么时候考呢？", "缓考什么时候考"),
        ("怎么办", "怎么办"),  # nothing else: the question stays
    ],
)
def test_the_scaffolding_of_a_question_is_stripped(question, stripped):
    assert strip_scaffolding(fold(question)) == stripped


@pytest.fixture(scope="module")
def index() -> Index:
    return Index.build(load(HANDBOOK), ["校园卡", "绩点", "缓考"])


def test_a_question_in_traditional_characters_finds_what_its_simplified_form_finds(index):
    engine = Engine(index, thresholds=Thresholds(lexical=0.05))
    simplified = engine.search("图书逾期了要交滞纳金吗", k=3)
    traditional = engine.search("圖書逾期了要交滯納金嗎？", k=3)
    assert traditional.hits[0].id == simplified.hits[0].id == "3.1.2"
    assert [h.score for h in traditional.hits] == [h.score for h in simplified.hits]


# --- synonyms --------------------------------------------------------------------------


def test_every_word_of_a_group_is_read_as_its_first_word():
    synonyms = Synonyms([["不及格", "挂科", "挂了"], ["校园卡", "饭卡", "一卡通"]])
    assert synonyms.apply("挂科了饭卡丢了") == "不及格了校园卡丢了"
    assert synonyms.apply("一卡通挂了") == "校园卡不及格"
    assert question_text("請問掛科了怎麼辦", synonyms) == "不及格了"


def test_a_student_word_finds_the_handbook_word_through_a_group(index):
    question = "挂了的课学分绩点算几点"
    plain = Engine(index, thresholds=Thresholds(lexical=0.01))
    synonyms = Synonyms([["不及格", "挂科", "挂了"]])
    grouped = Index.build(index.paragraphs, index.userdict, synonyms=synonyms)
    # 2.2.1 holds 不及格; with the group, 挂了 in the question meets it.
    with_group = Engine(grouped, thresholds=Thresholds(lexical=0.01)).search(question)
    assert with_group.hits[0].id == "2.2.1"
    assert with_group.hits[0].score > plain.search(question).hits[0].score


def test_the_synonyms_file_is_read_and_its_mistakes_named(tmp_path):
    path = tmp_path / "synonyms.txt"
    path.write_text("# 注释\n挂科 不及格  # 行尾注释\n\n校园卡，饭卡\n", encoding="utf-8")
    assert Synonyms.load(path).groups == [["挂科", "不及格"], ["校园卡", "饭卡"]]
    path.write_text("挂科 不及格\n单独一个\n", encoding="utf-8")
    with pytest.raises(SynonymsError, match=r"synonyms\.txt:2: a group needs at least two"):
        Synonyms.load(path)


def test_build_reports_groups_that_match_nothing(make_app, tmp_path):
    synonyms = tmp_path / "synonyms.txt"
    synonyms.write_text("不及格 挂科\n网课 慕课\n", encoding="utf-8")
    app = make_app(QNA_SYNONYMS=str(synonyms))
    result = invoke(app, "build", "--corpus", str(HANDBOOK), "--out", str(tmp_path / "i.npz"))
    assert result.exit_code == 0, result.output
    assert "synonyms: 2 groups, 1 matching nothing in the handbook" in result.output
    assert "matches nothing: 网课 慕课" in result.output
    assert Index.load(tmp_path / "i.npz").synonyms.groups == [["不及格", "挂科"], ["网课", "慕课"]]


def test_the_demo_synonyms_are_all_in_use(make_app, tmp_path):
    app = make_app(QNA_SYNONYMS="data/qna/synonyms.txt")
    result = invoke(
        app,
        "build",
        "--corpus",
        str(ROOT / "data/qna/handbook"),
        "--out",
        str(tmp_path / "i.npz"),
    )
    assert result.exit_code == 0, result.output
    assert ", 0 matching nothing in the handbook" in result.output


# --- the FAQ ---------------------------------------------------------------------------

FAQ = """问：图书逾期了怎么收费
问：借书超期会罚款吗
见：3.1.2

问：学校的邮政编码是多少
答：本校邮政编码为 210023。

问：怎么申请缓考
答：考试前向教务处申请。
见：2.1.1 9.9.9
"""


@pytest.fixture
def faq_index(tmp_path, index) -> Index:
    path = tmp_path / "faq.txt"
    path.write_text(FAQ, encoding="utf-8")
    return Index.build(index.paragraphs, index.userdict, faq=faq.load(path))


def test_an_faq_variant_answers_first_and_says_so(faq_index):
    engine = Engine(faq_index, thresholds=Thresholds(lexical=0.05))
    result = engine.search("請問圖書逾期了怎麼收費？", k=3)  # the variant, in other characters
    assert result.faq and result.hits[0].faq and result.hits[0].id == "3.1.2"
    assert result.hits[0].score == 1.0
    assert not any(h.faq for h in result.hits[1:])
    assert len({h.id for h in result.hits}) == len(result.hits)


def test_a_close_question_matches_a_variant_and_a_far_one_does_not(faq_index):
    engine = Engine(faq_index, thresholds=Thresholds(lexical=0.05))
    close = engine.search("借书超期了会罚款吗", k=1)
    assert close.faq and close.hits[0].id == "3.1.2" and faq.CLOSE <= close.hits[0].score < 1
    assert not engine.search("图书馆晚上几点关门", k=1).faq


def test_a_question_as_close_to_two_entries_matches_the_one_written_first():
    """Ties go to the entry that comes first in the file, whatever the order of the
    question's bigrams (which changes with Python's hash seed)."""
    first = faq.Compiled(1, ("甲乙丙丁",), ("1.1.1",), "")
    second = faq.Compiled(5, ("甲乙丙戊",), ("1.1.2",), "")
    for entries in ([first, second], [second, first]):
        found = faq.FaqIndex(entries).match("甲乙丙")
        assert found is not None and found.entry is entries[0]
        assert found.similarity == round(2 / 3, 4)
    assert faq.FaqIndex([first]).match("甲乙戊己") is None  # one bigram of five shared


def test_a_short_faq_answer_stands_on_its_own(faq_index):
    engine = Engine(faq_index, thresholds=Thresholds(lexical=0.05))
    result = engine.search("学校邮政编码是多少？", k=3)
    best = result.hits[0]
    assert (best.id, best.faq, best.text, best.source) == (
        "faq:5",
        True,
        "本校邮政编码为 210023。",
        "常见问题",
    )
    assert reply_text(result) == "本校邮政编码为 210023。\n——常见问题"


def test_an_faq_id_the_handbook_lacks_is_left_out_of_the_index(faq_index, tmp_path):
    entry = next(e for e in faq_index.faq.entries if e.answer.startswith("考试前"))
    assert entry.ids == ("2.1.1",)
    faq_index.save(tmp_path / "i.npz")
    loaded = Index.load(tmp_path / "i.npz").faq
    assert [(e.line, e.ids, e.answer) for e in loaded.entries] == [
        (e.line, e.ids, e.answer) for e in faq_index.faq.entries
    ]


def test_build_counts_the_faq_and_names_an_id_it_lacks(make_app, tmp_path):
    path = tmp_path / "faq.txt"
    path.write_text(FAQ, encoding="utf-8")
    app = make_app(QNA_FAQ=str(path))
    out = tmp_path / "i.npz"
    result = invoke(app, "build", "--corpus", str(HANDBOOK), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "FAQ: 3 entries" in result.output
    assert f"{path}:10 names 9.9.9, which the handbook does not have" in result.output
    strict = invoke(app, "build", "--corpus", str(HANDBOOK), "--out", str(out), "--strict")
    assert strict.exit_code == 1


NEAR_COPY = 0.7  # shared bigrams from which an FAQ variant counts as a dev question's copy


def _grams(text: str) -> frozenset[str]:
    key = "".join(ch for ch in text if ch.isalnum())
    return frozenset(key[i : i + 2] for i in range(len(key) - 1))


def test_the_demo_faq_is_unambiguous_and_not_copied_from_the_questions():
    """No two entries' variants are as close as the match threshold, and no development
    question is a variant of the FAQ or close to a copy of one (it is written from the
    handbook's topics)."""
    synonyms = Synonyms.load(ROOT / "data/qna/synonyms.txt")
    entries = faq.load(ROOT / "data/qna/faq.txt").entries
    variants = [
        (n, _grams(question_text(v, synonyms)), v)
        for n, e in enumerate(entries)
        for _, v in e.variants
    ]
    for (i, a, va), (j, b, vb) in itertools.combinations(variants, 2):
        if i != j:
            assert len(a & b) / len(a | b) < faq.CLOSE, (va, vb)
    # Not even a near copy: a development question and a variant share less than NEAR_COPY
    # of their bigrams, so the FAQ cannot answer the evaluation by having its words.
    questions = ROOT / "data/qna/dev-questions.jsonl"
    for line in questions.read_text(encoding="utf-8").splitlines():
        asked = _grams(question_text(json.loads(line)["q"], synonyms))
        for _, grams, variant in variants:
            assert len(asked & grams) / len(asked | grams) < NEAR_COPY, (line, variant)


# --- the best sentence -----------------------------------------------------------------


def test_each_answer_carries_its_best_sentence(long_handbook):
    engine = Engine(Index.build(load(long_handbook)), thresholds=Thresholds(lexical=0.01))
    result = engine.search("补考要不要报名", k=2)
    assert result.hits[0].id == "1.1.1"
    assert result.hits[0].highlight == "补考时间为新学期第一周至第二周，学生无需报名。"
    fee = engine.search("书逾期了怎么收费", k=1).hits[0]
    assert fee.highlight == "逾期归还的，每册每天收取逾期费零点一元。"
    assert fee.highlight in fee.text and fee.highlight != fee.text


def test_a_short_best_sentence_takes_the_next_one_along(tmp_path):
    path = tmp_path / "h.txt"
    path.write_text(
        "# 一\n缓考可以申请。申请须在考试三天前提出，并附医院诊断证明。另有其他规定若干条。\n",
        encoding="utf-8",
    )
    engine = Engine(Index.build(load(path)), thresholds=Thresholds(lexical=0.01))
    hit = engine.search("缓考", k=1).hits[0]
    assert hit.highlight == "缓考可以申请。申请须在考试三天前提出，并附医院诊断证明。"


def test_the_reply_leads_with_the_best_sentence_and_links_the_full_answer(long_handbook):
    engine = Engine(Index.build(load(long_handbook)), thresholds=Thresholds(lexical=0.01))
    result = engine.search("书逾期了怎么收费", k=1)
    link = "https://berater.test/qna?q=x"
    assert reply_text(result, link) == (
        "逾期归还的，每册每天收取逾期费零点一元。\n——第二章 图书馆 第一节 借阅\n全文：" + link
    )
    assert reply_text(result).startswith(result.hits[0].text)  # no page to link: all of it
    long = reply_text(result, link, limit=120)
    assert len(long.encode("utf-8")) <= 120 and long.endswith(link) and "…" in long


# --- qna eval ---------------------------------------------------------------------------


def test_eval_prints_how_often_an_answer_was_right_and_the_faq_apart(make_app, tmp_path):
    path = tmp_path / "faq.txt"
    path.write_text(FAQ, encoding="utf-8")
    questions = write_questions(
        tmp_path / "q.jsonl",
        [
            {"q": "借书超期会罚款吗", "relevant": ["3.1.2"]},
            {"q": "缓考安排在什么时候", "relevant": ["2.1.1"]},
            {"q": "图书馆晚上几点关门", "relevant": ["1.1.1"]},
            {"q": "推荐一部电影", "relevant": []},
        ],
    )
    args = ["--corpus", str(HANDBOOK), "--questions", str(questions), "--faq", str(path)]
    result = invoke(make_app(), "eval", *args)
    assert result.exit_code == 0, result.output
    assert "answered (answerable, above the threshold): 1.000 (3 of 3)" in result.output
    assert "right when answered (top-1 of the answered): 0.667" in result.output
    assert "declined (unanswerable, below the threshold): 1.000 (1 of 1)" in result.output
    assert "3 entries): answered 1 questions first (1 right at top-1, 0 of them" in result.output
    assert "top-1: 0.667" in result.output
    assert "without the FAQ: top-1 0.333" in result.output  # the FAQ got the first one right


def test_eval_cross_validates_over_chapters(make_app):
    result = invoke(
        make_app(),
        "eval",
        "--corpus",
        str(ROOT / "data/qna/handbook"),
        "--questions",
        str(ROOT / "data/qna/dev-questions.jsonl"),
        "--faq",
        "",
        "--synonyms",
        str(ROOT / "data/qna/synonyms.txt"),
        "--cv",
        "5",
    )
    assert result.exit_code == 0, result.output
    folds = re.findall(
        r"^  fold (\d) \(([^)]*)\): chosen ngram ([\d.]+), heading ([\d.]+)", result.output, re.M
    )
    assert [f[0] for f in folds] == ["1", "2", "3", "4", "5"]
    assert folds[0][1] == "第一章 入学与学籍, 第六章 学生宿舍"
    held = [float(x) for x in re.findall(r"held out .*?: top-1 ([\d.]+)", result.output)]
    mean = re.search(
        r"^  mean: top-1 ([\d.]+), recall@3 ([\d.]+), MRR@10 [\d.]+, answered ([\d.]+), "
        r"right when answered [\d.]+, declined ([\d.]+)",
        result.output,
        re.M,
    )
    assert mean and abs(float(mean.group(1)) - sum(held) / 5) < 0.001
    # The floor under the figures in the README.
    top1, recall3, answered, declined = (float(x) for x in mean.groups())
    assert top1 >= 0.68 and recall3 >= 0.84 and answered >= 0.89 and declined >= 0.75
    assert re.search(
        r"chosen the same way on every question: ngram [\d.]+, heading [\d.]+, sentence "
        r"[\d.]+, kinds [\d.]+, coverage [\d.]+, threshold 0\.\d+$",
        result.output,
        re.M,
    )


def test_eval_refuses_more_folds_than_chapters(make_app, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", [{"q": "图书馆", "relevant": ["3.2.1"]}])
    args = ["--corpus", str(HANDBOOK), "--questions", str(questions), "--cv", "4"]
    result = invoke(make_app(), "eval", *args)
    assert result.exit_code != 0 and "--cv needs 2 to 3 folds" in result.output


def test_questions_phrased_close_to_the_text_still_find_their_paragraph():
    """A sentence of a paragraph, cut to 25 characters, as a question: what the engine did
    well before the students' words came in, it still does."""
    from berater.qna import segment

    paragraphs = load(ROOT / "data/qna/handbook")
    index = Index.build(
        paragraphs,
        segment.read_userdict(ROOT / "data/jieba-userdict.txt"),
        synonyms=Synonyms.load(ROOT / "data/qna/synonyms.txt"),
        faq=faq.load(ROOT / "data/qna/faq.txt"),
    )
    engine = Engine(index)
    first = 0
    for n, paragraph in enumerate(paragraphs):
        sentences = [s for s in re.split(r"(?<=[。；！？])", paragraph.text) if s.strip()]
        question = max(sentences, key=len)[:25]
        first += int(engine.scores(question).argmax()) == n
    assert first / len(paragraphs) >= 0.99
