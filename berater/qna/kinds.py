"""What kind of answer a question asks for, and which handbook sentences hold that kind.

"多少钱" asks for an amount of money, "几点" for a time of day, "多久" for a length of time,
"在哪" for a place. A sentence that holds an amount (`六千元`), a time (`晚上十一点半`), a
length (`两周`) or a place (`教学楼A座101室`) is more likely to answer such a question than a
neighbour that shares the question's words but not the kind of thing asked for. Each kind is
a bit: a question's kinds and a sentence's kinds are bit masks, and they meet when they share
one. The patterns are written from how questions are asked and how the handbook states
facts, and apply to folded text (`normalise.fold`: ASCII digits, simplified characters).
"""

from __future__ import annotations

import re

_NUMBER = "[0-9一二三四五六七八九十百千万两半零〇]"

# kind: (what a question asking for it says, what a sentence holding it says)
KINDS: dict[str, tuple[str, str]] = {
    "money": (
        "多少钱|几块钱|多少元|交多少|收多少|贵不贵|价格|费用|收费|花多少",
        rf"{_NUMBER}+(?:\.\d+)?\s*元|免费|不收费|不收取",
    ),
    "date": (
        "什么时候|啥时候|何时|几月|哪天|几号|时间",
        rf"{_NUMBER}+\s*(?:月|日|号|周|学期)|第{_NUMBER}+周|"
        "(?:开学|学期|考试|毕业|放假)(?:初|前|后|末)|每(?:年|学期|月|周)",
    ),
    "clock": ("几点", rf"{_NUMBER}+\s*[点时:：]"),
    "duration": (
        "多久|多长时间|几年|几天|几周|几个月|期限",
        rf"{_NUMBER}+\s*个?(?:年|天|周|月|工作日|小时|学期)",
    ),
    "count": (
        "多少|几[个门次本册天周年分人项份]|上限|最多|至少|最少",
        # A number with what it counts (一并 and 统一 count nothing), or a share.
        rf"\d|{_NUMBER}+\s*(?:个|门|次|本|册|天|周|年|月|分|人|名|项|份|元|小时|间|张|倍)|百分之",
    ),
    "place": (
        "哪里|在哪|哪儿|什么地方|地点|去哪",
        "室|楼|中心|办公室|网站|系统|窗口|大厅|小程序|服务台",
    ),
}
_QUESTIONS = [(1 << n, re.compile(q)) for n, (q, _) in enumerate(KINDS.values())]
_SENTENCES = [(1 << n, re.compile(s)) for n, (_, s) in enumerate(KINDS.values())]


def question_kinds(question: str) -> int:
    """The kinds of answer a (prepared) question asks for, as a bit mask; 0 for none."""
    return _mask(_QUESTIONS, question)


def sentence_kinds(sentence: str) -> int:
    """The kinds of fact a (folded) sentence holds, as a bit mask."""
    return _mask(_SENTENCES, sentence)


def _mask(patterns: list[tuple[int, re.Pattern[str]]], text: str) -> int:
    mask = 0
    for bit, pattern in patterns:
        if pattern.search(text):
            mask |= bit
    return mask
