"""Rows for tests, with valid-looking identity data (checksummed ID card numbers)."""

from __future__ import annotations

import itertools
import random
from datetime import date, timedelta
from typing import Any

from sqlalchemy import insert

from berater.db import db
from berater.identifiers import check_char
from berater.models import AuthUser, Candidate, Privilege, SourceStudent, Student

_seq = itertools.count(1)
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"


def id_card(serial: int | None = None, birth: str | None = None) -> str:
    """A GB 11643 ID card number with a correct check character, unique per serial: the
    sequence digits hold serial % 1000 and the birth date moves on a day per thousand."""
    n = next(_seq) if serial is None else serial
    born = birth or (date(2007, 3, 15) + timedelta(days=n // 1000)).strftime("%Y%m%d")
    body = f"320102{born}{n % 1000:03d}"
    return body + CHECK[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]


def source_student(**fields: object) -> SourceStudent:
    n = next(_seq)
    row = SourceStudent(
        id_card=fields.pop("id_card", None) or id_card(n),
        stuid=fields.pop("stuid", f"2026{n:05d}"),
        admission_id=fields.pop("admission_id", f"26320102{n:06d}"),
        name=fields.pop("name", "张三"),
        origin=fields.pop("origin", "江苏"),
        gender=fields.pop("gender", "男"),
        department=fields.pop("department", "计算机科学与技术系"),
        **fields,
    )
    db.session.add(row)
    db.session.flush()
    return row


# The made-up admission list of admission_list(), shaped like bench/import.py's generator.
REGIONS = (
    ("110105", "北京"), ("120101", "天津"), ("320102", "江苏"), ("330106", "浙江"),
    ("340104", "安徽"), ("370102", "山东"), ("410105", "河南"), ("420111", "湖北"),
    ("430104", "湖南"), ("440106", "广东"), ("510107", "四川"), ("610113", "陕西"),
)  # fmt: skip
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉红建文宇浩然子涵欣怡"
DEPARTMENTS = (
    "计算机科学与技术系", "软件学院", "电子科学与工程学院", "物理学院", "化学化工学院",
    "数学系", "文学院", "历史学院", "哲学系", "新闻传播学院", "商学院", "法学院",
    "外国语学院", "医学院", "环境学院", "地球科学与工程学院", "大气科学学院", "建筑与城市规划学院",
)  # fmt: skip


def admission_list(count: int, seed: int = 2026) -> list[dict[str, Any]]:
    """Insert `count` made-up rows in one statement per 1,000 (no flush per row) and return
    them: student numbers `2026` + 6 digits (i), admission numbers `26` + 4 region digits +
    8 digits (i), 12 provinces, 18 departments, names of a surname and 1-2 given characters,
    checksummed ID cards unique by construction (1,000 sequence numbers per birth day)."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        region, province = REGIONS[rng.randrange(len(REGIONS))]
        body = f"{region}{date(2007, 1, 1) + timedelta(days=i // 1000):%Y%m%d}{i % 1000:03d}"
        rows.append(
            {
                "id_card": body + check_char(body),
                "stuid": f"2026{i:06d}",
                "admission_id": f"26{region[:4]}{i:08d}",
                "name": rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))),
                "origin": province,
                "gender": "男" if i % 2 else "女",
                "department": rng.choice(DEPARTMENTS),
            }
        )
    for start in range(0, count, 1000):
        db.session.execute(insert(SourceStudent), rows[start : start + 1000])
    db.session.flush()
    return rows


def student(openid: str, source: SourceStudent | None = None) -> Student:
    source = source or source_student()
    row = Student(openid=openid, phone="13800138000", id_card=source.id_card)
    db.session.add(row)
    db.session.flush()
    return row


def candidate(openid: str) -> Candidate:
    row = Candidate(
        openid=openid,
        phone="13900139000",
        name="李四",
        province="江苏",
        city="南京",
        score=612.5,
        subject="物理类",
    )
    db.session.add(row)
    db.session.flush()
    return row


def privilege(openid: str, role: str) -> Privilege:
    row = Privilege(openid=openid, role=role, granted_by="test")
    db.session.add(row)
    db.session.flush()
    return row


def auth_user(username: str, password: str, disabled: bool = False) -> AuthUser:
    from berater.identity.accounts import _hasher

    row = AuthUser(username=username, password_hash=_hasher().hash(password), disabled=disabled)
    db.session.add(row)
    db.session.flush()
    return row
