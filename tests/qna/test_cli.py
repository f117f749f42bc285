"""`flask qna build|eval|ask`, the demo handbook's quality floor, and the webhook's answers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from berater.qna.corpus import load
from berater.qna.index import Index
from tests.chat.helpers import post, reply_fields, text_xml
from tests.conftest import HANDBOOK

ROOT = Path(__file__).resolve().parents[2]


def write_questions(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return path


def invoke(app, *args: str):
    return app.test_cli_runner().invoke(args=["qna", *args])


def test_build_writes_the_index_and_prints_a_summary(make_app, tmp_path):
    app = make_app()
    out = tmp_path / "idx.npz"
    result = invoke(app, "build", "--corpus", str(HANDBOOK), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "paragraphs: 9" in result.output
    assert re.search(r"terms: \d+ words, \d+ characters and bigrams", result.output)
    assert re.search(r"seconds: \d+\.\d\d", result.output)
    assert [p.id for p in Index.load(out).paragraphs] == [p.id for p in load(HANDBOOK)]


def test_build_reads_a_jsonl_corpus(make_app, tmp_path):
    corpus = write_questions(
        tmp_path / "c.jsonl",
        [
            {"id": "a", "title": "报到", "text": "新生九月一日报到。", "page": 2},
            {"id": "b", "title": "图书馆", "text": "图书馆早上八点开门。"},
        ],
    )
    out = tmp_path / "idx.npz"
    result = invoke(make_app(), "build", "--corpus", str(corpus), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert [p.id for p in Index.load(out).paragraphs] == ["a", "b"]


def test_build_if_missing_keeps_an_existing_index(make_app, tmp_path, qna_index):
    out = tmp_path / "idx.npz"
    out.write_bytes(qna_index.read_bytes())
    args = ["build", "--corpus", str(HANDBOOK), "--out", str(out), "--if-missing"]
    result = invoke(make_app(), *args)
    assert result.exit_code == 0 and "kept" in result.output
    assert out.read_bytes() == qna_index.read_bytes()
    out.write_bytes(b"old")  # not an index: built
    result = invoke(make_app(), *args)
    assert result.exit_code == 0 and "the earlier index cannot be read" in result.output
    assert Index.load(out).paragraphs == load(HANDBOOK)


def test_build_names_a_bad_corpus(make_app, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("没有章。\n", encoding="utf-8")
    result = invoke(make_app(), "build", "--corpus", str(bad), "--out", str(tmp_path / "x.npz"))
    assert result.exit_code != 0
    assert "bad.txt:1" in result.output and not (tmp_path / "x.npz").exists()


def test_eval_prints_the_three_figures(make_app, tmp_path):
    questions = write_questions(
        tmp_path / "q.jsonl",
        [
            {"q": "图书逾期了要交滞纳金吗", "relevant": ["3.1.2"]},
            {"q": "缓考安排在什么时候", "relevant": ["2.1.1"]},
            {"q": "推荐一部电影", "relevant": []},
        ],
    )
    result = invoke(make_app(), "eval", "--corpus", str(HANDBOOK), "--questions", str(questions))
    assert result.exit_code == 0, result.output
    assert "top-1: 1.000" in result.output
    assert "recall@3: 1.000" in result.output
    assert "MRR@10: 1.000" in result.output
    assert "2 answerable, 1 unanswerable" in result.output
    assert "declined (unanswerable, below the threshold): 1.000" in result.output


def test_eval_counts_a_miss(make_app, tmp_path):
    questions = write_questions(
        tmp_path / "q.jsonl",
        [
            {"q": "图书逾期了要交滞纳金吗", "relevant": ["3.1.2"]},
            {"q": "图书逾期了要交滞纳金吗", "relevant": ["1.1.1"]},
        ],
    )
    result = invoke(make_app(), "eval", "--corpus", str(HANDBOOK), "--questions", str(questions))
    assert "top-1: 0.500" in result.output and "recall@3: 0.500" in result.output


def test_eval_refuses_questions_naming_unknown_paragraphs(make_app, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", [{"q": "图书馆", "relevant": ["9.9.9"]}])
    result = invoke(make_app(), "eval", "--corpus", str(HANDBOOK), "--questions", str(questions))
    assert result.exit_code != 0 and "9.9.9" in result.output


def test_the_demo_handbook_answers_its_development_questions(make_app):
    """The checked-in set over the demo handbook: a floor under the figures in the README."""
    result = invoke(
        make_app(),
        "eval",
        "--corpus",
        str(ROOT / "data/qna/handbook"),
        "--questions",
        str(ROOT / "data/qna/dev-questions.jsonl"),
    )
    assert result.exit_code == 0, result.output
    figures = dict(re.findall(r"^(top-1|recall@3|MRR@10): ([\d.]+)$", result.output, re.M))
    assert float(figures["top-1"]) >= 0.6
    assert float(figures["recall@3"]) >= 0.8
    assert float(figures["MRR@10"]) >= 0.7
    questions = re.search(r"questions: (\d+) answerable", result.output)
    assert questions and int(questions.group(1)) >= 150
    assert len(load(ROOT / "data/qna/handbook")) >= 300


def test_ask_answers_from_the_served_index(make_app, qna_index):
    result = invoke(make_app(QNA_INDEX=str(qna_index)), "ask", "图书逾期了要交滞纳金吗")
    assert result.exit_code == 0
    assert "3.1.2 第三章 图书馆 第一节 借阅 40页" in result.output


def test_the_webhook_answers_a_text_from_the_handbook(make_app, qna_index, wechat):
    app = make_app(QNA_INDEX=str(qna_index), QNA_BACKEND="lexical")
    reply = reply_fields(post(app.test_client(), text_xml("图书逾期了要交滞纳金吗")))
    assert reply["Content"].startswith("逾期未还的图书，每册每天收取滞纳金零点一元。")
    assert reply["Content"].endswith("——第三章 图书馆 第一节 借阅 40页")


def test_the_webhook_leads_with_the_best_sentence_and_links_the_answer_page(
    make_app, wechat, tmp_path
):
    handbook = tmp_path / "h.txt"
    handbook.write_text(
        "# 第三章 图书馆\n## 第一节 借阅\n@page 40\n"
        "本科生可同时外借图书二十册，借期为三十天。图书到期前可以续借一次。"
        "逾期归还的，每册每天收取逾期费零点一元。\n",
        encoding="utf-8",
    )
    index = tmp_path / "i.npz"
    Index.build(load(handbook)).save(index)
    link = "https://berater.test/qna/answer"
    app = make_app(QNA_INDEX=str(index), QNA_MIN_SCORE=0.01, WECHAT_ANSWER_URL=link)
    reply = reply_fields(post(app.test_client(), text_xml("图书逾期了怎么收费")))["Content"]
    assert reply == (
        "逾期归还的，每册每天收取逾期费零点一元。\n——第三章 图书馆 第一节 借阅 40页\n"
        f"全文：{link}?q=%E5%9B%BE%E4%B9%A6%E9%80%BE%E6%9C%9F%E4%BA%86%E6%80%8E%E4%B9%88%E6%94%B6%E8%B4%B9"
    )


def test_the_webhook_suggests_sections_when_the_handbook_has_no_answer(make_app, qna_index, wechat):
    app = make_app(QNA_INDEX=str(qna_index), QNA_MIN_SCORE=0.95)
    reply = reply_fields(post(app.test_client(), text_xml("图书馆借书要逾期吗")))
    assert reply["Content"].startswith("手册里没有找到确切的答案")
    assert "· 第三章 图书馆" in reply["Content"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ('"just a string"', "JSON object"),
        ('{"q": "", "relevant": []}', "'q'"),
        ('{"q": "图书馆", "relevant": "3.1.1"}', "'relevant'"),
    ],
)
def test_eval_names_a_bad_question_line(make_app, tmp_path, line, message):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"q": "图书馆", "relevant": []}\n' + line + "\n", encoding="utf-8")
    result = invoke(make_app(), "eval", "--corpus", str(HANDBOOK), "--questions", str(questions))
    assert result.exit_code != 0
    assert message in result.output and "q.jsonl:2" in result.output


def test_importing_the_app_does_not_load_jieba():
    """jieba's dictionary costs ~0.6 s: it loads at start-up or first use, never on import."""
    import subprocess
    import sys

    code = (
        "import sys, berater, berater.qna.answers, berater.qna.cli, berater.qna.views;"
        "print('jieba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_eval_in_bert_mode_uses_the_bert_server(make_app, bert_settings, bert, tmp_path):
    questions = write_questions(
        tmp_path / "q.jsonl", [{"q": "图书馆自习区晚上几点关闭", "relevant": ["3.2.1"]}]
    )
    app = make_app(**bert_settings)
    args = ["--corpus", str(HANDBOOK), "--questions", str(questions)]
    result = invoke(app, "eval", *args, "--mode", "hybrid")
    assert result.exit_code == 0, result.output
    assert "mode: hybrid" in result.output and "top-1: 1.000" in result.output
    assert bert.texts_seen >= 10  # nine paragraphs and the question


def test_eval_in_bert_mode_without_a_server_says_so(make_app, tmp_path):
    questions = write_questions(tmp_path / "q.jsonl", [{"q": "图书馆", "relevant": ["3.2.1"]}])
    args = ["--corpus", str(HANDBOOK), "--questions", str(questions), "--mode", "bert"]
    result = invoke(make_app(BERT_HOST=""), "eval", *args)
    assert result.exit_code != 0 and "needs a BERT server" in result.output
