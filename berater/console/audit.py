"""The console's audit trail: filter by actor, target, action, role and day, page through it,
download what the filter keeps as CSV. Read only; the rows come from the admin services.

Days are the office's (Beijing time): from the start of `from` to the end of `to`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from flask import render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from berater.admin import export, services
from berater.admin.schemas import SUBJECT_PATTERN
from berater.console import access, bp
from berater.identity import audit, roles

OFFICE = timezone(timedelta(hours=8), "北京时间")
PER_PAGE = 50
MAX_PAGE = 1_000_000
SUBJECT = re.compile(SUBJECT_PATTERN)
FILTERS = ("actor", "target", "action", "role", "from", "to")
ACTION_LABELS = {
    audit.GRANT: "授予角色 · grant",
    audit.REVOKE: "撤销角色 · revoke",
    audit.INVITE_CREATE: "生成邀请 · invitation made",
    audit.INVITE_CANCEL: "取消邀请 · invitation cancelled",
    audit.USER_CREATE: "新建账号 · account created",
    audit.USER_RESET: "重置密码 · password reset",
    audit.USER_DISABLE: "停用账号 · account disabled",
    audit.USER_ENABLE: "启用账号 · account enabled",
    audit.ADMISSION_IMPORT: "导入录取名单 · admission list imported",
    audit.NOVA_CANCEL: "取消社团报名 · club registration cancelled",
    audit.QNA_REBUILD: "重建问答索引 · Q&A index rebuilt",
}


def local_time(moment: datetime | str | None, seconds: bool = False) -> str:
    """A stored time (naive UTC, an aware time, or ISO 8601 with a Z) as the office reads it."""
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(OFFICE).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))


def audit_url(**values: str) -> str:
    """The audit page filtered by `values` (e.g. target=<a holder>), for other sections."""
    given: dict[str, Any] = {k: v for k, v in values.items() if v}
    return url_for("console.audit", **given)


@dataclass
class Query:
    """The filter as typed (to show it again), what it means, and what was wrong with it."""

    typed: dict[str, str]
    where: audit.Filter
    page: int
    errors: dict[str, str] = field(default_factory=dict)

    def link(self, **changes: Any) -> str:
        """The query string of this filter with `changes` (e.g. another page)."""
        values = {k: v for k, v in self.typed.items() if v}
        values.update({k: str(v) for k, v in changes.items() if v})
        return urlencode(values)


def read_query(args: MultiDict[str, str]) -> Query:
    """The filter of the query string; a bad field is reported and left out of the filter."""
    typed = {name: args.get(name, "").strip()[:100] for name in FILTERS}
    errors: dict[str, str] = {}
    kept: dict[str, Any] = {}
    for name in ("actor", "target"):
        if typed[name]:
            if SUBJECT.fullmatch(typed[name]):
                kept[name] = typed[name]
            else:
                errors[name] = "一个 openid、user:用户名 或 cli · an openid, user:<name> or cli"
    if typed["action"]:
        if typed["action"] in audit.ACTIONS:
            kept["action"] = typed["action"]
        else:
            errors["action"] = "未知操作 · unknown action"
    if typed["role"]:
        if typed["role"] in roles.GRANTABLE:
            kept["role"] = typed["role"]
        else:
            errors["role"] = "未知角色 · unknown role"
    days: dict[str, date] = {}
    for name in ("from", "to"):
        if typed[name]:
            try:
                days[name] = date.fromisoformat(typed[name])
            except ValueError:
                errors[name] = "日期格式 YYYY-MM-DD · a date, YYYY-MM-DD"
    if "from" in days and "to" in days and days["to"] < days["from"]:
        errors["to"] = "结束日期早于开始日期 · before the first day"
        del days["to"]
    if "from" in days:
        kept["since"] = _utc(days["from"])
    if "to" in days:
        kept["until"] = _utc(days["to"] + timedelta(days=1))
    try:
        page = min(max(1, int(args.get("page", "1"))), MAX_PAGE)
    except ValueError:
        page = 1
    return Query(typed, audit.Filter(**kept), page, errors)


def _utc(day: date) -> datetime:
    """The start of an office day, as the rows store time (naive UTC)."""
    return datetime.combine(day, time(), OFFICE).astimezone(UTC).replace(tzinfo=None)


@bp.get("/audit", endpoint="audit")
@access.console_view()
def audit_page() -> tuple[str, int]:
    """One page of the rows the filter keeps, newest first."""
    return _page(read_query(request.args))


@bp.get("/audit/export.csv", endpoint="audit_export")
@access.console_view()
def audit_export() -> Response | tuple[str, int]:
    """What the filter keeps as a CSV file (the newest MAX_EXPORT rows)."""
    query = read_query(request.args)
    if query.errors:
        return _page(query)
    body, exported, total = services.audit_csv(query.where)
    return export.audit_download(body, exported, total)


def _page(query: Query) -> tuple[str, int]:
    data = services.audit_page(query.page, PER_PAGE, query.where)
    pages = max(1, -(-data["total"] // PER_PAGE))
    html = render_template(
        "console/audit.html",
        query=query,
        data=data,
        pages=pages,
        labels=ACTION_LABELS,
        actions=audit.ACTION_ORDER,
        grantable=[r for r in roles.ROLES if r in roles.GRANTABLE],
        role_name=roles.display_name,
        local_time=local_time,
        max_export=services.MAX_EXPORT,
        filterable=SUBJECT.fullmatch,
    )
    return html, 400 if query.errors else 200
