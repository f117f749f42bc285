"""WeChat webhook signatures and safe-mode (AES) message encryption.

Written on `cryptography` rather than wechatpy's helper so that every rule is explicit and
typed: PKCS#7 padding runs to 32-byte blocks (not 16), the length prefix counts UTF-8 bytes,
the trailing appid must match, and each refusal names its reason (`CryptoError.reason`).

Protocol: key = base64(EncodingAESKey + "="), 32 bytes; IV = key[:16]; AES-256-CBC over
random(16) + len(msg) (4 bytes, big-endian) + msg + appid; Encrypt = base64(ciphertext);
msg_signature = sha1("".join(sorted([token, timestamp, nonce, Encrypt]))).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeChat pads to 32-byte blocks, although AES blocks are 16 bytes
RANDOM_PREFIX = 16
KEY_CHARS = 43


class CryptoError(Exception):
    """A refused signature or ciphertext; `reason` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign(token: str, *parts: str) -> str:
    """sha1 of the sorted token and parts, as lowercase hex (WeChat's signature)."""
    return hashlib.sha1("".join(sorted([token, *parts])).encode("utf-8")).hexdigest()  # noqa: S324 - fixed by the protocol


def check_signature(token: str, signature: str, *parts: str) -> bool:
    """True when `signature` is the signature of `parts` under `token` (constant time)."""
    if not token:
        return False  # an unset token must never match an empty signature
    expected = sign(token, *parts).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().lower().encode("utf-8"))


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of a 43-character EncodingAESKey."""
    if len(encoding_aes_key) != KEY_CHARS:
        raise CryptoError("invalid_key")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError("invalid_key") from None
    if len(key) != 32:
        raise CryptoError("invalid_key")
    return key


def _cipher(key: bytes) -> Cipher:
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def encrypt(
    encoding_aes_key: str, receive_id: str, plaintext: str, random16: bytes | None = None
) -> str:
    """Encrypt `plaintext` for `receive_id`; `random16` is forced only by tests."""
    key = aes_key(encoding_aes_key)
    prefix = os.urandom(RANDOM_PREFIX) if random16 is None else random16
    if len(prefix) != RANDOM_PREFIX:
        raise ValueError("the random prefix must be 16 bytes")
    body = plaintext.encode("utf-8")
    data = prefix + len(body).to_bytes(4, "big") + body + receive_id.encode("utf-8")
    pad = BLOCK - len(data) % BLOCK  # 1..32: a full block of padding when already aligned
    data += bytes([pad]) * pad
    encryptor = _cipher(key).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode("ascii")


def decrypt(encoding_aes_key: str, receive_id: str, encrypted: str) -> str:
    """Decrypt an `Encrypt` value and check that it was meant for `receive_id`."""
    key = aes_key(encoding_aes_key)
    try:
        raw = base64.b64decode(encrypted.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError("invalid_base64") from None
    if not raw or len(raw) % 16:
        raise CryptoError("invalid_length")
    decryptor = _cipher(key).decryptor()
    plain = decryptor.update(raw) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise CryptoError("invalid_padding")
    content = plain[RANDOM_PREFIX:-pad]
    if len(content) < 4:
        raise CryptoError("invalid_length")
    size = int.from_bytes(content[:4], "big")
    if 4 + size > len(content):
        raise CryptoError("invalid_length")
    message, sender = content[4 : 4 + size], content[4 + size :]
    if not hmac.compare_digest(sender, receive_id.encode("utf-8")):
        raise CryptoError("invalid_appid")
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        raise CryptoError("invalid_encoding") from None


def decrypt_any(
    encoding_aes_keys: Sequence[str], receive_id: str, encrypted: str
) -> tuple[str, str]:
    """Try each key in turn (current first, then the previous one while rotating).

    Returns the plaintext and the key that opened it, so the reply uses the same key.
    A refusal reports the first key's reason: that is the key WeChat should be using.
    """
    first: CryptoError | None = None
    for key in encoding_aes_keys:
        try:
            return decrypt(key, receive_id, encrypted), key
        except CryptoError as exc:
            first = first or exc
    raise first or CryptoError("invalid_key")


def decrypt_message(
    token: str,
    encoding_aes_keys: Sequence[str],
    receive_id: str,
    msg_signature: str,
    timestamp: str,
    nonce: str,
    encrypted: str,
) -> tuple[str, str]:
    """Check `msg_signature` over the `Encrypt` value, then decrypt it (see decrypt_any)."""
    if not check_signature(token, msg_signature, timestamp, nonce, encrypted):
        raise CryptoError("invalid_signature")
    return decrypt_any(encoding_aes_keys, receive_id, encrypted)


def verify_url(
    token: str,
    encoding_aes_key: str,
    receive_id: str,
    msg_signature: str,
    timestamp: str,
    nonce: str,
    echostr: str,
) -> str:
    """The encrypted URL check (WeCom style): the signed `echostr`, decrypted."""
    plain, _ = decrypt_message(
        token, [encoding_aes_key], receive_id, msg_signature, timestamp, nonce, echostr
    )
    return plain


def encrypt_message(
    token: str,
    encoding_aes_key: str,
    receive_id: str,
    plaintext: str,
    timestamp: str,
    nonce: str,
    random16: bytes | None = None,
) -> tuple[str, str]:
    """Encrypt a reply; returns (Encrypt, MsgSignature) for the reply envelope."""
    encrypted = encrypt(encoding_aes_key, receive_id, plaintext, random16)
    return encrypted, sign(token, timestamp, nonce, encrypted)
