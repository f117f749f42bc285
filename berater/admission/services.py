"""The admission list import: read a CSV or .xlsx file, check every row, upsert in batches.

`read_file` reads and checks the whole file, writing nothing: a file that cannot be read
(missing, unknown type, bad encoding, damaged workbook, no header) raises ImportFileError;
a row that fails a check is rejected with its line number and a reason that never holds
the ID card number. `upsert_batch` then writes the valid rows, one batch per transaction
owned by the caller (berater/admission/cli.py).

The file format is in README.md ("The admission list file"). A column missing from the
header is left untouched on existing rows; an empty cell clears that field; rows not in
the file are never deleted.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from berater.db import utcnow
from berater.identifiers import InvalidIdCard, mask_id_card, normalise_id_card
from berater.models import SourceStudent

FIELDS = ("id_card", "stuid", "admission_id", "name", "origin", "gender", "department")
KEYS = ("id_card", "stuid", "admission_id")  # unique in the table, so unique in the file
# The English column names, and the Chinese headings of an admissions office's lists.
# 专业 (major) is not 院系 (department) and is ignored, like any other unknown column.
HEADINGS: dict[str, str] = {name: name for name in FIELDS} | {
    "身份证号": "id_card", "身份证号码": "id_card", "身份证": "id_card",
    "学号": "stuid", "录取号": "admission_id", "考生号": "admission_id",
    "姓名": "name", "生源地": "origin", "生源省份": "origin", "性别": "gender",
    "院系": "department", "学院": "department",
}  # fmt: skip
GENDERS = {"男": "男", "男性": "男", "m": "男", "male": "男"} | {
    "女": "女", "女性": "女", "f": "女", "female": "女",
}  # fmt: skip
HEADER_SCAN = 10  # rows searched for the header (a title row may come first)
MAX_OTHER_LINES = 5  # lines named in a "the same stuid as line ..." reason
NOTE = re.compile(r"[(（].*?[)）]")
SPACE = re.compile(r"[\s\u3000]+")
EXCEL_NUMBER = re.compile(r"^\d(\.\d+)?E\+?\d+$", re.I)
# Excel tricks to keep a number as text: a leading apostrophe, or ="...".
EXCEL_TEXT = re.compile(r'^(?:\'|="(.*)"$)')


def _length(name: str) -> int:
    return int(SourceStudent.__table__.c[name].type.length)  # type: ignore[attr-defined]


LIMITS = {name: _length(name) for name in FIELDS if name != "id_card"}
NUMBER = {
    key: re.compile(rf"^[0-9A-Za-z]{{1,{LIMITS[key]}}}$") for key in ("stuid", "admission_id")
}


class ImportFileError(Exception):
    """The file cannot be imported at all; the message says why (and never holds row data)."""


@dataclass(frozen=True)
class Row:
    """A valid row: its line in the file and the values of the header's fields."""

    line: int
    values: dict[str, str | None]


@dataclass(frozen=True)
class Rejection:
    """A rejected row. `id_card` is as given, for a masked display only."""

    line: int
    reason: str
    id_card: str | None = None


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0

    def add(self, other: Counts) -> None:
        """Add another batch's counts to these."""
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected += other.rejected

    def __str__(self) -> str:
        return (
            f"inserted {self.inserted}, updated {self.updated}, "
            f"unchanged {self.unchanged}, rejected {self.rejected}"
        )


@dataclass
class ParsedFile:
    """A file read and checked: the header's fields, the valid rows and the rejected ones."""

    fields: tuple[str, ...]
    rows: list[Row]
    rejected: list[Rejection]
    ignored_columns: list[str]


@dataclass
class BatchResult:
    counts: Counts
    rejected: list[Rejection]


# --------------------------------------------------------------------------- reading


def read_file(path: str | Path) -> ParsedFile:
    """Read and check every row of a .csv or .xlsx file; nothing is written.

    Raises ImportFileError when the file cannot be read or has no recognisable header.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise ImportFileError(
            f"{path.name}: old .xls workbooks are not read; save as .xlsx or .csv"
        )
    if suffix not in (".csv", ".xlsx"):
        raise ImportFileError(f"{path.name}: unknown file type; use .csv or .xlsx")
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    records = _csv_records(path) if suffix == ".csv" else _xlsx_records(path)
    with warnings.catch_warnings():
        # openpyxl warns about workbook features it drops (data validation, styles): noise here.
        warnings.filterwarnings("ignore", category=UserWarning, module="openpyxl")
        return _parse(records, path.name)


def _csv_records(path: Path) -> Iterator[tuple[int, list[Any]]]:
    """(first line, cells) of each CSV record."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"{path.name}: cannot read the file ({exc.strerror})") from None
    text = _decode(raw, path.name)
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line = 1
    try:
        for record in reader:
            yield line, record
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFileError(f"{path.name}, line {line}: not valid CSV ({exc})") from None


def _decode(raw: bytes, name: str) -> str:
    """The text of a CSV file: a BOM decides, else UTF-8, else GB18030."""
    failures: list[UnicodeDecodeError] = []
    bom = raw.startswith(codecs.BOM_UTF8)
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ["utf-16"]  # Excel's "Unicode text"
    else:
        encodings = ["utf-8-sig"] if bom else ["utf-8", "gb18030"]
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            failures.append(exc)
    # The encoding that read furthest is the file's: name the line where it broke.
    line = raw.count(b"\n", 0, max(exc.start for exc in failures)) + 1
    wanted = "UTF-16" if encodings == ["utf-16"] else "UTF-8 or GB18030"
    raise ImportFileError(f"{name}, line {line}: the file is not {wanted} text")


def _xlsx_records(path: Path) -> Iterator[tuple[int, list[Any]]]:
    """(row number, cell values) of each row of the workbook's first sheet."""
    import openpyxl  # only the import needs it; keep it out of the app's start-up

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:  # openpyxl raises many types for a damaged or foreign file
        raise ImportFileError(f"{path.name}: not a readable .xlsx workbook") from None
    line = 0
    try:
        if not workbook.worksheets:
            raise ImportFileError(f"{path.name}: the workbook has no worksheet")
        for line, values in enumerate(workbook.worksheets[0].iter_rows(values_only=True), 1):
            yield line, list(values)
    except ImportFileError:
        raise
    except Exception:
        raise ImportFileError(f"{path.name}, row {line + 1}: the workbook is damaged") from None
    finally:
        workbook.close()


def _heading(value: Any) -> str:
    text = "" if value is None else str(value)
    text = SPACE.sub("", NOTE.sub("", text.replace("\ufeff", ""))).rstrip("*").lower()
    return text.replace("-", "_")


def _header(cells: list[Any], name: str) -> tuple[list[tuple[int, str]], list[str]] | None:
    """The (column, field) pairs and ignored headings when `cells` is the header row."""
    columns: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        heading = _heading(cell)
        target = HEADINGS.get(heading)
        if target is None:
            if heading:
                ignored.append(str(cell).strip())
            continue
        if target in columns:
            first = str(cells[columns[target]]).strip()
            raise ImportFileError(
                f"{name}: the columns {first!r} and {str(cell).strip()!r} both mean {target}"
            )
        columns[target] = index
    if "id_card" not in columns or "name" not in columns:
        return None
    if "stuid" not in columns and "admission_id" not in columns:
        raise ImportFileError(
            f"{name}: the header needs a stuid (学号) or admission_id (录取号, 考生号) column"
        )
    return sorted(((i, f) for f, i in columns.items()), key=lambda pair: pair[0]), ignored


def _parse(records: Iterator[tuple[int, list[Any]]], name: str) -> ParsedFile:
    found = None
    for scanned, (_, cells) in enumerate(records):
        if scanned >= HEADER_SCAN:
            break
        found = _header(cells, name)
        if found:
            break
    if not found:
        raise ImportFileError(
            f"{name}: no header in the first {HEADER_SCAN} rows; it needs id_card (身份证号), "
            "name (姓名), and stuid (学号) or admission_id (录取号, 考生号)"
        )
    columns, ignored = found
    fields = tuple(f for _, f in columns)
    checked: list[tuple[int, dict[str, Any], list[str], Any]] = []
    for line, cells in records:
        raw = [cells[i] if i < len(cells) else None for i, _ in columns]
        if not any(_text(value) for value in raw):
            continue  # spreadsheets end with empty rows
        values, reasons = _check(dict(zip(fields, raw, strict=True)))
        given = raw[fields.index("id_card")]
        checked.append((line, values, reasons, given))
    _mark_duplicates(checked)
    rows, rejected = [], []
    for line, values, reasons, given in checked:
        if reasons:
            shown = values.get("id_card") or (given.strip() if isinstance(given, str) else None)
            rejected.append(Rejection(line, "; ".join(reasons), shown))
        else:
            rows.append(Row(line, values))
    return ParsedFile(fields, rows, rejected, ignored)


def _text(value: Any) -> str:
    """A cell as stripped text; whole numbers lose the `.0` a spreadsheet gives them."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    match = EXCEL_TEXT.match(text)
    if match:
        text = (match.group(1) if match.group(1) is not None else text[1:]).strip()
    return text


# --------------------------------------------------------------------------- checking


def _check(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The cleaned values (None for empty) and the reasons the row is rejected, if any."""
    values: dict[str, Any] = {}
    reasons: list[str] = []
    given = raw["id_card"]
    card = _text(given)
    if isinstance(given, float) or EXCEL_NUMBER.match(card):
        reasons.append("id_card is stored as a number and lost digits; format the column as text")
    elif not card:
        reasons.append("id_card is empty")
    else:
        try:
            values["id_card"] = normalise_id_card(card)
        except InvalidIdCard as exc:
            reasons.append(f"id_card: {exc}")
    for key in ("stuid", "admission_id"):
        if key in raw:
            text = _text(raw[key])
            values[key] = text or None
            if text and not NUMBER[key].match(text):
                reasons.append(f"{key} must be 1-{LIMITS[key]} letters or digits")
                values[key] = None  # not a key for the duplicate check
    if not any(_text(raw.get(key)) for key in ("stuid", "admission_id")):
        reasons.append("stuid and admission_id are both empty")
    if not _text(raw["name"]):
        reasons.append("name is empty")
    for key in ("name", "origin", "department"):
        if key in raw:
            text = _text(raw[key])
            values[key] = text or None
            if len(text) > LIMITS[key]:
                reasons.append(f"{key} is longer than {LIMITS[key]} characters")
            elif any(unicodedata.category(ch).startswith("C") for ch in text):
                reasons.append(f"{key} contains control or invisible characters")
    if "gender" in raw:
        text = _text(raw["gender"])
        values["gender"] = GENDERS.get(text.lower()) if text else None
        if text and values["gender"] is None:
            reasons.append("gender must be 男 or 女 (or M, F, male, female), or empty")
    return values, reasons


def _key(field_name: str, value: str) -> str:
    # MySQL's utf8mb4_unicode_ci compares without case: so must the duplicate checks.
    return value if field_name == "id_card" else value.lower()


def _mark_duplicates(checked: list[tuple[int, dict[str, Any], list[str], Any]]) -> None:
    """Reject every line that shares an ID card, stuid or admission_id with another line.

    Which of two lines is right cannot be known, so neither is imported.
    """
    for key in KEYS:
        lines: dict[str, list[int]] = defaultdict(list)
        for line, values, _, _ in checked:
            if values.get(key):
                lines[_key(key, values[key])].append(line)
        for line, values, reasons, _ in checked:
            if values.get(key):
                same = lines[_key(key, values[key])]
                if len(same) > 1:
                    reasons.append(f"the same {key} as line {_other_lines(same, line)}")


def _other_lines(same: list[int], line: int) -> str:
    """The lines of `same` other than `line`: the first few, then how many more. A file
    of one number repeated on every line costs a short reason per line, not the whole list
    (which would grow with the square of the file)."""
    others = [n for n in same[: MAX_OTHER_LINES + 1] if n != line][:MAX_OTHER_LINES]
    more = len(same) - 1 - len(others)
    where = ", ".join(str(n) for n in others)
    return f"{where} and {more:,} more" if more else where


# --------------------------------------------------------------------------- writing


def upsert_batch(
    session: Session, rows: Sequence[Row], fields: Sequence[str], *, write: bool = True
) -> BatchResult:
    """Insert new rows, update changed ones, count unchanged ones; the caller commits.

    One SELECT loads the rows of the batch's ID cards and the owners of its numbers. A
    stuid or admission_id held by another ID card is a rejection, not an IntegrityError.
    With write=False nothing is written: the counts say what a write would do.
    """
    counts, rejected = Counts(), []
    table = SourceStudent.__table__.c
    wanted = {key: [r.values[key] for r in rows if r.values.get(key)] for key in KEYS}
    condition = or_(*(table[key].in_(values) for key, values in wanted.items() if values))
    existing = session.execute(select(*(table[f] for f in FIELDS)).where(condition)).all()
    by_card = {row.id_card.upper(): row for row in existing}
    owners = {
        key: {_key(key, getattr(row, key)): row.id_card for row in existing if getattr(row, key)}
        for key in ("stuid", "admission_id")
    }
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for row in rows:
        card = row.values["id_card"]
        conflicts = [
            f"{key} {row.values[key]} already belongs to another ID card "
            f"({mask_id_card(owners[key][_key(key, row.values[key])])})"
            for key in ("stuid", "admission_id")
            if row.values.get(key)
            and owners[key].get(_key(key, row.values[key]), card).upper() != card
        ]
        if conflicts:
            rejected.append(Rejection(row.line, "; ".join(conflicts), card))
            counts.rejected += 1
            continue
        old = by_card.get(card)
        if old is None:
            inserts.append(
                {f: row.values.get(f) for f in FIELDS} | {"created_at": now, "updated_at": now}
            )
            counts.inserted += 1
        elif any(getattr(old, f) != row.values[f] for f in fields if f != "id_card"):
            changed = {f: row.values[f] for f in fields if f != "id_card"}
            updates.append({"id_card": old.id_card, **changed, "updated_at": now})
            counts.updated += 1
        else:
            counts.unchanged += 1
    if write and inserts:
        session.execute(insert(SourceStudent), inserts)
    if write and updates:
        session.execute(update(SourceStudent), updates)
    return BatchResult(counts, rejected)
