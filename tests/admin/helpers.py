"""A browser made of `requests` for the invitation pages, and small API helpers.

`Browser.open(url)` follows redirects one hop at a time like a browser; when a hop lands on
the stand-in WeChat's authorize page it fills in the page's form as a person would, signing
in as the browser's openid. Each browser has its own cookie jar, so its own session.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import requests
import sqlalchemy as sa
from flask import Flask

from berater.db import db
from berater.models import AuditLog, Privilege
from tests.helpers import bearer

TIMEOUT = 10
AUTHORIZE = "/connect/oauth2/authorize"
EXCHANGE = "/sns/oauth2/access_token"


class _Forms(HTMLParser):
    """The forms of a page: action, method and hidden fields of each."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get")})
            self.forms[-1]["hidden"] = {}
        elif tag == "input" and a.get("type") == "hidden" and self.forms:
            self.forms[-1]["hidden"][a["name"]] = a.get("value", "")  # type: ignore[index]


def forms(html: str) -> list[dict[str, object]]:
    reader = _Forms()
    reader.feed(html)
    return reader.forms


def element_text(html: str, element_id: str) -> str:
    """The text inside the element with `element_id` (no nested tags of the same kind)."""
    start = html.index(f'id="{element_id}"')
    return html[html.index(">", start) + 1 : html.index("</", start)].strip()


def element_attr(html: str, element_id: str, name: str) -> str:
    """The raw (HTML-escaped) value of attribute `name` of the element with `element_id`."""
    start = html.rindex("<", 0, html.index(f'id="{element_id}"'))
    tag = html[start : html.index(">", start)]
    return tag.split(f'{name}="', 1)[1].split('"', 1)[0]


class Browser:
    """One person's browser: a cookie jar, and who they say they are on WeChat's page."""

    def __init__(self, openid: str, wechat_url: str) -> None:
        self.openid = openid
        self.wechat_url = wechat_url
        self.http = requests.Session()

    def close(self) -> None:
        self.http.close()

    def open(self, url: str) -> requests.Response:
        """GET `url` and follow redirects, signing in at the stand-in WeChat on the way."""
        for _ in range(10):
            response = self.http.get(url, allow_redirects=False, timeout=TIMEOUT)
            if response.is_redirect:
                url = urljoin(url, response.headers["Location"])
                continue
            if url.startswith(self.wechat_url + AUTHORIZE) and response.status_code == 200:
                url = self._approve(url, response.text)
                continue
            return response
        raise AssertionError("too many redirects")

    def _approve(self, url: str, html: str) -> str:
        (form,) = forms(html)
        assert form["method"] == "post"
        answer = self.http.post(
            urljoin(url, str(form["action"])),
            data={**form["hidden"], "openid": self.openid},  # type: ignore[dict-item]
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]

    def confirm(self, preview: requests.Response) -> requests.Response:
        """Press Confirm on an invitation preview page."""
        return self.http.post(self.confirm_url(preview), timeout=TIMEOUT, allow_redirects=False)

    @staticmethod
    def confirm_url(preview: requests.Response) -> str:
        assert preview.status_code == 200, preview.text
        (form,) = forms(preview.text)
        assert form["method"] == "post"
        return urljoin(preview.url, str(form["action"]))


def test_token(base: str, openid: str) -> str:
    """A token for `openid` from the development route."""
    response = requests.post(f"{base}/api/test/token/{openid}", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["data"]["token"]


test_token.__test__ = False  # a helper, not a test


def roles_of(base: str, token: str) -> list[str]:
    response = requests.get(f"{base}/api/token", headers=bearer(token), timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["data"]["roles"]


def new_link(base: str, token: str, role: str) -> str:
    response = requests.get(f"{base}/api/admin/link/{role}", headers=bearer(token), timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["data"]["link"]


def seq_of(link: str) -> str:
    query = urlsplit(link).query
    assert query.startswith("seq="), link
    return query.removeprefix("seq=")


ADMIN = "o_admin"


def holders(app: Flask, role: str) -> list[str]:
    """The subjects holding `role`, read from the database."""
    with app.app_context():
        rows = db.session.scalars(sa.select(Privilege.openid).where(Privilege.role == role))
        held = sorted(rows)
        db.session.remove()
    return held


def audit_rows(
    app: Flask, action: str | None = None
) -> list[tuple[str, str, str, str | None, str | None]]:
    """(actor, action, target, role, ip) of every audit row (of `action`), oldest first."""
    with app.app_context():
        query = sa.select(
            AuditLog.actor, AuditLog.action, AuditLog.target, AuditLog.role, AuditLog.ip
        ).order_by(AuditLog.id)
        if action is not None:
            query = query.where(AuditLog.action == action)
        rows = db.session.execute(query).all()
        db.session.remove()
    return [tuple(row) for row in rows]


def assert_page(response: requests.Response, status: int) -> None:
    """An HTML page for a person, with that status, never cached."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-store"
