"""SMS verification codes: send one, check it, and keep the verified phone for binding.

A code is 6 digits from `secrets`, stored only as an HMAC bound to the purpose, the openid
and the phone, for SMS_CODE_TTL (5 min). It is single use and void after SMS_CODE_TRIES (5)
wrong tries; each try is counted in the store, atomically, before the code is compared, so
parallel guesses cannot get more than 5 evaluations. A correct code marks the phone verified
for that openid for SMS_VERIFIED_TTL (30 min); the binding that uses it deletes it once the
binding is committed (`use_verified_phone`), so a binding that fails leaves it usable.

Sends are limited per phone and per openid (SMS_SEND_LIMITS: 1/min, 5/h, 10/day) and per
client IP (SMS_IP_LIMITS: 10/h, 50/day). The slots are taken before the provider is called
and kept whatever it answers, so a retried request cannot send twice.

Store keys (area "sms"): `code:<openid>` hash {phone, digest, tries}; `verified:<openid>`
phone; `limit:<scope>:<id>:<window>` counters. Phones in counter keys are HMACs.

The HMAC key is derived from SECRET_KEY with a purpose string, so no extra secret is needed;
rotating SECRET_KEY voids the codes pending at that moment (at most 5 minutes' worth).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
import secrets
from typing import Any

from flask import current_app

from berater.errors import ApiError, BadRequest, TooManyRequests, ValidationFailed
from berater.ext.sms import SmsDeliveryUnknown
from berater.ext.upstream import UpstreamBusy, upstream_slot
from berater.extensions import sms, store
from berater.identifiers import InvalidPhone, mask_phone, normalise_phone

AREA = "sms"
PURPOSE = "bind"  # what a code is for; part of its HMAC, so a code for another use never fits
KEY_PURPOSE = b"berater.sms-code.v1"
CODE = re.compile(r"^[0-9]{6}$")
NO_CODE = "no code is waiting for this account, or it expired or was used up; request a new one"

# KEYS: counters; ARGV: limit, window in ms, ... (one pair per key). All or nothing: when any
# counter is full, none is taken and the longest wait is returned (ms); otherwise 0.
_TAKE_SLOTS = """
local wait = 0
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[2 * i - 1]) then
    local left = redis.call('PTTL', key)
    if left < 0 then left = tonumber(ARGV[2 * i]) end
    if left > wait then wait = left end
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[2 * i]) end
end
return 0
"""
# KEYS: the counters _TAKE_SLOTS counted a send against: one count back on each still there.
_GIVE_BACK = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
"""
# A new code replaces any pending one of the same openid, with a fresh try count.
_PUT_CODE = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'phone', ARGV[1], 'digest', ARGV[2], 'tries', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
"""
# Remove the code only if it is still the one this request stored.
_DISCARD_CODE = """
if redis.call('HGET', KEYS[1], 'digest') == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""
_PENDING_PHONE = "return redis.call('HGET', KEYS[1], 'phone')"
# KEYS: code, verified; ARGV: phone, digest, max tries, verified ttl (ms).
# The try is counted before the comparison: the 6th try finds no code, even if right.
_CHECK_CODE = """
local phone = redis.call('HGET', KEYS[1], 'phone')
if not phone then return {'missing', 0} end
if phone ~= ARGV[1] then return {'stale', 0} end
local max = tonumber(ARGV[3])
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
if tries > max then
  redis.call('DEL', KEYS[1])
  return {'missing', 0}
end
if redis.call('HGET', KEYS[1], 'digest') == ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], phone, 'PX', ARGV[4])
  return {'ok', 0}
end
if tries >= max then redis.call('DEL', KEYS[1]) end
return {'wrong', max - tries}
"""
# Delete the verified phone only if it is still the one that was used.
_USE_VERIFIED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def send_code(openid: str, phone: str, client_ip: str | None) -> dict[str, Any]:
    """Text a new code to `phone` for `openid`; 429 when a send limit is reached, 503 when
    this process already has UPSTREAM_MAX_CONCURRENT outbound calls under way."""
    phone = _normalise(phone)
    config = current_app.config
    taken = _take_send_slots(openid, phone, client_ip)  # a 429 never needs an outbound slot
    code = f"{secrets.randbelow(1_000_000):06d}"
    digest = _digest(openid, phone, code)
    key = store.key(AREA, f"code:{openid}")
    ttl_ms = int(config["SMS_CODE_TTL"] * 1000)
    try:
        with upstream_slot("sms send"):  # UpstreamBusy comes only from here, before any work
            store.script(_PUT_CODE)(keys=[key], args=[phone, digest, ttl_ms])
            try:
                sms.send_code(phone, code)
            except SmsDeliveryUnknown:
                raise  # the text may still arrive, so its code stays valid
            except ApiError:
                store.script(_DISCARD_CODE)(keys=[key], args=[digest])
                raise
    except UpstreamBusy:
        # Refused before anything was sent: the send limits are given back, so the person
        # may try again after Retry-After, not after a minute.
        store.script(_GIVE_BACK)(keys=taken, args=[])
        raise
    return {
        "phone": mask_phone(phone),
        "expires_in": int(config["SMS_CODE_TTL"]),
        "resend_after": max(1, math.ceil(min(w for _, w in config["SMS_SEND_LIMITS"]))),
    }


def verify_code(openid: str, code: str) -> str:
    """Check `code` against the pending code of `openid`; the verified phone on success."""
    if not isinstance(code, str) or not CODE.fullmatch(code):
        raise ValidationFailed.of([{"loc": ("code",), "msg": "a code is 6 digits", "type": "code"}])
    config = current_app.config
    code_key = store.key(AREA, f"code:{openid}")
    verified_key = store.key(AREA, f"verified:{openid}")
    # The phone is needed to compute the HMAC; if a new code replaces the pending one
    # between reading it and checking, the check says "stale" and we read again.
    for _ in range(3):
        phone = store.script(_PENDING_PHONE)(keys=[code_key])
        if not phone:
            raise BadRequest(NO_CODE)
        status, left = store.script(_CHECK_CODE)(
            keys=[code_key, verified_key],
            args=[
                phone,
                _digest(openid, phone, code),
                int(config["SMS_CODE_TRIES"]),
                int(config["SMS_VERIFIED_TTL"] * 1000),
            ],
        )
        if status == "ok":
            return str(phone)
        if status == "wrong":
            message = "the code is wrong" if left else "the code is wrong; request a new one"
            raise BadRequest(message, {"tries_left": int(left)})
        if status == "missing":
            raise BadRequest(NO_CODE)
    raise BadRequest(NO_CODE)


def verified_phone(openid: str) -> str | None:
    """The phone `openid` verified in the last SMS_VERIFIED_TTL seconds, if any."""
    return store.get(AREA, f"verified:{openid}")


def use_verified_phone(openid: str, phone: str) -> bool:
    """Delete the verified phone of `openid` if it is still `phone`; True when this call did.

    A phone verified again in the meantime (another number) stays verified. Binding calls
    this after its commit (berater.db.after_commit).
    """
    key = store.key(AREA, f"verified:{openid}")
    return bool(store.script(_USE_VERIFIED)(keys=[key], args=[phone]))


def _normalise(phone: Any) -> str:
    try:
        if not isinstance(phone, str):
            raise InvalidPhone("a phone is one mainland mobile number of 11 digits")
        return normalise_phone(phone)
    except InvalidPhone as exc:
        raise ValidationFailed.of([{"loc": ("phone",), "msg": str(exc), "type": "phone"}]) from None


def _hmac_key() -> bytes:
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, KEY_PURPOSE, hashlib.sha256).digest()


def _digest(openid: str, phone: str, code: str) -> str:
    message = "\x00".join((PURPOSE, openid, phone, code)).encode()
    return hmac.new(_hmac_key(), message, hashlib.sha256).hexdigest()


def _phone_id(phone: str) -> str:
    """The phone as it appears in counter keys: keyed, so the store holds no phone list."""
    return hmac.new(_hmac_key(), b"limit\x00" + phone.encode(), hashlib.sha256).hexdigest()[:32]


def client_bucket(client_ip: str | None) -> str:
    """The per-IP counter's key: the address, or its /64 for IPv6 (one host's usual share)."""
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _take_send_slots(openid: str, phone: str, client_ip: str | None) -> list[str]:
    """Count a send against every limit, or raise TooManyRequests; the counters' keys."""
    config = current_app.config
    keys: list[str] = []
    args: list[int] = []
    scopes = [
        (f"phone:{_phone_id(phone)}", config["SMS_SEND_LIMITS"]),
        (f"openid:{openid}", config["SMS_SEND_LIMITS"]),
        (f"ip:{client_bucket(client_ip)}", config["SMS_IP_LIMITS"]),
    ]
    for scope, limits in scopes:
        for limit, window in limits:
            keys.append(store.key(AREA, f"limit:{scope}:{window}"))
            args += [int(limit), max(1, int(window * 1000))]
    wait_ms = int(store.script(_TAKE_SLOTS)(keys=keys, args=args) or 0)
    if wait_ms > 0:
        raise TooManyRequests(
            "too many codes requested; try again later", math.ceil(wait_ms / 1000)
        )
    return keys
