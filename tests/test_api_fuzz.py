"""Every operation of the OpenAPI document, fed by schemathesis over real HTTP with input that
follows the schema and input that breaks it: no answer is a 500, and every JSON answer is the
envelope whose `code` is the HTTP status (SECURITY.md: no request causes a 500 by its content).

The caller holds every role (a bound student who is also admin, nova_admin and face), so the
requests get past authentication into validation and the services. Examples are derived
from a fixed seed, so a run is repeatable; a failure prints the request that caused it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core import NOT_SET

from berater.db import transaction
from tests import factories
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends

OPENID = "o_fuzz_everyone"
ROLES = ("admin", "nova_admin", "face")
# Without a BERT server, /api/bert answers 503 by design (README: the BERT backend).
EXPECTED_503 = {"/api/bert": "the BERT backend is unavailable"}
EXAMPLES = 25  # per operation and mode
# Sign-out takes no input but would revoke the caller's token for every later operation.
LEFT_OUT = {"DELETE /api/token"}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def app(make_app, qna_index: Path) -> Flask:
    """The app with the test handbook's index and a subject holding every role."""
    app = make_app(QNA_INDEX=str(qna_index))
    with app.app_context(), transaction():
        factories.student(OPENID)
        for role in ROLES:
            factories.privilege(OPENID, role)
    return app


@pytest.fixture
def token(app: Flask) -> str:
    return token_for(app.test_client(), OPENID)


def check(case: schemathesis.Case, base: str, token: str) -> None:
    """One generated request: no 500, and a JSON answer is the envelope of its status."""
    response = case.call(base_url=base, headers=bearer(token), timeout=10)
    body = "" if case.body is NOT_SET else f" body={case.body!r}"
    request = f"{case.method} {response.request.url}{body}"[:600]
    if response.status_code == 503 and case.path in EXPECTED_503:
        assert EXPECTED_503[case.path] in response.json()["error"], request
        return
    assert response.status_code < 500, f"{request} -> {response.status_code} {response.text}"
    if response.headers.get("Content-Type", "").startswith("application/json"):
        answer = response.json()
        assert set(answer) == {"code", "error", "data"}, request
        assert answer["code"] == response.status_code, request
        assert (answer["error"] == "") == (response.status_code < 400), request


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=str)
def test_no_input_causes_a_server_error(live_server: str, token: str, mode) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.label not in LEFT_OUT]
    assert len(operations) >= 30  # the whole document, not an empty one
    failures, tried = [], 0
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy(mode))
        def run(case: schemathesis.Case) -> None:
            check(case, live_server, token)

        try:
            run()
            tried += 1
        except Unsatisfiable:
            # No input to break: an operation without parameters or body has no negative case.
            assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
        except AssertionError as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n".join(failures)
    assert tried >= len(operations) // 2, f"only {tried} operations could be fuzzed"
