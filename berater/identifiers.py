"""Mainland ID card numbers (GB 11643-1999) and phone numbers: checking and masking."""

from __future__ import annotations

import re
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
ID_CARD = re.compile(r"^[1-9][0-9]{16}[0-9X]$")
# The first digit of a mainland region code (GB/T 2260): 1 north ... 8 Hong Kong/Macao/Taiwan.
REGIONS = frozenset("12345678")
OLDEST = date(1900, 1, 1)


class InvalidIdCard(ValueError):
    """The text is not a valid ID card number; the message says why, without the number, and
    `kind` names the rule it breaks (length, format, birth_date, check) for a client to word."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def normalise_id_card(text: str) -> str:
    """The ID card number in canonical form (upper-case X), or InvalidIdCard.

    Checks the length, the characters, the region's first digit, a real birth date
    between 1900 and today, and the GB 11643 check character.
    """
    value = text.strip().upper()
    if len(value) != 18:
        raise InvalidIdCard("an ID card number has 18 characters", "length")
    if not ID_CARD.fullmatch(value) or value[0] not in REGIONS:
        raise InvalidIdCard("an ID card number is 17 digits and a digit or X", "format")
    try:
        birth = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise InvalidIdCard(
            "the birth date in the ID card number is not a real date", "birth_date"
        ) from None
    if not OLDEST <= birth <= date.today():
        raise InvalidIdCard("the birth date in the ID card number is out of range", "birth_date")
    if check_char(value[:17]) != value[17]:
        raise InvalidIdCard("the ID card number's check character is wrong", "check")
    return value


def check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    return CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def mask_id_card(value: str | None) -> str | None:
    """`320102********123X`: region and last four kept, birth date hidden."""
    if not value:
        return value
    return value[:6] + "*" * (len(value) - 10) + value[-4:] if len(value) > 10 else "*" * len(value)


def mask_phone(value: str | None) -> str | None:
    """`138****8000`."""
    if not value:
        return value
    return value[:3] + "****" + value[-4:] if len(value) >= 8 else "*" * len(value)


class InvalidPhone(ValueError):
    """The text is not one mainland mobile number."""


MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
PHONE_NOISE = re.compile(r"[ \-]")


def normalise_phone(text: str) -> str:
    """One mainland mobile number as 11 ASCII digits, or InvalidPhone.

    `+86`/`0086`/`86` prefixes, spaces and dashes are dropped; anything else (lists,
    full-width digits, letters, wrong length) is refused, so exactly one number can reach
    the SMS provider.
    """
    value = PHONE_NOISE.sub("", text.strip())
    for prefix in ("+86", "0086", "86"):
        if value.startswith(prefix) and len(value) == len(prefix) + 11:
            value = value[len(prefix) :]
            break
    if not value.isascii() or not MOBILE.fullmatch(value):
        raise InvalidPhone("a phone is one mainland mobile number of 11 digits, e.g. 13800138000")
    return value
