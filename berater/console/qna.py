"""The console's Q&A index: what the index file holds, what the server process that answered
serves, the last `flask qna eval` figures, and a rebuild in the background with its progress.

The work is `berater.qna.services`: the status, and the rebuild on the task pool (one at a
time across workers, its state in the store, its audit row). The workers load the new file by
themselves within a few seconds (berater/qna/answers.py); the page follows both with the
console's polling script.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from berater.console import access, bp
from berater.db import transaction
from berater.http import ok
from berater.identity import roles
from berater.qna import services
from berater.qna.schemas import RebuildState

BEIJING = timezone(timedelta(hours=8), "北京时间")  # the office's time, as the page shows it
LABELS = {
    "queued": "等待开始 · Waiting to start",
    "running": "正在重建 · Rebuilding",
    "done": "重建完成 · Rebuilt",
    "failed": "失败 · Failed",
}
PHASES = {
    "": "",
    "segmenting": "切分段落 · Segmenting the paragraphs",
    "BERT": "BERT 向量 · BERT embeddings",
    "writing": "写入索引文件 · Writing the index file",
}


def when(moment: datetime | None) -> str:
    """A time as the office reads it: Beijing time, to the second."""
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _progress(state: RebuildState | None) -> dict[str, object]:
    """The rebuild's state as the page's polling script reads it."""
    if state is None:
        return {"state": "none", "label": "", "phase": "", "done": 0, "total": 0}
    return {
        "state": state.status,
        "label": LABELS[state.status],
        "phase": PHASES.get(state.phase, state.phase),
        "done": state.done,
        "total": state.total,
        "error": state.error,
        "finished_at": when(state.finished_at),
    }


@bp.get("/qna")
@access.console_view(roles.ADMIN)
def qna() -> str:
    """The index's status, the last evaluation and the rebuild."""
    status = services.status()
    rebuild = status.rebuild
    return render_template(
        "console/qna.html",
        status=status,
        rebuild=rebuild,
        running=rebuild is not None and rebuild.status in ("queued", "running"),
        labels=LABELS,
        phases=PHASES,
        when=when,
    )


@bp.post("/qna/rebuild")
@access.console_view(roles.ADMIN)
def qna_rebuild() -> Response:
    """Start a rebuild (409 while one runs), then show its progress."""
    with transaction():
        services.start_rebuild(access.staff().subject, request.remote_addr)
    return redirect(url_for("console.qna"), 303)


@bp.get("/qna/rebuild")
@access.console_view(roles.ADMIN, json=True, keep_alive=False)
def qna_rebuild_state() -> Response:
    """The rebuild's state, polled by the page while it runs."""
    return ok(_progress(services.rebuild_state()))


@bp.get("/qna/served")
@access.console_view(roles.ADMIN, json=True, keep_alive=False)
def qna_served() -> Response:
    """Whether the server process that answers serves the index file on disk: "done" once it
    does, "failed" when the file cannot be loaded, "running" while it loads it."""
    worker = services.served_here()
    state = "done" if worker.current else "failed" if worker.problem else "running"
    return ok({"state": state, "pid": worker.pid, "build": (worker.build_id or "")[:8]})
