"""The console's roles: who holds each grantable role, their audit rows, and revoking a role
after a confirmation page (the same service as `POST /api/admin/roles/<role>/revoke`)."""

from __future__ import annotations

import re

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from berater.admin import services
from berater.admin.schemas import SUBJECT_PATTERN
from berater.console import access, bp
from berater.console.audit import audit_url, local_time
from berater.db import transaction
from berater.errors import BadRequest
from berater.identity import roles

GRANTABLE = tuple(name for name in roles.ROLES if name in roles.GRANTABLE)  # table order


@bp.get("/roles", endpoint="roles")
@access.console_view()
def roles_page() -> str:
    """Every grantable role with its holders, oldest grant first."""
    held = [services.holders(role) for role in GRANTABLE]
    return render_template(
        "console/roles.html",
        held=held,
        role_name=roles.display_name,
        audit_url=audit_url,
        local_time=local_time,
        me=access.staff().subject,
    )


@bp.post("/roles/<role>/revoke", endpoint="revoke_role")
@access.console_view()
def revoke_role(role: str) -> Response | str:
    """Without `confirmed`: the confirmation page. With it: revoke, audited, and back."""
    services.check_role(role)
    subject = request.form.get("subject", "")
    if not _is_subject(subject):
        raise BadRequest("no such holder")
    me = access.staff().subject
    if request.form.get("confirmed") != "yes":
        return render_template(
            "console/revoke_confirm.html",
            role=role,
            role_name=roles.display_name(role),
            subject=subject,
            is_me=subject == me,
        )
    with transaction():
        services.revoke(me, role, subject, request.remote_addr)
    flash(f"已撤销 {subject} 的 {role} 角色 · {role} revoked from {subject}", "done")
    # Who revoked their own admin role may not open this page any more.
    return redirect(url_for("console.home" if subject == me else "console.roles"), 303)


def _is_subject(value: str) -> bool:
    return bool(re.fullmatch(SUBJECT_PATTERN, value))
