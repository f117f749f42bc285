"""The admission-list and nova sections of the console over real HTTP: the upload and its
size limit (on that view only), CSRF, the dry run, the import and its JSON state, a second
import refused, the masked list, nova's list, cancellation and exports, and who may open what."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import openpyxl
import pytest
import requests
from sqlalchemy import select

from berater.db import db
from berater.identity import roles
from berater.models import AuditLog, NovaReg
from tests.admin.helpers import element_text
from tests.admission.test_admission import CARDS, person, write_csv
from tests.apps.nova.helpers import GOOD, auth, make_student
from tests.console.conftest import TIMEOUT, Staff, csrf_of, send_form, sign_in_http

pytestmark = [pytest.mark.backends, pytest.mark.usefixtures("no_uploads_left")]


def uploads(app) -> list[Path]:
    return list((Path(app.instance_path) / "uploads").glob("*"))


@pytest.fixture
def office(live_server: str, staff: Staff) -> requests.Session:
    staff.account("office", roles.ADMIN)
    return sign_in_http(live_server, "office")


def upload(http: requests.Session, base: str, path: Path, name: str | None = None, **extra):
    page = http.get(f"{base}/admin/admission", timeout=TIMEOUT)
    data = {"csrf_token": csrf_of(page.text), **extra}
    with open(path, "rb") as stream:
        return http.post(
            f"{base}/admin/admission/upload",
            data=data,
            files={"file": (name or path.name, stream, "text/csv")},
            allow_redirects=False,
            timeout=TIMEOUT,
        )


def wait_state(http: requests.Session, base: str, job: str, state: str = "done") -> dict:
    """Poll the job's JSON state as console.js does."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = http.get(f"{base}/admin/admission/imports/{job}/state", timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        if data["state"] in (state, "failed"):
            return data
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def job_of(answer: requests.Response) -> str:
    assert answer.status_code == 303, answer.text
    return answer.headers["Location"].rsplit("/", 1)[1]


def post_form(http: requests.Session, base: str, page_url: str, url: str, **data):
    page = http.get(f"{base}{page_url}", timeout=TIMEOUT)
    return send_form(http, f"{base}{url}", csrf_of(page.text), **data)


def test_an_upload_is_checked_then_imported(app, live_server, office, tmp_path):
    rows = [person(1), person(2, id_card=""), person(3)]
    job = job_of(upload(office, live_server, write_csv(tmp_path, rows), "名单.csv"))
    assert wait_state(office, live_server, job)["phase"] == "checked"
    page = office.get(f"{live_server}/admin/admission/imports/{job}", timeout=TIMEOUT)
    assert page.headers["Cache-Control"] == "no-store"
    assert "名单.csv" in page.text
    assert element_text(page.text, "rejections") == "line 3 [-]: id_card is empty"
    assert 'id="start-form"' in page.text
    started = post_form(
        office,
        live_server,
        f"/admin/admission/imports/{job}",
        f"/admin/admission/imports/{job}/start",
    )
    assert started.status_code == 303
    data = wait_state(office, live_server, job)
    assert (data["phase"], data["done"], data["total"]) == ("done", 2, 2)
    result = office.get(f"{live_server}/admin/admission/imports/{job}", timeout=TIMEOUT)
    assert 'id="result"' in result.text
    assert 'data-count="inserted">2<' in result.text
    assert 'data-count="rejected">1<' in result.text
    assert uploads(app) == []
    listed = office.get(f"{live_server}/admin/admission", params={"q": "学生"}, timeout=TIMEOUT)
    assert "学生1" in listed.text and "学生3" in listed.text
    assert CARDS[1] not in listed.text and CARDS[1][:6] in listed.text


def test_an_upload_without_its_csrf_token_is_refused_and_not_kept(
    app, live_server, office, tmp_path
):
    path = write_csv(tmp_path, [person(1)])
    with open(path, "rb") as stream:
        refused = office.post(
            f"{live_server}/admin/admission/upload",
            data={"csrf_token": "forged"},
            files={"file": ("list.csv", stream, "text/csv")},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
    assert refused.status_code == 403
    assert uploads(app) == []


def test_an_upload_without_a_file_or_of_another_type_is_refused(live_server, office, tmp_path):
    page = office.get(f"{live_server}/admin/admission", timeout=TIMEOUT)
    none = send_form(office, f"{live_server}/admin/admission/upload", csrf_of(page.text))
    assert none.status_code == 400
    assert "choose a .csv or .xlsx file" in element_text(none.text, "message")
    other = tmp_path / "list.txt"
    other.write_text("id_card,name\n")
    refused = upload(office, live_server, other)
    assert refused.status_code == 400
    assert "unknown file type" in element_text(refused.text, "message")


@pytest.mark.parametrize("settings", [{"ADMISSION_UPLOAD_MAX": 1024 * 1024}], indirect=True)
def test_the_large_body_is_allowed_on_the_upload_only(app, live_server, office, tmp_path):
    header = "身份证号,姓名,学号\n"
    fits = tmp_path / "fits.csv"
    line = "甲," + "乙" * 20_000 + ",1\n"  # few long lines: the check of each row is not the point
    fits.write_text(header + line * 10)
    assert fits.stat().st_size > app.config["MAX_CONTENT_LENGTH"] * 10
    assert upload(office, live_server, fits).status_code == 303  # past MAX_CONTENT_LENGTH
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * (1024 * 1024 + 70 * 1024))
    refused = upload(office, live_server, big)
    assert refused.status_code == 413
    assert "larger than 1 MiB" in element_text(refused.text, "message")
    assert [p.name.endswith(".csv") for p in uploads(app)] == [True]  # only the one that fit
    # Elsewhere the console keeps MAX_CONTENT_LENGTH.
    page = office.get(f"{live_server}/admin/nova", timeout=TIMEOUT)
    elsewhere = send_form(
        office, f"{live_server}/admin/nova/cancel", csrf_of(page.text), stuid="1", pad="x" * 40_000
    )
    assert elsewhere.status_code == 413


def test_a_second_import_is_a_409_page(app, live_server, office, tmp_path, monkeypatch):
    from berater.admission import imports

    first = job_of(upload(office, live_server, write_csv(tmp_path, [person(1)], name="a.csv")))
    second = job_of(upload(office, live_server, write_csv(tmp_path, [person(2)], name="b.csv")))
    wait_state(office, live_server, first)
    wait_state(office, live_server, second)
    with app.app_context():  # as if the first were still running: its lock is held
        imports.store.set(imports.AREA, imports.LOCK, first, ttl=60)
    page = f"/admin/admission/imports/{second}"
    refused = post_form(office, live_server, page, f"{page}/start")
    assert refused.status_code == 409
    assert "another import of the admission list is queued or running" in element_text(
        refused.text, "message"
    )
    shown = office.get(f"{live_server}{page}", timeout=TIMEOUT)
    assert 'id="busy"' in shown.text
    with app.app_context():
        imports.store.delete(imports.AREA, imports.LOCK)
    assert post_form(office, live_server, page, f"{page}/start").status_code == 303
    assert wait_state(office, live_server, second)["phase"] == "done"


def test_a_discarded_upload_is_gone(app, live_server, office, tmp_path):
    job = job_of(upload(office, live_server, write_csv(tmp_path, [person(1)])))
    wait_state(office, live_server, job)
    page = f"/admin/admission/imports/{job}"
    assert post_form(office, live_server, page, f"{page}/discard").status_code == 303
    assert uploads(app) == []
    assert 'id="discarded"' in office.get(f"{live_server}{page}", timeout=TIMEOUT).text


def test_an_unknown_job_is_404(live_server, office):
    assert (
        office.get(f"{live_server}/admin/admission/imports/nope", timeout=TIMEOUT).status_code
        == 404
    )
    state = office.get(f"{live_server}/admin/admission/imports/nope/state", timeout=TIMEOUT)
    assert state.status_code == 404 and state.json()["code"] == 404


def test_the_state_needs_a_console_session(live_server):
    answer = requests.get(f"{live_server}/admin/admission/imports/x/state", timeout=TIMEOUT)
    assert answer.status_code == 401
    assert answer.json()["code"] == 401


# --- nova --------------------------------------------------------------------------------------


@pytest.fixture
def registered(app, client):
    with app.app_context():
        for openid, stuid, name, department, phone in [
            ("o_a", "202610001", "张三", "物理系", "13900000001"),
            ("o_b", "202610002", "李四", "物理系", "13900000002"),
            ("o_c", "202620001", "王五", "化学系", "13900000003"),
        ]:
            make_student(openid, stuid=stuid, name=name, department=department)
            answer = client.post(
                "/api/nova/info", json={**GOOD, "phone": phone}, headers=auth(client, openid)
            )
            assert answer.status_code == 200


def test_a_club_admin_sees_nova_but_not_the_admission_list(live_server, staff: Staff, registered):
    staff.account("club", roles.NOVA_ADMIN)
    http = sign_in_http(live_server, "club")
    home = http.get(f"{live_server}/admin/", timeout=TIMEOUT)
    assert "/admin/nova" in home.text and "/admin/admission" not in home.text
    listed = http.get(f"{live_server}/admin/nova", timeout=TIMEOUT)
    assert listed.status_code == 200
    assert "139****0001" in listed.text and "13900000001" not in listed.text
    for path in ("/admin/admission", "/admin/admission/imports/x"):
        assert http.get(f"{live_server}{path}", timeout=TIMEOUT).status_code == 403
    refused = post_form(http, live_server, "/admin/nova", "/admin/admission/upload")
    assert refused.status_code == 403


def test_nova_filters_and_totals(live_server, office, registered):
    page = office.get(f"{live_server}/admin/nova", params={"department": "物理系"}, timeout=TIMEOUT)
    assert element_text(page.text, "total") == "2"
    assert "张三" in page.text and "王五" not in page.text
    searched = office.get(f"{live_server}/admin/nova", params={"q": "王"}, timeout=TIMEOUT)
    assert element_text(searched.text, "total") == "1"
    bad = office.get(
        f"{live_server}/admin/nova", params={"status": "gone", "page": "x"}, timeout=TIMEOUT
    )
    assert bad.status_code == 200 and element_text(bad.text, "total") == "3"


def test_nova_cancel_needs_csrf_and_is_audited(app, live_server, office, registered):
    refused = office.post(
        f"{live_server}/admin/nova/cancel",
        data={"stuid": "202610002"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert refused.status_code == 403
    done = post_form(
        office, live_server, "/admin/nova", "/admin/nova/cancel", stuid="202610002", q="李"
    )
    assert done.status_code == 303
    assert done.headers["Location"] == "/admin/nova?cancelled=202610002&q=%E6%9D%8E&status=active"
    with app.app_context():
        assert db.session.get(NovaReg, "o_b").deleted is True
        row = db.session.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
        assert (row.actor, row.action, row.target) == ("user:office", "nova_cancel", "202610002")
    again = post_form(office, live_server, "/admin/nova", "/admin/nova/cancel", stuid="202610002")
    assert again.status_code == 404


def test_nova_exports_download(live_server, office, registered):
    answer = office.get(f"{live_server}/admin/nova/export.csv", timeout=TIMEOUT)
    assert answer.status_code == 200
    assert "attachment" in answer.headers["Content-Disposition"]
    assert answer.headers["Cache-Control"] == "no-store"
    table = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert {row[3] for row in table[1:]} == {"13900000001", "13900000002", "13900000003"}
    book = office.get(f"{live_server}/admin/nova/export.xlsx", timeout=TIMEOUT)
    sheet = openpyxl.load_workbook(io.BytesIO(book.content)).active
    assert sheet.max_row == 4
