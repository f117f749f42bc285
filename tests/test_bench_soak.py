"""bench/soak.py stays runnable: five seconds of its mixed workload on this run's kind of
backends (SQLite and the embedded store, or, with `-m backends --db=mariadb --store=redis`,
a throwaway MariaDB and Redis of its own), with no error and every check passed."""

from __future__ import annotations

import pytest

from tests.helpers import run_bench

pytestmark = pytest.mark.backends


@pytest.mark.timeout(300)
def test_the_soak_runs_without_an_error_and_its_checks_pass(
    request: pytest.FixtureRequest,
) -> None:
    db, store = request.config.getoption("--db"), request.config.getoption("--store")
    options = ["--duration", "5", "--rows", "2000", "--clients", "4", "--db", db, "--store", store]
    out = run_bench("soak.py", *options)
    assert "errors: 0 (goal 0" in out
    assert "result: no error, every check passed" in out
    assert "BAD" not in out
    table = out[out.index("endpoint") : out.index("errors: 0")]
    for endpoint in ("POST /api/token (code)", "POST /api/student", "POST /chat/ (text)"):
        line = next(row for row in table.splitlines() if row.startswith(endpoint))
        assert int(line[len(endpoint) :].split()[0].replace(",", "")) > 0, line
