"""The Q&A endpoints: `GET /api/qna?q=` (the handbook index) and `GET /api/bert?q=`."""

from __future__ import annotations

from dataclasses import asdict

from flask import Response
from spectree import Response as Resp

from berater.errors import ServiceUnavailable
from berater.extensions import qna, spec
from berater.http import BEARER, Envelope, errors, ok, query_args
from berater.identity import roles
from berater.identity.auth import token_required
from berater.qna import bp
from berater.qna.bert import BertUnavailable
from berater.qna.engine import Result, reply_text
from berater.qna.schemas import BertQuery, QnaOut, QnaQuery

ERRORS = errors(400, 401, 403, 503)


class BertDown(ServiceUnavailable):
    message = "the BERT server is unavailable, try /api/qna"


def _answer(result: Result) -> dict:
    return {
        "question": result.question,
        "mode": result.mode,
        "answered": result.answered,
        "answers": [{**asdict(hit), "source": hit.source} for hit in result.hits],
        "suggestions": result.suggestions,
        "faq": result.faq,
        "text": result.text() if result.answered else reply_text(result),
    }


@bp.get("/qna")
@token_required(roles.STUDENT)
@spec.validate(
    query=QnaQuery, resp=Resp(HTTP_200=Envelope[QnaOut], **ERRORS), tags=["qna"], security=BEARER
)
def ask_handbook() -> Response:
    """Answers from the student handbook, with chapter, section and page."""
    query = query_args(QnaQuery)
    return ok(_answer(qna.engine.search(query.q, k=query.k, mode="lexical")))


@bp.get("/bert")
@token_required(roles.STUDENT)
@spec.validate(
    query=BertQuery, resp=Resp(HTTP_200=Envelope[QnaOut], **ERRORS), tags=["qna"], security=BEARER
)
def ask_bert() -> Response:
    """The same through the BERT backend (503 when the BERT server does not answer in time)."""
    query = query_args(BertQuery)
    try:
        result = qna.engine.search(query.q, k=query.k, mode=query.mode)
    except BertUnavailable as exc:
        raise BertDown(f"the BERT backend is unavailable: {exc}") from None
    return ok(_answer(result))
