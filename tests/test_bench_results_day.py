"""bench/results_day.py stays runnable: a few seconds of its results-day load on this run's
kind of backends (SQLite and the embedded store, or, with `-m backends --db=mariadb
--store=redis`, a throwaway MariaDB and Redis of its own), with no error and every kind
answered."""

from __future__ import annotations

import pytest

from tests.helpers import run_bench

KINDS = (
    "sign-in (POST /api/token code)",
    "sign-in, whole wait with retries",
    "POST /api/code",
    "POST /api/code/verify",
    "token check (GET /api/token)",
    "webhook text (POST /chat/)",
)

pytestmark = pytest.mark.backends


@pytest.mark.timeout(300)
def test_the_results_day_benchmark_runs_without_an_error(request: pytest.FixtureRequest) -> None:
    db, store = request.config.getoption("--db"), request.config.getoption("--store")
    options = ["--duration", "3", "--baseline", "1", "--concurrency", "6", "--latency", "0.05"]
    out = run_bench("results_day.py", *options, "--db", db, "--store", store)
    assert "errors: 0 (goal 0" in out
    assert "webhook replies slower than 5 s: 0" in out
    baseline = out[out.index("without sign-ins") : out.index("with sign-ins")]
    mixed = out[out.index("with sign-ins") : out.index("(per s:")]
    for table, kinds in ((baseline, KINDS[2:]), (mixed, KINDS)):
        for kind in kinds:
            line = next(row for row in table.splitlines() if row.strip().startswith(kind))
            assert int(line.strip()[len(kind) :].split()[0].replace(",", "")) > 0, line
    for goal in ("sign-ins/s", "webhook p99", "token checks >="):
        assert f"goal {goal}" in out
