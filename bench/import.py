"""Benchmark: importing the admission list (`flask admission import`), 100,000 rows.

What it measures, in one run on a throwaway database:

* rows/s of the first import of a generated file (every row inserted), and of a re-import
  of the same file (every row unchanged, which the benchmark checks);
* the goal: each import of 100,000 rows takes 60 s or less.

The rows are made up: checksummed GB 11643 ID card numbers (birth dates in 2007, the
sequence digit's parity giving the gender, as on real cards), unique student and admission
numbers, Chinese names, provinces and departments. They are written with the Chinese
headings an admissions office uses, as UTF-8 with a BOM (Excel's "CSV UTF-8"), or as an
.xlsx workbook with --xlsx. The import runs in this process through
berater.admission.cli.run_import, the function behind the CLI command, so the figures
include reading, checking and writing, but not the progress bar.

    .venv/bin/python bench/import.py                    # SQLite file
    .venv/bin/python bench/import.py --db mariadb       # throwaway MariaDB (tests/servers.py)
    .venv/bin/python bench/import.py --xlsx --rows 20000 --batch-size 2000
    .venv/bin/python bench/import.py --background --rows 50000   # as the console runs it

--background runs the console's way (berater.admission.imports): the upload, the dry run on
the shared task pool, then the import there, polling the job's state in the store as the
page does; it times the dry run and the import.

--db mariadb needs the Debian package `mariadb-server`. The temporary directory, the
database server and the embedded store are removed or stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from berater.admission.cli import ImportReport

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from berater.identifiers import check_char  # noqa: E402 - after the path is set

GOAL_SECONDS = 60.0
GOAL_ROWS = 100_000
# (region code, province) pairs: real county-level codes, so the first digit is valid.
REGIONS = (
    ("110105", "北京"), ("120101", "天津"), ("320102", "江苏"), ("330106", "浙江"),
    ("340104", "安徽"), ("370102", "山东"), ("410105", "河南"), ("420111", "湖北"),
    ("430104", "湖南"), ("440106", "广东"), ("510107", "四川"), ("610113", "陕西"),
)  # fmt: skip
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉红建文宇浩然子涵欣怡梓"
    "轩雨萱一诺思远博文嘉怡"
)
DEPARTMENTS = (
    "计算机科学与技术系", "软件学院", "电子科学与工程学院", "物理学院", "化学化工学院",
    "数学系", "文学院", "历史学院", "哲学系", "新闻传播学院", "商学院", "法学院",
    "外国语学院", "医学院", "环境学院", "地球科学与工程学院", "大气科学学院", "建筑与城市规划学院",
)  # fmt: skip
HEADINGS = ("学号", "姓名", "性别", "生源地", "院系", "身份证号", "考生号")


def load_servers() -> ModuleType:
    """tests/servers.py: the throwaway MariaDB and Redis servers of the test suite."""
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    from tests import servers

    return servers


# --------------------------------------------------------------------------- the rows


def id_card(region: str, birth: date, sequence: int) -> str:
    """A GB 11643 number: region, birth date, 3-digit sequence, check character."""
    body = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return body + check_char(body)


def generate(count: int, seed: int = 2026) -> Iterator[tuple[str, ...]]:
    """`count` valid rows in HEADINGS order; ID cards and numbers unique by construction."""
    rng = random.Random(seed)
    first_birthday = date(2007, 1, 1)
    for i in range(count):
        region, province = REGIONS[rng.randrange(len(REGIONS))]
        # 1,000 sequences per birth day: (day, sequence) is unique for every i.
        birth = first_birthday + timedelta(days=i // 1000)
        sequence = i % 1000
        gender = "男" if sequence % 2 else "女"
        name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
        yield (
            f"2026{i:06d}",
            name,
            gender,
            province,
            rng.choice(DEPARTMENTS),
            id_card(region, birth, sequence),
            f"26{region[:4]}{i:08d}",
        )


def write_csv(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADINGS)
        writer.writerows(generate(count))


def write_xlsx(path: Path, count: int) -> None:
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("录取名单")
    sheet.append(HEADINGS)
    for row in generate(count):
        sheet.append(row)
    workbook.save(path)


# --------------------------------------------------------------------------- the run


def make_app(database_url: str, instance: Path) -> Flask:
    """The app on `database_url`, with the schema upgraded as `flask db upgrade` does."""
    from flask_migrate import upgrade

    from berater import create_app

    app = create_app(
        {
            "BERATER_ENV": "development",
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": database_url,
            "REDIS_URL": "",  # the embedded store; the import does not use it
            "LOG_LEVEL": "WARNING",
        }
    )
    with app.app_context():
        upgrade()
    return app


@contextmanager
def throwaway_app(db_kind: str, tmp: Path) -> Iterator[Flask]:
    """The app on a new SQLite file or throwaway MariaDB in `tmp`, closed and stopped after."""
    server = None
    try:
        if db_kind == "mariadb":
            server = load_servers().start_mariadb(tmp / "mariadb")
            database_url = server.url
        else:
            database_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
        app = make_app(database_url, tmp / "instance")
        yield app
        with app.app_context():
            from berater.db import db

            db.engine.dispose()
        app.extensions["berater.store"].close()
    finally:
        if server is not None:
            server.stop()


def timed_import(app: Flask, path: Path, batch_size: int) -> tuple[float, ImportReport]:
    """(seconds, report) of one import of `path` through the CLI's function."""
    from berater.admission.cli import run_import
    from berater.db import db

    with app.app_context():
        started = time.perf_counter()
        report = run_import(path, batch_size=batch_size)
        elapsed = time.perf_counter() - started
        db.session.remove()
    return elapsed, report


def timed_background_import(app: Flask, path: Path) -> tuple[float, float, dict]:
    """(dry-run seconds, import seconds, final state) of the console's way: the upload, the
    dry run and then the import on the shared task pool, polled as the page polls."""
    from berater.admission import imports

    def wait(job: str, *phases: str) -> dict:
        while (state := imports.state(job))["phase"] not in phases:
            time.sleep(0.1)
        return state

    with app.app_context():
        started = time.perf_counter()
        with open(path, "rb") as stream:
            job = imports.upload(stream, path.name, "bench")
        checked = wait(job, "checked", "failed")
        check_s = time.perf_counter() - started
        if checked["phase"] != "checked":
            raise SystemExit(f"the dry run failed: {checked['error']}")
        started = time.perf_counter()
        imports.start(job, "bench")
        state = wait(job, "done", "failed")
        return check_s, time.perf_counter() - started, state


def count_rows(app: Flask) -> int:
    from sqlalchemy import func, select

    from berater.db import db
    from berater.models import SourceStudent

    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(SourceStudent)) or 0)


def line(label: str, rows: int, seconds: float, counts: object) -> str:
    return (
        f"{label:<10} {rows:,} rows in {seconds:6.2f} s = {rows / seconds:9,.0f} rows/s  ({counts})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "mariadb"], default="sqlite")
    parser.add_argument("--rows", type=int, default=GOAL_ROWS)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--xlsx", action="store_true", help="import an .xlsx workbook, not CSV")
    parser.add_argument(
        "--background",
        action="store_true",
        help="the console's way: upload, dry run, then the import on the task pool",
    )
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="berater-import-bench-"))
    # Registered first, so it runs last: after the embedded store has stopped (atexit, LIFO).
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    path = tmp / ("admission.xlsx" if args.xlsx else "admission.csv")
    started = time.perf_counter()
    (write_xlsx if args.xlsx else write_csv)(path, args.rows)
    print(
        f"generated {args.rows:,} rows into {path.name} "
        f"({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s"
    )
    with throwaway_app(args.db, tmp) as app:
        print(f"database: {args.db}, batch size {args.batch_size}")
        if args.background:
            return background(app, path, args.rows, args.batch_size)

        first_s, first = timed_import(app, path, args.batch_size)
        print(line("import", args.rows, first_s, first.counts))
        again_s, again = timed_import(app, path, args.batch_size)
        print(line("re-import", args.rows, again_s, again.counts))

        stored = count_rows(app)
        ok = (
            first.counts.inserted == args.rows
            and again.counts.unchanged == args.rows
            and not first.rejected
            and not again.rejected
            and stored == args.rows
        )
        if not ok:
            print(
                f"WRONG RESULT: {stored:,} rows stored; expected every row inserted, then unchanged"
            )
            return 1
        # The goal is for 100,000 rows; a smaller --rows run is scaled to it.
        scale = GOAL_ROWS / args.rows
        met = max(first_s, again_s) * scale <= GOAL_SECONDS
        print(f"goal (<= 60 s for 100,000 rows): {'met' if met else 'NOT met'}")
    return 0


def background(app: Flask, path: Path, rows: int, batch_size: int) -> int:
    """The console's way, timed: the dry run, then the import; the goal as for the CLI."""
    from berater.admission import imports

    imports.BATCH_SIZE = batch_size
    check_s, import_s, state = timed_background_import(app, path)
    print(line("dry run", rows, check_s, ", ".join(f"{k} {v}" for k, v in state["check"].items())))
    print(line("import", rows, import_s, ", ".join(f"{k} {v}" for k, v in state["counts"].items())))
    stored = count_rows(app)
    if state["phase"] != "done" or state["counts"]["inserted"] != rows or stored != rows:
        print(
            f"WRONG RESULT: {state['phase']}, {stored:,} rows stored; expected every row inserted"
        )
        return 1
    scale = GOAL_ROWS / rows
    met = max(check_s, import_s) * scale <= GOAL_SECONDS
    print(f"goal (<= 60 s for 100,000 rows, each step): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
