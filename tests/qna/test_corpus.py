"""The corpus formats: the handbook text format and JSONL, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berater.qna.corpus import CorpusError, load

HANDBOOK = """\
# 第一章 入学与学籍
## 第一节 新生报到
@page 3
新生应持录取通知书和本人身份证，
在规定日期内到校办理入学手续。

因故不能按期报到的，应当向学院请假。
@page 4
请假一般不得超过两周。
## 第二节 注册
每学期开学时，学生应当按时注册。
# 第二章 课程与学分
章首段落，在任何一节之前。
## 第一节 选课
Students choose courses
online.
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_text_format_gives_ids_pages_chapters_and_sections(tmp_path):
    paragraphs = load(write(tmp_path, "handbook.txt", HANDBOOK))
    assert [p.id for p in paragraphs] == ["1.1.1", "1.1.2", "1.1.3", "1.2.1", "2.0.1", "2.1.1"]
    first = paragraphs[0]
    assert first.text == "新生应持录取通知书和本人身份证，在规定日期内到校办理入学手续。"
    assert (first.chapter, first.section, first.page) == ("第一章 入学与学籍", "第一节 新生报到", 3)
    assert paragraphs[2].page == 4 and paragraphs[3].section == "第二节 注册"
    assert paragraphs[4].section == "" and paragraphs[4].chapter == "第二章 课程与学分"
    assert paragraphs[5].text == "Students choose courses online."


def test_a_folder_is_read_in_file_name_order(tmp_path):
    folder = tmp_path / "handbook"
    folder.mkdir()
    write(folder, "02-b.txt", "# 第二章\n第二章的段落。\n")
    write(folder, "01-a.txt", "# 第一章\n@page 1\n第一章的段落。\n")
    write(folder, "notes.md", "# not read\n")
    paragraphs = load(folder)
    assert [(p.id, p.chapter, p.page) for p in paragraphs] == [
        ("1.0.1", "第一章", 1),
        ("2.0.1", "第二章", 1),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("没有章的段落。\n", "before the first '# chapter'"),
        ("## 第一节\n", "section comes before"),
        ("# 第一章\n@pages 3\n段落。\n", "expected '@page N'"),
        ("# 第一章\n### 小节\n", "headings are"),
        ("", "no paragraphs"),
    ],
)
def test_a_bad_handbook_names_the_file_and_line(tmp_path, text, message):
    with pytest.raises(CorpusError, match=message) as caught:
        load(write(tmp_path, "bad.txt", text))
    assert "bad.txt" in str(caught.value)


def test_jsonl_paragraphs_keep_their_ids_and_sources(tmp_path):
    rows = [
        {"id": "p1", "title": "报到", "text": "新生九月一日报到。", "chapter": "一", "page": 3},
        {"id": 7, "title": "", "text": "图书馆八点开门。"},
    ]
    path = write(tmp_path, "c.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    first, second = load(path)
    assert (first.id, first.title, first.chapter, first.section, first.page) == (
        "p1",
        "报到",
        "一",
        "",
        3,
    )
    assert first.heading == "报到"
    assert (second.id, second.page) == ("7", None)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"id": "", "text": "x"}', "'id'"),
        ('{"id": "a", "text": "  "}', "'text'"),
        ('{"id": "a", "text": "x", "page": "3"}', "'page'"),
        ('{"id": "a", "text": "x", "color": "red"}', "unknown fields color"),
        ('{"id": "a", "text": "x", "title": 5}', "must be strings"),
    ],
)
def test_a_bad_jsonl_line_is_named(tmp_path, line, message):
    with pytest.raises(CorpusError, match=message) as caught:
        load(write(tmp_path, "c.jsonl", '{"id": "ok", "text": "好"}\n' + line + "\n"))
    assert "c.jsonl:2" in str(caught.value)


def test_duplicate_ids_are_refused(tmp_path):
    text = '{"id": "a", "text": "一"}\n{"id": "a", "text": "二"}\n'
    with pytest.raises(CorpusError, match="'a' appears twice"):
        load(write(tmp_path, "c.jsonl", text))


def test_a_missing_corpus_and_non_utf8_are_refused(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        load(tmp_path / "missing.txt")
    path = tmp_path / "gbk.txt"
    path.write_bytes("# 第一章\n段落。\n".encode("gbk"))
    with pytest.raises(CorpusError, match="not UTF-8"):
        load(path)
