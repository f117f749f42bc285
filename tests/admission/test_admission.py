"""The admission list import: files, checks, upserts in batches, the CLI's output and exit codes."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select, text

from berater.admission import services as admission
from berater.db import db
from berater.identifiers import mask_id_card
from berater.identity import audit
from berater.models import AuditLog, SourceStudent
from tests.factories import id_card

pytestmark = pytest.mark.backends

CHINESE = ["学号", "姓名", "性别", "生源地", "院系", "身份证号", "考生号"]
ENGLISH = ["stuid", "name", "gender", "origin", "department", "id_card", "admission_id"]
CARDS = [id_card(n) for n in range(1, 10)]


def person(n: int, **changes: str) -> list[str]:
    """A valid row in CHINESE/ENGLISH column order."""
    row = {
        "stuid": f"20260{n:04d}",
        "name": f"学生{n}",
        "gender": "女" if n % 2 else "男",
        "origin": "江苏",
        "department": "文学院",
        "id_card": CARDS[n],
        "admission_id": f"2632010200{n:04d}",
    } | changes
    return [row[key] for key in ENGLISH]


def write_csv(
    tmp_path: Path, rows: list[list[str]], header=CHINESE, encoding="utf-8-sig", name="list.csv"
) -> Path:
    out = io.StringIO(newline="")
    csv.writer(out).writerows([header, *rows])
    path = tmp_path / name
    path.write_bytes(out.getvalue().encode(encoding))
    return path


def write_xlsx(tmp_path: Path, rows: list[list[object]], header=ENGLISH) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in [header, *rows]:
        sheet.append(row)
    path = tmp_path / "list.xlsx"
    workbook.save(path)
    return path


def stored(app) -> dict[str, dict[str, object]]:
    """Every source_student row by ID card (read in its own app context)."""
    with app.app_context():
        rows = db.session.scalars(select(SourceStudent)).all()
        return {
            r.id_card: {
                "stuid": r.stuid,
                "admission_id": r.admission_id,
                "name": r.name,
                "origin": r.origin,
                "gender": r.gender,
                "department": r.department,
                "updated_at": r.updated_at,
            }
            for r in rows
        }


def run(runner, path: Path, *options: str):
    return runner.invoke(args=["admission", "import", str(path), *options])


def rejected_lines(output: str) -> dict[int, str]:
    """{line: reason} from the report lines `line N [masked]: reason`."""
    found = {}
    for line in output.splitlines():
        if line.startswith("line "):
            number, _, reason = line[5:].partition(" ")
            found[int(number)] = reason.split("]: ", 1)[1]
    return found


# --- reading files ----------------------------------------------------------------------------


def test_a_csv_with_chinese_headings_is_imported(app, runner, tmp_path):
    path = tmp_path / "list.csv"
    # A title row, an extra column (专业), a heading with a note, and trailing empty rows.
    out = io.StringIO(newline="")
    header = ["学号", "姓名", "性别", "生源地", "院系", "身份证号（18位）", "考生号", "专业"]
    csv.writer(out).writerows(
        [["2026级新生名单"], header, [*person(1), "汉语言"], [*person(2), "历史"], [], [""] * 8]
    )
    path.write_bytes(out.getvalue().encode("utf-8-sig"))
    result = run(runner, path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "inserted 2, updated 0, unchanged 0, rejected 0"
    assert "ignored columns: 专业" in result.stderr
    rows = stored(app)
    assert rows[CARDS[1]] | {"updated_at": None} == {
        "stuid": "202600001",
        "admission_id": "26320102000001",
        "name": "学生1",
        "origin": "江苏",
        "gender": "女",
        "department": "文学院",
        "updated_at": None,
    }
    assert set(rows) == {CARDS[1], CARDS[2]}


def test_a_csv_in_gb18030_without_bom_is_read(app, runner, tmp_path):
    path = write_csv(tmp_path, [person(1), person(2)], encoding="gb18030")
    result = run(runner, path)
    assert result.exit_code == 0, result.output
    assert stored(app)[CARDS[2]]["name"] == "学生2"


def test_excel_unicode_text_is_read(app, runner, tmp_path):
    """Excel's "Unicode text" export: UTF-16 with a BOM, tab-separated."""
    lines = ["\t".join(row) for row in [CHINESE, person(1), person(2)]]
    path = tmp_path / "list.csv"
    path.write_bytes("\r\n".join(lines).encode("utf-16"))
    result = run(runner, path)
    assert result.exit_code == 0, result.output
    assert stored(app)[CARDS[1]]["name"] == "学生1"


def test_an_xlsx_with_english_headings_is_imported(app, runner, tmp_path):
    rows = [person(1), person(2)]
    rows[0][0] = 202600001  # a number cell, as Excel stores a column of digits
    path = write_xlsx(tmp_path, rows)
    result = run(runner, path)
    assert result.exit_code == 0, result.output
    assert "inserted 2, updated 0, unchanged 0, rejected 0" in result.stdout
    assert stored(app)[CARDS[1]]["stuid"] == "202600001"


def test_an_xlsx_id_card_stored_as_a_number_is_rejected_with_a_hint(runner, tmp_path):
    row = person(1)
    row[5] = float(CARDS[1][:-1] + "0")  # Excel keeps 15 significant digits of a number
    result = run(runner, write_xlsx(tmp_path, [row, person(2)]))
    assert result.exit_code == 0, result.output
    assert "format the column as text" in rejected_lines(result.stdout)[2]
    assert "inserted 1, updated 0, unchanged 0, rejected 1" in result.stdout


# --- checks -----------------------------------------------------------------------------------


def test_every_rejection_names_its_line_and_reason(app, runner, tmp_path):
    bad = [
        person(1),  # line 2: fine
        person(2, id_card=""),
        person(3, id_card=CARDS[3][:-1] + ("0" if CARDS[3][-1] != "0" else "1")),
        person(4, id_card="32010220070315"),
        person(5, name=""),
        person(6, name="名" * 33),
        person(7, stuid="2026-007"),
        person(8, admission_id="2" * 21),
        person(1, stuid="", admission_id="", id_card=id_card(101)),
        person(2, gender="未知", id_card=id_card(102), stuid="x1", admission_id="x1"),
        person(3, name="张\x07三", id_card=id_card(103), stuid="x2", admission_id="x2"),
        person(4, origin="省" * 33, id_card=id_card(104), stuid="x3", admission_id="x3"),
    ]
    result = run(runner, write_csv(tmp_path, bad))
    assert result.exit_code == 0, result.output
    reasons = rejected_lines(result.stdout)
    expected = {
        3: "id_card is empty",
        4: "check character is wrong",
        5: "id_card: an ID card number has 18 characters",
        6: "name is empty",
        7: "name is longer than 32 characters",
        8: "stuid must be 1-16 letters or digits",
        9: "admission_id must be 1-20 letters or digits",
        10: "stuid and admission_id are both empty",
        11: "gender must be 男 or 女",
        12: "name contains control or invisible characters",
        13: "origin is longer than 32 characters",
    }
    assert set(reasons) == set(expected)
    for line, reason in expected.items():
        assert reason in reasons[line], (line, reasons[line])
    assert result.stdout.splitlines()[-1] == "inserted 1, updated 0, unchanged 0, rejected 11"
    assert set(stored(app)) == {CARDS[1]}


def test_duplicates_in_the_file_reject_every_line_involved(app, runner, tmp_path):
    rows = [
        person(1),
        person(2),
        person(3, id_card=CARDS[1], stuid="x1", admission_id="x1"),  # line 4: card of line 2
        person(4, stuid="AB12"),
        person(5, stuid="ab12"),  # the database compares without case, so this is the same
        person(6),
    ]
    result = run(runner, write_csv(tmp_path, rows))
    reasons = rejected_lines(result.stdout)
    assert reasons == {
        2: "the same id_card as line 4",
        4: "the same id_card as line 2",
        5: "the same stuid as line 6",
        6: "the same stuid as line 5",
    }
    assert set(stored(app)) == {CARDS[2], CARDS[6]}


def test_a_number_repeated_on_many_lines_names_a_few_of_them(app, runner, tmp_path):
    """Each reason names the first few other lines and counts the rest, so a file of one
    number on every line stays a short report (the whole list would grow with the square
    of the file)."""
    rows = [person(1, stuid="S1", id_card=id_card(n), admission_id=f"A{n}") for n in range(1, 3001)]
    result = run(runner, write_csv(tmp_path, rows))
    reasons = rejected_lines(result.stdout)
    assert len(reasons) == 3000
    assert reasons[2] == "the same stuid as line 3, 4, 5, 6, 7 and 2,994 more"
    assert reasons[5] == "the same stuid as line 2, 3, 4, 6, 7 and 2,994 more"
    assert reasons[3001] == "the same stuid as line 2, 3, 4, 5, 6 and 2,994 more"
    assert stored(app) == {}


def audit_rows(app) -> list[tuple[str, str, str]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        return [(row.actor, row.action, row.target) for row in rows]


def test_an_import_from_the_command_line_is_audited(app, runner, tmp_path):
    """An import that writes leaves one audit row (actor `cli`, the counts, no row's data);
    a dry run and a --strict import refused for its rejected rows write none."""
    path = write_csv(tmp_path, [person(1), person(2), person(3, id_card="123")])
    assert run(runner, path, "--dry-run").exit_code == 0
    assert run(runner, path, "--strict").exit_code == 1
    assert audit_rows(app) == []
    assert run(runner, path).exit_code == 0
    ((actor, action, target),) = audit_rows(app)
    assert (actor, action) == ("cli", audit.ADMISSION_IMPORT)
    assert target == "inserted 2, updated 0, unchanged 0, rejected 1"
    assert CARDS[1] not in target and "学生1" not in target


def test_a_number_of_another_id_card_in_the_database_is_rejected(app, runner, tmp_path):
    assert run(runner, write_csv(tmp_path, [person(1), person(2)])).exit_code == 0
    taken = person(3, stuid="202600001")  # line 2: person 1's student number
    result = run(runner, write_csv(tmp_path, [taken, person(4)], name="more.csv"))
    assert result.exit_code == 0, result.output
    reason = rejected_lines(result.stdout)[2]
    assert (
        reason == f"stuid 202600001 already belongs to another ID card ({mask_id_card(CARDS[1])})"
    )
    assert "inserted 1, updated 0, unchanged 0, rejected 1" in result.stdout
    assert set(stored(app)) == {CARDS[1], CARDS[2], CARDS[4]}


# --- upserts ----------------------------------------------------------------------------------


def test_re_running_the_same_file_changes_nothing(app, runner, tmp_path):
    path = write_csv(tmp_path, [person(n) for n in range(1, 6)])
    assert "inserted 5, updated 0" in run(runner, path, "--batch-size", "2").stdout
    before = stored(app)
    result = run(runner, path, "--batch-size", "2")
    assert result.stdout.splitlines()[-1] == "inserted 0, updated 0, unchanged 5, rejected 0"
    assert stored(app) == before


def test_a_changed_row_is_updated_and_the_others_are_unchanged(app, runner, tmp_path):
    run(runner, write_csv(tmp_path, [person(1), person(2), person(3)]))
    changed = [person(1), person(2, department="物理学院", stuid="202699999"), person(3)]
    result = run(runner, write_csv(tmp_path, changed, name="changed.csv"))
    assert result.stdout.splitlines()[-1] == "inserted 0, updated 1, unchanged 2, rejected 0"
    row = stored(app)[CARDS[2]]
    assert (row["department"], row["stuid"]) == ("物理学院", "202699999")


def test_a_column_missing_from_the_header_is_left_alone_and_an_empty_cell_clears(
    app, runner, tmp_path
):
    run(runner, write_csv(tmp_path, [person(1), person(2)]))
    header = ["身份证号", "姓名", "学号", "院系"]  # no 考生号, 生源地 or 性别 column
    rows = [[CARDS[1], "学生1", "202600001", ""], [CARDS[2], "学生2", "202600002", "文学院"]]
    result = run(runner, write_csv(tmp_path, rows, header=header, name="some.csv"))
    assert result.stdout.splitlines()[-1] == "inserted 0, updated 1, unchanged 1, rejected 0"
    rows_now = stored(app)
    assert rows_now[CARDS[1]]["department"] is None
    assert rows_now[CARDS[1]]["admission_id"] == "26320102000001"
    assert rows_now[CARDS[1]]["origin"] == "江苏"


def test_dry_run_writes_nothing(app, runner, tmp_path):
    run(runner, write_csv(tmp_path, [person(1)]))
    before = stored(app)
    path = write_csv(tmp_path, [person(1, name="改名"), person(2)], name="next.csv")
    result = run(runner, path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "inserted 1, updated 1, unchanged 0, rejected 0" in result.stdout
    assert "dry run: nothing was written" in result.stdout
    assert stored(app) == before


def test_strict_writes_nothing_when_any_row_is_rejected(app, runner, tmp_path):
    run(runner, write_csv(tmp_path, [person(1)]))
    conflict = person(2, admission_id="26320102000001")  # person 1's, found in the database
    result = run(runner, write_csv(tmp_path, [person(3), conflict], name="s.csv"), "--strict")
    assert result.exit_code == 1
    assert "already belongs to another ID card" in rejected_lines(result.stdout)[3]
    assert "inserted 0, updated 0, unchanged 0, rejected 1" in result.stdout
    assert "--strict: 1 rows rejected, nothing was written" in result.output
    assert set(stored(app)) == {CARDS[1]}
    clean = run(runner, write_csv(tmp_path, [person(3)], name="ok.csv"), "--strict")
    assert clean.exit_code == 0, clean.output
    assert set(stored(app)) == {CARDS[1], CARDS[3]}


# --- failures ---------------------------------------------------------------------------------


def test_a_database_failure_part_way_keeps_the_batches_before_it(
    app, runner, tmp_path, refuse_name
):
    rows = [person(1), person(2), person(3), person(4, name="炸弹"), person(5)]
    path = write_csv(tmp_path, rows)
    result = run(runner, path, "--batch-size", "2")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "inserted 2, updated 0, unchanged 0, rejected 0"
    assert "the import stopped at lines 4-5" in result.stderr
    assert "run the same file again" in result.stderr
    assert "refused" not in result.output  # the database's message can quote row values
    assert set(stored(app)) == {CARDS[1], CARDS[2]}  # batch 1 committed, batch 2 rolled back

    with app.app_context():
        db.session.execute(text("DROP TRIGGER test_refuse_name"))
        db.session.commit()
    again = run(runner, path, "--batch-size", "2")
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[-1] == "inserted 3, updated 0, unchanged 2, rejected 0"


def test_a_file_unreadable_part_way_writes_nothing(app, runner, tmp_path):
    path = write_csv(tmp_path, [person(1), person(2), person(3)], encoding="utf-8")
    path.write_bytes(path.read_bytes() + b"\xff\xfe\xff,broken\n")
    result = run(runner, path)
    assert result.exit_code == 1
    assert "line 5: the file is not UTF-8 or GB18030 text" in result.output
    assert stored(app) == {}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "no such file"),
        ("list.txt", b"id_card,name\n", "unknown file type; use .csv or .xlsx"),
        ("list.xls", b"\xd0\xcf\x11\xe0", "save as .xlsx or .csv"),
        ("list.xlsx", b"PK\x03\x04 not really a zip", "not a readable .xlsx workbook"),
        ("list.csv", "名单\n甲,乙\n".encode(), "no header in the first 10 rows"),
        ("list.csv", "身份证号,姓名,院系\n".encode(), "needs a stuid (学号) or admission_id"),
        ("list.csv", "身份证号,姓名,学号,学院,院系\n".encode(), "both mean department"),
    ],
)
def test_a_file_that_cannot_be_read_exits_non_zero_with_a_message(
    app, runner, tmp_path, name, content, message
):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = run(runner, path)
    assert result.exit_code == 1
    assert "Error:" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert stored(app) == {}


def test_a_bad_batch_size_is_a_usage_error(runner, tmp_path):
    result = run(runner, write_csv(tmp_path, [person(1)]), "--batch-size", "0")
    assert result.exit_code == 2


def test_the_id_card_never_appears_whole_in_the_output(app, runner, tmp_path):
    run(runner, write_csv(tmp_path, [person(1)]))
    rows = [
        person(1, name=""),  # rejected by a check
        person(2, stuid="202600001"),  # rejected: person 1's number in the database
        person(3),
        person(3, stuid="x1", admission_id="x1"),  # a duplicate
        person(4, id_card=CARDS[4][:-1] + ("0" if CARDS[4][-1] != "0" else "1")),  # bad check
    ]
    outputs = [
        run(runner, write_csv(tmp_path, rows, name=f"f{n}.csv"), *options).output
        for n, options in enumerate([(), ("--dry-run",), ("--strict",)])
    ]
    text_seen = "\n".join(outputs)
    assert mask_id_card(CARDS[1]) in text_seen
    for card in [*CARDS[1:5], rows[-1][5]]:
        assert card not in text_seen
        assert card[6:14] not in text_seen  # not even the birth date


# --- the service, directly --------------------------------------------------------------------


def test_the_service_reports_rows_and_writes_in_batches(ctx, tmp_path):
    path = write_csv(tmp_path, [person(n) for n in range(1, 6)], header=ENGLISH)
    parsed = admission.read_file(path)
    assert [row.line for row in parsed.rows] == [2, 3, 4, 5, 6]
    assert parsed.fields == tuple(ENGLISH)
    first = admission.upsert_batch(db.session, parsed.rows[:3], parsed.fields)
    assert (first.counts.inserted, first.counts.unchanged) == (3, 0)
    second = admission.upsert_batch(db.session, parsed.rows, parsed.fields, write=False)
    assert (second.counts.inserted, second.counts.unchanged) == (2, 3)
    db.session.rollback()
