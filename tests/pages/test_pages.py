"""The pages without a browser: what they render, that every script and style is a file of the
service (nothing the Content-Security-Policy refuses), that every field has a label and an
error element, and the chat's links to the pages."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from berater import PROJECT_ROOT
from berater.binding.services import PROVINCES
from berater.pages import links

pytestmark = pytest.mark.backends

TEMPLATES = PROJECT_ROOT / "berater" / "templates"
STATIC = PROJECT_ROOT / "berater" / "static"
PAGES = ["/", "/register/student", "/register/candidate", "/me", "/qna", "/demo/app", "/dev/sms"]


class Page(HTMLParser):
    """The elements of a page that matter here."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str]] = []
        self.styles: list[str] = []  # stylesheet hrefs
        self.inline_styles = 0
        self.handlers: list[str] = []
        self.fields: list[dict[str, str]] = []
        self.labels: set[str] = set()
        self.ids: set[str] = set()
        self.options: dict[str, list[str]] = {}
        self._select: str | None = None
        self._option = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.handlers += [k for k in a if k.startswith("on")]
        if "style" in a:
            self.inline_styles += 1
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "script":
            self.scripts.append(a)
        elif tag == "style":
            self.inline_styles += 1
        elif tag == "link" and a.get("rel") == "stylesheet":
            self.styles.append(a["href"])
        elif tag in {"input", "select", "textarea"} and a.get("type") != "hidden":
            self.fields.append(a)
        elif tag == "label" and a.get("for"):
            self.labels.add(a["for"])
        if tag == "select":
            self._select = a.get("name", "")
            self.options[self._select] = []
        elif tag == "option":
            self._option = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "option":
            self._option = False

    def handle_data(self, data: str) -> None:
        if self._option and self._select is not None:
            self.options[self._select].append(data.strip())


def read(client, path: str) -> Page:
    response = client.get(path)
    assert response.status_code == 200, path
    assert response.mimetype == "text/html"
    page = Page()
    page.feed(response.get_data(as_text=True))
    return page


@pytest.fixture
def app(make_app):
    return make_app(SMS_BACKEND="console")


# -- what the Content-Security-Policy allows --------------------------------------------------


def test_no_template_holds_an_inline_script_style_or_handler():
    """The service's CSP (`default-src 'self'`) refuses all three."""
    for path in TEMPLATES.rglob("*.html"):
        text = re.sub(r"\{#.*?#\}", "", path.read_text(encoding="utf-8"), flags=re.S)
        assert not re.search(r"<script(?![^>]*\ssrc=)", text), path
        assert not re.search(r"<style|\sstyle=", text), path
        assert not re.search(r"\son[a-z]+\s*=", text), path
        assert "javascript:" not in text, path


@pytest.mark.parametrize("path", PAGES)
def test_every_page_loads_its_scripts_and_styles_from_the_service(client, path):
    page = read(client, path)
    assert page.inline_styles == 0 and page.handlers == []
    for script in page.scripts:
        assert script["src"].startswith("/static/js/"), script
        assert "defer" in script
    assert page.styles == ["/static/css/base.css"]
    for url in [s["src"] for s in page.scripts] + page.styles:
        with client.get(url) as asset:  # a file answer: closed, or its file stays open
            assert asset.status_code == 200, url
            assert asset.mimetype in {"text/javascript", "application/javascript", "text/css"}
        assert (STATIC / url.removeprefix("/static/")).is_file()


def test_the_scripts_keep_the_token_out_of_queries_and_logs():
    """The token goes from the fragment to sessionStorage and into Authorization headers; no
    script puts it in a query string or prints it."""
    for path in (STATIC / "js").glob("*.js"):
        text = path.read_text(encoding="utf-8")
        assert "console.log" not in text, path
        assert not re.search(r"[?&]token=", text), path
        assert "localStorage" not in text, path  # the tab's sessionStorage only


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_sent_with_the_pages_policy(client, path):
    """The policy the browser tests meet is the service's own: nothing inline, nothing from
    another site."""
    policy = client.get(path).headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'self';")
    assert "'unsafe-inline'" not in policy and "frame-ancestors 'none'" in policy


# -- forms ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/register/student", "/register/candidate", "/me", "/qna"])
def test_every_field_has_a_label_and_an_error_beside_it(client, path):
    page = read(client, path)
    assert page.fields
    for field in page.fields:
        assert field["id"] in page.labels, field
        described = field.get("aria-describedby", "").split()
        assert described and described[0].endswith("-error"), field
        assert set(described) <= page.ids, field


def test_the_candidate_page_offers_the_34_divisions_and_the_settings(make_app):
    client = make_app(CANDIDATE_MAX_SCORE=150.0, CANDIDATE_SUBJECTS=["甲", "乙"]).test_client()
    page = read(client, "/register/candidate")
    assert page.options["province"] == ["请选择", *PROVINCES]
    assert len(PROVINCES) == 34
    assert page.options["subject"] == ["请选择", "甲", "乙"]
    [score] = [f for f in page.fields if f.get("name") == "score"]
    assert (score["min"], score["max"], score["type"]) == ("0", "150", "number")


def test_the_console_sms_hint_shows_only_with_the_console_backend(make_app, client):
    assert 'id="dev-sms"' in client.get("/register/student").get_data(as_text=True)
    aliyun = make_app(SMS_BACKEND="aliyun").test_client()
    assert 'id="dev-sms"' not in aliyun.get("/register/student").get_data(as_text=True)


def test_the_pages_hold_no_personal_data_and_are_the_same_for_everyone(client):
    """The scripts fetch what is bound with the token; the HTML is the same for all."""
    first = client.get("/me", headers={"Authorization": "Bearer x"}).get_data()
    assert first == client.get("/me").get_data()


# -- the chat's links -------------------------------------------------------------------------


def test_the_bind_and_answer_links_default_to_the_pages(make_app):
    app = make_app(SERVICE_BASE_URL="https://berater.test/auth")
    with app.app_context():
        assert links.bind_url() == "https://berater.test/auth/?type=student"
        assert links.answer_url() == "https://berater.test/auth/qna"
    configured = make_app(
        WECHAT_BIND_URL="https://other.test/bind", WECHAT_ANSWER_URL="https://other.test/qa"
    )
    with configured.app_context():
        assert links.bind_url() == "https://other.test/bind"
        assert links.answer_url() == "https://other.test/qa"
    with make_app(SERVICE_BASE_URL="").app_context():
        assert links.bind_url() == links.answer_url() == ""
