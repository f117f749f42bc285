"""The admission list searched for the console: name, stuid or admission number; masked."""

from __future__ import annotations

import pytest

from berater.admission import listing
from berater.db import db
from berater.identifiers import mask_id_card
from tests import factories

pytestmark = pytest.mark.backends


@pytest.fixture
def rows(ctx):
    """Three rows; 李四 is bound, with a phone."""
    made = [
        factories.source_student(
            id_card=factories.id_card(801),
            stuid="202630001",
            admission_id="26110105000001",
            name="张三",
        ),
        factories.source_student(
            id_card=factories.id_card(802),
            stuid="202630002",
            admission_id="26320102000002",
            name="李四",
            department="物理学院",
        ),
        factories.source_student(
            id_card=factories.id_card(803),
            stuid=None,
            admission_id="26320102000003",
            name="张小五",
        ),
    ]
    factories.student("o_lisi", made[1]).phone = "13912345678"
    db.session.commit()
    return made


def names(found: dict) -> list[str]:
    return [item["name"] for item in found["items"]]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("张", {"张三", "张小五"}),
        ("小五", {"张小五"}),
        ("202630002", {"李四"}),
        ("2026300", {"张三", "李四"}),  # a student-number prefix
        ("2632", {"李四", "张小五"}),  # an admission-number prefix
        ("26320102000003", {"张小五"}),
        ("30002", set()),  # numbers match from their start only
        ("%", set()),  # wildcards are searched for literally
        ("_", set()),
        ("", {"张三", "李四", "张小五"}),
        ("  ", {"张三", "李四", "张小五"}),
    ],
)
def test_search_by_name_stuid_or_admission_number(rows, q, expected):
    found = listing.search(q)
    assert set(names(found)) == expected
    assert found["total"] == len(expected)


def test_id_cards_and_phones_are_masked(rows):
    items = {item["name"]: item for item in listing.search("")["items"]}
    for row in rows:
        item = items[row.name]
        assert item["id_card"] == mask_id_card(row.id_card)
        assert row.id_card not in str(item)
        assert row.id_card[6:14] not in str(item)  # the birth date
    assert items["李四"]["bound"] is True
    assert items["李四"]["phone"] == "139****5678"
    assert items["张三"]["bound"] is False and items["张三"]["phone"] is None
    assert items["李四"]["department"] == "物理学院"


def test_the_list_pages(ctx):
    for n in range(7):
        factories.source_student(id_card=factories.id_card(900 + n), stuid=f"20264{n:04d}")
    db.session.commit()
    first = listing.search(None, page=1, per_page=3)
    third = listing.search(None, page=3, per_page=3)
    assert first["total"] == third["total"] == 7
    assert first["pages"] == 3
    assert [i["stuid"] for i in first["items"]] == ["202640000", "202640001", "202640002"]
    assert [i["stuid"] for i in third["items"]] == ["202640006"]
    assert listing.search(None, page=9, per_page=3)["items"] == []


def test_page_sizes_are_bounded(ctx):
    assert listing.search(None, per_page=10_000)["per_page"] == listing.MAX_PER_PAGE
    assert listing.search(None, per_page=0)["per_page"] == 1
    assert listing.search(None, page=-3)["page"] == 1
    assert listing.search("x" * 500)["q"] == "x" * listing.MAX_QUERY
