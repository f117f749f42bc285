"""The console's admission list: upload a file, its dry run, the import with its progress, and
the list searched by name, student number or admission number (ID cards and phones masked).

The work is `berater.admission.imports` (the upload, the dry run and the import on the task
pool, the job's state in the store) and `berater.admission.listing`. Only the upload takes a
large body: its view raises `request.max_content_length` to ADMISSION_UPLOAD_MAX (and the
room a multipart form needs around the file) before anything reads the body; every other
request keeps MAX_CONTENT_LENGTH.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from berater.admission import imports, listing
from berater.admission.services import HEADINGS
from berater.console import access, bp
from berater.errors import BadRequest, PayloadTooLarge
from berater.http import ok

PER_PAGE = 50
LABELS = {
    "checking": "正在检查文件 · Checking the file",
    "checked": "检查完成，尚未写入 · Checked; nothing written yet",
    "queued": "等待开始 · Waiting to start",
    "running": "正在导入 · Importing",
    "done": "导入完成 · Imported",
    "failed": "失败 · Failed",
    "discarded": "已放弃 · Discarded",
}
FORM_ROOM = 64 * 1024  # the multipart boundaries, headers and the CSRF field around the file


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MiB"


def larger_body(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let this one view's request body be as large as an admission-list file, and answer a
    larger one with the console's error page (413). Outside `console_view`, so the limit is
    raised before the CSRF check reads the form."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        limit = int(current_app.config["ADMISSION_UPLOAD_MAX"])
        request.max_content_length = limit + FORM_ROOM
        try:
            return view(*args, **kwargs)
        except RequestEntityTooLarge:
            return access.error_page(PayloadTooLarge(f"the file is larger than {_mib(limit)}"))

    return wrapper


@bp.get("/admission")
@access.console_view()
def admission() -> str:
    """The upload form, the import queued or running now, and the searched list."""
    q = request.args.get("q", "")
    page = request.args.get("page", "1")
    found = listing.search(q, int(page) if page.isdigit() else 1, PER_PAGE)
    return render_template(
        "console/admission.html",
        found=found,
        running=imports.current(),
        limit=_mib(int(current_app.config["ADMISSION_UPLOAD_MAX"])),
        headings=_headings(),
    )


def _headings() -> list[tuple[str, list[str]]]:
    """(field, its Chinese headings) for the page's note on the file's columns."""
    by_field: dict[str, list[str]] = {}
    for heading, field in HEADINGS.items():
        if heading != field:
            by_field.setdefault(field, []).append(heading)
    return list(by_field.items())


@bp.post("/admission/upload")
@larger_body
@access.console_view()
def admission_upload() -> Response:
    """Save the file and queue its dry run; then the job's page."""
    sent = request.files.get("file")
    if sent is None or not sent.filename:
        raise BadRequest("choose a .csv or .xlsx file first")
    who = access.staff()
    job = imports.upload(sent.stream, sent.filename, who.subject, request.remote_addr)
    return redirect(url_for("console.admission_job", job=job), 303)


@bp.get("/admission/imports/<job>")
@access.console_view()
def admission_job(job: str) -> str:
    """One upload: its dry run, the confirmation, the progress, the result."""
    found = imports.state(job)
    rejected = (
        imports.rejected_lines(job) if found["phase"] in ("checked", "done", "failed") else []
    )
    return render_template(
        "console/admission_job.html",
        job=found,
        rejected=rejected,
        running=imports.current(),
        labels=LABELS,
    )


@bp.get("/admission/imports/<job>/state")
@access.console_view(json=True, keep_alive=False)
def admission_job_state(job: str) -> Response:
    """The job's state for the page's progress display (console.js polls it)."""
    found = imports.state(job)
    phase = found["phase"]
    shown = "failed" if phase == "failed" else "running" if phase in imports.ACTIVE else "done"
    return ok(
        {
            "state": shown,
            "phase": phase,
            "label": LABELS[phase],
            "done": found["rows_done"],
            "total": found["rows_total"],
            "error": found["error"],
        }
    )


@bp.post("/admission/imports/<job>/start")
@access.console_view()
def admission_start(job: str) -> Response:
    """Start the import of a checked upload (409 while another import is queued or running)."""
    imports.start(job, access.staff().subject, request.remote_addr)
    return redirect(url_for("console.admission_job", job=job), 303)


@bp.post("/admission/imports/<job>/discard")
@access.console_view()
def admission_discard(job: str) -> Response:
    """Drop a checked upload without importing it."""
    imports.discard(job)
    return redirect(url_for("console.admission"), 303)
