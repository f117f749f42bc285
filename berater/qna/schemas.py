"""Request and response models of the Q&A endpoints."""

from __future__ import annotations

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
