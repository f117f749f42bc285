"""Request and response models of the Q&A endpoints, and of the index's status for the office."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from berater.http import Strict
from berater.qna.engine import MAX_QUESTION


class QnaQuery(Strict):
    q: str = Field(
        ..., min_length=1, max_length=MAX_QUESTION, description="the question, in Chinese"
    )
    k: int = Field(3, ge=1, le=10, description="how many answers at most")

    @field_validator("q")
    @classmethod
    def not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the question is empty")
        return value


class BertQuery(QnaQuery):
    mode: Literal["bert", "hybrid"] = Field(
        "bert", description="bert: BERT alone; hybrid: blended with the lexical score"
    )


class AnswerOut(BaseModel):
    id: str = Field(description="the paragraph's id in the corpus")
    score: float = Field(description="0..1 for lexical, cosine for bert, their blend")
    chapter: str
    section: str
    page: int | None
    title: str
    text: str
    source: str = Field(description="`{chapter} {section} {page}页`")
    highlight: str = Field(description="the sentence or two of `text` that best match the question")
    faq: bool = Field(description="the answer comes from the office's FAQ")


class QnaOut(BaseModel):
    question: str
    mode: str
    answered: bool
    answers: list[AnswerOut] = Field(description="best first; empty when there is no answer")
    suggestions: list[str] = Field(description="the closest sections when there is no answer")
    faq: bool = Field(description="the first answers come from the office's FAQ")
    text: str = Field(
        description="the original format: `{chapter} {section} {page}页\\n{text}` per answer, "
        "joined by blank lines; the no-answer message when there is none"
    )


# --- the index for the office: status, the last evaluation, the rebuild ------------------


class EvalFigures(BaseModel):
    """The figures the last `flask qna eval` printed (with --cv: the held-out folds' mean)."""

    ran_at: datetime = Field(description="when the evaluation ran (UTC)")
    mode: str = Field(description="lexical, bert or hybrid")
    questions: int = Field(description="answerable questions")
    unanswerable: int = Field(description="questions the handbook does not answer")
    top1: float = Field(description="share of answerable questions whose first answer is right")
    recall3: float = Field(description="share of the right paragraphs among the first three")
    mrr10: float
    answered: float = Field(description="share of answerable questions answered")
    right_when_answered: float
    declined: float = Field(description="share of unanswerable questions declined")
    faq_hits: int = Field(description="questions the FAQ answered first")
    cv_folds: int | None = Field(default=None, description="cross-validation folds; None: one run")
    questions_file: str
    corpus: str


class IndexFile(BaseModel):
    """What an index file holds."""

    path: str
    built_at: datetime = Field(description="when it was built (its file's time if it does not say)")
    build_id: str
    current_format: bool = Field(description="false: built by another version, rebuild it")
    paragraphs: int
    words: int = Field(description="the word vocabulary's size")
    characters: int = Field(description="the characters' and bigrams' vocabulary size")
    faq_entries: int
    synonym_groups: int
    bert: bool = Field(description="holds BERT embeddings")
    size: int = Field(description="bytes")
    modified_at: datetime


class LoadedIndex(BaseModel):
    """The index the worker that answered serves."""

    pid: int
    loaded: bool
    build_id: str | None
    paragraphs: int
    loaded_at: datetime | None = Field(description="when this worker loaded it")
    modified_at: datetime | None = Field(description="its file's modification time then")
    current: bool = Field(description="the index file on disk is the one it serves")
    problem: str | None = Field(
        description="why it serves nothing, or why the file on disk is not what it serves"
    )


RebuildStatus = Literal["queued", "running", "done", "failed"]


class RebuildState(BaseModel):
    """The last rebuild of the index from the console (one at a time across workers)."""

    id: str
    status: RebuildStatus
    actor: str
    queued_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    phase: str = Field(default="", description="the step running: segmenting, BERT, writing")
    done: int = 0
    total: int = 0
    error: str | None = None
    notes: list[str] = Field(default_factory=list, description="the build's report")
    index: IndexFile | None = Field(default=None, description="the new index, once done")
    worker: int | None = Field(default=None, description="the pid of the worker that ran it")


class IndexStatus(BaseModel):
    file: IndexFile | None = Field(description="the index file; None when missing or unreadable")
    problem: str | None = Field(description="why the file cannot be read")
    worker: LoadedIndex
    last_eval: EvalFigures | None
    rebuild: RebuildState | None
