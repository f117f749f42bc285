"""Every role the service knows, in one table: who holds it, how it is had, its name.

A person's role comes from a grant (an admin or an invitation) or from binding; an app's
role is named after the partner app and held by whoever presents that app's token
(`APP_TOKENS`). Code elsewhere names single roles through these constants and sets of
roles through the sets below, never by spelling them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ADMIN = "admin"
NOVA_ADMIN = "nova_admin"
STUDENT = "student"
CANDIDATE = "candidate"
FACE = "face"


@dataclass(frozen=True)
class Role:
    """How a role is held and what a person sees it called."""

    holder: Literal["person", "app"]
    source: Literal["grant", "binding", "app_token"]
    display_name: str


ROLES: dict[str, Role] = {
    ADMIN: Role("person", "grant", "管理员 · administrator"),
    NOVA_ADMIN: Role("person", "grant", "社团管理员 · club administrator"),
    STUDENT: Role("person", "binding", "学生 · student"),
    CANDIDATE: Role("person", "binding", "考生 · candidate"),
    # An app role is also grantable, so an invitation can give a person the app's view.
    FACE: Role("app", "grant", "照片应用 · photo app"),
}

GRANTABLE = frozenset(name for name, role in ROLES.items() if role.source == "grant")
BOUND = frozenset(name for name, role in ROLES.items() if role.source == "binding")
PEOPLE = frozenset(name for name, role in ROLES.items() if role.holder == "person")
APPS = frozenset(name for name, role in ROLES.items() if role.holder == "app")


def display_name(role: str) -> str:
    """The name a page shows for `role`; an unknown role shows as itself."""
    known = ROLES.get(role)
    return known.display_name if known else role
