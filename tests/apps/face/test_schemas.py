"""The face query's narrowing rules, one by one, on the query model (no database)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from berater.apps.face.schemas import MAX_PER_PAGE, MAX_TERMS, RULES, StudentsQuery


def refusal(**params: object) -> dict:
    """The one error of a refused query: {"field", "message"}."""
    with pytest.raises(ValidationError) as caught:
        StudentsQuery.model_validate(params)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return {"field": ".".join(map(str, errors[0]["loc"])), "message": errors[0]["msg"]}


def accepted(**params: object) -> StudentsQuery:
    return StudentsQuery.model_validate(params)


def test_the_figures_are_the_documented_ones():
    # README.md, "The face app's narrowing rules", argues these numbers.
    assert {field: rule.min_chars for field, rule in RULES.items()} == {
        "stuid": 10,
        "admission_id": 12,
        "name": 2,
        "department": None,
        "origin": None,
    }
    assert (MAX_TERMS, MAX_PER_PAGE) == (5, 100)


@pytest.mark.parametrize(
    ("field", "short", "enough"),
    [
        ("stuid", "202600012*", "2026000123*"),
        ("stuid", "*026000123", "*2026000123"),
        ("stuid", "*02600012*", "*2026000123*"),
        ("admission_id", "26320102000*", "263201020001*"),
        ("admission_id", "*20102000001", "*320102000001"),
        ("admission_id", "*6320102000*", "*632010200000*"),
        ("name", "王*", "王伟*"),
        ("name", "*伟", "*王伟"),
        ("name", "*伟*", "*子涵*"),
    ],
)
def test_a_wildcard_needs_enough_other_characters(field, short, enough):
    error = refusal(**{field: short})
    assert error["field"] == field
    minimum = RULES[field].min_chars
    assert f"at least {minimum} characters besides '*' in {field}" in error["message"]
    assert RULES[field].why in error["message"]
    assert getattr(accepted(**{field: enough}), field) == enough


@pytest.mark.parametrize(
    "padded",
    ["王 *", "* 伟", "王\u3000*", "王\u200b*", "王\u00ad*", "王\x00*", "*\ufeff伟*", "王\ue000*"],
    ids=["space", "space-before", "ideographic-space", "zero-width", "soft-hyphen", "nul",
         "bom", "private-use"],
)  # fmt: skip
def test_spaces_and_invisible_characters_do_not_count(padded):
    # MariaDB's collation may ignore such characters; they must not reach a minimum.
    assert refusal(name=padded)["field"] == "name"


@pytest.mark.parametrize(
    ("field", "value"),
    [("department", "软件*"), ("department", "*学院"), ("department", "*工程学院*"),
     ("origin", "江*"), ("origin", "*苏")],
)  # fmt: skip
def test_department_and_province_take_no_wildcard(field, value):
    error = refusal(**{field: value})
    assert error["field"] == field
    assert f"no '*' in {field}" in error["message"]
    assert accepted(**{field: "软件学院,文学院"})  # the whole name, as an exact value


@pytest.mark.parametrize("field", ["department", "origin", "name", "admission_id", "stuid"])
def test_a_filter_holds_at_most_five_values(field):
    values = ["2026000123", "2026000124", "2026000125", "2026000126", "2026000127", "2026000128"]
    assert accepted(**{field: ",".join(values[:MAX_TERMS])})
    error = refusal(**{field: ",".join(values[: MAX_TERMS + 1])})
    assert error["field"] == field
    assert f"at most {MAX_TERMS} comma-separated values" in error["message"]


def test_empty_items_do_not_count_as_values():
    assert accepted(stuid="2026000123,,2026000124,,,2026000125,2026000126,2026000127,")


def test_exact_values_of_any_length_are_fine():
    query = accepted(stuid="2", admission_id="26", name="王", department="文学院", origin="江苏")
    assert query.filters()["stuid"] == ["2"]


def test_a_short_wildcard_is_refused_beside_a_narrowing_filter():
    error = refusal(department="软件学院", stuid="2026*")
    assert error["field"] == "stuid"


def test_a_lone_star_passes_the_rule_but_does_not_narrow():
    assert accepted(admission_id="*", department="软件学院")
    assert accepted(department="*", stuid="2026000123")
    assert "name at least one filter" in refusal(stuid="*", origin="**")["message"]
    assert "name at least one filter" in refusal(admission_id="*,263201020001*")["message"]


@pytest.mark.parametrize("per_page", [0, MAX_PER_PAGE + 1, 500])
def test_the_page_size_is_1_to_100(per_page):
    assert refusal(department="文学院", per_page=per_page)["field"] == "per_page"
    assert accepted(department="文学院", per_page=MAX_PER_PAGE).per_page == MAX_PER_PAGE
