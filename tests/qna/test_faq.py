"""The office's FAQ file: its format and its mistakes."""

from __future__ import annotations

import pytest

from berater.qna import faq
from berater.qna.corpus import CorpusError

GOOD = """# 常见问题
问：挂科了怎么办
Q: 考试没过会怎样
见：2.1.2 makeup-exams

问：学校的邮政编码是多少
答：本校邮政编码为 210023。

see: 3.1.1
q：图书馆能借几本书
A: 二十册，借期三十天。
"""


def test_entries_hold_their_variants_ids_and_answers(tmp_path):
    path = tmp_path / "faq.txt"
    path.write_text(GOOD, encoding="utf-8")
    first, second, third = faq.load(path).entries
    assert first.variants == [(2, "挂科了怎么办"), (3, "考试没过会怎样")]
    assert (first.ids, first.ids_line, first.answer) == (["2.1.2", "makeup-exams"], 4, "")
    assert (second.ids, second.answer) == ([], "本校邮政编码为 210023。")
    assert (third.ids, third.answer, third.line) == (["3.1.1"], "二十册，借期三十天。", 9)
    assert list(faq.load(path).references()) == [(4, "2.1.2"), (4, "makeup-exams"), (9, "3.1.1")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("问：有问无答\n", "neither '答：' nor '见：'"),
        ("见：1.1.1\n", "has no '问：' line"),
        ("问：一\n答：二\n答：三\n", "a second '答：'"),
        ("问：一\n见：1.1.1\n见：1.1.2\n", "a second '见：'"),
        ("问：一\n说：二\n", "expected '问：', '答：' or '见：'"),
        ("问：\n", "has nothing after it"),
        ("问：一\n答：" + "长" * 1001 + "\n", "longer than 1000"),
    ],
)
def test_a_mistake_is_named_by_file_and_line(tmp_path, text, message):
    path = tmp_path / "faq.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError, match=message) as caught:
        faq.load(path)
    assert "faq.txt:" in str(caught.value)


def test_ids_on_a_see_line_are_rewritten_in_place():
    mapping = {"1.1.2": "1.1.3"}
    assert faq.rewrite_ids("见：1.1.2 named 1.1.9", mapping) == "见：1.1.3 named 1.1.9"
    assert faq.rewrite_ids("问：1.1.2 是什么", mapping) == "问：1.1.2 是什么"
