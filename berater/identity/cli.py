"""Operator commands: `flask --app run user|role|token|keys ...` (and Flask-Migrate's `db`)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from berater.db import transaction
from berater.errors import ApiError
from berater.ext.crypto import new_key
from berater.identity import accounts, audit, subjects

user_cli = AppGroup("user", help="Username and password accounts.")
role_cli = AppGroup("role", help="Roles granted to an openid or to user:<username>.")
token_cli = AppGroup("token", help="Tokens, for operators.")
keys_cli = AppGroup("keys", help="Keys for CRYPTO_KEYS.")


def _clear_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a service error as a one-line message and exit non-zero."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            raise click.ClickException(exc.message) from None

    return wrapper


def _password_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--password",
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help="Asked for when not given; read from stdin with --password -.",
    )(fn)


@user_cli.command("create")
@click.argument("username")
@_password_option
@_clear_errors
def user_create(username: str, password: str) -> None:
    """Create an account."""
    with transaction():
        user = accounts.create_user(username, _stdin_if_dash(password))
        audit.record(audit.CLI_ACTOR, audit.USER_CREATE, user.username)
        # Roles granted to the name before grants to missing accounts were refused.
        roles, _ = subjects.roles_for(subjects.account_subject(user.username))
    click.echo(f"created {user.username}" + (f", holding {', '.join(roles)}" if roles else ""))


@user_cli.command("reset-password")
@click.argument("username")
@_password_option
@_clear_errors
def user_reset_password(username: str, password: str) -> None:
    """Set a new password; the account's tokens stop working."""
    with transaction():
        accounts.reset_password(username, _stdin_if_dash(password))
        audit.record(audit.CLI_ACTOR, audit.USER_RESET, accounts.normalise_username(username))
    click.echo(f"password of {username.strip().lower()} reset")


@user_cli.command("disable")
@click.argument("username")
@click.option("--enable", is_flag=True, help="Enable the account again instead.")
@_clear_errors
def user_disable(username: str, enable: bool) -> None:
    """Disable an account; its tokens stop working."""
    with transaction():
        accounts.set_disabled(username, disabled=not enable)
        action = audit.USER_ENABLE if enable else audit.USER_DISABLE
        audit.record(audit.CLI_ACTOR, action, accounts.normalise_username(username))
    click.echo(f"{username.strip().lower()} {'enabled' if enable else 'disabled'}")


@user_cli.command("list")
def user_list() -> None:
    """List accounts."""
    for user in accounts.list_users():
        click.echo(f"{user.username}\t{'disabled' if user.disabled else 'active'}")


@role_cli.command("grant")
@click.argument("subject")
@click.argument("role")
@_clear_errors
def role_grant(subject: str, role: str) -> None:
    """Grant ROLE to SUBJECT (an openid, or user:<username> of an existing account)."""
    with transaction():
        added = subjects.grant_role(subject, role, granted_by=audit.CLI_ACTOR)
        if added:
            audit.record(audit.CLI_ACTOR, audit.GRANT, subject, role)
    click.echo(f"granted {role}" if added else f"already held {role}")


@role_cli.command("revoke")
@click.argument("subject")
@click.argument("role")
@_clear_errors
def role_revoke(subject: str, role: str) -> None:
    """Take ROLE from SUBJECT; its tokens lose the role at once."""
    with transaction():
        subjects.revoke_role(subject, role)
        audit.record(audit.CLI_ACTOR, audit.REVOKE, subject, role)
    click.echo(f"revoked {role}")


@token_cli.command("mint")
@click.argument("subject")
@_clear_errors
def token_mint(subject: str) -> None:
    """Print a token for SUBJECT with the roles it holds (operators only)."""
    from berater.identity.services import issue_token

    if not subject or len(subject) > 80 or any(ch.isspace() for ch in subject):
        raise click.ClickException("SUBJECT is an openid or user:<username>, without spaces")
    click.echo(issue_token(subject)["token"])


@keys_cli.command("new")
def keys_new() -> None:
    """Print a new key: put it first in CRYPTO_KEYS, keep the old ones after it."""
    click.echo(new_key())


def _stdin_if_dash(password: str) -> str:
    if password == "-":  # noqa: S105 - the stdin marker, not a password
        return sys.stdin.readline().rstrip("\n")
    return password


def register(app: Flask) -> None:
    """Add `flask user|role|token|keys`."""
    for group in (user_cli, role_cli, token_cli, keys_cli):
        app.cli.add_command(group)
