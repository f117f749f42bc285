"""The lexical index: BM25 over jieba words, blended with BM25 over characters and bigrams,
the chapter and section titles, and each paragraph's best sentence.

Built once by `flask qna build` into one `.npz` file (numpy arrays only, no pickle); a
worker loads it at start and answers a question with a few array slices and one
`bincount`, never touching the corpus or refitting anything.

Scores are normalised to 0..1: a paragraph's BM25 score divided by what the question could
score at most (each term's idf times k1 + 1, BM25's ceiling; words the handbook never uses
count at the highest idf), so one threshold means "enough of the question is found here"
for any question. A paragraph holding each question word once scores about 1 / (k1 + 1).

A paragraph is also scored by its best sentence: the same characters and bigrams, weighted by
the paragraph's idf, over each sentence alone (without length normalisation), so that a
question whose words meet in one sentence prefers that paragraph to a neighbour that holds
them spread out. A sentence that holds the kind of fact the question asks for (an amount,
a date, a place: `kinds`) counts in full, any other 1 / (1 + kind weight) of its score.

The office's FAQ questions are a field of their own: each paragraph holds the variants of the
FAQ entries that name it (normalised like a question), scored with the same characters and
bigrams, so a question in students' words meets the paragraph the office wrote such a
question for even when it is not close enough to a variant to be answered by the FAQ first.
A paragraph scores the higher of its blend without that field and with it (`blend`).

Last, every score of a question is multiplied by its coverage, the share of the question's
distinct characters and bigrams that occur anywhere in the handbook or in the FAQ's
questions (the words students use for its topics), raised to the coverage weight. The order
of the paragraphs stays; a question about what neither has words for (驾照, 奶茶) falls below
the threshold sooner than a terse one about what they cover.
"""

from __future__ import annotations

import io
import os
import re
import time
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from berater.qna import kinds, segment
from berater.qna.corpus import Paragraph
from berater.qna.faq import Compiled, Faq, FaqIndex, compile_entries
from berater.qna.ids import fingerprint
from berater.qna.normalise import NO_SYNONYMS, Synonyms, document_texts, question_text

FORMAT = 3  # 2: fingerprints, the heading field, synonyms; 3: sentences
K1, B = 1.2, 0.75
SENTENCE_B = 0.0  # sentences are short: their length does not discount a match
NGRAM_WEIGHT = 1.0  # the characters' share of the text score (cross-validated, README)
HEADING_WEIGHT = 0.5  # the chapter and section titles' weight beside the text's (1)
SENTENCE_WEIGHT = 0.25  # the best sentence's weight beside the text's (1)
KIND_WEIGHT = 1.0  # a sentence without the kind of fact asked for counts 1 / (1 + this)
COVERAGE_WEIGHT = 1.5  # scores are multiplied by the share of the question's terms known
ASKED_WEIGHT = 2.0  # the FAQ questions naming a paragraph, beside the text's weight (1)
SENTENCE = re.compile(r"(?<=[。；！？!?;])")


class IndexUnavailable(RuntimeError):
    """The index file is missing, unreadable or of another format version."""


def missing_index(path: str | Path) -> str:
    return f"no index at {path}: run `flask --app run qna build`"


def _identity(tokens: list[str]) -> list[str]:
    return tokens


@dataclass
class Postings:
    """BM25 weights by term in CSR arrays: row `t` holds the documents term `t` occurs in."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_docs: int

    def __post_init__(self) -> None:
        # A Python list: indexing it per question term is several times faster than numpy's.
        self._starts: list[int] = self.indptr.tolist()

    def scores_of(self, ids: list[int], possible: float) -> np.ndarray:
        """Each document's score for the term rows `ids`, divided by `possible` (the idf the
        question's terms add up to) times BM25's ceiling."""
        if not ids:
            return np.zeros(self.n_docs, dtype=np.float32)
        starts, indices, data = self._starts, self.indices, self.data
        where = np.concatenate([indices[starts[i] : starts[i + 1]] for i in ids])
        weights = np.concatenate([data[starts[i] : starts[i + 1]] for i in ids])
        return np.bincount(where, weights=weights, minlength=self.n_docs) / (possible * (K1 + 1))

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}_indptr": self.indptr,
            f"{prefix}_indices": self.indices,
            f"{prefix}_data": self.data,
        }

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str, n_docs: int) -> Postings:
        return cls(
            indptr=arrays[f"{prefix}_indptr"],
            indices=arrays[f"{prefix}_indices"],
            data=arrays[f"{prefix}_data"],
            n_docs=n_docs,
        )


def _weights(counts: Any, idf: np.ndarray, b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The BM25 weights of a document-by-term count matrix, as CSR arrays by term."""
    from scipy import sparse

    x = sparse.csr_matrix(counts, dtype=np.float32)
    n = x.shape[0]
    lengths = np.asarray(x.sum(axis=1)).ravel()
    average = float(lengths.mean()) or 1.0
    rows = np.repeat(np.arange(n), np.diff(x.indptr))
    tf = x.data
    norm = K1 * (1 - b + b * lengths[rows] / average)
    x.data = (idf[x.indices] * tf * (K1 + 1) / (tf + norm)).astype(np.float32)
    by_term = x.T.tocsr()
    by_term.sort_indices()
    return by_term.indptr.astype(np.int64), by_term.indices.astype(np.int32), by_term.data


@dataclass
class Bm25(Postings):
    """A term-by-paragraph matrix of BM25 weights, with its vocabulary and idf."""

    terms: list[str] = field(default_factory=list)
    idf: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    vocab: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.vocab = {term: i for i, term in enumerate(self.terms)}
        self.max_idf = float(self.idf.max()) if len(self.idf) else 1.0
        self._idf: list[float] = self.idf.tolist()

    @classmethod
    def fit(cls, docs: Sequence[list[str]]) -> Bm25:
        # Imported here: only building needs it, and a worker starts faster without.
        from sklearn.feature_extraction.text import CountVectorizer

        vectorizer = CountVectorizer(analyzer=_identity, lowercase=False).fit(docs)
        counts = vectorizer.transform(docs)
        n = counts.shape[0]
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        indptr, indices, data = _weights(counts, idf, B)
        terms = list(vectorizer.get_feature_names_out())
        return cls(indptr=indptr, indices=indices, data=data, n_docs=n, terms=terms, idf=idf)

    def fit_parts(self, docs: Sequence[list[str]], b: float = SENTENCE_B) -> Postings:
        """BM25 over `docs`, parts of this matrix's documents (their sentences), with this
        matrix's terms and idf: a part's score compares with its document's."""
        from sklearn.feature_extraction.text import CountVectorizer

        counts = CountVectorizer(analyzer=_identity, lowercase=False, vocabulary=self.vocab)
        indptr, indices, data = _weights(counts.transform(docs), self.idf, b)
        return Postings(indptr=indptr, indices=indices, data=data, n_docs=len(docs))

    def lookup(self, terms: Sequence[str]) -> tuple[list[int], float]:
        """The rows of the distinct `terms` this matrix knows, and the most those terms
        could score (each one's idf; a term it does not know counts at the highest idf)."""
        ids, possible = [], 0.0
        vocab, idf = self.vocab, self._idf
        for term in set(terms):
            i = vocab.get(term)
            if i is None:
                possible += self.max_idf
            else:
                ids.append(i)
                possible += idf[i]
        return ids, possible

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """Each paragraph's score for `terms`, divided by the most those terms could score."""
        return self.scores_of(*self.lookup(terms))

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {**super().arrays(prefix), f"{prefix}_idf": self.idf}

    @classmethod
    def from_arrays(  # type: ignore[override]
        cls, arrays: dict, prefix: str, terms: list[str], n_docs: int
    ) -> Bm25:
        return cls(
            indptr=arrays[f"{prefix}_indptr"],
            indices=arrays[f"{prefix}_indices"],
            data=arrays[f"{prefix}_data"],
            n_docs=n_docs,
            terms=terms,
            idf=arrays[f"{prefix}_idf"],
        )


@dataclass
class Sentences:
    """The paragraphs' sentences: their BM25 weights (with the paragraphs' terms and idf),
    where each paragraph's sentences start, and the kinds of fact each holds (`kinds`)."""

    postings: Postings
    starts: np.ndarray  # the first sentence of each paragraph; every paragraph has one
    kinds: np.ndarray  # uint8 bit mask per sentence

    @classmethod
    def fit(cls, chars: Bm25, texts: Sequence[str]) -> Sentences:
        """The sentences of `texts` (folded, synonyms read), one paragraph each."""
        docs: list[list[str]] = []
        found: list[int] = []
        starts = []
        for text in texts:
            starts.append(len(docs))
            parts = [s for s in SENTENCE.split(text) if s.strip()] or [text]
            for part in parts:
                docs.append(segment.chars(part))
                found.append(kinds.sentence_kinds(part))
        return cls(
            postings=chars.fit_parts(docs),
            starts=np.array(starts, dtype=np.int64),
            kinds=np.array(found, dtype=np.uint8),
        )

    def best(self, ids: list[int], possible: float, asked: int, kind_weight: float) -> np.ndarray:
        """Each paragraph's best sentence score for the term rows `ids` (of the paragraphs'
        matrix); with `asked` kinds, a sentence holding none of them counts 1 / (1 +
        `kind_weight`)."""
        scores = self.postings.scores_of(ids, possible)
        if asked and kind_weight:
            scores *= self._factors(asked, kind_weight)
        return np.maximum.reduceat(scores, self.starts)

    def _factors(self, asked: int, kind_weight: float) -> np.ndarray:
        """Per sentence: 1 where it holds a kind of `asked`, else 1 / (1 + `kind_weight`);
        kept per pair (there are at most 64 masks)."""
        cache = self.__dict__.setdefault("_factor_cache", {})
        found = cache.get((asked, kind_weight))
        if found is None:
            found = np.where(self.kinds & asked, 1.0, 1.0 / (1.0 + kind_weight))
            cache[(asked, kind_weight)] = found
        return found

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            **self.postings.arrays("sentences"),
            "sentences_starts": self.starts,
            "sentences_kinds": self.kinds,
        }

    @classmethod
    def from_arrays(cls, arrays: dict) -> Sentences:
        kinds = arrays["sentences_kinds"]
        return cls(
            postings=Postings.from_arrays(arrays, "sentences", len(kinds)),
            starts=arrays["sentences_starts"],
            kinds=kinds,
        )


ORDINAL = re.compile(r"^第[一二三四五六七八九十百零〇\d]+[章节篇部分]+\s*")


def document_text(paragraph: Paragraph) -> str:
    """What is indexed for a paragraph: its section's name (or title) and its text."""
    heading = ORDINAL.sub("", paragraph.section or paragraph.title)
    return f"{heading} {paragraph.text}"


def asked_texts(paragraphs: Sequence[Paragraph], entries: Sequence[Compiled]) -> list[str]:
    """The asked field: per paragraph, the (normalised) variants of the FAQ entries naming
    it, one after another."""
    asked: dict[str, list[str]] = {}
    for entry in entries:
        for pid in entry.ids:
            asked.setdefault(pid, []).extend(entry.variants)
    return ["\n".join(asked.get(p.id, ())) for p in paragraphs]


def heading_text(paragraph: Paragraph) -> str:
    """The heading field: the chapter's and the section's names (or the title)."""
    names = [paragraph.chapter, paragraph.section or paragraph.title]
    return " ".join(ORDINAL.sub("", name) for name in names if name)


@dataclass
class Index:
    """Paragraphs, their word and character BM25 matrices, the heading field's, and optional
    BERT vectors; the synonyms they were built with."""

    paragraphs: list[Paragraph]
    words: Bm25
    chars: Bm25
    headings: Bm25
    userdict: list[str]
    ngram_weight: float
    build_id: str
    heading_weight: float = HEADING_WEIGHT
    sentences: Sentences | None = None
    sentence_weight: float = SENTENCE_WEIGHT
    kind_weight: float = KIND_WEIGHT
    coverage_weight: float = COVERAGE_WEIGHT
    asked: Bm25 | None = None  # the FAQ's questions per paragraph; None without an FAQ
    asked_weight: float = ASKED_WEIGHT
    synonyms: Synonyms = NO_SYNONYMS
    faq: FaqIndex = field(default_factory=lambda: FaqIndex([]))
    vectors: np.ndarray | None = None  # BERT embeddings, one L2-normalised row per paragraph
    built_at: float = 0.0

    @classmethod
    def build(
        cls,
        paragraphs: Sequence[Paragraph],
        userdict: Sequence[str] = (),
        *,
        ngram_weight: float = NGRAM_WEIGHT,
        heading_weight: float = HEADING_WEIGHT,
        sentence_weight: float = SENTENCE_WEIGHT,
        kind_weight: float = KIND_WEIGHT,
        coverage_weight: float = COVERAGE_WEIGHT,
        asked_weight: float = ASKED_WEIGHT,
        synonyms: Synonyms = NO_SYNONYMS,
        faq: Faq | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Index:
        """Segment every paragraph and fit the matrices, and compile the FAQ's entries;
        `progress(n)` after each paragraph."""
        words = [*userdict, *synonyms.heads]
        segment.add_words(words)
        texts = document_texts([document_text(p) for p in paragraphs], synonyms)
        headings = document_texts([heading_text(p) for p in paragraphs], synonyms)
        word_docs, char_docs, heading_docs = [], [], []
        for text, heading in zip(texts, headings, strict=True):
            word_docs.append(segment.words(text))
            char_docs.append(segment.chars(text))
            heading_docs.append(segment.chars(heading))
            if progress:
                progress(1)
        chars = Bm25.fit(char_docs)
        bodies = document_texts([p.text for p in paragraphs], synonyms)
        entries = (
            compile_entries(faq, lambda q: question_text(q, synonyms), {p.id for p in paragraphs})
            if faq is not None
            else []
        )
        asked_docs = [segment.chars(t) for t in asked_texts(paragraphs, entries)]
        return cls(
            paragraphs=list(paragraphs),
            words=Bm25.fit(word_docs),
            chars=chars,
            headings=Bm25.fit(heading_docs),
            userdict=words,
            ngram_weight=ngram_weight,
            heading_weight=heading_weight,
            sentences=Sentences.fit(chars, bodies),
            sentence_weight=sentence_weight,
            kind_weight=kind_weight,
            coverage_weight=coverage_weight,
            asked=Bm25.fit(asked_docs) if any(asked_docs) else None,
            asked_weight=asked_weight,
            synonyms=synonyms,
            faq=FaqIndex(entries),
            build_id=uuid.uuid4().hex,
            built_at=time.time(),
        )

    def __len__(self) -> int:
        return len(self.paragraphs)

    @property
    def position(self) -> dict[str, int]:
        """Each paragraph's row by its id."""
        found = self.__dict__.get("_position")
        if found is None:
            found = self.__dict__["_position"] = {p.id: i for i, p in enumerate(self.paragraphs)}
        return found

    def prepare(self, question: str) -> str:
        """The question as it is searched: folded, stripped of scaffolding, synonyms read."""
        return question_text(question, self.synonyms)

    def components(
        self,
        question: str,
        headings: bool = True,
        *,
        prepared: bool = False,
        words: bool = True,
        grams: list[str] | None = None,
        sentences: bool = True,
        kind_weight: float | None = None,
        asked: bool = True,
    ) -> Components:
        """The question's word, character, heading and best-sentence scores, each 0..1 per
        paragraph (the word scores None unless `words`, the heading scores None unless
        `headings`, the sentence scores None unless `sentences`, the FAQ questions' None
        unless `asked` and the index has them); `prepared`: the question
        is `prepare`d; `grams`: its characters and bigrams; `kind_weight`: instead of the
        index's."""
        text = question if prepared else self.prepare(question)
        grams = segment.chars(text) if grams is None else grams
        if words and not self.__dict__.get("_words_ready"):
            segment.add_words(self.userdict)  # jieba, only when words are asked for
            self.__dict__["_words_ready"] = True
        ids, possible = self.chars.lookup(grams)
        best = None
        if sentences and self.sentences is not None:
            weight = self.kind_weight if kind_weight is None else kind_weight
            best = self.sentences.best(ids, possible, kinds.question_kinds(text), weight)
        distinct = set(grams)
        known = len(ids)
        if asked and self.asked is not None:
            vocab, chars = self.asked.vocab, self.chars.vocab
            known += sum(1 for g in distinct if g in vocab and g not in chars)
        return Components(
            self.words.scores(segment.words(text)) if words else None,
            self.chars.scores_of(ids, possible),
            self.headings.scores(grams) if headings else None,
            best,
            known / len(distinct) if distinct else 0.0,
            self.asked.scores(grams) if asked and self.asked is not None else None,
        )

    def lexical_scores(
        self, question: str, *, prepared: bool = False, grams: list[str] | None = None
    ) -> np.ndarray:
        """0..1 per paragraph: word BM25 blended with character BM25 by `ngram_weight`, and
        the heading field's BM25 at `heading_weight`, the best sentence's at `sentence_weight`
        and the FAQ questions' at `asked_weight` beside them, times the question's coverage
        to the power `coverage_weight`. At an ngram weight of 1 the words are not needed, nor
        jieba."""
        parts = self.components(
            question,
            bool(self.heading_weight),
            prepared=prepared,
            words=self.ngram_weight < 1,
            grams=grams,
            sentences=bool(self.sentence_weight),
            asked=bool(self.asked_weight),
        )
        scores = blend(
            parts, self.ngram_weight, self.heading_weight, self.sentence_weight, self.asked_weight
        )
        return covered(scores, parts.coverage, self.coverage_weight)

    def save(self, path: str | Path) -> int:
        """Write the index to `path` atomically (workers may be reading the old one); bytes."""
        meta = {
            "format": FORMAT,
            "build_id": self.build_id,
            "built_at": self.built_at,
            "ngram_weight": self.ngram_weight,
            "heading_weight": self.heading_weight,
            "sentence_weight": self.sentence_weight,
            "kind_weight": self.kind_weight,
            "coverage_weight": self.coverage_weight,
            "asked_weight": self.asked_weight,
            "asked": self.asked.terms if self.asked is not None else None,
            "synonyms": self.synonyms.groups,
            "faq": [[e.line, list(e.variants), list(e.ids), e.answer] for e in self.faq.entries],
            "userdict": self.userdict,
            "paragraphs": [
                [p.id, p.text, p.chapter, p.section, p.page, p.title] for p in self.paragraphs
            ],
            "fingerprints": {p.id: fingerprint(p.text) for p in self.paragraphs},
            "words": self.words.terms,
            "chars": self.chars.terms,
            "headings": self.headings.terms,
        }
        arrays = {
            "meta": np.frombuffer(orjson.dumps(meta), dtype=np.uint8),
            **self.words.arrays("words"),
            **self.chars.arrays("chars"),
            **self.headings.arrays("headings"),
        }
        if self.sentences is not None:
            arrays.update(self.sentences.arrays())
        if self.asked is not None:
            arrays.update(self.asked.arrays("asked"))
        if self.vectors is not None:
            arrays["vectors"] = self.vectors.astype(np.float32)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(buffer.getbuffer())
        os.replace(partial, path)
        return buffer.tell()

    @classmethod
    def load(cls, path: str | Path) -> Index:
        """The index at `path` (its user-dictionary words reach jieba when words are first
        scored: at a characters' share of 1, never)."""
        arrays, meta = _read(path)
        if meta.get("format") != FORMAT:
            raise IndexUnavailable(f"{path} has index format {meta.get('format')}; rebuild it")
        paragraphs = _paragraphs(meta)
        n = len(paragraphs)
        return cls(
            paragraphs=paragraphs,
            words=Bm25.from_arrays(arrays, "words", meta["words"], n),
            chars=Bm25.from_arrays(arrays, "chars", meta["chars"], n),
            headings=Bm25.from_arrays(arrays, "headings", meta["headings"], n),
            userdict=meta["userdict"],
            ngram_weight=meta["ngram_weight"],
            heading_weight=meta["heading_weight"],
            sentences=Sentences.from_arrays(arrays) if "sentences_kinds" in arrays else None,
            sentence_weight=meta["sentence_weight"],
            kind_weight=meta["kind_weight"],
            coverage_weight=meta["coverage_weight"],
            asked=(
                Bm25.from_arrays(arrays, "asked", meta["asked"], n)
                if meta.get("asked") is not None
                else None
            ),
            asked_weight=meta.get("asked_weight", 0.0),
            synonyms=Synonyms(meta["synonyms"]),
            faq=FaqIndex(Compiled(ln, tuple(v), tuple(i), a) for ln, v, i, a in meta["faq"]),
            build_id=meta["build_id"],
            vectors=arrays.get("vectors"),
            built_at=meta["built_at"],
        )


def _read(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    try:
        # Opened here: np.load leaves the file open when it is not a zip file.
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        return arrays, orjson.loads(arrays["meta"].tobytes())
    except FileNotFoundError:
        raise IndexUnavailable(missing_index(path)) from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise IndexUnavailable(f"{path} is not a Q&A index ({exc})") from None


def read_meta(path: str | Path) -> tuple[dict, bool]:
    """The metadata of the index file at `path` (any format version) and whether it holds
    BERT vectors, without reading its matrices."""
    try:
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as npz:
            return orjson.loads(npz["meta"].tobytes()), "vectors" in npz.files
    except FileNotFoundError:
        raise IndexUnavailable(missing_index(path)) from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise IndexUnavailable(f"{path} is not a Q&A index ({exc})") from None


def _paragraphs(meta: dict) -> list[Paragraph]:
    return [
        Paragraph(id=i, text=t, chapter=c, section=s, page=pg, title=ti)
        for i, t, c, s, pg, ti in meta["paragraphs"]
    ]


def read_paragraphs(path: str | Path) -> list[Paragraph]:
    """The paragraphs an index file of any format version holds (to compare editions)."""
    _, meta = _read(path)
    try:
        return _paragraphs(meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexUnavailable(f"{path} holds no paragraphs ({exc})") from None


def current_format(path: str | Path) -> bool:
    """Whether the file at `path` is an index this version of the code serves."""
    try:
        return _read(path)[1].get("format") == FORMAT
    except IndexUnavailable:
        return False


class Components(NamedTuple):
    """A question's scores per paragraph, each 0..1, from the parts of the index."""

    words: np.ndarray | None
    grams: np.ndarray
    headings: np.ndarray | None
    sentences: np.ndarray | None = None
    coverage: float = 1.0  # the share of the question's distinct terms the handbook (or FAQ) has
    asked: np.ndarray | None = None  # the FAQ questions naming each paragraph


def covered(scores: np.ndarray, coverage: float, weight: float) -> np.ndarray:
    """`scores` times `coverage` to the power `weight` (the same order, lower when the
    handbook lacks words of the question)."""
    return scores * coverage**weight if weight and coverage < 1 else scores


def blend(
    components: Components | tuple[np.ndarray | None, np.ndarray, np.ndarray | None],
    ngram_weight: float,
    heading_weight: float,
    sentence_weight: float = 0.0,
    asked_weight: float = 0.0,
    asked: np.ndarray | None = None,
) -> np.ndarray:
    """The lexical score from its parts: text (words and characters) at weight 1, headings at
    `heading_weight`, the best sentence at `sentence_weight`, divided by the sum of the
    weights so that it stays 0..1. With the FAQ questions naming the paragraph (`asked`, or
    the components' own) at `asked_weight`, the higher of that score and the one with them
    beside the rest: a paragraph is found by its own words, or by the office's questions for
    it where those meet the question better, and a question in the handbook's words is not
    drawn to a neighbour whose FAQ questions share a few of them."""
    words, grams, headings = components[:3]
    sentences = components[3] if len(components) > 3 else None
    if words is None or ngram_weight >= 1:
        text = grams
    elif not ngram_weight:
        text = words
    else:
        text = (1 - ngram_weight) * words + ngram_weight * grams
    total, weights = text, 1.0
    if heading_weight and headings is not None:
        total = total + heading_weight * headings
        weights += heading_weight
    if sentence_weight and sentences is not None:
        total = total + sentence_weight * sentences
        weights += sentence_weight
    score = total if weights == 1.0 else total / weights
    if asked is None and isinstance(components, Components):
        asked = components.asked
    if asked_weight and asked is not None:
        return np.maximum(score, (total + asked_weight * asked) / (weights + asked_weight))
    return score
