"""Benchmark: the face app's paged query on 100,000 admission rows, p50/p99 per query kind.

The rows come from bench/import.py's generator (checksummed ID cards, unique student and
admission numbers, 18 departments, 12 provinces) and are bulk-inserted in batches. Each
query runs through berater.apps.face.services.find_students, the function behind
`GET /api/face/students`, inside an app context: the figures are the database work (the
count and the page) plus building the rows, without HTTP, token check or JSON encoding.
The query plan of each kind is printed too (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on
MariaDB), to show which index it uses.

    .venv/bin/python bench/face.py                   # SQLite file
    .venv/bin/python bench/face.py --db mariadb      # throwaway MariaDB (tests/servers.py)
    .venv/bin/python bench/face.py --rows 20000 --runs 50
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

FIELDS = ("stuid", "name", "origin", "gender", "department", "admission_id", "id_card")


def load_import_bench() -> ModuleType:
    """bench/import.py (not importable by name: `import` is a keyword)."""
    spec = importlib.util.spec_from_file_location(
        "bench_import", Path(__file__).with_name("import.py")
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fill(app: Any, generator: ModuleType, count: int, batch: int = 5000) -> float:
    """Insert `count` generated rows; returns the seconds taken."""
    from sqlalchemy import insert

    from berater.db import db, transaction, utcnow
    from berater.models import SourceStudent

    # generate() yields rows in HEADINGS order: 学号 姓名 性别 生源地 院系 身份证号 考生号
    keys = ("stuid", "name", "gender", "origin", "department", "id_card", "admission_id")
    started = time.perf_counter()
    with app.app_context():
        now = utcnow()
        chunk: list[dict[str, Any]] = []
        for row in generator.generate(count):
            chunk.append(
                {**dict(zip(keys, row, strict=True)), "created_at": now, "updated_at": now}
            )
            if len(chunk) == batch:
                with transaction() as session:
                    session.execute(insert(SourceStudent), chunk)
                chunk = []
        if chunk:
            with transaction() as session:
                session.execute(insert(SourceStudent), chunk)
        db.session.remove()
    return time.perf_counter() - started


def kinds(generator: ModuleType, count: int) -> dict[str, dict[str, list[str]]]:
    """The query kinds timed: by department, and by admission-number prefix."""
    rows = list(generator.generate(min(count, 2000)))
    department = rows[0][4]
    # Admission numbers are 26 + region[:4] + 8-digit sequence.
    wide = rows[0][6][:6] + "*"  # one region: about 1/12 of the rows
    narrow = rows[0][6][:11] + "*"  # 1,000 sequence numbers, about 83 rows in that region
    return {
        "department": {"department": [department]},
        "admission prefix (1/12)": {"admission_id": [wide]},
        "admission prefix (~80 rows)": {"admission_id": [narrow]},
    }


def timings(app: Any, filters: dict[str, list[str]], runs: int, per_page: int) -> list[float]:
    """Milliseconds of `runs` calls, on random pages among the first 20."""
    from berater.apps.face.services import find_students
    from berater.db import db

    rng = random.Random(7)
    spent = []
    with app.app_context():
        find_students(filters, FIELDS, 1, per_page)  # warm the connection and the cache
        for _ in range(runs):
            started = time.perf_counter()
            find_students(filters, FIELDS, rng.randint(1, 20), per_page)
            spent.append((time.perf_counter() - started) * 1000)
            db.session.remove()
    return spent


def plan(app: Any, filters: dict[str, list[str]], dialect: str) -> list[str]:
    """The database's plan of the page query."""
    from sqlalchemy import and_, select

    from berater.apps.face.services import term_filter
    from berater.db import db
    from berater.models import SourceStudent

    with app.app_context():
        where = and_(*(term_filter(getattr(SourceStudent, k), v) for k, v in filters.items()))
        query = (
            select(SourceStudent.admission_id)
            .where(where)
            .order_by(SourceStudent.admission_id, SourceStudent.id_card)
            .limit(100)
        )
        compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
        prefix = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
        with db.engine.connect() as conn:
            result = conn.exec_driver_sql(prefix + str(compiled)).all()
    if dialect == "sqlite":
        return [str(row[-1]) for row in result]
    return [f"table={row[2]} type={row[3]} key={row[5]} rows={row[8]} {row[9]}" for row in result]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "mariadb"], default="sqlite")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--per-page", type=int, default=100)
    args = parser.parse_args(argv)

    generator = load_import_bench()
    tmp = Path(tempfile.mkdtemp(prefix="berater-face-bench-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # first: runs last (LIFO)
    with generator.throwaway_app(args.db, tmp) as app:
        seconds = fill(app, generator, args.rows)
        print(f"database: {args.db}; {args.rows:,} rows inserted in {seconds:.1f} s")
        print(f"timed through berater.apps.face.services.find_students, {args.runs} runs each, "
              f"per_page {args.per_page}, random pages 1-20, count + page per call")  # fmt: skip
        for label, filters in kinds(generator, args.rows).items():
            spent = timings(app, filters, args.runs, args.per_page)
            print(
                f"{label:<28} p50 {statistics.median(spent):7.2f} ms   "
                f"p99 {percentile(spent, 0.99):7.2f} ms   {filters}"
            )
            for step in plan(app, filters, args.db):
                print(f"    plan: {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
