"""Questions to answers: top-k paragraphs with scores and sources, or "no answer" with hints.

A question that matches a variant of the office's FAQ (after normalisation, exactly or
closely) is answered first by that entry: its short answer and the paragraphs it names.
The rest are ranked in one of three ways: `lexical` (the index's BM25 blend), `bert` (cosine
between the question's BERT embedding and the paragraphs' embeddings stored in the index)
and `hybrid` (a weighted blend of the two). Below the mode's threshold the best paragraph is
not an answer: the result then suggests the closest sections instead. Each answer carries
its best sentence or two for the question (`highlight`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from berater.qna import kinds, segment
from berater.qna.bert import BertEncoder, BertUnavailable
from berater.qna.faq import Match
from berater.qna.index import SENTENCE, Index, document_text
from berater.qna.normalise import fold
from berater.settings import default

Mode = Literal["lexical", "bert", "hybrid"]
MODES: tuple[Mode, ...] = ("lexical", "bert", "hybrid")
MAX_QUESTION = 200
SUGGESTIONS = 3
FAQ_TITLE = "常见问题"
SHORT_SENTENCE = 15  # characters: a best sentence this short takes the next one along


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
    highlight: str = ""  # the sentence or two of `text` that best match the question
    faq: bool = False  # the office's FAQ gave this answer

    @property
    def source(self) -> str:
        """`{chapter} {section} {page}页`, the original's way of citing a paragraph."""
        if self.faq and not self.chapter and not self.section:
            return self.title
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
    faq: bool = False  # the first answers come from the office's FAQ

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

    def faq_match(self, question: str) -> Match | None:
        """The FAQ entry the question is a variant of, if any."""
        return self.index.faq.match(self.index.prepare(question))

    def search(self, question: str, k: int = 3, mode: Mode = "lexical") -> Result:
        """The top `k` answers to `question` (the FAQ's first), or none and the closest
        sections."""
        prepared = self.index.prepare(question)
        grams = segment.chars(prepared)
        if mode == "lexical":
            scores = self.index.lexical_scores(prepared, prepared=True, grams=grams)
        else:
            scores = self.scores(question, mode)
        order = _top(scores, max(k, 20))
        floor = self.thresholds.floor(mode)
        weights = _Weights(self, prepared, grams)
        hits = self._faq_hits(self.index.faq.match(prepared), weights)
        taken = {hit.id for hit in hits}
        for i in order:
            if len(hits) >= k or scores[i] < floor:
                break
            if self.index.paragraphs[i].id not in taken:
                hits.append(self._hit(int(i), scores[i], weights))
        hits = hits[:k]
        suggestions = [] if hits else self._closest_sections(order, scores)
        return Result(
            question=question,
            mode=mode,
            hits=hits,
            suggestions=suggestions,
            faq=bool(hits) and hits[0].faq,
        )

    def _faq_hits(self, match: Match | None, grams: _Weights) -> list[Hit]:
        if match is None:
            return []
        entry, score = match.entry, match.similarity
        hits = []
        if entry.answer:
            hits.append(
                Hit(
                    id=f"faq:{entry.line}",
                    score=score,
                    chapter="",
                    section="",
                    page=None,
                    title=FAQ_TITLE,
                    text=entry.answer,
                    highlight=entry.answer,
                    faq=True,
                )
            )
        position = self.index.position
        for pid in entry.ids:
            hit = self._hit(position[pid], score, grams)
            hits.append(replace(hit, faq=True))
        return hits

    def _hit(self, i: int, score: float, grams: _Weights | None = None) -> Hit:
        p = self.index.paragraphs[i]
        return Hit(
            id=p.id,
            score=round(float(score), 4),
            chapter=p.chapter,
            section=p.section,
            page=p.page,
            title=p.title,
            text=p.text,
            highlight=self.highlight(p.text, grams) if grams is not None else "",
        )

    def highlight(self, text: str, weights: Mapping[str, float] | _Weights, asked: int = 0) -> str:
        """The sentence of `text` whose question grams (and synonyms) weigh most (`weights`:
        each one's idf), with the next one when it is short. With the kinds of fact the
        question asks for (`asked`; a `_Weights` knows them), a sentence holding none of
        them weighs 1 / (1 + the index's kind weight)."""
        sentences, folded, held = _sentences(text)
        if len(sentences) < 2:
            return text
        if isinstance(weights, _Weights):
            asked = weights.asked
            weights = weights.get()
        if not weights:
            return text
        other = 1.0 / (1.0 + self.index.kind_weight) if asked else 1.0
        best, best_score = 0, -1.0
        for n, sentence in enumerate(folded):
            score = sum(w for gram, w in weights.items() if gram in sentence)
            if asked and not held[n] & asked:
                score *= other
            if score > best_score:
                best, best_score = n, score
        chosen = sentences[best]
        if len(chosen) < SHORT_SENTENCE and best + 1 < len(sentences):
            chosen += sentences[best + 1]
        return chosen.strip()

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


@functools.lru_cache(maxsize=8192)
def _sentences(text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    """A paragraph's sentences, the same folded, and the kinds of fact each folded one
    holds: what `Engine.highlight` compares a question with, worked out once per paragraph
    text (an index holds a few thousand) instead of for every answer."""
    sentences = [s for s in SENTENCE.split(text) if s.strip()]
    # Folding the paragraph once keeps its sentence ends (only their width changes).
    folded = [s for s in SENTENCE.split(fold(text)) if s.strip()]
    if len(folded) != len(sentences):
        folded = [fold(s) for s in sentences]
    held = tuple(kinds.sentence_kinds(sentence) for sentence in folded)
    return tuple(sentences), tuple(folded), held


class _Weights:
    """The prepared question's characters and bigrams with their idf, and the words of the
    synonym groups it names, for finding an answer's best sentence; worked out once, when
    an answer of more than one sentence needs them."""

    def __init__(self, engine: Engine, prepared: str, grams: list[str]) -> None:
        self.engine, self.prepared, self.grams = engine, prepared, grams
        self._made: dict[str, float] | None = None

    @property
    def asked(self) -> int:
        """The kinds of fact the question asks for (`kinds`)."""
        return kinds.question_kinds(self.prepared)

    def get(self) -> dict[str, float]:
        if self._made is None:
            index = self.engine.index
            vocab, idf = index.chars.vocab, index.chars.idf
            weights: dict[str, float] = {}
            for gram in set(self.grams):
                i = vocab.get(gram)
                if i is not None:
                    weights[gram] = float(idf[i])
            top = max(weights.values(), default=0.0)
            for head, words in index.synonyms.members.items():
                if head in self.prepared:
                    for word in words:
                        weights.setdefault(word, top)
            self._made = weights
        return self._made


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` highest scores, best first."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def reply_text(result: Result, link: str = "", limit: int = 2048) -> str:
    """What the webhook says: the best answer with its source, or the closest sections.

    With `link` (the full answer's page), the answer's best sentences lead, then its source
    and the link, within `limit` UTF-8 bytes; without one, the whole paragraph."""
    if result.hits:
        best = result.hits[0]
        lead = best.highlight or best.text
        if not link or lead == best.text:
            return f"{best.text}\n——{best.source}"
        tail = f"\n——{best.source}\n全文：{link}"
        room = limit - len(tail.encode("utf-8"))
        if len(lead.encode("utf-8")) > room:
            lead = lead.encode("utf-8")[: max(room - 3, 0)].decode("utf-8", "ignore") + "…"
        return lead + tail
    if result.suggestions:
        lines = "\n".join(f"· {name}" for name in result.suggestions)
        return f"手册里没有找到确切的答案。可以看看这些章节：\n{lines}"
    return "手册里没有找到相关内容，换个说法试试？"
