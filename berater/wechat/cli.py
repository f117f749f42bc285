"""`flask wechat ticket renew`: drop the cached jsapi_ticket and fetch a fresh one."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from berater.extensions import store

ticket_cli = AppGroup("ticket", help="The JS-SDK's jsapi_ticket, shared through the store.")


@ticket_cli.command("renew")
def ticket_renew() -> None:
    """Drop the cached ticket and fetch it again (when partner pages see wx.config's
    "invalid signature"); prints how long the new one is kept, never the ticket."""
    from berater.ext.wechat import keeper, ticket

    cached = store.get(keeper.AREA, ticket.JSAPI_TICKET.key)
    if cached:
        ticket.invalidate(cached)
    ticket.jsapi_ticket()
    left = store.ttl(keeper.AREA, ticket.JSAPI_TICKET.key)
    click.echo(f"jsapi_ticket renewed; kept for {int(left or 0)} s")


def register(app: Flask) -> None:
    """Add `ticket` to the `wechat` group (berater.wechat.menu registers the group)."""
    group = app.cli.commands.get("wechat")
    if isinstance(group, click.Group):
        group.add_command(ticket_cli)
