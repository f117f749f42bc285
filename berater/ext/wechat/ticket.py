"""The JS-SDK's jsapi_ticket, kept like the access token (keeper.Kept): one for every worker
and instance, in the store, renewed five minutes before it expires, fetched by one process
at a time.

`/cgi-bin/ticket/getticket?type=jsapi` is called through client.call, so a rejected access
token (40001, 40014, 42001) is dropped and the call retried once with a new one. WeChat
never judges the ticket itself on the server's side: it checks the signature made with it
in the user's WeChat, where a stale ticket shows as wx.config's "invalid signature". Within
its life WeChat hands back the same ticket, so there is no forced renewal; a ticket dropped
with `invalidate` (`flask wechat ticket renew`) is fetched again at the next signature.
"""

from __future__ import annotations

from typing import Any

from berater.errors import UpstreamError
from berater.ext.wechat import client
from berater.ext.wechat.keeper import Kept

GETTICKET = "/cgi-bin/ticket/getticket"
# The holder may fetch a token first (and renew it once if rejected): room for four calls.
LOCK_TTL = 20.0


def _fetch(force: bool) -> tuple[str, int]:
    """Ask WeChat for the jsapi_ticket: (ticket, expires_in seconds); WeChat has no forced
    renewal of a ticket, so `force` is never set (can_force=False)."""
    answer: dict[str, Any] = client.call("GET", GETTICKET, params={"type": "jsapi"})
    ticket, expires_in = answer.get("ticket"), answer.get("expires_in")
    if not isinstance(ticket, str) or not ticket or not isinstance(expires_in, int):
        raise UpstreamError("WeChat gave an unreadable answer")
    return ticket, expires_in


JSAPI_TICKET = Kept("jsapi ticket", "jsapi_ticket", _fetch, lock_ttl=LOCK_TTL, can_force=False)


def jsapi_ticket() -> str:
    """The account's jsapi_ticket, from the store or, for exactly one process, from WeChat."""
    return JSAPI_TICKET.get()


def invalidate(ticket: str) -> None:
    """Drop `ticket` from the store if it is still the cached one."""
    JSAPI_TICKET.invalidate(ticket)
