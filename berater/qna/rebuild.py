"""`python -m berater.qna.rebuild`: the build of a rebuild started from the console, in a
process of its own.

The worker's background task (berater/qna/services.py) starts it and reads its report. A
fresh process, so the worker keeps neither what only a build needs (scikit-learn and SciPy,
about 90 MB, and jieba's dictionary where the worker had not loaded it) nor the build's
peak memory, and a build that crashes takes only itself down.

Standard input: the settings the build reads, one JSON object. Standard output: one JSON
array a line, ["note", text] for each line of the build's report, ["progress", phase, done,
total] for its steps, and last ["done", path] or ["failed", message]. Whatever else is
printed goes to standard error.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# What `build_index_file` reads from the app's settings.
SETTINGS = (
    "QNA_INDEX",
    "QNA_CORPUS",
    "QNA_USERDICT",
    "QNA_FAQ",
    "QNA_SYNONYMS",
    "QNA_QUESTIONS",
    "BERT_HOST",
    "BERT_PORT",
    "BERT_PORT_OUT",
    "BERT_TIMEOUT",
)


def main() -> int:
    report = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # a library's print cannot break a line of the report

    def send(*message: Any) -> None:
        report.write(json.dumps(message, ensure_ascii=False) + "\n")

    settings = json.loads(sys.stdin.read())
    import click
    from flask import Flask

    from berater.qna.cli import build_index_file

    app = Flask(__name__)
    app.config.update(settings)
    try:
        with app.app_context():
            path = build_index_file(
                out=settings["QNA_INDEX"],
                echo=lambda text: send("note", text),
                progress=lambda phase, done, total: send("progress", phase, done, total),
            )
    except click.ClickException as exc:
        send("failed", exc.format_message())
        return 1
    except Exception as exc:
        send("failed", f"the rebuild failed ({type(exc).__name__})")
        raise
    send("done", str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
