"""Retrieval quality over a question set: top-1 accuracy, recall@3, MRR@10, how often an
answer given was right, how many unanswerable questions were declined, the FAQ's share; and
cross-validation over the handbook's chapters.

A question set is JSONL: `{"q": "...", "relevant": ["1.2.3", ...]}` per line; an empty
`relevant` marks a question the handbook does not answer.

Cross-validation (`qna eval --cv K`) puts each chapter's questions in one of K folds
(chapter i in fold i mod K; unanswerable questions in turn) and, for each fold, chooses the
weights that rank the other folds' questions best (top-1 plus recall@3): first the
characters' share and the headings' weight, then, with that share, the headings', the best
sentence's and the kinds' weights together; then, for each coverage weight, the highest
threshold that still answers 90 % of their answerable questions, and of those the pair that
declines most of their unanswerable ones. With an FAQ, the weight of its questions as a field
of the paragraphs they name is chosen after those three, before the coverage (without the
FAQ it is 0: the FAQ then neither answers first nor ranks). It scores the held-out fold
with them. The mean of the folds' figures is what the engine can be expected to do on
questions it was not tuned on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from berater.qna.corpus import CorpusError, jsonl_objects, read_lines
from berater.qna.engine import Engine, Mode
from berater.qna.index import blend

NGRAM_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)
HEADING_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
SENTENCE_GRID = (0.0, 0.1, 0.25, 0.5, 1.0)
KIND_GRID = (0.0, 0.5, 1.0, 2.0)
COVERAGE_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
ASKED_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)
ANSWER_AT_LEAST = 0.9  # share of answerable questions a chosen threshold still answers
# Weights whose top-1 plus recall@3 is within this of the best count as equally good; among
# them characters alone (a weight of 1) are preferred: the question then needs no jieba.
TIE = 0.005


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
    right_when_answered: float = 0.0  # share of answered answerable questions right at top-1
    faq_questions: int = 0  # questions the FAQ answered first
    faq_right: int = 0  # of those, answerable ones whose first answer was right
    faq_wrong_unanswerable: int = 0  # unanswerable questions the FAQ answered

    def lines(self) -> list[str]:
        declined = round(self.declined * self.unanswerable)
        answered = round(self.answered * self.questions)
        return [
            f"questions: {self.questions} answerable, {self.unanswerable} unanswerable",
            f"top-1: {self.top1:.3f}",
            f"recall@3: {self.recall3:.3f}",
            f"MRR@10: {self.mrr10:.3f}",
            f"answered (answerable, above the threshold): {self.answered:.3f}"
            f" ({answered} of {self.questions})",
            f"right when answered (top-1 of the answered): {self.right_when_answered:.3f}",
            f"declined (unanswerable, below the threshold): {self.declined:.3f}"
            f" ({declined} of {self.unanswerable})",
        ]

    def short(self) -> str:
        return (
            f"top-1 {self.top1:.3f}, recall@3 {self.recall3:.3f}, MRR@10 {self.mrr10:.3f}, "
            f"answered {self.answered:.3f}, right when answered "
            f"{self.right_when_answered:.3f}, declined {self.declined:.3f}"
        )


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


@dataclass
class Ranking:
    """Each question's scores, and the paragraphs its FAQ match puts first."""

    scores: np.ndarray  # questions x paragraphs
    faq_first: list[list[int]]  # per question, the rows the FAQ answers with (may be empty)
    faq_answered: np.ndarray  # per question: the FAQ answered it (ids or a short answer)


def _faq(engine: Engine, question: str, use_faq: bool) -> tuple[list[int], bool]:
    if not use_faq:
        return [], False
    match = engine.faq_match(question)
    if match is None:
        return [], False
    position = engine.index.position
    return [position[pid] for pid in match.entry.ids], True


def rank(
    engine: Engine, questions: Sequence[Question], mode: Mode, use_faq: bool = True
) -> Ranking:
    scores = np.vstack([engine.scores(q.q, mode) for q in questions])
    faq = [_faq(engine, q.q, use_faq) for q in questions]
    return Ranking(scores, [f[0] for f in faq], np.array([f[1] for f in faq], dtype=bool))


def score(
    ranking: Ranking, questions: Sequence[Question], ids: Sequence[str], floor: float
) -> Metrics:
    """The figures of a ranking at threshold `floor`."""
    top1 = recall3 = mrr10 = answered = declined = right_answered = 0.0
    faq_questions = faq_right = faq_wrong = 0
    answerable = 0
    for n, question in enumerate(questions):
        scores = ranking.scores[n]
        first = ranking.faq_first[n]
        by_faq = bool(ranking.faq_answered[n])
        best = float(scores.max()) if len(scores) else 0.0
        above = by_faq or best >= floor
        faq_questions += by_faq
        if not question.relevant:
            declined += not above
            faq_wrong += by_faq
            continue
        answerable += 1
        answered += above
        order = [int(i) for i in np.argsort(-scores, kind="stable")[:10]]
        top10 = [ids[i] for i in [*first, *(i for i in order if i not in first)][:10]]
        right = top10[0] in question.relevant if top10 else False
        top1 += right
        right_answered += right and above
        faq_right += right and by_faq
        recall3 += len(question.relevant & set(top10[:3])) / len(question.relevant)
        place = next((k for k, pid in enumerate(top10, 1) if pid in question.relevant), None)
        mrr10 += 1 / place if place else 0.0
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
        right_when_answered=right_answered / max(answered, 1),
        faq_questions=faq_questions,
        faq_right=faq_right,
        faq_wrong_unanswerable=faq_wrong,
    )


def evaluate(
    engine: Engine, questions: list[Question], mode: Mode = "lexical", use_faq: bool = True
) -> Metrics:
    """Rank every paragraph for every question and score the ranking; without the FAQ, its
    questions do not rank either."""
    if not use_faq and engine.index.asked is not None:
        bare = replace(engine.index, asked_weight=0.0)
        engine = Engine(bare, engine.encoder, engine.thresholds)
    ids = [p.id for p in engine.index.paragraphs]
    check_ids(questions, set(ids))
    ranking = rank(engine, questions, mode, use_faq)
    return score(ranking, questions, ids, engine.thresholds.floor(mode))


# --- cross-validation over chapters ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    ngram_weight: float
    heading_weight: float
    threshold: float
    sentence_weight: float = 0.0
    kind_weight: float = 0.0
    coverage_weight: float = 0.0
    asked_weight: float = 0.0

    def describe(self) -> str:
        return (
            f"ngram {self.ngram_weight}, heading {self.heading_weight}, sentence "
            f"{self.sentence_weight}, kinds {self.kind_weight}, coverage "
            f"{self.coverage_weight}, threshold {self.threshold}"
        )


@dataclass(frozen=True, slots=True)
class Fold:
    number: int
    chapters: list[str]
    choice: Choice
    held_out: Metrics

    @property
    def ngram_weight(self) -> float:
        return self.choice.ngram_weight

    @property
    def heading_weight(self) -> float:
        return self.choice.heading_weight

    @property
    def threshold(self) -> float:
        return self.choice.threshold


def folds_of(engine: Engine, questions: Sequence[Question], k: int) -> tuple[list[int], list[str]]:
    """Each question's fold (its first relevant paragraph's chapter, in handbook order,
    modulo k; unanswerable questions in turn) and the chapters in order."""
    chapters = list(dict.fromkeys(p.chapter for p in engine.index.paragraphs))
    if k < 2 or k > len(chapters):
        raise CorpusError(f"--cv needs 2 to {len(chapters)} folds (one chapter each at most)")
    by_id = {p.id: chapters.index(p.chapter) for p in engine.index.paragraphs}
    folds, turn = [], 0
    for question in questions:
        if question.relevant:
            folds.append(min(by_id[r] for r in question.relevant) % k)
        else:
            folds.append(turn % k)
            turn += 1
    return folds, chapters


def _subset(ranking: Ranking, rows: np.ndarray, scores: np.ndarray) -> Ranking:
    return Ranking(scores[rows], [ranking.faq_first[i] for i in rows], ranking.faq_answered[rows])


class _Parts:
    """Every question's score parts, blended on demand, and a quick measure of a blend."""

    def __init__(
        self, engine: Engine, questions: Sequence[Question], base: Ranking, use_faq: bool = True
    ) -> None:
        index = engine.index
        parts = [index.components(q.q, sentences=False, asked=use_faq) for q in questions]
        self.words = np.vstack([p.words for p in parts])  # type: ignore[misc]
        self.grams = np.vstack([p.grams for p in parts])
        self.headings = np.vstack([p.headings for p in parts])  # type: ignore[misc]
        self.asked = (
            np.vstack([p.asked for p in parts])  # type: ignore[misc]
            if use_faq and index.asked is not None
            else None
        )
        self.sentences: dict[float, np.ndarray] = {}
        if index.sentences is not None:
            for weight in KIND_GRID:
                self.sentences[weight] = np.vstack(
                    [
                        index.components(q.q, False, words=False, kind_weight=weight).sentences  # type: ignore[misc]
                        for q in questions
                    ]
                )
        self.coverage = np.array([p.coverage for p in parts])
        self.relevant = np.zeros(self.grams.shape, dtype=bool)
        position = index.position
        for n, question in enumerate(questions):
            for pid in question.relevant:
                self.relevant[n, position[pid]] = True
        self.faq_first = base.faq_first
        self.faq_answered = base.faq_answered

    def blend(self, choice: Choice) -> np.ndarray:
        sentences = self.sentences.get(choice.kind_weight)
        parts = (self.words, self.grams, self.headings, sentences)
        scores = blend(
            parts,
            choice.ngram_weight,
            choice.heading_weight,
            choice.sentence_weight,
            choice.asked_weight,
            self.asked,
        )
        if not choice.coverage_weight:
            return scores
        return scores * (self.coverage**choice.coverage_weight)[:, None]

    def quality(self, scores: np.ndarray, rows: np.ndarray) -> float:
        """Top-1 plus recall@3 of the answerable questions among `rows`, as `score` counts
        them (the FAQ's paragraphs first, ties to the earlier paragraph)."""
        rows = rows[self.relevant[rows].any(axis=1)]
        if not len(rows):
            return 0.0
        top = np.argsort(-scores[rows], axis=1, kind="stable")[:, :3]
        for n, row in enumerate(rows):
            first = self.faq_first[row]
            if first:
                order = np.argsort(-scores[row], kind="stable")
                top[n] = [*first, *(int(i) for i in order if i not in first)][:3]
        relevant = self.relevant[rows]
        hits = np.take_along_axis(relevant, top, axis=1)
        top1 = hits[:, 0].mean()
        recall3 = (hits.sum(axis=1) / relevant.sum(axis=1)).mean()
        return float(top1 + recall3)

    def threshold(self, scores: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
        """The highest threshold (in thousandths) that still answers ANSWER_AT_LEAST of the
        answerable questions among `rows` (the FAQ's answers count as answered), and the
        share of their unanswerable questions it declines."""
        answerable = self.relevant[rows].any(axis=1)
        best = scores[rows].max(axis=1)
        by_faq = self.faq_answered[rows]
        # The scores of the answerable questions the FAQ does not answer, best first: the
        # threshold must keep the first `needed` of them.
        ranked = np.sort(best[answerable & ~by_faq])[::-1]
        needed = int(np.ceil(ANSWER_AT_LEAST * answerable.sum() - 1e-9)) - int(
            by_faq[answerable].sum()
        )
        if needed <= 0 or not len(ranked):
            chosen = 0.0
        else:
            chosen = float(np.floor(ranked[min(needed, len(ranked)) - 1] * 1000) / 1000)
        unanswerable = ~answerable
        if not unanswerable.any():
            return chosen, 0.0
        declined = ~by_faq[unanswerable] & (best[unanswerable] < chosen)
        return chosen, float(np.mean(declined))


def _best(values: dict[Choice, float], prefer: Callable[[Choice], bool]) -> Choice:
    """The choice with the highest value; one that `prefer`s within TIE of it instead."""
    best = max(values, key=lambda c: values[c])
    preferred = {c: v for c, v in values.items() if prefer(c)}
    if preferred:
        candidate = max(preferred, key=lambda c: preferred[c])
        if preferred[candidate] >= values[best] - TIE:
            return candidate
    return best


def cross_validate(
    engine: Engine, questions: list[Question], k: int, use_faq: bool = True
) -> tuple[list[Fold], Choice]:
    """K folds over chapters: weights and threshold chosen on the others, scored on each;
    and the weights and threshold the same procedure chooses on every question."""
    index = engine.index
    ids = [p.id for p in index.paragraphs]
    check_ids(questions, set(ids))
    folds, chapters = folds_of(engine, questions, k)
    base = rank(engine, questions, "lexical", use_faq)
    parts = _Parts(engine, questions, base, use_faq)
    sentence_grid = SENTENCE_GRID if parts.sentences else (0.0,)
    kind_grid = KIND_GRID if parts.sentences else (0.0,)
    asked_grid = ASKED_GRID if parts.asked is not None else (0.0,)

    def choose(rows: np.ndarray) -> Choice:
        # First the characters' share and the headings' weight (characters alone preferred:
        # the question then needs no jieba), then the rest with that share.
        values = {}
        for w, h in itertools.product(NGRAM_GRID, HEADING_GRID):
            choice = Choice(w, h, 0.0)
            values[choice] = parts.quality(parts.blend(choice), rows)
        ngram = _best(values, lambda c: c.ngram_weight >= 1).ngram_weight
        values = {}
        for h, s, t in itertools.product(HEADING_GRID, sentence_grid, kind_grid):
            if not s and t:
                continue  # the kinds weigh sentences: without them they change nothing
            choice = Choice(ngram, h, 0.0, s, t)
            values[choice] = parts.quality(parts.blend(choice), rows)
        made = _best(values, lambda c: False)
        values = {}
        for a in asked_grid:
            choice = replace(made, asked_weight=a)
            values[choice] = parts.quality(parts.blend(choice), rows)
        made = _best(values, lambda c: False)
        # The coverage weight keeps the order: it is chosen with the threshold, to decline.
        best = None
        for weight in COVERAGE_GRID:
            covered = replace(made, coverage_weight=weight)
            threshold, declined = parts.threshold(parts.blend(covered), rows)
            if best is None or declined > best[0]:
                best = (declined, replace(covered, threshold=threshold))
        assert best is not None
        return best[1]

    fold_of = np.array(folds)
    results = []
    for number in range(k):
        made = choose(np.flatnonzero(fold_of != number))
        test = np.flatnonzero(fold_of == number)
        scores = parts.blend(made)
        held = score(_subset(base, test, scores), [questions[i] for i in test], ids, made.threshold)
        names = [c for i, c in enumerate(chapters) if i % k == number]
        results.append(Fold(number + 1, names, made, held))
    return results, choose(np.arange(len(questions)))


def mean(metrics: Sequence[Metrics]) -> dict[str, float]:
    """The folds' figures averaged (each fold counts once)."""
    fields = ("top1", "recall3", "mrr10", "answered", "right_when_answered", "declined")
    return {f: float(np.mean([getattr(m, f) for m in metrics])) for f in fields}
