"""Reply XML is written by joining escaped parts: it must read back as ElementTree writes it."""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement, tostring

import pytest
from defusedxml.ElementTree import fromstring

from berater.chat import replies

VALUES = [
    "plain",
    "a ]]> b <b>bold</b> & c",
    "&amp; already escaped, &lt;",
    "quotes \" and ' stay",
    "控制\x01字符\x0b和\ufffe被去掉",
    "新生报到\n——第一章\n全文：https://example.edu.cn/qna?q=%E6%8A%A5&x=1",
    "",
    "<![CDATA[ x ]]>",
    "\U0001f600 outside the BMP",
]


def _elementtree(children: list[tuple[str, str]]) -> str:
    root = Element("xml")
    for tag, value in children:
        SubElement(root, tag).text = replies.xml_safe(value)
    return tostring(root, encoding="unicode")


@pytest.mark.parametrize("value", VALUES)
def test_a_reply_is_written_as_elementtree_writes_it(value):
    children = [("ToUserName", "o_user"), ("Content", value), ("MsgType", "text")]
    written = replies._xml(children)
    assert written == _elementtree(children)
    parsed = fromstring(written)
    assert (parsed.find("Content").text or "") == replies.xml_safe(value)


def test_a_text_reply_reads_back_field_by_field():
    reply = replies.text_reply("o_user", "gh_account", "a <b> & ]]>", now=1700000000)
    fields = {child.tag: child.text for child in fromstring(reply)}
    assert fields == {
        "ToUserName": "o_user",
        "FromUserName": "gh_account",
        "CreateTime": "1700000000",
        "MsgType": "text",
        "Content": "a <b> & ]]>",
    }


def test_the_link_of_a_text_that_fits_is_never_worked_out():
    asked: list[int] = []

    def link() -> str:
        asked.append(1)
        return "https://example.edu.cn/qna"

    assert replies.fit_text("短", link) == "短"
    assert asked == []
    cut = replies.fit_text("长" * 1000, link)
    assert cut.endswith("…\nhttps://example.edu.cn/qna")
    assert len(cut.encode("utf-8")) <= replies.TEXT_LIMIT
    assert asked == [1]
