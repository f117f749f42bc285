"""Text folding, question scaffolding and the office's synonyms, applied alike to the
handbook when the index is built and to a question when it is asked.

- `fold`: NFKC (full-width letters, digits and punctuation become their usual forms), lower
  case, and traditional characters to simplified ones with OpenCC (`tw2sp`: Taiwan's and
  Hong Kong's characters and common phrasings such as 網路 or 軟體 become 网络 and 软件).
  OpenCC loads its dictionaries once per process (gunicorn's master does it before forking).
- `strip_scaffolding`: the words around a question that say nothing about what is asked
  (请问, 我想问一下, 怎么办, a closing 吗 or 呢).
- `Synonyms`: the office's groups (`data/qna/synonyms.txt`, one group per line); every word
  of a group is read as the group's first word, so 挂科 in a question meets 不及格 in the
  handbook.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_converter: Any = None
OPENCC_CONFIG = "tw2sp"


def converter() -> Any:
    """The process's OpenCC converter, loaded on first use."""
    global _converter
    if _converter is None:
        with _lock:
            if _converter is None:
                import opencc

                _converter = opencc.OpenCC(OPENCC_CONFIG)
    return _converter


def _has_han(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)


def fold(text: str) -> str:
    """NFKC, lower case, traditional to simplified."""
    text = unicodedata.normalize("NFKC", text).lower()
    return converter().convert(text) if _has_han(text) else text


# Openings and closings that only frame a question. Longer forms first.
_OPENINGS = (
    "我想问一下",
    "我想请问一下",
    "想问一下",
    "请问一下",
    "问一下",
    "请教一下",
    "我想问",
    "想请问",
    "请问",
    "你好",
    "您好",
    "老师好",
)
_CLOSINGS = (
    "该怎么办",
    "应该怎么办",
    "要怎么办",
    "怎么办",
    "咋办",
    "咋整",
    "怎么弄",
    "可以吗",
    "行不行",
    "行吗",
    "好吗",
    "是吗",
    "对吗",
    "吗",
    "呢",
    "啊",
    "呀",
    "吧",
    "哈",
    "嘛",
)
_PUNCTUATION = re.compile(r"[\s!?.,;:~…、。！？，；：～]+")
_EDGE = re.compile(r"^[\s!?.,;:~…、。！？，；：～]+|[\s!?.,;:~…、。！？，；：～]+$")
_OPENING = re.compile("^(?:" + "|".join(_OPENINGS) + ")+")
_CLOSING = re.compile("(?:" + "|".join(_CLOSINGS) + ")+$")


def strip_scaffolding(question: str) -> str:
    """`question` (folded) without its framing words; the question itself when nothing
    would be left."""
    kept = []
    for part in _PUNCTUATION.split(question):
        part = _CLOSING.sub("", _OPENING.sub("", part))
        if part:
            kept.append(part)
    stripped = " ".join(kept)
    return stripped or _EDGE.sub("", question)


class SynonymsError(ValueError):
    """The synonyms file has a mistake; the message names the line."""


@dataclass(eq=False)
class Synonyms:
    """Groups of words meaning the same; each word is read as its group's first word."""

    groups: list[list[str]]
    _heads: dict[str, str] = field(init=False, repr=False)
    _by_first: dict[str, list[str]] = field(init=False, repr=False)
    members: dict[str, list[str]] = field(init=False, repr=False)  # head -> its group's words

    def __post_init__(self) -> None:
        self._heads = {}
        self.members = {}
        for group in self.groups:
            head = fold(group[0])
            for word in group:
                folded = fold(word)
                if self._heads.setdefault(folded, head) == head:
                    self.members.setdefault(head, []).append(folded)
        by_first: dict[str, list[str]] = {}
        for word in self._heads:
            by_first.setdefault(word[0], []).append(word)
        for words in by_first.values():
            words.sort(key=len, reverse=True)
        self._by_first = by_first

    @classmethod
    def load(cls, path: str | Path) -> Synonyms:
        """The groups of a synonyms file (`#` starts a comment; one group per line)."""
        groups = []
        path = Path(path)
        for number, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            words = list(dict.fromkeys(line.replace("，", " ").replace(",", " ").split()))
            if len(words) < 2:
                raise SynonymsError(f"{path}:{number}: a group needs at least two words")
            groups.append(words)
        return cls(groups)

    @property
    def heads(self) -> list[str]:
        """The words every group is read as (jieba keeps them whole)."""
        return list(dict.fromkeys(self._heads.values()))

    def apply(self, text: str) -> str:
        """`text` (folded) with every group word replaced by its group's first word, longest
        words first, left to right."""
        if not self._by_first:
            return text
        out: list[str] = []
        i, n = 0, len(text)
        by_first, heads = self._by_first, self._heads
        while i < n:
            candidates = by_first.get(text[i])
            if candidates:
                for word in candidates:
                    if text.startswith(word, i):
                        out.append(heads[word])
                        i += len(word)
                        break
                else:
                    out.append(text[i])
                    i += 1
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def unmatched(self, texts: Iterable[str]) -> list[list[str]]:
        """The groups none of whose words occurs in `texts` (folded)."""
        corpus = "\n".join(texts)
        return [g for g in self.groups if not any(fold(w) in corpus for w in g)]


NO_SYNONYMS = Synonyms([])


def question_text(question: str, synonyms: Synonyms = NO_SYNONYMS) -> str:
    """What is searched for a question: folded, its scaffolding stripped, synonyms applied."""
    return synonyms.apply(strip_scaffolding(fold(question)))


def document_texts(texts: Sequence[str], synonyms: Synonyms = NO_SYNONYMS) -> list[str]:
    """What is indexed for handbook texts: folded, synonyms applied."""
    return [synonyms.apply(fold(t)) for t in texts]
