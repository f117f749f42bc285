"""The lexical index: BM25 over jieba words, blended with BM25 over characters and bigrams.

Built once by `flask qna build` into one `.npz` file (numpy arrays only, no pickle); a
worker loads it at start and answers a question with a few array slices and one
`bincount`, never touching the corpus or refitting anything.

Scores are normalised to 0..1: a paragraph's BM25 score divided by what the question could
score at most (each term's idf times k1 + 1, BM25's ceiling; words the handbook never uses
count at the highest idf), so one threshold means "enough of the question is found here"
for any question. A paragraph holding each question word once scores about 1 / (k1 + 1).
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

import numpy as np
import orjson

from berater.qna import segment
from berater.qna.corpus import Paragraph
from berater.qna.faq import Compiled, Faq, FaqIndex, compile_entries
from berater.qna.ids import fingerprint
from berater.qna.normalise import NO_SYNONYMS, Synonyms, document_texts, question_text

FORMAT = 2  # 2: fingerprints, the heading field, synonyms
K1, B = 1.2, 0.75
NGRAM_WEIGHT = 1.0  # the characters' share of the text score (cross-validated, README)
HEADING_WEIGHT = 0.5  # the chapter and section titles' weight beside the text's (1)


class IndexUnavailable(RuntimeError):
    """The index file is missing, unreadable or of another format version."""


def missing_index(path: str | Path) -> str:
    return f"no index at {path}: run `flask --app run qna build`"


def _identity(tokens: list[str]) -> list[str]:
    return tokens


@dataclass
class Bm25:
    """A term-by-paragraph matrix of BM25 weights in CSR arrays, with its vocabulary."""

    terms: list[str]
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    idf: np.ndarray
    n_docs: int
    vocab: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.vocab = {term: i for i, term in enumerate(self.terms)}
        self.max_idf = float(self.idf.max()) if len(self.idf) else 1.0
        # Python lists: indexing them per question term is several times faster than numpy's.
        self._starts: list[int] = self.indptr.tolist()
        self._idf: list[float] = self.idf.tolist()

    @classmethod
    def fit(cls, docs: Sequence[list[str]]) -> Bm25:
        # Imported here: only building needs them, and a worker starts faster without.
        from scipy import sparse
        from sklearn.feature_extraction.text import CountVectorizer

        counts = CountVectorizer(analyzer=_identity, lowercase=False).fit(docs)
        x = sparse.csr_matrix(counts.transform(docs), dtype=np.float32)
        n = x.shape[0]
        lengths = np.asarray(x.sum(axis=1)).ravel()
        average = float(lengths.mean()) or 1.0
        df = np.bincount(x.indices, minlength=x.shape[1])
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        rows = np.repeat(np.arange(n), np.diff(x.indptr))
        tf = x.data
        norm = K1 * (1 - B + B * lengths[rows] / average)
        x.data = (idf[x.indices] * tf * (K1 + 1) / (tf + norm)).astype(np.float32)
        by_term = x.T.tocsr()
        by_term.sort_indices()
        return cls(
            terms=list(counts.get_feature_names_out()),
            indptr=by_term.indptr.astype(np.int64),
            indices=by_term.indices.astype(np.int32),
            data=by_term.data,
            idf=idf,
            n_docs=n,
        )

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """Each paragraph's score for `terms`, divided by the most those terms could score."""
        ids, possible = [], 0.0
        vocab, idf = self.vocab, self._idf
        for term in set(terms):
            i = vocab.get(term)
            if i is None:
                possible += self.max_idf
            else:
                ids.append(i)
                possible += idf[i]
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
            f"{prefix}_idf": self.idf,
        }

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str, terms: list[str], n_docs: int) -> Bm25:
        return cls(
            terms=terms,
            indptr=arrays[f"{prefix}_indptr"],
            indices=arrays[f"{prefix}_indices"],
            data=arrays[f"{prefix}_data"],
            idf=arrays[f"{prefix}_idf"],
            n_docs=n_docs,
        )


ORDINAL = re.compile(r"^第[一二三四五六七八九十百零〇\d]+[章节篇部分]+\s*")


def document_text(paragraph: Paragraph) -> str:
    """What is indexed for a paragraph: its section's name (or title) and its text."""
    heading = ORDINAL.sub("", paragraph.section or paragraph.title)
    return f"{heading} {paragraph.text}"


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
        return cls(
            paragraphs=list(paragraphs),
            words=Bm25.fit(word_docs),
            chars=Bm25.fit(char_docs),
            headings=Bm25.fit(heading_docs),
            userdict=words,
            ngram_weight=ngram_weight,
            heading_weight=heading_weight,
            synonyms=synonyms,
            faq=FaqIndex(
                compile_entries(
                    faq, lambda q: question_text(q, synonyms), {p.id for p in paragraphs}
                )
                if faq is not None
                else []
            ),
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
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
        """The question's word, character and heading scores, each 0..1 per paragraph (the
        word scores None unless `words`, the heading scores None unless `headings`);
        `prepared`: the question is `prepare`d; `grams`: its characters and bigrams."""
        text = question if prepared else self.prepare(question)
        grams = segment.chars(text) if grams is None else grams
        if words and not self.__dict__.get("_words_ready"):
            segment.add_words(self.userdict)  # jieba, only when words are asked for
            self.__dict__["_words_ready"] = True
        return (
            self.words.scores(segment.words(text)) if words else None,
            self.chars.scores(grams),
            self.headings.scores(grams) if headings else None,
        )

    def lexical_scores(
        self, question: str, *, prepared: bool = False, grams: list[str] | None = None
    ) -> np.ndarray:
        """0..1 per paragraph: word BM25 blended with character BM25 by `ngram_weight`, and
        the heading field's BM25 at `heading_weight` beside them. At a weight of 1 the words
        are not needed, nor jieba."""
        parts = self.components(
            question,
            bool(self.heading_weight),
            prepared=prepared,
            words=self.ngram_weight < 1,
            grams=grams,
        )
        return blend(parts, self.ngram_weight, self.heading_weight)

    def save(self, path: str | Path) -> int:
        """Write the index to `path` atomically (workers may be reading the old one); bytes."""
        meta = {
            "format": FORMAT,
            "build_id": self.build_id,
            "built_at": self.built_at,
            "ngram_weight": self.ngram_weight,
            "heading_weight": self.heading_weight,
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


def blend(
    components: tuple[np.ndarray | None, np.ndarray, np.ndarray | None],
    ngram_weight: float,
    heading_weight: float,
) -> np.ndarray:
    """The lexical score from its parts: text (words and characters) at weight 1, headings at
    `heading_weight`, divided by their sum so that it stays 0..1."""
    words, grams, headings = components
    if words is None or ngram_weight >= 1:
        text = grams
    elif not ngram_weight:
        text = words
    else:
        text = (1 - ngram_weight) * words + ngram_weight * grams
    if not heading_weight or headings is None:
        return text
    return (text + heading_weight * headings) / (1 + heading_weight)
