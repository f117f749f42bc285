"""The console's nova registrations: the list with search, filters and totals by department,
cancelling a registration (with a confirmation; the student is told by WeChat in the
background), and the CSV and .xlsx exports of the active registrations.

Open to `admin` and `nova_admin`. The same services as `/api/nova/admin/...`: the list, the
audited cancellation (`cancel_by_admin`) and the exports. Phones are masked on the page (it
may be read over a shoulder); the exports, which the club needs to call people, carry them
whole.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from berater.apps.nova import export, notify, services
from berater.console import access, bp
from berater.db import transaction
from berater.identity import roles

NOVA = (roles.ADMIN, roles.NOVA_ADMIN)
PER_PAGE = 50
STATUSES = (
    ("active", "有效 · active"),
    ("cancelled", "已取消 · cancelled"),
    ("all", "全部 · all"),
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHINA = timedelta(hours=8)  # the club reads Beijing time
MAX_TEXT = 64


def _filters() -> dict[str, Any]:
    """The list's filters from the query string (or the form of a cancellation), bounded."""
    values = request.values
    status = values.get("status", "active")
    page = values.get("page", "1")
    return {
        "q": values.get("q", "").strip()[:MAX_TEXT],
        "status": status if status in dict(STATUSES) else "active",
        "department": values.get("department", "").strip()[:MAX_TEXT],
        "page": min(int(page), 1_000_000) if page.isdigit() and int(page) > 0 else 1,
    }


def _beijing(iso: str) -> str:
    """`2026-09-01T04:00:00Z` as `2026-09-01 12:00` (Beijing time)."""
    if not iso:
        return ""
    return (datetime.fromisoformat(iso.rstrip("Z")) + CHINA).strftime("%Y-%m-%d %H:%M")


@bp.get("/nova")
@access.console_view(*NOVA)
def nova() -> str:
    """The registrations, newest first, filtered, with the totals by department."""
    chosen = _filters()
    found = services.registrations(
        chosen["q"] or None,
        chosen["status"],
        chosen["page"],
        PER_PAGE,
        chosen["department"] or None,
        mask_phones=True,
    )
    for item in found["items"]:
        item["registered"] = _beijing(item["registered_at"])
    found["pages"] = max(1, -(-found["total"] // PER_PAGE))
    return render_template(
        "console/nova.html",
        found=found,
        chosen=chosen,
        statuses=STATUSES,
        departments=services.departments(),
        cancelled=request.args.get("cancelled", "")[:MAX_TEXT],
    )


@bp.post("/nova/cancel")
@access.console_view(*NOVA)
def nova_cancel() -> WerkzeugResponse:
    """Cancel the active registration of a student number, then back to the same list."""
    stuid = request.form.get("stuid", "")
    who = access.staff()
    with transaction():
        notices = services.cancel_by_admin(stuid, who.subject, request.remote_addr)
    notify.send_later(notices)  # after the commit, on the task pool
    chosen = {key: value for key, value in _filters().items() if value and value != 1}
    return redirect(url_for("console.nova", cancelled=stuid, **chosen), 303)


def _download(body: bytes, mimetype: str, suffix: str) -> Response:
    day = datetime.now(UTC).strftime("%Y%m%d")
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="nova-registrations-{day}.{suffix}"'
    )
    return response


@bp.get("/nova/export.csv")
@access.console_view(*NOVA)
def nova_export_csv() -> Response:
    """Every active registration as CSV (UTF-8 with BOM, for Excel)."""
    return _download(export.to_csv(services.active_registrations()), "text/csv", "csv")


@bp.get("/nova/export.xlsx")
@access.console_view(*NOVA)
def nova_export_xlsx() -> Response:
    """Every active registration as an Excel workbook."""
    return _download(export.to_xlsx(services.active_registrations()), XLSX, "xlsx")
