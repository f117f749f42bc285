"""Every answer is the envelope; bad input is a clear 4xx; failures never leak details."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import BaseModel
from spectree import Response as Resp

from berater.extensions import spec
from berater.http import Envelope, ok, on_errors_only

pytestmark = pytest.mark.backends


@pytest.mark.parametrize(
    ("data", "content_type", "status", "message"),
    [
        ("code=abc", "application/x-www-form-urlencoded", 415, "application/json"),
        ("code", "text/plain", 415, "application/json"),
        ('{"code": "abc"', "application/json", 400, "not valid JSON"),
        ("[1, 2]", "application/json", 400, "JSON object"),
        ('"abc"', "application/json", 400, "JSON object"),
        ("null", "application/json", 400, "JSON object"),
        (b'{"code": "a\\udc00"}', "application/json", 400, ""),
        ('{"a":' * 100 + "1" + "}" * 100, "application/json", 400, "nested"),
        ("[" * 5000 + "]" * 5000, "application/json", 400, ""),
        (b"\xff\xfe{", "application/json", 400, "not valid JSON"),
    ],
    ids=[
        "form",
        "text",
        "truncated",
        "array",
        "string",
        "null",
        "surrogate",
        "deep-object",
        "deep-array",
        "not-utf8",
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(client, data, content_type, status, message):
    response = client.post("/api/token", data=data, content_type=content_type)
    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == status
    assert message in body["error"]


def test_an_empty_body_names_the_missing_fields(client):
    response = client.post("/api/token", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["data"]["fields"]


def test_an_empty_form_post_is_a_400_not_a_500(client):
    response = client.post("/api/token", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400


def test_unknown_fields_are_refused_by_name(client):
    response = client.post("/api/token", json={"code": "abc", "openid": "o_x"})
    assert response.status_code == 400
    fields = response.get_json()["data"]["fields"]
    assert [f["field"] for f in fields] == ["openid"]


def test_an_oversized_body_is_413(client):
    response = client.post("/api/token", json={"code": "a" * 20_000})
    assert response.status_code == 413
    assert response.get_json() == {
        "code": 413,
        "error": "the request body is too large",
        "data": None,
    }


def test_unknown_paths_and_methods_get_the_envelope(client):
    missing = client.get("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.get_json()["code"] == 404
    wrong = client.patch("/api/token")
    assert wrong.status_code == 405
    assert wrong.get_json()["code"] == 405
    assert "GET" in wrong.headers["Allow"]


def test_legacy_mode_answers_200_with_the_real_code_in_the_body(make_app):
    client = make_app(LEGACY_STATUS_200=True).test_client()
    response = client.get("/api/token")
    assert response.status_code == 200
    assert response.get_json()["code"] == 401
    assert client.post("/api/token", data="x", content_type="text/plain").get_json()["code"] == 415


def test_an_unexpected_error_is_a_500_with_a_request_id_and_no_details(make_app, caplog):
    app = make_app()

    @app.get("/api/boom")
    def boom():
        raise RuntimeError("secret internals: password=hunter2")

    with caplog.at_level(logging.ERROR, logger="berater"):
        response = app.test_client().get("/api/boom", headers={"X-Request-ID": "req-12345678"})
    assert response.status_code == 500
    body = response.get_json()
    assert body["code"] == 500
    assert "req-12345678" in body["error"]
    assert "secret internals" not in response.get_data(as_text=True)
    logged = [r for r in caplog.records if r.exc_info]
    assert logged
    assert "req-12345678" in logged[0].getMessage()


def test_every_request_gets_a_request_id(client):
    generated = client.get("/api/ping").headers["X-Request-ID"]
    assert len(generated) == 32
    assert (
        client.get("/api/ping", headers={"X-Request-ID": "abc-12345678"}).headers["X-Request-ID"]
        == "abc-12345678"
    )
    forged = client.get("/api/ping", headers={"X-Request-ID": "<script> id=1"})
    assert forged.headers["X-Request-ID"] != "<script> id=1"
    assert len(forged.headers["X-Request-ID"]) == 32


def test_one_log_line_per_request_with_what_operators_need(client, caplog):
    with caplog.at_level(logging.INFO, logger="berater.request"):
        response = client.get("/api/ping")
    lines = [r.getMessage() for r in caplog.records if r.name == "berater.request"]
    assert len(lines) == 1
    assert lines[0].startswith("GET /api/ping 200 ")
    assert "ms" in lines[0]
    assert response.headers["X-Request-ID"] in lines[0]


def test_the_openapi_document_is_generated_from_the_models(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    post = document["paths"]["/api/token"]["post"]
    schema_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"code", "username", "password"}
    assert "401" in post["responses"]
    assert {"get", "put", "post", "delete"} <= set(document["paths"]["/api/token"])
    assert "bearer" in document["components"]["securitySchemes"]
    assert client.get("/docs/swagger/").status_code == 200
    json.dumps(document)


def test_an_answer_that_breaks_its_documented_model_is_refused_every_time(make_app, caplog):
    app = make_app()

    @app.get("/api/broken")
    @spec.validate(resp=Resp(HTTP_200=Envelope[dict[str, int]]))
    def broken():
        return ok({"count": "many"})

    client = app.test_client()
    with caplog.at_level(logging.ERROR):
        # A body found valid is remembered; one found invalid is checked again each time.
        statuses = [client.get("/api/broken").status_code for _ in range(2)]
    assert statuses == [500, 500]
    assert len([r for r in caplog.records if "Response Validation Error" in r.getMessage()]) == 2


class Page(BaseModel):
    page: int


def test_a_before_hook_runs_for_every_request_unless_marked_for_errors_only(make_app):
    app = make_app()
    calls: dict[str, list[bool]] = {"every": [], "errors": []}

    def every(req, resp, error, instance, *args):
        calls["every"].append(error is not None)

    @on_errors_only
    def errors(req, resp, error, instance, *args):
        calls["errors"].append(error is not None)

    @app.get("/api/every")
    @spec.validate(query=Page, resp=Resp(HTTP_200=Envelope[dict[str, int]]), before=every)
    def with_every():
        return ok({"page": 1})

    @app.get("/api/errors")
    @spec.validate(query=Page, resp=Resp(HTTP_200=Envelope[dict[str, int]]), before=errors)
    def with_errors():
        return ok({"page": 1})

    client = app.test_client()
    for path in ("/api/every", "/api/errors"):
        assert client.get(f"{path}?page=2").status_code == 200
        assert client.get(f"{path}?page=2").status_code == 200
        assert client.get(f"{path}?page=two").status_code == 400
    assert calls == {"every": [False, False, True], "errors": [True]}


def test_a_view_without_a_request_model_is_one_call_yet_keeps_its_hooks_and_its_document(
    make_app,
):
    app = make_app()
    calls: list[bool] = []

    def every(req, resp, error, instance, *args):
        calls.append(error is None)

    def after(req, resp, error, instance, *args):
        calls.append(error is None)

    @app.get("/api/plain")
    @spec.validate(resp=Resp(HTTP_200=Envelope[dict[str, int]]))
    def plain():
        return ok({"page": 1})

    @app.get("/api/plain-before")
    @spec.validate(resp=Resp(HTTP_200=Envelope[dict[str, int]]), before=every)
    def plain_before():
        return ok({"page": 1})

    @app.get("/api/plain-after")
    @spec.validate(resp=Resp(HTTP_200=Envelope[dict[str, int]]), after=after)
    def plain_after():
        return ok({"page": 1})

    client = app.test_client()
    for path in ("/api/plain", "/api/plain-before", "/api/plain-after"):
        for _ in range(2):
            assert client.get(path).get_json()["data"] == {"page": 1}
    assert calls == [True] * 4  # the hooks of the last two routes, at each request
    # Only the first is answered by the one-call view; spectree's wrapper lies behind it.
    view = app.view_functions["plain"]
    assert view.__code__.co_filename.endswith("http.py")
    assert view.__wrapped__.__wrapped__.__name__ == "plain"
    assert app.view_functions["plain_before"].__code__.co_filename.endswith("spec.py")
    # The document (made once per process, so asked here of the spec) finds each route and
    # its answers through the one-call view.
    for endpoint in ("plain", "plain_before", "plain_after"):
        assert not spec.bypass(app.view_functions[endpoint]), endpoint
    assert spec.get_function_metadata(view).resp.find_model(200) is not None


def test_answers_that_never_reach_a_view_get_a_request_id_too(client):
    refused = client.post("/api/token", data="x", content_type="text/plain")
    assert refused.status_code == 415
    assert len(refused.headers["X-Request-ID"]) == 32
    assert len(client.get("/api/nothing-here").headers["X-Request-ID"]) == 32


def test_an_api_answer_neither_sets_nor_varies_on_a_cookie(client):
    response = client.get("/api/ping")
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")
