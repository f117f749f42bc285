"""The console's Q&A index in a real headless Chromium, at a phone's and a desktop's size,
against gunicorn with two workers: an office member sees the index's status and the last
evaluation, rebuilds the index from a changed handbook, follows its progress, and the running
workers serve the new index without a restart. Screenshots in build/screenshots/<test>/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from berater.identity import roles
from berater.qna import services
from berater.qna.index import Index
from tests.conftest import HANDBOOK
from tests.console.conftest import Screen, Staff
from tests.qna.test_cli import invoke, write_questions
from tests.qna.test_reload import NEW_HOURS, OLD_HOURS, build, changed_handbook
from tests.qna.test_reload_gunicorn import (
    ask_on_both_workers,
    gunicorn_serving,
    student_token,
    wait_until_both_serve,
)
from tests.qna.test_services import QUESTIONS

pytestmark = [pytest.mark.browser, pytest.mark.backends]

REBUILT_WITHIN_MS = 30_000


@pytest.fixture
def settings(tmp_path: Path) -> dict[str, Any]:
    """An index of the test handbook; the configured handbook is the changed one."""
    index = tmp_path / "served" / "qna-index.npz"
    build(HANDBOOK, index)
    return {"QNA_INDEX": str(index), "QNA_CORPUS": str(changed_handbook(tmp_path))}


def test_an_office_member_rebuilds_the_index_and_the_workers_serve_it(
    app: Flask,
    base_settings: dict[str, Any],
    settings: dict[str, Any],
    staff: Staff,
    screen: Screen,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    questions = write_questions(tmp_path / "q.jsonl", QUESTIONS)
    evaluated = invoke(app, "eval", "--corpus", str(HANDBOOK), "--questions", str(questions))
    assert evaluated.exit_code == 0, evaluated.output
    with app.app_context():
        figures = services.last_eval()
    assert figures is not None
    staff.account("office", roles.ADMIN)
    served = Path(settings["QNA_INDEX"])
    before = Index.load(served).build_id

    with gunicorn_serving(base_settings, tmp_path, **settings) as service:
        token = student_token(app, service)
        workers = service.workers()
        answers = ask_on_both_workers(service, token)
        assert all(OLD_HOURS in text for text in answers.values()), answers

        page = screen.page
        screen.sign_in(service.url, "office")
        page.click("nav.sections a[href='/admin/qna']")
        expect(page.locator("h1")).to_contain_text("Q&A index")
        expect(page.locator("#paragraphs")).to_have_text("9")
        expect(page.locator("#build-id")).to_have_attribute("data-build", before)
        expect(page.locator("#served-current")).to_be_visible()
        expect(page.locator("#eval-top1")).to_have_text(f"{figures.top1:.3f}")
        expect(page.locator("#eval-recall3")).to_have_text(f"{figures.recall3:.3f}")
        expect(page.locator("#eval-none")).to_have_count(0)
        screen.shot("status")
        assert screen.overflow() == 0

        page.click("#rebuild-button")
        screen.shot("rebuilding")  # the progress, or already the result on a quick machine
        # The page follows the rebuild, then reloads to show the result and the new index.
        expect(page.locator("#rebuild-last")).to_have_attribute(
            "data-state", "done", timeout=REBUILT_WITHIN_MS
        )
        after = Index.load(served).build_id
        assert after != before
        expect(page.locator("#build-id")).to_have_attribute("data-build", after)
        expect(page.locator("#served-current")).to_be_visible(timeout=REBUILT_WITHIN_MS)
        expect(page.locator("#served")).to_have_attribute("data-build", after)
        expect(page.locator("#eval-older")).to_be_visible()
        screen.shot("rebuilt")
        page.click("#rebuild-notes summary")
        expect(page.locator("#rebuild-notes pre")).to_contain_text("paragraphs: 9")
        screen.shot("report")
        assert screen.overflow() == 0

        # Both running workers answer from the new index, and they are the same processes.
        wait_until_both_serve(service, token, NEW_HOURS)
        assert service.workers() == workers
    assert screen.problems == []
