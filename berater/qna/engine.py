"""Questions to answers: top-k paragraphs with scores and sources, or "no answer" with hints.

Three ways to rank: `lexical` (the index's BM25 blend), `bert` (cosine between the
question's BERT embedding and the paragraphs' embeddings stored in the index) and `hybrid`
(a weighted blend of the two). Below the mode's threshold the best paragraph is not an
answer: the result then suggests the closest sections instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from berater.qna.bert import BertEncoder, BertUnavailable
from berater.qna.index import Index, document_text
from berater.settings import default

Mode = Literal["lexical", "bert", "hybrid"]
MODES: tuple[Mode, ...] = ("lexical", "bert", "hybrid")
MAX_QUESTION = 200
SUGGESTIONS = 3


class NoBertVectors(BertUnavailable):
    """The index was built while no BERT server answered."""


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    chapter: str
    section: str
    page: int | None
    title: str
    text: str

    @property
    def source(self) -> str:
        """`{chapter} {section} {page}页`, the original's way of citing a paragraph."""
        parts = [p for p in (self.chapter, self.section or self.title) if p]
        if self.page is not None:
            parts.append(f"{self.page}页")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Result:
    question: str
    mode: Mode
    hits: list[Hit]  # the answers, best first; empty when there is none
    suggestions: list[str]  # closest sections when there is no answer

    @property
    def answered(self) -> bool:
        return bool(self.hits)

    def text(self) -> str:
        """The original's text format: `{source}\\n{text}` per answer, joined by blank lines."""
        return "\n\n".join(f"{hit.source}\n{hit.text}" for hit in self.hits)


@dataclass(frozen=True, slots=True)
class Thresholds:
    lexical: float = default("QNA_MIN_SCORE")
    bert: float = default("QNA_BERT_MIN_SCORE")
    bert_weight: float = default("QNA_BERT_WEIGHT")  # share of the BERT cosine in hybrid

    @classmethod
    def from_config(cls, config: Mapping) -> Thresholds:
        """The thresholds `config` sets; the settings' defaults for those it lacks."""
        return cls(
            lexical=float(config.get("QNA_MIN_SCORE", default("QNA_MIN_SCORE"))),
            bert=float(config.get("QNA_BERT_MIN_SCORE", default("QNA_BERT_MIN_SCORE"))),
            bert_weight=float(config.get("QNA_BERT_WEIGHT", default("QNA_BERT_WEIGHT"))),
        )

    def floor(self, mode: Mode) -> float:
        if mode == "lexical":
            return self.lexical
        if mode == "bert":
            return self.bert
        return (1 - self.bert_weight) * self.lexical + self.bert_weight * self.bert


class Engine:
    """An index, an optional BERT encoder, and the thresholds that decide what answers."""

    def __init__(
        self,
        index: Index,
        encoder: BertEncoder | None = None,
        thresholds: Thresholds | None = None,
    ) -> None:
        self.index = index
        self.encoder = encoder
        self.thresholds = thresholds or Thresholds()

    def scores(self, question: str, mode: Mode = "lexical") -> np.ndarray:
        """0..1 (lexical) or cosine (bert) or their blend, one per paragraph."""
        if mode == "lexical":
            return self.index.lexical_scores(question)
        cosine = self._cosine(question)
        if mode == "bert":
            return cosine
        weight = self.thresholds.bert_weight
        lexical = self.index.lexical_scores(question)
        return (1 - weight) * lexical + weight * np.clip(cosine, 0.0, None)

    def _cosine(self, question: str) -> np.ndarray:
        vectors = self.index.vectors
        if vectors is None:
            raise NoBertVectors(
                "the index has no BERT embeddings: rebuild it with "
                "`flask --app run qna build` while the BERT server is up"
            )
        if self.encoder is None:
            raise BertUnavailable("the BERT server is not configured (BERT_HOST)")
        vector = self.encoder.encode([question])[0]
        if vector.shape[0] != vectors.shape[1]:
            raise BertUnavailable(
                f"the BERT server answers {vector.shape[0]}-dimensional vectors but the "
                f"index holds {vectors.shape[1]}: rebuild the index"
            )
        return vectors @ vector

    def search(self, question: str, k: int = 3, mode: Mode = "lexical") -> Result:
        """The top `k` answers to `question`, or none and the closest sections."""
        scores = self.scores(question, mode)
        order = _top(scores, max(k, 20))
        floor = self.thresholds.floor(mode)
        hits = [self._hit(i, scores[i]) for i in order[:k] if scores[i] >= floor]
        suggestions = [] if hits else self._closest_sections(order, scores)
        return Result(question=question, mode=mode, hits=hits, suggestions=suggestions)

    def _hit(self, i: int, score: float) -> Hit:
        p = self.index.paragraphs[i]
        return Hit(
            id=p.id,
            score=round(float(score), 4),
            chapter=p.chapter,
            section=p.section,
            page=p.page,
            title=p.title,
            text=p.text,
        )

    def _closest_sections(self, order: np.ndarray, scores: np.ndarray) -> list[str]:
        found: list[str] = []
        for i in order:
            if scores[i] <= 0:
                break
            p = self.index.paragraphs[i]
            name = " ".join(x for x in (p.chapter, p.section or p.title) if x)
            if name and name not in found:
                found.append(name)
            if len(found) == SUGGESTIONS:
                break
        return found

    def embed_paragraphs(self, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """BERT embeddings of every paragraph (at build time); raises BertUnavailable."""
        if self.encoder is None:
            raise BertUnavailable("the BERT server is not configured (BERT_HOST)")
        texts = [document_text(p) for p in self.index.paragraphs]
        return self.encoder.encode_batches(texts, progress=progress)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` highest scores, best first."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def reply_text(result: Result) -> str:
    """What the webhook says: the best answer with its source, or the closest sections."""
    if result.hits:
        best = result.hits[0]
        return f"{best.text}\n——{best.source}"
    if result.suggestions:
        lines = "\n".join(f"· {name}" for name in result.suggestions)
        return f"手册里没有找到确切的答案。可以看看这些章节：\n{lines}"
    return "手册里没有找到相关内容，换个说法试试？"
