"""The console's password accounts: create one, reset its password, disable it (after a
confirmation page) and enable it again; the password rules are on the page before the first
try. The same services as `/api/admin/users`, each change audited."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from berater.admin import services
from berater.console import access, bp
from berater.console.audit import audit_url, local_time
from berater.db import transaction
from berater.errors import ApiError, BadRequest
from berater.identity import roles
from berater.identity.subjects import account_subject

MISMATCH = "两次输入的密码不一致 · the two passwords differ"
MAX_FIELD = 1024  # what the API's models accept; the rules then give the clearer message


def _form(name: str) -> str:
    return request.form.get(name, "")[:MAX_FIELD]


@bp.get("/accounts", endpoint="accounts")
@access.console_view()
def accounts_page() -> str:
    """Every account, and the form for a new one."""
    return _page()


@bp.post("/accounts", endpoint="create_account")
@access.console_view()
def create_account() -> Response | tuple[str, int]:
    """A new account; a refusal shows the form again with the reason (never the password)."""
    username = _form("username")
    try:
        if _form("password") != _form("password2"):
            raise BadRequest(MISMATCH)
        with transaction():
            created = services.create_user(
                access.staff().subject, username, _form("password"), request.remote_addr
            )
    except ApiError as exc:
        return _page(create_error=exc.message, username=username[:128]), exc.status
    flash(f"已新建账号 {created['username']} · account {created['username']} created", "done")
    return redirect(url_for("console.accounts"), 303)


@bp.route("/accounts/<username>/password", methods=["GET", "POST"], endpoint="reset_password")
@access.console_view()
def reset_password(username: str) -> Response | str | tuple[str, int]:
    """The form for a new password; the account is then signed out everywhere."""
    account = services.user(username)
    if request.method == "GET":
        return _reset_page(account)
    try:
        if _form("password") != _form("password2"):
            raise BadRequest(MISMATCH)
        with transaction():
            services.reset_password(
                access.staff().subject, account["username"], _form("password"), request.remote_addr
            )
    except ApiError as exc:
        return _reset_page(account, error=exc.message), exc.status
    flash(
        f"已为 {account['username']} 设置新密码，该账号已在所有地方退出 · "
        f"new password set for {account['username']}; it is signed out everywhere",
        "done",
    )
    return redirect(url_for("console.accounts"), 303)


@bp.post("/accounts/<username>/disable", endpoint="disable_account")
@access.console_view()
def disable_account(username: str) -> Response | str:
    """Without `confirmed`: the confirmation page. With it: disable (signed out everywhere)."""
    account = services.user(username)
    me = access.staff().subject
    if request.form.get("confirmed") != "yes":
        return render_template(
            "console/disable_confirm.html",
            account=account,
            is_me=account_subject(account["username"]) == me,
        )
    with transaction():
        services.set_disabled(me, account["username"], True, request.remote_addr)
    flash(f"已停用 {account['username']} · {account['username']} disabled", "done")
    return redirect(url_for("console.accounts"), 303)


@bp.post("/accounts/<username>/enable", endpoint="enable_account")
@access.console_view()
def enable_account(username: str) -> Response:
    """Enable a disabled account again."""
    with transaction():
        done = services.set_disabled(access.staff().subject, username, False, request.remote_addr)
    flash(f"已启用 {done['username']} · {done['username']} enabled", "done")
    return redirect(url_for("console.accounts"), 303)


def _page(create_error: str = "", username: str = "") -> str:
    return render_template(
        "console/accounts.html",
        users=services.users()["users"],
        rules=services.password_rules(),
        create_error=create_error,
        username=username,
        role_name=roles.display_name,
        local_time=local_time,
        audit_url=audit_url,
        me=access.staff().subject,
        prefix="user:",
    )


def _reset_page(account: dict[str, object], error: str = "") -> str:
    return render_template(
        "console/account_password.html",
        account=account,
        rules=services.password_rules(),
        error=error,
    )
