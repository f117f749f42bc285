"""ID card numbers and phones: the checks of SECURITY.md (Binding, SMS codes)."""

from __future__ import annotations

from datetime import date

import pytest

from berater.identifiers import (
    InvalidIdCard,
    InvalidPhone,
    check_char,
    mask_id_card,
    mask_phone,
    normalise_id_card,
    normalise_phone,
)
from tests.factories import id_card

# The GB 11643 example number from the standard's annex.
STANDARD_EXAMPLE = "11010519491231002X"


def test_the_standards_example_is_valid():
    assert normalise_id_card(STANDARD_EXAMPLE) == STANDARD_EXAMPLE
    assert normalise_id_card(STANDARD_EXAMPLE.lower()) == STANDARD_EXAMPLE
    assert normalise_id_card(f"  {STANDARD_EXAMPLE} ") == STANDARD_EXAMPLE


def test_generated_numbers_are_valid():
    for serial in range(50):
        card = id_card(serial)
        assert normalise_id_card(card) == card


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("11010519491231002", "18 characters"),
        ("11010519491231002X1", "18 characters"),
        ("110105194912310021", "check character"),
        ("11010519491331002X", "real date"),
        ("110105194902300027", "real date"),
        ("01010519491231002X", "17 digits"),
        ("91010519491231002X", "17 digits"),
        ("1101051949123100AX", "17 digits"),
        ("１１０１０５１９４９１２３１００２Ｘ", "17 digits"),
        (f"110105{date.today().year + 1}0101001X", "out of range"),
        ("110105189912310028", "out of range"),
    ],
)
def test_invalid_numbers_are_refused_with_a_reason(text, why):
    with pytest.raises(InvalidIdCard, match=why) as caught:
        normalise_id_card(text)
    assert text.strip() not in str(caught.value)


def test_check_char_covers_x():
    assert check_char(STANDARD_EXAMPLE[:17]) == "X"


@pytest.mark.parametrize(
    "text",
    ["13800138000", "+8613800138000", "+86 138 0013 8000", "138-0013-8000", "008613800138000"],
)
def test_phone_forms_normalise_to_eleven_digits(text):
    assert normalise_phone(text) == "13800138000"


@pytest.mark.parametrize(
    "text",
    [
        "13800138000,13900139000",
        "13800138000;13900139000",
        "１３８００１３８０００",
        "1380013800",
        "138001380001",
        "12800138000",
        "+1 2025550123",
        "1380013800a",
        "",
        "13800138000\n13900139000",
    ],
)
def test_anything_but_one_mainland_mobile_is_refused(text):
    with pytest.raises(InvalidPhone):
        normalise_phone(text)


def test_masking_hides_the_middle():
    assert mask_id_card(STANDARD_EXAMPLE) == "110105********002X"
    assert mask_phone("13800138000") == "138****8000"
    assert mask_id_card(None) is None
