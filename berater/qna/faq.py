"""The office's FAQ file: question variants that point at handbook paragraphs or carry a short
answer of their own (data/qna/README.md gives the format).

```text
# a comment
问：挂科了怎么办
问：考试没过会怎样
见：3.3.2 makeup-exams

问：学校的邮政编码是多少
答：本校邮政编码为 210023。
```

Entries are separated by blank lines. `问` (or `Q`) lines are the variants, `见` (or `See`)
names paragraph ids separated by spaces, `答` (or `A`) is a short answer; an entry has at
least one variant and an answer, ids, or both. Either colon (`:` or `：`) may follow the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from berater.qna.corpus import CorpusError, read_lines

KEYS = {"问": "q", "q": "q", "答": "a", "a": "a", "见": "see", "see": "see"}
LINE = re.compile(r"^(问|答|见|q|a|see)\s*[:：]\s*(.*)$", re.IGNORECASE)
MAX_ANSWER = 1000  # characters; a longer answer belongs in the handbook


@dataclass(slots=True)
class Entry:
    line: int  # the entry's first line
    variants: list[tuple[int, str]] = field(default_factory=list)  # (line, question)
    answer: str = ""
    ids: list[str] = field(default_factory=list)
    ids_line: int = 0


@dataclass(frozen=True, slots=True)
class Faq:
    path: str
    entries: list[Entry]

    def references(self) -> Iterator[tuple[int, str]]:
        """(line, paragraph id) for every id an entry names."""
        for entry in self.entries:
            for pid in entry.ids:
                yield entry.ids_line, pid


def load(path: str | Path) -> Faq:
    """The FAQ at `path`; CorpusError names the file and line of a mistake."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    return Faq(str(path), list(parse(read_lines(path))))


def parse(lines: Iterable[tuple[str, int, str]]) -> Iterator[Entry]:
    """Entries from (file, line number, line) triples."""
    entry: Entry | None = None
    where = ""

    def finish() -> Iterator[Entry]:
        nonlocal entry
        if entry is None:
            return
        done, entry = entry, None
        if not done.variants:
            raise CorpusError(f"{where}: the entry at line {done.line} has no '问：' line")
        if not done.answer and not done.ids:
            raise CorpusError(
                f"{where}: the entry at line {done.line} has neither '答：' nor '见：'"
            )
        yield done

    for file, number, raw in lines:
        line = raw.strip()
        if not line:
            yield from finish()
            continue
        where = f"{file}:{number}"
        if line.startswith("#"):
            continue
        match = LINE.match(line)
        if not match:
            raise CorpusError(f"{where}: expected '问：', '答：' or '见：', got {line[:40]!r}")
        key, value = KEYS[match.group(1).lower()], match.group(2).strip()
        if not value:
            raise CorpusError(f"{where}: '{match.group(1)}' has nothing after it")
        if entry is None:
            entry = Entry(line=number)
        if key == "q":
            entry.variants.append((number, value))
        elif key == "a":
            if entry.answer:
                raise CorpusError(f"{where}: a second '答：' in one entry")
            if len(value) > MAX_ANSWER:
                raise CorpusError(f"{where}: an answer longer than {MAX_ANSWER} characters")
            entry.answer = value
        else:
            if entry.ids:
                raise CorpusError(f"{where}: a second '见：' in one entry; list every id on one")
            entry.ids, entry.ids_line = value.replace("，", " ").replace(",", " ").split(), number
    where = where or "end of file"
    yield from finish()


def rewrite_ids(line: str, mapping: dict[str, str]) -> str:
    """A `见：` line with its ids replaced through `mapping` (others kept as they are)."""
    match = LINE.match(line.strip())
    if not match or KEYS[match.group(1).lower()] != "see":
        return line
    ids = match.group(2).replace("，", " ").replace(",", " ").split()
    head = line[: line.index(match.group(2))] if match.group(2) else line
    return head + " ".join(mapping.get(pid, pid) for pid in ids)


# --- matching questions to the entries -------------------------------------------------

CLOSE = 0.6  # Jaccard of character bigrams from which a question is taken for a variant


@dataclass(frozen=True, slots=True)
class Compiled:
    """An entry as the index keeps it: its normalised variants, ids and short answer."""

    line: int
    variants: tuple[str, ...]
    ids: tuple[str, ...]
    answer: str


@dataclass(frozen=True, slots=True)
class Match:
    entry: Compiled
    similarity: float  # 1.0 for an exact match


def _key(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def _grams(key: str) -> frozenset[str]:
    if len(key) < 2:
        return frozenset([key]) if key else frozenset()
    return frozenset(key[i : i + 2] for i in range(len(key) - 1))


class FaqIndex:
    """The entries' variants by their normalised text (exact matches) and by their character
    bigrams (close matches). Variants and questions are normalised alike by the caller."""

    def __init__(self, entries: Iterable[Compiled], close: float = CLOSE) -> None:
        self.entries = list(entries)
        self.close = close
        self._exact: dict[str, Compiled] = {}
        self._grams: list[tuple[frozenset[str], Compiled]] = []
        self._postings: dict[str, list[int]] = {}
        for entry in self.entries:
            for variant in entry.variants:
                key = _key(variant)
                if not key:
                    continue
                self._exact.setdefault(key, entry)
                grams = _grams(key)
                for gram in grams:
                    self._postings.setdefault(gram, []).append(len(self._grams))
                self._grams.append((grams, entry))

    def __len__(self) -> int:
        return len(self.entries)

    def match(self, normalised: str) -> Match | None:
        """The entry whose variant is `normalised` (a normalised question), exactly or at
        least `close` similar; None when there is none."""
        if not self.entries:
            return None
        key = _key(normalised)
        exact = self._exact.get(key)
        if exact is not None:
            return Match(exact, 1.0)
        grams = _grams(key)
        if not grams:
            return None
        best, score = None, self.close
        size = len(grams)
        for i in self._candidates(grams):
            variant = self._grams[i][0]
            shared = len(grams & variant)
            similarity = shared / (size + len(variant) - shared)
            if similarity > score or (similarity == score and (best is None or i < best)):
                best, score = i, similarity
        return None if best is None else Match(self._grams[best][1], round(score, 4))

    def _candidates(self, grams: frozenset[str]) -> list[int]:
        """The variants that can be `close` similar to `grams`, in the order they were added.

        At a Jaccard similarity of `close` a variant shares at least ceil(close * |grams|) of
        the question's bigrams, so it shares one of any |grams| - that + 1 of them: only the
        postings of that many of the rarest bigrams are read (common ones such as 怎么 are
        in hundreds of variants)."""
        postings = sorted((self._postings.get(gram, ()) for gram in grams), key=len)
        needed = math.ceil(self.close * len(grams) - 1e-9)
        found: set[int] = set()
        for posting in postings[: len(grams) - needed + 1]:
            found.update(posting)
        return sorted(found)


def compile_entries(faq: Faq, normalise: Callable[[str], str], known: set[str]) -> list[Compiled]:
    """The FAQ's entries for the index: variants normalised, ids the handbook lacks left out
    (the build reports them), and entries left with nothing to answer dropped."""
    compiled = []
    for entry in faq.entries:
        ids = tuple(pid for pid in entry.ids if pid in known)
        if not ids and not entry.answer:
            continue
        variants = tuple(dict.fromkeys(normalise(v) for _, v in entry.variants))
        compiled.append(Compiled(entry.line, variants, ids, entry.answer))
    return compiled
