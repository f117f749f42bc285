"""Security headers (berater/http.py, `answer_headers`): no cache keeps an answer that
carries a token or personal data, errors included; every page gets the Content-Security-
Policy, whoever renders it, and runs only scripts and styles from berater/static; every
answer says nosniff; the API docs are a setting."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from flask import Blueprint, Response, abort, render_template_string, request

from berater.db import db
from berater.docs.pages import DOCS_POLICY
from berater.http import NO_STORE, checks_body_after_auth, no_store, page_policy
from berater.settings import default
from tests import factories
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends

FACE = {"Authorization": "Bearer face dev-face-app-token"}
PASSWORD = "a long enough passphrase 7"
PHONE = "13800138000"
CANDIDATE = {
    "name": "李四",
    "province": "江苏",
    "city": "南京",
    "score": 612.5,
    "subject": "物理类",
}
NOVA = {"phone": "13900139000", "qq": "123456"}
DOCS = (
    "/openapi.json",
    "/docs/openapi.json",
    "/docs/swagger/",
    "/docs/redoc/",
    "/docs/scalar/",
    "/docs/assets/swagger-init.js",
)

# Every answer here carries a token or personal data, or is an error of such a route:
# (method, path, caller, JSON body, expected status). Sent in this order.
PRIVATE = [
    # /api/token, every method; the sign-in and the test-token route are not behind a token
    ("POST", "/api/token", "anyone", {"username": "hdr_clerk", "password": PASSWORD}, 200),
    ("POST", "/api/token", "anyone", {"username": "hdr_clerk", "password": "wrong " * 3}, 401),
    ("POST", "/api/token", "anyone", {"code": 5}, 400),
    ("POST", "/api/test/token/o_hdr_other", "anyone", None, 200),
    ("POST", "/api/test/token/not%20an%20openid", "anyone", None, 400),
    ("PUT", "/api/token", "student", None, 200),
    ("PUT", "/api/token", "anyone", None, 401),
    ("GET", "/api/token", "student", None, 200),
    ("GET", "/api/token", "face", None, 200),
    ("GET", "/api/token", "anyone", None, 401),
    ("DELETE", "/api/token", "leaver", None, 200),
    ("DELETE", "/api/token", "leaver", None, 401),  # signed out: the token is dead
    # binding answers (binding itself, with its SMS steps: test_binding_answers_...)
    ("POST", "/api/candidate", "newcomer", CANDIDATE, 403),  # no verified phone
    ("POST", "/api/candidate", "anyone", CANDIDATE, 401),
    ("PATCH", "/api/candidate", "candidate", {"city": "苏州"}, 200),
    ("PATCH", "/api/candidate", "student", {"city": "苏州"}, 403),
    ("POST", "/api/student", "newcomer", {"id_card": "1" * 18, "id": "1"}, 400),
    ("POST", "/api/student", "anyone", {"id_card": "1" * 18, "id": "1"}, 401),
    ("PATCH", "/api/student", "student", {}, 200),
    ("PATCH", "/api/student", "candidate", {}, 403),
    ("POST", "/api/code", "newcomer", {"phone": "12"}, 400),
    ("POST", "/api/code/verify", "newcomer", {"code": "000000"}, 400),
    # the bearer's own record
    ("GET", "/api/source", "student", None, 200),
    ("GET", "/api/source", "candidate", None, 403),
    ("GET", "/api/source", "anyone", None, 401),
    # the face app's query
    ("GET", "/api/face/students?stuid={stuid}", "face", None, 200),
    ("GET", "/api/face/students?stuid=*", "face", None, 400),
    ("GET", "/api/face/students?stuid={stuid}", "anyone", None, 401),
    # nova: the student's own registration and source, the club's lists
    ("GET", "/api/nova/info", "student", None, 404),
    ("POST", "/api/nova/info", "student", NOVA, 200),
    ("GET", "/api/nova/info", "student", None, 200),
    ("GET", "/api/nova/info", "anyone", None, 401),
    ("GET", "/api/nova/source", "student", None, 200),
    ("GET", "/api/nova/admin/registrations", "admin", None, 200),
    ("GET", "/api/nova/admin/registrations", "student", None, 403),
    ("GET", "/api/nova/admin/export.csv", "admin", None, 200),
    ("GET", "/api/nova/admin/export.xlsx", "admin", None, 200),
    # the admin lists and links
    ("GET", "/api/admin/users", "admin", None, 200),
    ("GET", "/api/admin/users", "student", None, 403),
    ("GET", "/api/admin/audit?page=0", "admin", None, 400),
    ("GET", "/api/admin/roles/admin", "admin", None, 200),
    ("GET", "/api/admin/audit", "admin", None, 200),
    ("GET", "/api/admin/audit", "anyone", None, 401),
    ("GET", "/api/admin/link/nova_admin", "admin", None, 200),
]


@pytest.fixture
def callers(app, client) -> dict[str, dict[str, str]]:
    """The Authorization header of each caller in PRIVATE."""
    with app.app_context():
        source = factories.source_student()
        factories.student("o_hdr_student", source)
        factories.candidate("o_hdr_candidate")
        factories.privilege("o_hdr_admin", "admin")
        factories.privilege("o_hdr_admin", "nova_admin")
        factories.auth_user("hdr_clerk", PASSWORD)
        app.config["HDR_STUID"] = source.stuid
        db.session.commit()
    people = ("student", "candidate", "admin", "newcomer", "leaver")
    found = {who: bearer(token_for(client, f"o_hdr_{who}")) for who in people}
    return {**found, "face": FACE, "anyone": {}}


def test_answers_with_a_token_or_personal_data_are_never_stored(app, client, callers):
    stuid = app.config["HDR_STUID"]
    wrong = []
    for method, path, caller, body, status in PRIVATE:
        path = path.format(stuid=stuid)
        response = client.open(path, method=method, json=body, headers=callers[caller])
        if response.status_code != status:
            wrong.append((method, path, caller, "status", response.status_code, status))
        if response.headers.get("Cache-Control") != "no-store":
            wrong.append((method, path, caller, "Cache-Control", response.headers))
    assert wrong == []
    assert {status for *_, status in PRIVATE} >= {200, 400, 401, 403, 404}


def test_binding_answers_are_never_stored(app, client, aliyun):
    with app.app_context():
        source = factories.source_student()
        db.session.commit()
        card, stuid = source.id_card, source.stuid
    steps = []
    for openid, phone in (("o_hdr_new_student", PHONE), ("o_hdr_new_candidate", "13900139000")):
        token = bearer(token_for(client, openid))
        steps.append(client.post("/api/code", json={"phone": phone}, headers=token))
        code = aliyun.fake.sent[-1].template_param["code"]
        steps.append(client.post("/api/code/verify", json={"code": code}, headers=token))
        if openid == "o_hdr_new_student":
            bound = client.post("/api/student", json={"id_card": card, "id": stuid}, headers=token)
        else:
            bound = client.post("/api/candidate", json=CANDIDATE, headers=token)
        steps.append(bound)
        aliyun.fake.reset()
    assert [step.status_code for step in steps] == [200] * len(steps)
    assert all(step.get_json()["data"]["token"] for step in steps[2::3])  # a new token each
    assert all(step.headers["Cache-Control"] == "no-store" for step in steps)


def test_every_route_behind_a_token_is_marked_no_store(app):
    guarded = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if getattr(app.view_functions[rule.endpoint], "required_roles", None) is not None
        and not getattr(app.view_functions[rule.endpoint], NO_STORE, False)
    ]
    assert guarded == []


def test_sign_in_and_invitation_pages_are_never_stored(client):
    for path, status in (
        ("/signin?next=/demo/app", 302),  # sets the sign-in state in the session
        ("/signin/callback?state=forged&code=abc", 400),  # the error page
        ("/api/admin/go/link/nova_admin", 302),  # to WeChat, to sign in first
        ("/api/admin/auth?seq=not-a-sequence", 404),  # the error page
        ("/dev/sms", 200),  # the console backend's codes
        ("/?type=student&url=/qna", 302),  # the landing by type starts a sign-in too
    ):
        response = client.get(path)
        assert response.status_code == status, path
        assert response.headers["Cache-Control"] == "no-store", path


# --- pages ------------------------------------------------------------------------------


def directives(policy: str) -> dict[str, list[str]]:
    """A Content-Security-Policy as {directive: sources}."""
    found: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        assert name not in found, f"{name} given twice"
        found[name] = sources
    return found


def assert_page_headers(response, app) -> None:
    """The headers every page of the service carries."""
    where = response.request.path
    assert response.mimetype == "text/html", where
    policy = directives(response.headers["Content-Security-Policy"])
    oauth = urlsplit(app.config["WECHAT_OAUTH_BASE"])
    assert policy == {
        "default-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'", f"{oauth.scheme}://{oauth.netloc}"],
        "frame-ancestors": ["'none'"],
    }, where
    assert response.headers["X-Content-Type-Options"] == "nosniff", where
    assert response.headers["X-Frame-Options"] == "DENY", where
    assert response.headers["Referrer-Policy"] in ("same-origin", "no-referrer"), where


PAGES = (
    ("/", 200),
    ("/register/student", 200),
    ("/register/candidate", 200),
    ("/me", 200),
    ("/qna", 200),
    ("/demo/app", 200),
    ("/dev/sms", 200),
    ("/signin/callback?state=forged&code=abc", 400),
    ("/api/admin/auth?seq=not-a-sequence", 404),
    ("/signin?next=/demo/app", 302),  # a redirect's body is a small page too
)


def test_every_page_gets_the_page_policy(app, client):
    for path, status in PAGES:
        response = client.get(path)
        assert response.status_code == status, path
        assert_page_headers(response, app)
    # The invitation pages keep their stricter referrer policy: the sequence is in the URL.
    invitation = client.get("/api/admin/auth?seq=not-a-sequence")
    assert invitation.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/").headers["Referrer-Policy"] == "same-origin"


def test_a_page_added_later_gets_the_policy_too(make_app):
    app = make_app()
    extra = Blueprint("extra", __name__)

    @extra.get("/later/page")
    def later_page() -> str:
        return render_template_string('{% extends "base.html" %}{% block body %}hi{% endblock %}')

    @extra.get("/later/html")
    def later_html() -> Response:
        return Response("<p>built by hand</p>", 418, mimetype="text/html")

    app.register_blueprint(extra)
    client = app.test_client()
    for path in ("/later/page", "/later/html"):
        assert_page_headers(client.get(path), app)
    assert client.get("/later/page").status_code == 200


def test_a_later_blueprint_s_marks_hold_for_every_answer_of_its_views(make_app):
    """What a new blueprint of pages with forms does: it only marks its views, and every
    answer of a marked view, its error pages included, carries what the marks say."""
    app = make_app()
    later = Blueprint("later", __name__, url_prefix="/later")
    policy = "default-src 'none'; form-action 'self'; frame-ancestors 'none'"

    @later.errorhandler(403)
    def refused(exc):
        return Response("<p>refused</p>", 403, mimetype="text/html")

    @later.route("/form", methods=["GET", "POST"])
    @no_store
    @page_policy(policy)
    @checks_body_after_auth
    def form() -> Response:
        if request.method == "POST" and request.form.get("csrf") != "good":
            abort(403)
        page = Response("<form method=post></form>", mimetype="text/html")
        page.headers["Content-Security-Policy"] = "default-src *"  # replaced, never kept
        return page

    @later.post("/plain")
    def plain() -> Response:
        return Response("<p>never</p>", mimetype="text/html")

    app.register_blueprint(later)
    client = app.test_client()
    answers = {
        "page": client.get("/later/form"),
        "post": client.post("/later/form", data={"csrf": "good"}),  # a form, not a 415
        "refused": client.post("/later/form", data={"csrf": "forged"}),
        "head": client.head("/later/form"),
    }
    assert {name: a.status_code for name, a in answers.items()} == {
        "page": 200,
        "post": 200,
        "refused": 403,
        "head": 200,
    }
    for name, answer in answers.items():
        assert answer.headers.getlist("Cache-Control") == ["no-store"], name
        assert answer.headers.getlist("Content-Security-Policy") == [policy], name
        assert answer.headers["X-Frame-Options"] == "DENY", name
        assert answer.headers["Referrer-Policy"] == "same-origin", name
        assert answer.headers["X-Content-Type-Options"] == "nosniff", name
    # An unmarked view's form post is refused before the view, as the API's are.
    unmarked = client.post("/later/plain", data={"csrf": "good"})
    assert unmarked.status_code == 415
    assert "Cache-Control" not in unmarked.headers
    assert unmarked.mimetype == "application/json"
    assert "Content-Security-Policy" not in unmarked.headers


def test_every_answer_says_nosniff(make_app):
    app = make_app()

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("an unexpected failure")

    client = app.test_client()
    for method, path, status, body in (
        ("GET", "/api/ping", 200, None),
        ("GET", "/api/token", 401, None),
        ("GET", "/nowhere", 404, None),
        ("PATCH", "/api/token", 405, None),
        ("POST", "/api/token", 415, b"x"),
        ("GET", "/chat/?signature=x&timestamp=1&nonce=1&echostr=y", 403, None),
        ("GET", "/static/css/base.css", 200, None),
        ("GET", "/static/js/demo-app.js", 200, None),
        ("GET", "/docs/assets/swagger-init.js", 200, None),
        ("GET", "/boom", 500, None),
    ):
        with client.open(path, method=method, data=body, content_type="text/plain") as response:
            assert response.status_code == status, path
            assert response.headers["X-Content-Type-Options"] == "nosniff", path
    # Answered before Flask, by the Host check, and still nosniff.
    foreign = client.get("/api/ping", headers={"Host": "evil.example"})
    assert foreign.status_code == 400
    assert foreign.headers["X-Content-Type-Options"] == "nosniff"


INLINE = [
    (re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<style\b", re.I), "a <style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an inline event handler"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


def inline_code(html: str) -> list[str]:
    return [what for pattern, what in INLINE if pattern.search(html)]


def test_no_page_the_service_sends_holds_what_the_policy_would_block(client):
    """Also the pages built outside templates and the error pages (the templates themselves
    are checked in tests/pages)."""
    found = {path: inline_code(client.get(path).get_data(as_text=True)) for path, _ in PAGES}
    assert {where: what for where, what in found.items() if what} == {}
    # The checks can fail: each kind is caught.
    assert inline_code('<script>x()</script><p style="a" onclick="b">') == [
        "an inline <script>",
        "a style attribute",
        "an inline event handler",
    ]


# --- API docs ---------------------------------------------------------------------------


def test_api_docs_are_off_in_production_and_on_elsewhere():
    assert default("API_DOCS", "production") is False
    assert default("API_DOCS", "development") is True
    assert default("API_DOCS", "testing") is True


def test_with_api_docs_off_the_document_and_pages_are_404(make_app, prod_app):
    for app in (make_app(API_DOCS=False), prod_app):
        client = app.test_client()
        for path in DOCS:
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.get_json()["code"] == 404, path
        assert "/docs/" not in client.get("/").get_data(as_text=True)


def test_with_api_docs_on_the_document_and_pages_are_served(make_app):
    app = make_app(API_DOCS=True)
    client = app.test_client()
    document = client.get("/openapi.json")
    assert document.status_code == 200
    assert "/api/token" in document.get_json()["paths"]
    assert client.get("/docs/openapi.json").get_json()["paths"] == document.get_json()["paths"]
    for path in DOCS[2:5]:
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.mimetype == "text/html", path
        # The docs' own policy (inline styles for the renderers); never framed either.
        assert page.headers["Content-Security-Policy"] == DOCS_POLICY, path
        assert page.headers["X-Frame-Options"] == "DENY", path
    assert 'href="/docs/swagger/"' in client.get("/").get_data(as_text=True)
