"""A new index under the running gunicorn: both workers serve it, without a restart.

The real gunicorn with the project's gunicorn.conf.py and two gthread workers taking one
connection each (servers.ONE_CONNECTION_PER_WORKER), on this run's database and store. A
student asks `GET /api/qna` on each worker (a request held unfinished occupies one worker, so
the next connection goes to the other; which worker holds which is read from the kernel).
The index is rebuilt from a changed handbook twice, by the rebuild service in this process
(another process than the workers) and by `flask qna build`, and each time both workers
answer from the new index within a few seconds, with the same pids.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask

from berater import PROJECT_ROOT
from berater.db import db, transaction
from berater.qna import services
from tests import factories, servers
from tests.conftest import HANDBOOK
from tests.helpers import InFlight
from tests.qna.test_reload import NEW_HOURS, OLD_HOURS, QUESTION

pytestmark = pytest.mark.backends

STUDENT = "o_reload_student"
LATEST_HOURS = "晚上九点关闭"
SERVED_WITHIN = 20.0  # seconds: a look a second, the load, two busy CPUs


def handbook(folder: Path, hours: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "handbook.txt"
    path.write_text(HANDBOOK.read_text(encoding="utf-8").replace(OLD_HOURS, hours), "utf-8")
    return path


def ask_on_both_workers(service: servers.Gunicorn, token: str) -> dict[int, str]:
    """The best answer's text to QUESTION from each worker, by pid."""
    path = f"/api/qna?q={quote(QUESTION)}&k=1"
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
    texts = {}
    for pid, (status, raw) in service.on_each_worker(head).items():
        body = json.loads(raw)
        assert status == 200, body
        texts[pid] = body["data"]["answers"][0]["text"]
    assert sorted(texts) == service.workers(), f"answered by {sorted(texts)}"
    return texts


def wait_until_both_serve(service: servers.Gunicorn, token: str, hours: str) -> float:
    """Ask both workers until each answers with `hours`; the seconds it took."""
    started = time.monotonic()
    while True:
        texts = ask_on_both_workers(service, token)
        if all(hours in text for text in texts.values()):
            return time.monotonic() - started
        took = time.monotonic() - started
        assert took < SERVED_WITHIN, f"after {took:.1f}s the workers answer {texts}"
        time.sleep(0.05)


@contextlib.contextmanager
def gunicorn_serving(
    base_settings: dict[str, Any], tmp_path: Path, **settings: str
) -> Iterator[servers.Gunicorn]:
    """gunicorn with two workers on this run's database and store, with `settings`."""
    with servers.serving(
        base_settings,
        tmp_path / "gunicorn.log",
        **settings,
        **servers.ONE_CONNECTION_PER_WORKER,
    ) as gunicorn:
        yield gunicorn


@pytest.fixture
def service(
    make_app: Any, base_settings: dict[str, Any], served: Path, tmp_path: Path
) -> Iterator[servers.Gunicorn]:
    """gunicorn with two workers serving `served`, on this run's database and store."""
    with gunicorn_serving(base_settings, tmp_path, QNA_INDEX=str(served)) as gunicorn:
        yield gunicorn


def student_token(app: Flask, service: servers.Gunicorn, openid: str = STUDENT) -> str:
    """A student's token, minted by the service."""
    with app.app_context():
        factories.student(openid)
        db.session.commit()
    minted = InFlight(service.port, "POST", f"/api/test/token/{openid}").done()
    assert minted.status == 200, minted.body
    return str(minted.body["data"]["token"])


def test_both_workers_serve_a_rebuilt_index_without_a_restart(
    service: servers.Gunicorn, make_app: Any, served: Path, tmp_path: Path
) -> None:
    # This process rebuilds like a third worker would: same index file, the changed handbook.
    rebuilder: Flask = make_app(
        QNA_INDEX=str(served), QNA_CORPUS=str(handbook(tmp_path / "new", NEW_HOURS))
    )
    token = student_token(rebuilder, service)
    workers = service.workers()
    assert len(workers) == 2

    texts = ask_on_both_workers(service, token)
    assert all(OLD_HOURS in text for text in texts.values()), texts

    # The rebuild service, in this process.
    with rebuilder.app_context(), transaction():
        services.start_rebuild("o_reload_admin")
    assert rebuilder.extensions["berater.tasks"].wait_idle(60)
    with rebuilder.app_context():
        state = services.rebuild_state()
    assert state is not None and state.status == "done", state
    took = wait_until_both_serve(service, token, NEW_HOURS)
    print(f"both workers served the rebuilt index {took:.2f}s after it was written")
    assert service.workers() == workers  # the same processes: no restart

    # `flask qna build`, as an operator runs it on the server.
    env = {**service.env, "QNA_CORPUS": str(handbook(tmp_path / "latest", LATEST_HOURS))}
    built = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "run", "qna", "build"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    took = wait_until_both_serve(service, token, LATEST_HOURS)
    print(f"both workers served the CLI's index {took:.2f}s after it was written")
    assert service.workers() == workers
    log = service.log()
    assert log.count("Q&A: loaded the new index") == 4  # each worker, each rebuild
