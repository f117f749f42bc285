"""Chinese text to index terms: jieba words, and characters with character bigrams.

jieba's dictionary costs ~0.6 s and ~80 MB to load, so it is loaded once per process, on
first use or by `warm()` at start-up (gunicorn's master calls it before forking), never at
import. Words from the handbook's user dictionary are added to that one tokenizer.
"""

from __future__ import annotations

import itertools
import logging
import threading
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jieba

# Words that carry no meaning for retrieval: particles, pronouns and question words.
_STOPWORDS = """
    的 了 吗 呢 吧 啊 呀 哦 嘛 么 是 在 有 和 与 及 或 就 都 也 还 又 而 被 把 对 从 向 给 让
    我 我们 你 你们 他 她 它 他们 自己 这 那 这个 那个 这些 那些 哪 哪个 哪些 哪里 哪儿
    什么 怎么 怎么样 怎样 咋 如何 为什么 为何 多少 几 吗 是否 能否 可以 可不可以 能不能
    会 要 想 请问 一下
    个 些 之 其 等 该 此 并 但 如果 则 即 已 已经 应 应当 应该 须 需要 需 得 可 能
    为 至 以 经 因 按 于 由 向 凭 未 将 所 方 后 前 内 中 上 下 时 啥 嗯 诶 哈 呗 咧
    """
STOPWORDS = frozenset(_STOPWORDS.split())

_lock = threading.Lock()
_tokenizer: jieba.Tokenizer | None = None
_added: set[str] = set()


def tokenizer() -> jieba.Tokenizer:
    """The process's jieba tokenizer, loading its dictionary on the first call."""
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                made = jieba.Tokenizer()
                made.initialize()
                _tokenizer = made
    return _tokenizer


def warm(words: bool = True) -> None:
    """Load OpenCC's dictionaries and (unless not `words`) jieba's now, at start-up, rather
    than on the first question."""
    from berater.qna.normalise import fold

    if words:
        tokenizer().lcut("预热")
    fold("預熱")


def add_words(words: Iterable[str]) -> None:
    """Teach the tokenizer domain words (kept whole); adding a word twice is harmless."""
    new = [w for w in words if w and w not in _added]
    if not new:
        return
    tk = tokenizer()
    with _lock:
        for word in new:
            tk.add_word(word, freq=None)
            _added.add(word)


def read_userdict(path: str | Path) -> list[str]:
    """The words of a jieba user dictionary file (`word [freq] [tag]` per line)."""
    words = []
    for line in Path(path).read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            words.append(line.split()[0])
    return words


def normalise(text: str) -> str:
    """NFKC (full-width letters and digits become ASCII) and lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def _keep(token: str) -> bool:
    return token not in STOPWORDS and any(ch.isalnum() for ch in token)


def words(text: str) -> list[str]:
    """Search-mode jieba words of `text` (long words and their parts), without stopwords."""
    return [t for t in tokenizer().cut_for_search(normalise(text)) if _keep(t.strip())]


def chars(text: str) -> list[str]:
    """Single characters (but stopwords) and the bigrams within each run of letters and
    digits (punctuation breaks a run): they match what jieba cuts differently, such as
    `借` in a question against `借阅` in the handbook."""
    grams: list[str] = []
    run: list[str] = []
    for ch in normalise(text) + " ":
        if ch.isalnum():
            run.append(ch)
            if ch not in STOPWORDS:
                grams.append(ch)
            continue
        grams.extend(a + b for a, b in itertools.pairwise(run))
        run = []
    return grams
