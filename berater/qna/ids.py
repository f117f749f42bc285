"""Paragraph ids across handbook editions: fingerprints, what changed, who names it, and
moving references from one edition's ids to the next.

Two texts are "the same paragraph, edited slightly" when the Jaccard similarity of their
character bigrams (letters and digits only, NFKC, lower case) is at least SAME. On the demo
handbook no two different paragraphs of a chapter reach 0.43, while replacing a phrase,
inserting a clause or adding a sentence keeps a paragraph above 0.78 (`bench/qna_ids.py`
prints these figures for any handbook); 0.6 sits between the two.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from berater.qna import faq as faq_file
from berater.qna.corpus import CorpusError, Paragraph, jsonl_objects, read_lines

SAME = 0.6


def _letters(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).lower() if ch.isalnum())


def fingerprint(text: str) -> str:
    """A short hash of the text's letters and digits: equal for texts that differ only in
    spacing, punctuation or width."""
    return hashlib.sha256(_letters(text).encode()).hexdigest()[:16]


def bigrams(text: str) -> frozenset[str]:
    letters = _letters(text)
    if len(letters) < 2:
        return frozenset([letters])
    return frozenset(letters[i : i + 2] for i in range(len(letters) - 1))


def similarity(a: str | frozenset[str], b: str | frozenset[str]) -> float:
    """Jaccard similarity of the character bigrams of two texts, 0..1."""
    x = a if isinstance(a, frozenset) else bigrams(a)
    y = b if isinstance(b, frozenset) else bigrams(b)
    union = len(x | y)
    return len(x & y) / union if union else 1.0


@dataclass(frozen=True, slots=True)
class Change:
    id: str
    similarity: float  # of the old text to the new text under the same id (0 when gone)
    old: str  # the old text
    now: str  # the new text under that id ("" when gone)
    moved_to: str | None  # the new id whose text matches the old one, if any


@dataclass(frozen=True, slots=True)
class Comparison:
    changed: list[Change]  # the id stays, its text changed beyond a small edit
    gone: list[Change]  # the id is no longer in the handbook
    added: list[str]  # ids new in this edition
    kept: int  # ids whose text is the same or edited slightly

    @property
    def suspect(self) -> dict[str, Change]:
        """Ids a reference should not be trusted with: changed or gone."""
        return {c.id: c for c in [*self.changed, *self.gone]}


def propose(old: Sequence[Paragraph], new: Sequence[Paragraph]) -> dict[str, str | None]:
    """For each old id, the new id whose text is its own: the same id when its text is the
    same or edited slightly, else the new paragraph most similar to it (at least SAME), else
    None."""
    new_grams = [(p.id, bigrams(p.text)) for p in new]
    by_id = dict(new_grams)
    by_print = {fingerprint(p.text): p.id for p in new}
    mapping: dict[str, str | None] = {}
    for paragraph in old:
        grams = bigrams(paragraph.text)
        exact = by_print.get(fingerprint(paragraph.text))
        if exact is not None:
            mapping[paragraph.id] = exact
            continue
        same = by_id.get(paragraph.id)
        if same is not None and similarity(grams, same) >= SAME:
            mapping[paragraph.id] = paragraph.id
            continue
        best, score = None, SAME
        for pid, other in new_grams:
            s = similarity(grams, other)
            if s >= score:
                best, score = pid, s
        mapping[paragraph.id] = best
    return mapping


def compare(old: Sequence[Paragraph], new: Sequence[Paragraph]) -> Comparison:
    """What happened to each id of `old` in `new`."""
    now = {p.id: p.text for p in new}
    moved = propose(old, new)
    changed, gone, kept = [], [], 0
    for paragraph in old:
        text = now.get(paragraph.id)
        target = moved[paragraph.id]
        if text is None:
            gone.append(Change(paragraph.id, 0.0, paragraph.text, "", target))
            continue
        score = similarity(paragraph.text, text)
        if score >= SAME:
            kept += 1
        else:
            changed.append(Change(paragraph.id, round(score, 3), paragraph.text, text, target))
    before = {p.id for p in old}
    return Comparison(changed, gone, [p.id for p in new if p.id not in before], kept)


@dataclass(frozen=True, slots=True)
class Reference:
    file: str
    line: int
    id: str

    def __str__(self) -> str:
        return f"{shown(self.file)}:{self.line}"


def shown(path: str | Path) -> str:
    """`path` relative to the working folder when it lies inside it, else as it is."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def question_references(path: str | Path) -> Iterator[Reference]:
    """Every id named in a question file (`relevant` lists), with its line."""
    for where, row in jsonl_objects(read_lines(path)):
        relevant = row.get("relevant")
        if not isinstance(relevant, list):
            raise CorpusError(f"{where}: 'relevant' must be a list of paragraph ids")
        file, _, line = where.rpartition(":")
        for pid in relevant:
            if isinstance(pid, str):
                yield Reference(file, int(line), pid)


def references(faqs: Iterable[str | Path], questions: Iterable[str | Path]) -> list[Reference]:
    """Every id named by the FAQ files and question files, by file and line."""
    found: list[Reference] = []
    for path in faqs:
        found += [Reference(str(path), n, pid) for n, pid in faq_file.load(path).references()]
    for path in questions:
        found += question_references(path)
    return found


@dataclass
class Rewrite:
    path: Path
    lines: list[str]
    changes: list[tuple[int, str, str]] = field(default_factory=list)  # (line, old id, new)
    unmatched: list[Reference] = field(default_factory=list)  # ids without a new id

    def save(self) -> None:
        text = "".join(self.lines)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, self.path)


def _is_question_file(path: Path) -> bool:
    return path.suffix == ".jsonl"


def plan_rewrite(path: str | Path, mapping: Mapping[str, str | None]) -> Rewrite:
    """The file at `path` (a question file, `.jsonl`, or an FAQ file) with each id replaced
    by its new id; ids that map to themselves, or are not in `mapping`, are left alone."""
    import json

    path = Path(path)
    raw = path.read_text(encoding="utf-8-sig")
    lines = raw.splitlines(keepends=True)
    plan = Rewrite(path, lines)
    rename = {old: new for old, new in mapping.items() if new is not None and new != old}
    refs = (
        list(question_references(path))
        if _is_question_file(path)
        else [Reference(str(path), n, pid) for n, pid in faq_file.load(path).references()]
    )
    touched: set[int] = set()
    for ref in refs:
        if ref.id in mapping and mapping[ref.id] is None:
            plan.unmatched.append(ref)
        elif ref.id in rename:
            plan.changes.append((ref.line, ref.id, rename[ref.id]))
            touched.add(ref.line)
    for number in sorted(touched):
        line = lines[number - 1]
        ending = line[len(line.rstrip("\r\n")) :]
        body = line[: len(line) - len(ending)]
        if _is_question_file(path):
            row = json.loads(body)
            row["relevant"] = list(dict.fromkeys(rename.get(pid, pid) for pid in row["relevant"]))
            body = json.dumps(row, ensure_ascii=False)
        else:
            body = faq_file.rewrite_ids(body, rename)
        lines[number - 1] = body + ending
    return plan
