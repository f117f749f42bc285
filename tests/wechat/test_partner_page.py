"""A partner page on another origin, in a real headless Chromium: it reads its token from the
`#token=` fragment, asks this service (cross-origin) for its `wx.config` data and for
`GET /api/token`, and configures the stand-in WeChat JS-SDK, which checks the signature on
its own, as WeChat's client does.

The service runs at http://127.0.0.1:<port>; the partner page at http://localhost:<port>
(SIGNIN_REDIRECT_HOSTS=localhost) is allowed, the same page at http://127.0.0.1:<port> is
not a partner origin, and the browser keeps the answers from it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from berater.db import db
from tests import browser, factories
from tests.helpers import token_for

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>照片更换（合作方示例）</title>
<link rel="icon" href="data:,">
<style>
body {{ font-family: sans-serif; margin: 1rem; }}
pre {{ white-space: pre-wrap; word-break: break-all; font-size: 12px; background: #f4f4f4; }}
</style>
</head>
<body data-api="{api}">
<h1>照片更换</h1>
<p id="status">加载中</p>
<h2>wx.config</h2>
<p id="wx">等待</p>
<pre id="config"></pre>
<h2>GET /api/token</h2>
<pre id="whoami"></pre>
<script src="{wechat}/open/js/jweixin-1.6.0.js"></script>
<script src="/partner.js"></script>
</body>
</html>
"""
SCRIPT = """"use strict";
const api = document.body.dataset.api;
const token = new URLSearchParams(location.hash.slice(1)).get("token");
history.replaceState(null, "", location.pathname + location.search);  // the token leaves the URL
const show = (id, text) => { document.getElementById(id).textContent = text; };

async function call(path) {
  const response = await fetch(api + path, { headers: { Authorization: "Bearer " + token } });
  const body = await response.json();
  if (!response.ok) throw new Error(response.status + " " + body.error);
  return body.data;
}

const page = location.href.split("#")[0];
Promise.all([
  call("/api/wechat/jssdk?url=" + encodeURIComponent(page)).then((data) => {
    show("config", JSON.stringify(data, null, 1));
    wx.config({ debug: false, ...data, jsApiList: ["chooseImage"] });
    wx.ready(() => show("wx", "wx.ready"));
    wx.error((res) => show("wx", "wx.error: " + res.errMsg));
  }),
  call("/api/token").then((data) => show("whoami", JSON.stringify(data, null, 1))),
]).then(
  () => show("status", "完成"),
  (error) => show("status", "失败: " + error.message),
);
"""


@pytest.fixture
def app(make_app) -> Flask:
    """The service, with only localhost as a partner host (not 127.0.0.1)."""
    return make_app(SIGNIN_REDIRECT_HOSTS=["localhost"])


@pytest.fixture
def partner(live_server, wechat) -> Iterator[int]:
    """The partner app's page and script, on a loopback port of their own."""
    html = PAGE.format(api=live_server, wechat=wechat.url)

    @Request.application
    def serve(request: Request) -> Response:
        if request.path == "/partner.js":
            return Response(SCRIPT, mimetype="text/javascript")
        if request.path == "/photo":
            return Response(html, mimetype="text/html")
        return Response("not found", status=404)

    server = make_server("127.0.0.1", 0, serve, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def student_token(app, client) -> str:
    with app.app_context():
        source = factories.source_student()
        factories.student("o_dev_student", source)
        db.session.commit()
    return token_for(client, "o_dev_student")


def test_a_partner_page_gets_wx_config_data_and_the_identity_cross_origin(
    partner, student_token, wechat, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with browser.page(tmp_path) as (page, seen):
        page.goto(f"http://localhost:{partner}/photo?step=1#token={student_token}")
        expect(page.locator("#status")).to_have_text("完成")
        expect(page.locator("#wx")).to_have_text("wx.ready")  # the stand-in checked it
        assert page.url == f"http://localhost:{partner}/photo?step=1"
        assert '"signature"' in (page.locator("#config").text_content() or "")
        whoami = page.locator("#whoami").text_content() or ""
        assert '"kind": "wechat"' in whoami
        assert '"student": true' in whoami
        assert "o_dev_student" not in whoami  # never the openid
        page.screenshot(path=str(tmp_path / "partner.png"))
        assert seen.errors == []
        assert seen.off_loopback() == []
    assert wechat.fake.calls_to("/cgi-bin/ticket/getticket") == 1


def test_the_same_page_on_an_origin_off_the_list_cannot_read_the_answers(
    partner, student_token, wechat, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with browser.page(tmp_path) as (page, seen):
        page.goto(f"http://127.0.0.1:{partner}/photo#token={student_token}")
        expect(page.locator("#status")).to_have_text("失败: Failed to fetch")
        assert page.locator("#config").text_content() == ""
        assert page.locator("#whoami").text_content() == ""
        expect(page.locator("#wx")).to_have_text("等待")
        assert any("CORS policy" in error for error in seen.errors)
        page.screenshot(path=str(tmp_path / "refused.png"))
    # The preflight was refused, so the requests themselves were never sent.
    assert wechat.fake.calls_to("/cgi-bin/ticket/getticket") == 0
