"""The API documentation pages work offline: every script and style comes from the service,
none is inline, and each page renders the operations in a real headless Chromium."""

from __future__ import annotations

import re

import pytest

from berater.docs.pages import ASSETS, DOCS_POLICY, PAGE_TEMPLATES
from tests import browser

UIS = ["swagger", "redoc", "scalar"]
# Redoc 3 always shows Redocly's logo from its CDN; the pages' policy blocks it (img-src).
BLOCKED_BY_POLICY = {"redoc": {"https://cdn.redoc.ly/redoc/logo-mini-full.svg"}}
# What shows the operations of the token tag on each page (opened at that tag).
TOKEN_OPERATIONS = {
    "swagger": ("#/token", '.opblock-summary-path[data-path="/api/token"]'),
    "redoc": ("#tag/token", 'text="/api/token"'),
    "scalar": ("#tag/token", 'text="/api/token"'),
}


def test_the_pages_load_only_local_files_and_hold_no_inline_script() -> None:
    assert set(PAGE_TEMPLATES) == set(UIS)
    for ui, html in PAGE_TEMPLATES.items():
        assert "://" not in html, ui  # no CDN, no absolute URL at all
        for script in re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S):
            assert script == "", ui  # every script has a src
        assert "<style" not in html and " style=" not in html, ui
        for src in re.findall(r'(?:src|href)="\.\./assets/([^"]+)"', html):
            assert src in ASSETS, (ui, src)
        html.format(spec_url="/docs/openapi.json", spec_path="docs")  # a valid template


def test_every_asset_is_served_with_its_media_type(client) -> None:
    for name in ASSETS:
        with client.get(f"/docs/assets/{name}") as response:
            assert response.status_code == 200, name
            kind = "text/javascript" if name.endswith(".js") else "text/css"
            assert response.mimetype == kind, name
            assert len(response.data) > 20, name
            assert "max-age=3600" in response.headers["Cache-Control"]
    with client.get("/docs/assets/swagger-ui-bundle.js") as response:
        assert len(response.data) > 500_000  # the real bundle


@pytest.mark.parametrize(
    "name", ["nope.js", "..%2F__init__.py", "..%2F..%2Fsettings.py", "pages.py", "static"]
)
def test_anything_else_under_assets_is_not_found(client, name) -> None:
    response = client.get(f"/docs/assets/{name}")
    assert response.status_code == 404


@pytest.mark.parametrize("ui", UIS)
def test_the_pages_carry_their_own_policy_scripts_only_from_self(client, ui) -> None:
    response = client.get(f"/docs/{ui}/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert policy == DOCS_POLICY
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline script, no eval
    assert directives["connect-src"] == "'self'"
    assert "openapi_docs" not in client.get("/openapi.json").headers.get(
        "Content-Security-Policy", ""
    )


@pytest.mark.browser
@pytest.mark.parametrize("ui", UIS)
def test_each_docs_page_renders_the_operations_from_loopback_only(live_server, tmp_path, ui):
    from playwright.sync_api import expect

    fragment, token_operations = TOKEN_OPERATIONS[ui]
    with browser.page(tmp_path) as (page, seen):
        response = page.goto(f"{live_server}/docs/{ui}/{fragment}")
        assert response is not None and response.status == 200
        expect(page.locator(token_operations).first).to_be_visible()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(tmp_path / f"{ui}.png"))
        assert seen.left() == []  # nothing reached another machine
        assert set(seen.off_loopback()) <= BLOCKED_BY_POLICY.get(ui, set())
        assert [url for url in seen.requests if "/favicon.ico" in url] == []
        blocked = {url: "img-src" for url in BLOCKED_BY_POLICY.get(ui, set())}
        unexpected = [
            error
            for error in seen.errors
            if not any(url in error and directive in error for url, directive in blocked.items())
        ]
        assert unexpected == []  # no script error, no other policy violation
