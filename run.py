"""Entry point: `gunicorn run:app`, `flask --app run ...`, or `python run.py` for development.

`python run.py` chooses development (unless BERATER_ENV says otherwise) and starts everything
on the embedded defaults: the SQLite file and the embedded store in ./instance, and the
stand-in WeChat on 127.0.0.1:5001, so the whole sign-in can be clicked through in a browser
at http://127.0.0.1:5000/ (development's SERVICE_BASE_URL: the only host it answers). The
first start also loads a made-up admission list (data/demo-admission.csv), so a newcomer
can bind as a student; SMS codes are not sent but shown on /dev/sms.
`gunicorn run:app` and `flask --app run` take BERATER_ENV from the environment or .env;
unset, it means production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import WSGIRequestHandler

from berater import PROJECT_ROOT, create_app

DEV_HOST, DEV_PORT, WECHAT_PORT = "127.0.0.1", 5000, 5001


class _QuietHandler(WSGIRequestHandler):
    """The app logs each request itself, redacted; the dev server's own line would show
    query strings (OAuth codes and states), so it is dropped."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


def _start_wechat_standin() -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "standins.wechat", "--port", str(WECHAT_PORT)], cwd=PROJECT_ROOT
    )
    time.sleep(0.5)
    return process


def _build_qna_index(dev_app: Flask) -> None:
    """The first start builds the demo handbook's Q&A index (a few seconds), once (again
    after an upgrade that changes the index format)."""
    from berater.extensions import qna
    from berater.qna.answers import index_path
    from berater.qna.cli import build_index_file
    from berater.qna.index import current_format

    if not current_format(index_path(dev_app)):
        print("  Building the Q&A index of the demo handbook ...", flush=True)
        build_index_file()
        qna.load(dev_app)


def _load_demo_admission_list() -> None:
    """The first start loads a made-up admission list (data/demo-admission.csv), once."""
    from berater.admission.cli import DEMO_LIST, load_demo_list

    report = load_demo_list()
    if report is not None:
        print(
            f"  Loaded the demo admission list ({report.counts.inserted} made-up students) "
            f"from {DEMO_LIST.relative_to(PROJECT_ROOT)}",
            flush=True,
        )


def _exit_once(*_: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(0)


def main() -> None:
    # SIGTERM (e.g. `timeout`, an IDE's stop button) cleans up like Ctrl-C: the stand-in and
    # the embedded store stop with the service. A second SIGTERM (a process group signalled
    # again) must not cut that clean-up short.
    signal.signal(signal.SIGTERM, _exit_once)
    os.environ.setdefault("BERATER_ENV", "development")
    standin = None
    if os.environ["BERATER_ENV"] == "development" and "WECHAT_API_BASE" not in os.environ:
        standin = _start_wechat_standin()
        base = f"http://{DEV_HOST}:{WECHAT_PORT}"
        os.environ["WECHAT_API_BASE"] = base
        os.environ["WECHAT_OAUTH_BASE"] = base
    try:
        dev_app = create_app()
        with dev_app.app_context():
            upgrade()
            if dev_app.config["ENV_NAME"] == "development":
                _load_demo_admission_list()
            _build_qna_index(dev_app)
        print(
            f"\n  Berater: open http://{DEV_HOST}:{DEV_PORT}/ and click 'As a student'"
            f"\n  SMS codes (not sent in development): http://{DEV_HOST}:{DEV_PORT}/dev/sms\n",
            flush=True,
        )
        dev_app.run(
            DEV_HOST, DEV_PORT, use_reloader=False, threaded=True, request_handler=_QuietHandler
        )
    finally:
        if standin is not None:
            standin.terminate()


if __name__ == "__main__":
    main()
else:
    app = create_app()
