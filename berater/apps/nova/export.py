"""Active registrations as CSV (UTF-8 with BOM, for Excel) and as .xlsx, Chinese headings."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import timedelta

from openpyxl import Workbook

from berater.models import NovaReg

HEADINGS = ("学号", "姓名", "院系", "手机号", "QQ", "自我介绍", "报名时间")
CHINA_OFFSET = timedelta(hours=8)  # the club reads Beijing time
# A cell starting with one of these is run as a formula by spreadsheet programs (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def rows(registrations: Sequence[NovaReg]) -> list[list[str]]:
    """One list of cell texts per registration, in HEADINGS order."""
    return [
        [
            reg.stuid,
            reg.name,
            reg.department or "",
            reg.phone,
            reg.qq or "",
            reg.intro or "",
            (reg.created_at + CHINA_OFFSET).strftime("%Y-%m-%d %H:%M:%S"),
        ]
        for reg in registrations
    ]


def _defuse(text: str) -> str:
    """OWASP's advice for CSV: a leading quote keeps a spreadsheet from running the cell."""
    return "'" + text if text.startswith(FORMULA_START) else text


def to_csv(registrations: Sequence[NovaReg]) -> bytes:
    """The CSV file's bytes."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADINGS)
    writer.writerows([_defuse(cell) for cell in row] for row in rows(registrations))
    return out.getvalue().encode("utf-8-sig")


def to_xlsx(registrations: Sequence[NovaReg]) -> bytes:
    """The .xlsx file's bytes; every cell is text (phones and QQ keep their digits as typed)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "报名"
    sheet.append(HEADINGS)
    for row in rows(registrations):
        sheet.append(row)
    for line in sheet.iter_rows(min_row=2):
        for cell in line:
            # openpyxl stores "=..." as a formula; force a plain string cell instead.
            cell.data_type = "s"
    for column, width in zip("ABCDEFG", (14, 10, 24, 14, 14, 40, 20), strict=True):
        sheet.column_dimensions[column].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
