"""Binding a WeChat user to an identity, once: a candidate's details, or a student's ID card.

Every binding uses a phone verified by SMS (berater.sms.services) and consumes it. A student is
bound only to a row of the admission list whose ID card and student or admission number
both match; a wrong number gets the same 404 as an unknown card, and failed attempts are
limited per openid and day (each attempt is counted before it is checked, so parallel
attempts cannot get past the limit). One ID card is bound to at most one openid (a unique
index, so concurrent bindings cannot both win).

What follows a binding in the store waits for its commit (berater.db.after_commit): the
verified phone is deleted, and the roles-changed mark written, only once the binding is
committed, so a binding that fails leaves the phone verified and no mark. The price: two
bindings of the same openid at the same moment (a candidate and a student) can both use
its one verification; both are that openid's, with the phone it proved it holds.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from berater.db import after_commit, db
from berater.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    ValidationFailed,
)
from berater.extensions import store
from berater.identifiers import (
    InvalidIdCard,
    InvalidPhone,
    mask_id_card,
    mask_phone,
    normalise_id_card,
    normalise_phone,
)
from berater.identity import revocation
from berater.models import Candidate, SourceStudent, Student
from berater.sms import services as codes

FAILED = "bind-failed"
DAY = 24 * 3600
NO_MATCH = "no admission record matches this ID card and number"
# Take back one counted try (the window keeps its end); a count back at 0 is removed.
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('DECR', KEYS[1]) <= 0 then
  redis.call('DEL', KEYS[1])
end
"""

# The 34 provincial divisions, as short names: 23 provinces, 4 municipalities, 5 autonomous
# regions and 2 special administrative regions (candidates from Hong Kong, Macao and Taiwan
# sit the joint exam).
PROVINCES = (
    "北京", "天津", "河北", "山西", "内蒙古", "辽宁", "吉林", "黑龙江", "上海", "江苏",
    "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "广西",
    "海南", "重庆", "四川", "贵州", "云南", "西藏", "陕西", "甘肃", "青海", "宁夏", "新疆",
    "台湾", "香港", "澳门",
)  # fmt: skip
FULL_NAMES = {
    "内蒙古自治区": "内蒙古",
    "广西壮族自治区": "广西",
    "西藏自治区": "西藏",
    "宁夏回族自治区": "宁夏",
    "新疆维吾尔自治区": "新疆",
    "香港特别行政区": "香港",
    "澳门特别行政区": "澳门",
}


def field_error(field: str, message: str, kind: str) -> ValidationFailed:
    """The 400 naming one field, as a validation failure of the body does, so a page can show
    the error beside that field: data `{"fields": [{"field", "message", "type"}]}`."""
    return ValidationFailed.of([{"loc": (field,), "msg": message, "type": kind}])


def normalise_province(text: str) -> str:
    """The short name of a provincial division ("江苏省" → "江苏"), or a 400 naming it."""
    value = text.strip()
    value = FULL_NAMES.get(value, value)
    if value not in PROVINCES and value[-1:] in {"省", "市"}:
        value = value[:-1]
    if value not in PROVINCES:
        raise field_error(
            "province", "province must be one of the 34 provincial divisions", "province"
        )
    return value


def _candidate_fields(fields: dict[str, Any]) -> dict[str, Any]:
    cfg = current_app.config
    clean: dict[str, Any] = {}
    if "province" in fields:
        clean["province"] = normalise_province(fields["province"])
    if "score" in fields:
        score = float(fields["score"])
        if not math.isfinite(score) or not 0 <= score <= cfg["CANDIDATE_MAX_SCORE"]:
            raise field_error(
                "score", f"score must be between 0 and {cfg['CANDIDATE_MAX_SCORE']:g}", "range"
            )
        clean["score"] = score
    if "subject" in fields:
        if fields["subject"] not in cfg["CANDIDATE_SUBJECTS"]:
            subjects = ", ".join(cfg["CANDIDATE_SUBJECTS"])
            raise field_error("subject", f"subject must be one of {subjects}", "choice")
        clean["subject"] = fields["subject"]
    for key in ("name", "city"):
        if key in fields:
            clean[key] = fields[key].strip()
    return clean


def _phone_for_change(openid: str, phone: str | None) -> str | None:
    """A new phone must be the one this openid just verified; it is used up on commit."""
    if phone is None:
        return None
    try:
        wanted = normalise_phone(phone)
    except InvalidPhone as exc:
        raise field_error("phone", str(exc), "phone") from None
    if codes.verified_phone(openid) != wanted:
        raise field_error("phone", "verify the new phone by SMS first", "not_verified")
    _use_phone_after_commit(openid, wanted)
    return wanted


def bind_candidate(openid: str, fields: dict[str, Any]) -> Candidate:
    """Register the candidate's details with the verified phone. The caller commits."""
    if db.session.get(Candidate, openid) is not None:
        raise _already("already registered as a candidate; use PATCH to change details")
    clean = _candidate_fields(fields)
    row = Candidate(openid=openid, phone=_verified_phone(openid), **clean)
    _insert(row, _already("already registered as a candidate; use PATCH to change details"))
    _use_phone_after_commit(openid, row.phone)
    revocation.roles_changed_after_commit(openid)
    return row


def own_candidate(openid: str) -> Candidate:
    """The bearer's own candidate row."""
    row = db.session.get(Candidate, openid)
    if row is None:
        raise NotFound("not registered as a candidate yet")
    return row


def update_candidate(openid: str, fields: dict[str, Any]) -> Candidate:
    """Change some details; a new phone must have been verified."""
    row = db.session.get(Candidate, openid)
    if row is None:
        raise NotFound("not registered as a candidate yet")
    for key, value in _candidate_fields(fields).items():
        setattr(row, key, value)
    phone = _phone_for_change(openid, fields.get("phone"))
    if phone is not None:
        row.phone = phone
    db.session.flush()
    return row


def _id_card(value: str) -> str:
    """The normalised ID card number, or a 400 naming the field and the rule it breaks."""
    try:
        return normalise_id_card(value)
    except InvalidIdCard as exc:
        raise field_error("id_card", str(exc), exc.kind) from None


def bind_student(openid: str, id_card: str, number: str) -> Student:
    """Bind to the admission-list row with this ID card and student or admission number."""
    card = _id_card(id_card)
    if db.session.get(Student, openid) is not None:
        raise _already("already bound as a student")
    _take_try(openid)
    wrong = False
    try:
        phone = _verified_phone(openid)
        source = db.session.scalar(
            select(SourceStudent).where(
                SourceStudent.id_card == card,
                or_(SourceStudent.stuid == number, SourceStudent.admission_id == number),
            )
        )
        if source is None:
            wrong = True
            raise NotFound(NO_MATCH)  # the try stays counted
    finally:
        if not wrong:
            _give_back_try(openid)
    taken = db.session.scalar(select(Student.openid).where(Student.id_card == card))
    if taken is not None:
        raise _card_taken()
    row = Student(openid=openid, phone=phone, id_card=card)
    _insert(row, _card_taken())
    _use_phone_after_commit(openid, phone)
    revocation.roles_changed_after_commit(openid)
    return row


def update_student(openid: str, fields: dict[str, Any]) -> Student:
    """Change the phone of a binding; the ID card of a binding never changes."""
    row = db.session.get(Student, openid)
    if row is None:
        raise NotFound("not bound as a student yet")
    if "id_card" in fields:
        card = _id_card(fields["id_card"])
        if card != row.id_card:
            raise Conflict("a binding cannot move to another ID card")
    phone = _phone_for_change(openid, fields.get("phone"))
    if phone is not None:
        row.phone = phone
    db.session.flush()
    return row


def own_source(openid: str) -> dict[str, Any]:
    """The bearer's own admission-list record, with ID card and phone masked."""
    found = db.session.execute(
        select(SourceStudent, Student.phone)
        .join(Student, Student.id_card == SourceStudent.id_card)
        .where(Student.openid == openid)
    ).first()
    if found is None:
        raise NotFound("no admission record is bound to this account")
    source, phone = found
    return {
        "stuid": source.stuid,
        "admission_id": source.admission_id,
        "name": source.name,
        "origin": source.origin,
        "gender": source.gender,
        "department": source.department,
        "id_card": mask_id_card(source.id_card),
        "phone": mask_phone(phone),
    }


def _verified_phone(openid: str) -> str:
    phone = codes.verified_phone(openid)
    if phone is None:
        raise Forbidden("verify your phone by SMS first")
    return phone


def _use_phone_after_commit(openid: str, phone: str) -> None:
    """Use up the verified phone once the binding commits (if it is still that phone)."""
    after_commit(functools.partial(codes.use_verified_phone, openid, phone))


def _already(message: str) -> Conflict:
    """409 for a binding this account already has (`data.reason` "already_bound")."""
    return Conflict(message, data={"reason": "already_bound"})


def _card_taken() -> Conflict:
    """409 for an ID card bound to another account (`data.reason` "id_card_taken"), so a
    page can tell the two apart without reading the message."""
    return Conflict(
        "this ID card is already bound to another WeChat account", data={"reason": "id_card_taken"}
    )


def _insert(row: object, conflict: Conflict) -> None:
    """Insert in a savepoint, so a unique-index race becomes a 409 and not a 500."""
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        raise conflict from None


def _take_try(openid: str) -> None:
    """Count a binding attempt before it is checked; TooManyRequests past BIND_MAX_FAILURES.

    Counting first, in one step, keeps parallel attempts within the limit: only the first
    BIND_MAX_FAILURES counted are checked. An attempt that turns out not to be a wrong
    guess (a match, no verified phone, an error) gives its try back.
    """
    limit = current_app.config["BIND_MAX_FAILURES"]
    if store.incr(FAILED, openid, ttl=DAY) > limit:
        wait = store.ttl(FAILED, openid) or DAY
        _give_back_try(openid)
        raise TooManyRequests("too many failed bindings today; try again later", round(wait))


def _give_back_try(openid: str) -> None:
    store.script(_GIVE_BACK)(keys=[store.key(FAILED, openid)])
