"""`berater.prefork`: what gunicorn's master loads before forking, so that workers start fast.

Each check runs in a fresh interpreter: this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent(
    """
    import json, os, sys, threading
    import berater
    settings = {"QNA_INDEX": sys.argv[1], "INSTANCE_PATH": sys.argv[2]}
    berater.prefork(settings)
    after_prefork = set(sys.modules)
    report = {
        "threads": threading.active_count(),
        "instance_created": os.path.exists(sys.argv[2]),
        "jieba_loaded": __import__("berater.qna.segment").qna.segment._tokenizer is not None,
    }
    app = berater.create_app({"BERATER_ENV": "testing", **settings})
    report["threads_after_create_app"] = threading.active_count()
    report["imported_by_create_app"] = sorted(
        m for m in set(sys.modules) - after_prefork if m.startswith("berater")
    )
    print(json.dumps(report))
    """
)


def probe(index: Path, instance: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(index), str(instance)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "BERATER_ENV": "testing", "HOME": str(instance.parent)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def with_index(qna_index: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The probe's report when there is an index to serve (run once for the tests below)."""
    return probe(qna_index, tmp_path_factory.mktemp("prefork") / "instance")


def test_prefork_imports_every_module_create_app_needs(with_index: dict) -> None:
    # A module prefork did not import (berater.app_modules) is imported by every worker again.
    assert with_index["imported_by_create_app"] == []
    assert with_index["jieba_loaded"] is True


def test_prefork_starts_nothing_a_fork_would_break(with_index: dict) -> None:
    # No threads (they do not survive a fork), no store or database files: only imports.
    assert with_index["threads"] == 1
    # Nor does creating the app: the background tasks' threads start at the first task.
    assert with_index["threads_after_create_app"] == 1
    assert with_index["instance_created"] is False


def test_prefork_leaves_jieba_unloaded_without_an_index(tmp_path: Path) -> None:
    report = probe(tmp_path / "no-index.npz", tmp_path / "instance")
    assert report["jieba_loaded"] is False
