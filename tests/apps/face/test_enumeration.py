"""An app that tries to copy the admission list through the face API gets a small part of it.

5,000 made-up rows are loaded; then a script plays a partner app that wants them all. It
tries every way we know to widen a query (short prefixes and suffixes, sets of prefixes,
`*x*` infixes, many values in one filter, filters combined, large and odd pages, name
wildcards, invisible padding, LIKE specials), then sweeps the queries the rules allow
(exact numbers five at a time, departments and provinces page by page, the narrowest
allowed prefixes, common names), and asks again as a person granted `face`. It counts the
distinct rows it obtained: the tricks get nothing, the sweeps stop at the hourly budget,
and the whole is a fifth of the list at most.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from berater.apps.face import services
from berater.db import db
from tests import factories
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends

FACE = {"Authorization": "Bearer face dev-face-app-token"}
URL = "/api/face/students"
LIST_SIZE = 5_000
DIGITS = string.digits


@dataclass
class Attacker:
    """Asks, and keeps what it got: the rows of each strategy and the statuses."""

    client: object
    headers: dict[str, str]
    got: dict[str, set[str]] = field(default_factory=dict)
    statuses: dict[str, Counter] = field(default_factory=dict)
    returned: int = 0  # rows received, repeats included
    largest: Counter = field(default_factory=Counter)  # the largest `total` per strategy

    def ask(self, strategy: str, **params: object) -> int:
        params.setdefault("field", "admission_id,stuid,name")
        answer = self.client.get(URL, query_string=params, headers=self.headers)
        self.statuses.setdefault(strategy, Counter())[answer.status_code] += 1
        found = self.got.setdefault(strategy, set())
        if answer.status_code == 200:
            students = answer.get_json()["data"]["students"]
            total = answer.get_json()["data"]["total"]
            self.largest[strategy] = max(self.largest[strategy], total)
            self.returned += len(students)
            found.update(s["admission_id"] for s in students)
        return answer.status_code

    def page_through(self, strategy: str, **params: object) -> None:
        """Pages of 100 until a short page or a refusal."""
        for number in range(1, LIST_SIZE // 100 + 2):
            before = len(self.got.get(strategy, ()))
            if self.ask(strategy, **params, page=number, per_page=100) != 200:
                return
            if len(self.got[strategy]) - before < 100:
                return

    def rows(self, *strategies: str) -> set[str]:
        names = strategies or tuple(self.got)
        return set().union(*(self.got.get(name, set()) for name in names))


@pytest.fixture
def clock(monkeypatch):
    """The budget's clock stays in one hour, however long the script takes."""
    monkeypatch.setattr(services, "clock", lambda: 500_000 * 3600 + 60.0)


@pytest.fixture
def admission_list(ctx, clock):
    rows = factories.admission_list(LIST_SIZE)
    factories.privilege("o_photo_staff", "face")
    db.session.commit()
    return rows


# --- what the script tries ----------------------------------------------------------------


def tricks(rows: list[dict]) -> Iterator[tuple[str, dict[str, object]]]:
    """Every widening query we can think of, as (strategy, params)."""
    sample = rows[1234]
    stuid, admission_id, region = (
        sample["stuid"],
        sample["admission_id"],
        sample["admission_id"][:6],
    )
    # The queries of the report: a one-digit prefix paged 500 at a time, an infix, ten prefixes.
    for number in (1, 2, 3):
        yield "issue: stuid=2* per_page=500", {"stuid": "2*", "per_page": 500, "page": number}
        yield "issue: stuid=2* per_page=100", {"stuid": "2*", "per_page": 100, "page": number}
    yield "issue: admission_id=*0*", {"admission_id": "*0*"}
    yield "issue: ten prefixes", {"admission_id": ",".join(f"{d}*" for d in DIGITS)}
    yield "issue: ten prefixes", {"stuid": ",".join(f"{d}*" for d in DIGITS)}
    # One character at either end of every field.
    for d in DIGITS:
        for name in ("stuid", "admission_id"):
            yield "one-character prefix", {name: f"{d}*"}
            yield "one-character suffix", {name: f"*{d}"}
    for char in factories.SURNAMES[:10]:
        yield "one-character prefix", {"name": f"{char}*"}
    for char in factories.GIVEN[:10]:
        yield "one-character suffix", {"name": f"*{char}"}
        yield "one-character infix", {"name": f"*{char}*"}
    # Digit sets: the longest prefixes and suffixes one digit short of the rule, five a time.
    for length in range(2, 10):
        yield "longer digit prefixes", {"stuid": stuid[:length] + "*"}
        yield "longer digit suffixes", {"stuid": "*" + stuid[-length:]}
    for length in range(2, 12):
        yield "longer digit prefixes", {"admission_id": admission_id[:length] + "*"}
        yield "longer digit suffixes", {"admission_id": "*" + admission_id[-length:]}
    five = ",".join(f"{stuid[:8]}{d}*" for d in "01234")
    yield "digit set, one short", {"stuid": five}
    five = ",".join(f"{region}0000{d}*" for d in "01234")
    yield "digit set, one short", {"admission_id": five}
    yield "digit set, one short", {"admission_id": ",".join(f"*{d}0000000000" for d in "01234")}
    # Infixes of growing length.
    for length in range(1, 10):
        yield "*x* infix", {"stuid": "*" + "0" * length + "*"}
    for length in range(1, 12):
        yield "*x* infix", {"admission_id": "*" + admission_id[2 : 2 + length] + "*"}
    # Many values in one filter: exact ones too.
    for count in (6, 10, 50, 200):
        numbers = [f"2026{i:06d}" for i in range(count)]
        yield "many values", {"stuid": ",".join(numbers)}
    yield "many values", {"department": ",".join(factories.DEPARTMENTS[:6])}
    yield "many values", {"origin": ",".join(p for _, p in factories.REGIONS)}
    yield "many values", {"name": ",".join(f"{s}伟*" for s in factories.SURNAMES[:6])}
    # Filters combined: a short wildcard does not pass beside a narrowing filter.
    yield "combined", {"department": factories.DEPARTMENTS[0], "stuid": "2*"}
    yield "combined", {"origin": "江苏", "name": "王*"}
    yield "combined", {"origin": "江苏", "admission_id": "2632*"}
    yield "combined", {"stuid": "*", "admission_id": "*", "name": "*", "origin": "*"}
    yield "combined", {"department": "*", "origin": "**"}
    yield "combined", {"department": "*学院"}
    yield "combined", {"department": "*系,*院"}
    yield "combined", {"origin": "江*", "stuid": stuid}
    # Pages: large, negative, zero, strings.
    for params in ({"per_page": 101}, {"per_page": 500}, {"per_page": 5000}, {"page": 0},
                   {"page": -1}, {"per_page": "1e9"}):  # fmt: skip
        yield "odd pages", {"department": factories.DEPARTMENTS[0], **params}
    # Name wildcards, padded with characters that add nothing.
    for padded in ("王 *", "王\u3000*", "王\u200b*", "王\u00ad*", "王\x01*", "*\ufeff伟*", "* 伟"):
        yield "padded name", {"name": padded}
    # LIKE specials are literal: they never match "any character".
    for special in ("*%*", "*_*", "*%%*", "*__*", "%*", "__*", "*!%*"):
        yield "LIKE specials", {"name": special}
    # Full-width digits, a `*` inside, the escape character.
    yield "odd characters", {"stuid": "２０２６*"}
    yield "odd characters", {"stuid": "2026*0001"}
    yield "odd characters", {"admission_id": "26!*"}


def sweeps() -> Iterator[tuple[str, dict[str, object]]]:
    """Queries the rules allow, swept wide, a share each before the widest ones."""
    for start in range(0, 100, 5):
        numbers = ",".join(f"2026{i:06d}" for i in range(start, start + 5))
        yield "exact numbers, five a time", {"stuid": numbers}
    for region, _ in factories.REGIONS[:4]:
        prefixes = ",".join(f"26{region[:4]}{b:06d}*" for b in range(5))
        yield "narrowest allowed prefixes", {"admission_id": prefixes}
    for surname in factories.SURNAMES[:5]:
        names = ",".join(f"{surname}{g}*" for g in factories.GIVEN[:5])
        yield "common names", {"name": names}
    # Empty pages still answer `total`: each costs a row, so counting is not free either.
    for _ in range(20):
        yield "totals of empty pages", {"department": factories.DEPARTMENTS[0], "page": 999}


def test_an_app_cannot_copy_the_admission_list(app, client, admission_list):
    budget = app.config["FACE_ROWS_PER_HOUR"]
    assert budget == 1000  # the default: a fifth of this list
    attacker = Attacker(client, FACE)

    for strategy, params in tricks(admission_list):
        attacker.ask(strategy, **params)
    trick_names = list(attacker.got)
    by_tricks = attacker.rows(*trick_names)
    allowed = {name: counts for name, counts in attacker.statuses.items() if counts[200]}
    # Only the LIKE specials pass (each holds 2+ literal characters), and they match nothing.
    assert set(allowed) <= {"LIKE specials"}, allowed
    assert not by_tricks

    for strategy, params in sweeps():
        attacker.ask(strategy, **params)
    # One allowed wildcard value matches a small group: at most 100 numbers here.
    assert attacker.largest["narrowest allowed prefixes"] <= 5 * 100
    assert attacker.largest["common names"] <= 5 * 100
    for department in factories.DEPARTMENTS:
        attacker.page_through("departments, page by page", department=department)
    for _, province in factories.REGIONS:
        attacker.page_through("provinces, page by page", origin=province)
    for start in range(100, 400, 5):  # more numbers: the last rows of the budget, then 429s
        numbers = ",".join(f"2026{i:06d}" for i in range(start, start + 5))
        attacker.ask("exact numbers, the rest", stuid=numbers)

    # A person granted `face` draws from the same budget.
    person = Attacker(client, bearer(token_for(client, "o_photo_staff")))
    person.ask("as a person", department=factories.DEPARTMENTS[1])
    person.ask("as a person", stuid="2026004999")

    obtained = attacker.rows() | person.rows()
    report = {
        name: (len(rows), dict(attacker.statuses[name])) for name, rows in attacker.got.items()
    }
    assert attacker.returned <= budget, report
    assert services.rows_used("face") <= budget
    assert len(obtained) <= budget, report
    assert len(obtained) <= LIST_SIZE // 5, report
    assert not person.rows(), person.statuses
    assert person.statuses["as a person"] == Counter({429: 2})
    # Every allowed sweep got its share before the budget ran out, and none after it.
    for name in ("exact numbers, five a time", "narrowest allowed prefixes", "common names",
                 "departments, page by page"):  # fmt: skip
        assert attacker.got[name], (name, report)
    assert attacker.statuses["provinces, page by page"] == Counter({429: 12}), report
    assert attacker.statuses["exact numbers, the rest"][429] > 0, report
    assert services.rows_used("face") > budget - 5  # spent, to less than one more answer
