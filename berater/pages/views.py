"""The student and candidate pages. They hold no personal data: the scripts fetch it with the
token. A `next` target is checked here, as the sign-in checks it, before a page goes on to it.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template, request, url_for

from berater.binding.services import PROVINCES
from berater.errors import ApiError
from berater.pages import bp
from berater.qna.engine import MAX_QUESTION
from berater.signin import services as signin
from berater.signin.views import show_error


@bp.errorhandler(ApiError)
def page_error(exc: ApiError) -> tuple[str, int]:
    return show_error(exc)


def _common() -> dict[str, Any]:
    """What every page's template reads: where codes show up in development."""
    config = current_app.config
    console = config["ENABLE_TEST_TOKEN"] and config["SMS_BACKEND"] == "console"
    return {"dev_sms": url_for("sms_dev.console_codes") if console else None}


def _register(kind: str, template: str, **extra: Any) -> str:
    target = signin.check_next(request.args.get("next", ""))
    return render_template(
        template,
        kind=kind,
        next=target,
        home=url_for("pages.binding"),
        landing=signin.landing_link(kind, target),
        **_common(),
        **extra,
    )


@bp.get("/register/student")
def register_student() -> str:
    """Bind as a student: phone and SMS code, ID card, student or admission number."""
    return _register("student", "pages/register_student.html")


@bp.get("/register/candidate")
def register_candidate() -> str:
    """Register as a candidate: phone and SMS code, name, province, city, score, subject."""
    config = current_app.config
    return _register(
        "candidate",
        "pages/register_candidate.html",
        provinces=PROVINCES,
        subjects=config["CANDIDATE_SUBJECTS"],
        max_score=f"{config['CANDIDATE_MAX_SCORE']:g}",
    )


@bp.get("/me")
def binding() -> str:
    """What is bound, changing the phone, signing out."""
    return render_template(
        "pages/binding.html",
        signin=url_for("signin.start", next=url_for("pages.binding")),
        **_common(),
    )


@bp.get("/qna")
def qna() -> str:
    """Ask the handbook; `?q=` is asked at once (the link under a cut reply in the chat). The
    script keeps that question in the tab while it signs in, so the landing's target stays
    short (an encoded question of 200 characters would be longer than a target may be)."""
    return render_template(
        "pages/qna.html",
        max_question=MAX_QUESTION,
        landing=signin.landing_link("student", url_for("pages.qna")),
        register=url_for("pages.register_student", next=url_for("pages.qna")),
    )
