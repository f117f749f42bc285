"""The admission-list and nova sections in a real headless Chromium, at a phone's and a
desktop's size, under the console's strict policy. Screenshots in build/screenshots/<test>/."""

from __future__ import annotations

import csv
import io
import threading
import time
from pathlib import Path

import pytest

from berater.admission import imports
from berater.extensions import tasks
from berater.identity import roles
from tests.admission.test_admission import person, write_csv
from tests.apps.nova.helpers import GOOD, auth, make_student
from tests.console.conftest import Screen, Staff
from tests.factories import id_card

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("no_uploads_left")]


def admission_file(tmp_path: Path) -> Path:
    """600 valid rows after three rejected ones (lines 2 to 4)."""
    rejected = [
        person(1, id_card=""),
        person(2, name=""),
        person(3, stuid="2026-003"),
    ]
    valid = [
        person(1, id_card=id_card(2000 + n), stuid=f"2027{n:05d}", admission_id=f"26{n:012d}")
        for n in range(600)
    ]
    valid[0][1] = "欧阳明"  # the row the search looks for
    return write_csv(tmp_path, [*rejected, *valid])


@pytest.fixture
def slow_batches(monkeypatch):
    """Batches of 50 rows that each take 0.1 s longer, so the progress can be watched."""
    monkeypatch.setattr(imports, "BATCH_SIZE", 50)
    made = imports._progress

    def slower(job, total, refresh_lock):
        advance = made(job, total, refresh_lock)

        def step(rows: int) -> None:
            time.sleep(0.1)
            advance(rows)

        return step

    monkeypatch.setattr(imports, "_progress", slower)


@pytest.mark.parametrize("settings", [{"TASK_WORKERS": 1}], indirect=True)
def test_an_import_of_a_file_with_rejected_lines(
    app, live_server: str, staff: Staff, screen: Screen, tmp_path: Path, slow_batches
) -> None:
    from playwright.sync_api import expect

    page = screen.page
    staff.account("office", roles.ADMIN)
    screen.sign_in(live_server, "office")
    page.click("nav.sections >> text=录取名单")
    expect(page.locator("h1")).to_contain_text("Admission list")
    screen.shot("admission")
    assert screen.overflow() == 0

    page.set_input_files("#file", str(admission_file(tmp_path)))
    page.click("#upload")
    # The dry run runs in the background; the page reloads itself when it is done.
    expect(page.locator("#phase")).to_have_attribute("data-phase", "checked", timeout=20_000)
    rejections = page.locator("#rejections")
    expect(rejections).to_contain_text("line 2 [-]: id_card is empty")
    expect(rejections).to_contain_text("line 3 [")
    expect(rejections).to_contain_text("name is empty")
    expect(rejections).to_contain_text("line 4 [")
    expect(rejections).to_contain_text("stuid must be 1-16 letters or digits")
    expect(page.locator("#check [data-count=inserted]")).to_have_text("600")
    expect(page.locator("#check [data-count=rejected]")).to_have_text("3")
    screen.shot("dry-run")
    assert screen.overflow() == 0

    # Hold the only task worker: the import waits, queued, and the page shows its progress.
    release = threading.Event()
    with app.app_context():
        tasks.submit("test.hold", release.wait, 20)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#start")
    expect(page.locator("#phase")).to_have_attribute("data-phase", "queued")
    expect(page.locator("#progress")).to_be_visible()
    screen.shot("queued")
    release.set()
    # console.js fills the box from the polled state: the label, the rows, the bar.
    expect(page.locator("#progress [data-field=label]")).to_have_text("正在导入 · Importing")
    page.wait_for_function(
        "() => { const p = document.querySelector('#progress progress');"
        " return p && p.value > 0 && p.value < p.max; }"
    )
    screen.shot("progress")
    expect(page.locator("#phase")).to_have_attribute("data-phase", "done", timeout=30_000)
    expect(page.locator("#counts [data-count=inserted]")).to_have_text("600")
    expect(page.locator("#counts [data-count=updated]")).to_have_text("0")
    expect(page.locator("#counts [data-count=unchanged]")).to_have_text("0")
    expect(page.locator("#counts [data-count=rejected]")).to_have_text("3")
    expect(page.locator("#rejections")).to_contain_text("line 2 [-]: id_card is empty")
    screen.shot("done")
    assert screen.overflow() == 0

    # The list: searched by name, the ID card masked.
    page.click("text=← 录取名单")
    page.fill("#q", "欧阳")
    page.click("#search")
    expect(page.locator("#total")).to_contain_text("1")
    card = id_card(2000)
    masked = page.locator("#students td.id-card")
    expect(masked).to_have_text(card[:6] + "********" + card[-4:])
    assert card not in page.content() and card[6:14] not in page.content()
    screen.shot("search")
    assert screen.overflow() == 0
    page.fill("#q", "202700")
    page.click("#search")
    expect(page.locator("#next")).to_be_visible()  # 600 rows: pages of 50
    page.click("#next")
    expect(page.locator(".pager")).to_contain_text("page 2")
    screen.shot("page-2")
    assert screen.problems == []


def test_an_unreadable_file_fails_its_check_with_the_reason(
    live_server: str, staff: Staff, screen: Screen, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = screen.page
    staff.account("office", roles.ADMIN)
    screen.sign_in(live_server, "office")
    page.goto(f"{live_server}/admin/admission")
    bad = tmp_path / "名单.xlsx"
    bad.write_bytes(b"PK\x03\x04 not a workbook")
    page.set_input_files("#file", str(bad))
    page.click("#upload")
    expect(page.locator("#phase")).to_have_attribute("data-phase", "failed", timeout=20_000)
    expect(page.locator("#error")).to_contain_text("名单.xlsx: not a readable .xlsx workbook")
    screen.shot("failed")
    assert screen.overflow() == 0
    assert screen.problems == []


@pytest.fixture
def registrations(app, client) -> None:
    with app.app_context():
        for n, (department, name) in enumerate(
            [
                ("物理学院", "张三"),
                ("物理学院", "李四"),
                ("化学化工学院", "王五"),
                ("建筑与城市规划学院", "欧阳娜娜"),
            ],
            1,
        ):
            openid = f"o_nova_{n}"
            make_student(openid, stuid=f"20261000{n}", name=name, department=department)
            answer = client.post(
                "/api/nova/info",
                json={**GOOD, "phone": f"1390000000{n}"},
                headers=auth(client, openid),
            )
            assert answer.status_code == 200


def test_a_club_admin_filters_cancels_and_exports_nova_registrations(
    live_server: str, staff: Staff, screen: Screen, registrations, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = screen.page
    staff.account("club", roles.NOVA_ADMIN)
    screen.sign_in(live_server, "club")
    # Only the nova section is offered to a club admin.
    nav = page.locator("nav.sections a")
    expect(nav).to_have_count(1)
    expect(nav).to_contain_text("Nova")
    screen.shot("home")
    nav.click()
    expect(page.locator("#total")).to_have_text("4")
    expect(page.locator("#registrations tbody tr")).to_have_count(4)
    expect(page.locator("#registrations")).to_contain_text("139****0001")
    assert "13900000001" not in page.content()
    expect(page.locator("#totals")).to_contain_text("物理学院")
    screen.shot("list")
    assert screen.overflow() == 0

    page.select_option("#department", "物理学院")
    page.click("#filter")
    expect(page.locator("#total")).to_have_text("2")
    expect(page.locator("#registrations tbody tr")).to_have_count(2)
    screen.shot("filtered")

    row = page.locator("#registrations tr[data-stuid='202610002']")
    messages: list[str] = []

    def accept(dialog) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    row.locator("button.cancel").click()
    expect(page.locator("#cancelled")).to_contain_text("202610002")
    assert "李四" in messages[0]
    expect(page.locator("#department")).to_have_value("物理学院")  # the filter stays
    expect(page.locator("#total")).to_have_text("1")
    screen.shot("cancelled")

    page.select_option("#status", "cancelled")
    page.select_option("#department", "")
    page.click("#filter")
    expect(page.locator("#registrations tbody tr")).to_have_count(1)
    expect(page.locator("#registrations")).to_contain_text("已取消")

    page.fill("#q", "欧阳")
    page.select_option("#status", "all")
    page.click("#filter")
    expect(page.locator("#total")).to_have_text("1")

    with page.expect_download() as downloading:
        page.click("#export-csv")
    saved = tmp_path / "export.csv"
    downloading.value.save_as(saved)
    table = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert table[0][:4] == ["学号", "姓名", "院系", "手机号"]
    assert sorted(row[0] for row in table[1:]) == ["202610001", "202610003", "202610004"]
    with page.expect_download() as downloading:
        page.click("#export-xlsx")
    assert downloading.value.suggested_filename.endswith(".xlsx")
    screen.shot("exported")
    assert screen.overflow() == 0

    # The admin sections are not open to a club admin.
    page.goto(f"{live_server}/admin/admission")
    expect(page.locator("#status")).to_have_text("403")
    screen.shot("admission-refused")
    assert screen.problems == []


def test_an_admin_cancels_after_confirming_and_can_change_their_mind(
    live_server: str, staff: Staff, screen: Screen, registrations
) -> None:
    from playwright.sync_api import expect

    page = screen.page
    staff.account("office", roles.ADMIN)
    screen.sign_in(live_server, "office")
    page.goto(f"{live_server}/admin/nova")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator("#registrations tr[data-stuid='202610001'] button.cancel").click()
    expect(page.locator("#total")).to_have_text("4")  # nothing was sent
    expect(page.locator("#cancelled")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#registrations tr[data-stuid='202610001'] button.cancel").click()
    expect(page.locator("#cancelled")).to_contain_text("202610001")
    expect(page.locator("#total")).to_have_text("3")
    screen.shot("cancelled")
    assert screen.problems == []
