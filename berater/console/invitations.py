"""The console's invitations: make a one-time link for a role and show it with its QR code
(drawn here as SVG, in the page), list the links still pending, cancel one.

The same services as `GET /api/admin/link/<role>` and `/api/admin/invitations`. A new link
is shown once, in the answer to the POST that made it: it is never stored (only its
SHA-256 is), so it is not in a redirect, the session or the pending list either.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from berater.admin import invites, qr
from berater.console import access, bp
from berater.console.audit import audit_url, local_time
from berater.db import transaction
from berater.identity import roles
from berater.urls import external_url

GRANTABLE = tuple(name for name in roles.ROLES if name in roles.GRANTABLE)  # list order


@bp.get("/invitations", endpoint="invitations")
@access.console_view()
def invitations_page() -> str:
    """The form for a new link and the pending links."""
    return _page()


@bp.post("/invitations", endpoint="create_invitation")
@access.console_view()
def create_invitation() -> str:
    """A new link for the chosen role, shown with its QR code. Audited."""
    role = request.form.get("role", "")
    with transaction():
        seq, ttl = invites.create(access.staff().subject, role, request.remote_addr)
    link = external_url("admin.preview", seq=seq)
    return render_template(
        "console/invitation_link.html",
        link=link,
        qr=qr.svg(link, title=f"邀请链接 · invitation link: {role}"),
        role=role,
        role_name=roles.display_name(role),
        minutes=-(-ttl // 60),
    )


@bp.post("/invitations/cancel", endpoint="cancel_invitation")
@access.console_view()
def cancel_invitation() -> Response:
    """Withdraw a pending link (the page asks first, through `data-confirm`). Audited."""
    with transaction():
        cancelled = invites.cancel(
            access.staff().subject, request.form.get("digest", ""), request.remote_addr
        )
    flash(
        f"已取消一个 {cancelled.role} 邀请链接 · a {cancelled.role} link was cancelled "
        f"({cancelled.audit_target})",
        "done",
    )
    return redirect(url_for("console.invitations"), 303)


def _page() -> str:
    return render_template(
        "console/invitations.html",
        grantable=GRANTABLE,
        pending=invites.pending(),
        role_name=roles.display_name,
        local_time=local_time,
        audit_url=audit_url,
    )
