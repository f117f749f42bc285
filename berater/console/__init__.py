"""The office's console in the browser (/admin/): roles, invitations, password accounts, the
audit trail, the admission list, nova registrations and the Q&A index, for staff who are not
developers. It works in WeChat's browser on a phone and on a desktop.

How it is built:

- `access.py` holds who is looking. Staff sign in with WeChat (holding `admin` or
  `nova_admin`) or with a password account (`signin.py`); the minted token is kept in the
  signed session cookie, so it expires, is signed out and loses roles like any other token.
  Idle sessions end after CONSOLE_IDLE_SECONDS.
- Every view is wrapped by `access.console_view(*roles)`: it sends a visitor who is not
  signed in to the sign-in page, refuses staff without one of `roles` (403), checks the
  CSRF token of every POST (the hidden field `csrf_field()` renders, or the X-CSRF-Token
  header of a script), marks the answer `no-store` with the console's strict
  Content-Security-Policy, and renders an `ApiError` as the console's error page (or, for
  `json=True` views that scripts poll, as the usual envelope).
- A section is one module in this package with its views on `bp`, its templates in
  templates/console/ extending `console/base.html` (block `content`), and a row in
  `SECTIONS` (the navigation shows the sections that exist and that the person may open).
  Modules here are imported by `init_app`, so a new section is one module, its templates
  and its row. `home.py` is the smallest example.
- Views call the same services as the JSON API, inside `transaction()`; every change
  records an audit row through those services. Forms are plain HTML forms (the console's
  views take form and multipart bodies, the rest of the app JSON only); `static/js/console.js`
  adds confirmations (`data-confirm`) and progress displays (`data-poll`).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

from flask import Blueprint, Flask

from berater.identity import roles

bp = Blueprint("console", __name__, url_prefix="/admin")


@dataclass(frozen=True)
class Section:
    endpoint: str
    label: str
    roles: tuple[str, ...]


STAFF = (roles.ADMIN, roles.NOVA_ADMIN)  # who may sign in to the console
SECTIONS = (
    Section("console.roles", "角色 · Roles", (roles.ADMIN,)),
    Section("console.invitations", "邀请 · Invitations", (roles.ADMIN,)),
    Section("console.accounts", "账号 · Accounts", (roles.ADMIN,)),
    Section("console.audit", "审计 · Audit trail", (roles.ADMIN,)),
    Section("console.admission", "录取名单 · Admission list", (roles.ADMIN,)),
    Section("console.nova", "社团报名 · Nova", (roles.ADMIN, roles.NOVA_ADMIN)),
    Section("console.qna", "问答索引 · Q&A index", (roles.ADMIN,)),
)


def init_app(app: Flask, api: Blueprint) -> None:
    """Import every module of the console (their routes register on `bp`), then register it."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    app.register_blueprint(bp)
