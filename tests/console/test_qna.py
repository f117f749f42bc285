"""The console's Q&A index over real HTTP: the status and the last evaluation, a rebuild with
its progress, one rebuild at a time, CSRF, and who may open it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from berater.db import transaction
from berater.identity import audit, roles
from berater.models import AuditLog
from berater.qna import services
from berater.qna.index import Index
from tests.admin.helpers import element_attr, element_text
from tests.conftest import HANDBOOK
from tests.console.conftest import TIMEOUT, Staff, csrf_of, send_form, sign_in_http
from tests.qna.test_cli import invoke, write_questions
from tests.qna.test_reload import NEW_HOURS, build, changed_handbook
from tests.qna.test_services import QUESTIONS

pytestmark = pytest.mark.backends

DONE_WITHIN = 30.0


@pytest.fixture
def settings(tmp_path: Path) -> dict[str, Any]:
    """The app serves an index of the test handbook; its configured handbook is the changed
    one, which a rebuild reads."""
    index = tmp_path / "served" / "qna-index.npz"
    build(HANDBOOK, index)
    return {"QNA_INDEX": str(index), "QNA_CORPUS": str(changed_handbook(tmp_path))}


def page(http: requests.Session, base: str) -> requests.Response:
    answer = http.get(f"{base}/admin/qna", allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer


def poll_until_finished(http: requests.Session, base: str) -> dict[str, Any]:
    started = time.monotonic()
    while True:
        answer = http.get(f"{base}/admin/qna/rebuild", timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()["data"]
        if data["state"] in ("done", "failed"):
            return data
        assert time.monotonic() - started < DONE_WITHIN, data
        time.sleep(0.1)


def test_an_admin_sees_the_status_and_rebuilds_the_index(
    live_server: str, app: Flask, staff: Staff, settings: dict[str, Any], tmp_path: Path
) -> None:
    served = Path(settings["QNA_INDEX"])
    questions = write_questions(tmp_path / "q.jsonl", QUESTIONS)
    evaluated = invoke(app, "eval", "--corpus", str(HANDBOOK), "--questions", str(questions))
    assert evaluated.exit_code == 0, evaluated.output
    staff.account("office", roles.ADMIN)
    http = sign_in_http(live_server, "office")

    html = page(http, live_server).text
    before = Index.load(served)
    assert element_text(html, "paragraphs") == "9"
    assert element_text(html, "characters") == str(len(before.chars.terms))
    assert element_text(html, "faq-entries") == "0"
    assert element_attr(html, "build-id", "data-build") == before.build_id
    assert element_attr(html, "served", "data-build") == before.build_id
    assert 'id="served-current"' in html
    with app.app_context():
        figures = services.last_eval()
    assert figures is not None
    assert element_text(html, "eval-top1") == f"{figures.top1:.3f}"
    assert element_text(html, "eval-recall3") == f"{figures.recall3:.3f}"
    assert 'id="rebuild-button"' in html and 'id="rebuild-last"' not in html

    started = send_form(http, f"{live_server}/admin/qna/rebuild", csrf_of(html))
    assert started.status_code == 303 and started.headers["Location"] == "/admin/qna"
    final = poll_until_finished(http, live_server)
    assert final["state"] == "done", final
    assert final["label"].startswith("重建完成")

    after = Index.load(served)
    assert after.build_id != before.build_id
    assert NEW_HOURS in next(p.text for p in after.paragraphs if p.id == "3.2.1")
    html = page(http, live_server).text
    assert element_attr(html, "rebuild-last", "data-state") == "done"
    assert element_attr(html, "build-id", "data-build") == after.build_id
    assert element_attr(html, "served", "data-build") == after.build_id
    assert 'id="eval-older"' in html  # measured before this build
    with app.app_context():
        rows = list(AuditLog.query.filter_by(action=audit.QNA_REBUILD))
    assert [(r.actor, r.target) for r in rows] == [("user:office", "qna-index.npz")]


def test_a_second_rebuild_while_one_runs_is_refused(
    live_server: str, app: Flask, staff: Staff
) -> None:
    staff.account("office", roles.ADMIN)
    http = sign_in_http(live_server, "office")
    csrf = csrf_of(page(http, live_server).text)
    with app.app_context(), transaction():
        services.start_rebuild("o_another_admin")  # holds the lock until it has run
        refused = send_form(http, f"{live_server}/admin/qna/rebuild", csrf)
        assert refused.status_code == 409
        assert "already running" in element_text(refused.text, "message")
        shown = page(http, live_server).text
        assert 'id="rebuild-progress"' in shown and 'id="rebuild-button"' not in shown
        assert element_attr(shown, "rebuild-progress", "data-poll") == "/admin/qna/rebuild"
    assert app.extensions["berater.tasks"].wait_idle(DONE_WITHIN)
    assert poll_until_finished(http, live_server)["state"] == "done"
    with app.app_context():
        actors = [r.actor for r in AuditLog.query.filter_by(action=audit.QNA_REBUILD)]
    assert actors == ["o_another_admin"]


def test_a_rebuild_without_the_csrf_token_is_refused(
    live_server: str, app: Flask, staff: Staff
) -> None:
    staff.account("office", roles.ADMIN)
    http = sign_in_http(live_server, "office")
    answer = http.post(f"{live_server}/admin/qna/rebuild", allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 403
    assert "did not come from the console" in element_text(answer.text, "message")
    with app.app_context():
        assert services.rebuild_state() is None
        assert list(AuditLog.query.filter_by(action=audit.QNA_REBUILD)) == []


def test_only_admins_open_the_qna_section(live_server: str, app: Flask, staff: Staff) -> None:
    staff.account("clubs", roles.NOVA_ADMIN)
    http = sign_in_http(live_server, "clubs")
    answer = http.get(f"{live_server}/admin/qna", allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 403
    home = http.get(f"{live_server}/admin/", timeout=TIMEOUT).text
    assert "/admin/qna" not in home
    csrf = csrf_of(home)
    posted = send_form(http, f"{live_server}/admin/qna/rebuild", csrf)
    assert posted.status_code == 403
    polled = http.get(f"{live_server}/admin/qna/rebuild", timeout=TIMEOUT)
    assert polled.status_code == 403 and polled.json()["code"] == 403
    anonymous = requests.get(f"{live_server}/admin/qna/rebuild", timeout=TIMEOUT)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 401
    with app.app_context():
        assert services.rebuild_state() is None
