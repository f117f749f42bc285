"""The audit trail as CSV (UTF-8 with BOM, for Excel), with the office's Chinese headings."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from flask import Response

from berater.models import AuditLog

HEADINGS = ("时间 (北京时间)", "操作人", "操作", "对象", "角色", "IP")
CHINA_OFFSET = timedelta(hours=8)  # the office reads Beijing time; rows hold naive UTC
# A cell starting with one of these is run as a formula by spreadsheet programs (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def defuse(text: str) -> str:
    """OWASP's advice for CSV: a leading quote keeps a spreadsheet from running the cell."""
    return "'" + text if text.startswith(FORMULA_START) else text


def audit_csv(rows: Sequence[AuditLog]) -> bytes:
    """The CSV file's bytes, one line per row, in the order given."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADINGS)
    for row in rows:
        cells = (
            (row.at + CHINA_OFFSET).strftime("%Y-%m-%d %H:%M:%S"),
            row.actor,
            row.action,
            row.target,
            row.role or "",
            row.ip or "",
        )
        writer.writerow([defuse(cell) for cell in cells])
    return out.getvalue().encode("utf-8-sig")


def audit_download(body: bytes, exported: int, total: int) -> Response:
    """The CSV file as a download named by today's date: `X-Total-Count` says how many rows
    the filter kept, `X-Exported-Count` how many are in the file."""
    day = datetime.now(UTC).strftime("%Y%m%d")
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="audit-{day}.csv"'
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Exported-Count"] = str(exported)
    return response
