"""Retrieval quality over a question set: top-1 accuracy, recall@3, MRR@10, no-answer rates.

A question set is JSONL: `{"q": "...", "relevant": ["1.2.3", ...]}` per line; an empty
`relevant` marks a question the handbook does not answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from berater.qna.corpus import CorpusError, jsonl_objects, read_lines
from berater.qna.engine import Engine, Mode


@dataclass(frozen=True, slots=True)
class Question:
    q: str
    relevant: frozenset[str]


@dataclass(frozen=True, slots=True)
class Metrics:
    questions: int  # answerable ones
    top1: float
    recall3: float
    mrr10: float
    answered: float  # share of answerable questions the engine answers (above its threshold)
    unanswerable: int
    declined: float  # share of unanswerable questions the engine declines

    def lines(self) -> list[str]:
        return [
            f"questions: {self.questions} answerable, {self.unanswerable} unanswerable",
            f"top-1: {self.top1:.3f}",
            f"recall@3: {self.recall3:.3f}",
            f"MRR@10: {self.mrr10:.3f}",
            f"answered (answerable, above the threshold): {self.answered:.3f}",
            f"declined (unanswerable, below the threshold): {self.declined:.3f}",
        ]


def load_questions(path: str | Path) -> list[Question]:
    """The questions in a JSONL file; errors name the line."""
    questions = []
    for where, row in jsonl_objects(read_lines(path)):
        q, relevant = row.get("q"), row.get("relevant")
        if not isinstance(q, str) or not q.strip():
            raise CorpusError(f"{where}: 'q' must be a non-empty string")
        if not isinstance(relevant, list) or not all(isinstance(r, str) for r in relevant):
            raise CorpusError(f"{where}: 'relevant' must be a list of paragraph ids")
        questions.append(Question(q.strip(), frozenset(relevant)))
    if not questions:
        raise CorpusError(f"{path}: no questions")
    return questions


def check_ids(questions: list[Question], known: set[str]) -> None:
    """Refuse a question set that names paragraphs the corpus does not have."""
    unknown = sorted({r for q in questions for r in q.relevant} - known)
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise CorpusError(f"the questions name paragraphs the corpus lacks: {shown}")


def evaluate(engine: Engine, questions: list[Question], mode: Mode = "lexical") -> Metrics:
    """Rank every paragraph for every question and score the ranking."""
    ids = [p.id for p in engine.index.paragraphs]
    check_ids(questions, set(ids))
    floor = engine.thresholds.floor(mode)
    top1 = recall3 = mrr10 = answered = declined = 0.0
    answerable = 0
    for question in questions:
        scores = engine.scores(question.q, mode)
        best = int(np.argmax(scores))
        above = bool(scores[best] >= floor)
        if not question.relevant:
            declined += not above
            continue
        answerable += 1
        answered += above
        top10 = [ids[i] for i in np.argsort(-scores, kind="stable")[:10]]
        top1 += top10[0] in question.relevant
        recall3 += len(question.relevant & set(top10[:3])) / len(question.relevant)
        rank = next((n for n, pid in enumerate(top10, 1) if pid in question.relevant), None)
        mrr10 += 1 / rank if rank else 0.0
    unanswerable = len(questions) - answerable
    per = max(answerable, 1)
    return Metrics(
        questions=answerable,
        top1=top1 / per,
        recall3=recall3 / per,
        mrr10=mrr10 / per,
        answered=answered / per,
        unanswerable=unanswerable,
        declined=declined / max(unanswerable, 1),
    )
