"""The BERT backend's transport: sentence vectors from a bert-serving server.

Talks to the server through bert-serving-client's ``BertClient`` (ZeroMQ PUSH to ``port``, SUB
on ``port_out``). What this module adds around it:

- a deadline: no call waits longer than ``timeout`` seconds (per request of at most ``BATCH``
  texts), the client's construction and its config request included;
- one client per process, behind a lock (``BertClient`` is not thread-safe), created on first
  use and thrown away after any failure, so that a late answer to an abandoned request can
  never be taken for the answer to a new one (a new client has a new identity, and the server
  publishes each answer to the identity that asked);
- checks of the answer (shape, dtype, finite, non-zero) and L2-normalised float32 rows.

Texts are user questions: they are never logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import zmq
from bert_serving.client import BertClient

from berater import metrics
from berater.settings import ConfigError, default

_log = logging.getLogger(__name__)

BATCH = 256  # texts per request when encoding long lists (the server's max_batch_size)
# BertClient formats its endpoints as tcp://<host>:<port>: a host name or an IPv4 address.
HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
# Clients created before a fork: their sockets belong to the parent, so the child must neither
# use nor close them, and must not let the garbage collector destroy them either.
_orphans: list[BertClient] = []


class BertUnavailable(Exception):
    """The BERT backend cannot answer: not configured, no answer in time, or a bad answer.

    ``reason`` is one of ``not_configured``, ``timeout``, ``busy``, ``version``,
    ``bad_answer``, ``error``.
    """

    def __init__(self, message: str, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


class BertEncoder:
    """Sentence vectors from one bert-serving server; safe to share between threads."""

    def __init__(self, host: str, port: int, port_out: int, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = float(default("BERT_TIMEOUT"))
        if not HOST_RE.match(host or ""):
            raise ValueError(f"BERT host must be a host name or IPv4 address, not {host!r}")
        for name, value in (("port", port), ("port_out", port_out)):
            if not 0 < int(value) < 65536:
                raise ValueError(f"BERT {name} must be 1-65535, not {value!r}")
        if not timeout > 0:
            raise ValueError(f"BERT timeout must be > 0 seconds, not {timeout!r}")
        self.host = host
        self.port = int(port)
        self.port_out = int(port_out)
        self.timeout = float(timeout)
        self.dim: int | None = None  # the vector size of the last answer
        self._lock = threading.Lock()
        self._client: BertClient | None = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"BertEncoder({self.host}:{self.port}/{self.port_out}, timeout={self.timeout:g})"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}/{self.port_out}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts``: float32, shape (len(texts), dim), each row of unit length.

        Raises BertUnavailable when the server is down, slow or answers nonsense; ValueError
        for an empty list or a blank text (the server cannot encode those).
        """
        return self.encode_batches(texts)

    def encode_batches(
        self,
        texts: Sequence[str],
        batch: int = BATCH,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Like :meth:`encode`, in requests of ``batch`` texts, each with its own ``timeout``.

        ``progress(done, total)`` is called after each batch (index building). The lock is
        taken per batch, so questions are answered between the batches of a long build.
        """
        texts = _checked_texts(texts)
        if batch < 1:
            raise ValueError("batch must be >= 1")
        parts: list[np.ndarray] = []
        for start in range(0, len(texts), batch):
            part = self._encode_one(texts[start : start + batch])
            if parts and part.shape[1] != parts[0].shape[1]:
                raise BertUnavailable(
                    f"the BERT server changed its vector size during one call "
                    f"({parts[0].shape[1]} then {part.shape[1]})",
                    "bad_answer",
                )
            parts.append(part)
            if progress is not None:
                progress(min(start + batch, len(texts)), len(texts))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def server_config(self) -> dict[str, Any]:
        """Ask the server for its settings (SHOW_CONFIG), within ``timeout``: a health check."""
        deadline = time.monotonic() + self.timeout
        with self._locked(deadline):
            client = self._connected(deadline)
            return self._config(client, deadline)

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        with self._lock:
            self._discard()

    def __enter__(self) -> BertEncoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # An encoder dropped without close() must not leave its ZeroMQ context to the garbage
        # collector, which warns (ResourceWarning) and destroys it from whatever thread.
        with contextlib.suppress(Exception):
            self._discard()

    # -- internals -----------------------------------------------------------------------------

    def _encode_one(self, texts: list[str]) -> np.ndarray:
        with metrics.upstream("bert", "encode") as call:
            try:
                return self._encode_locked(texts)
            except BertUnavailable as exc:
                call["error"] = exc.reason
                raise

    def _encode_locked(self, texts: list[str]) -> np.ndarray:
        deadline = time.monotonic() + self.timeout
        with self._locked(deadline):
            client = self._connected(deadline)
            raw = self._call(client, deadline, lambda: client.encode(texts))
            try:
                vectors = _normalised(raw, len(texts))
            except BertUnavailable as exc:
                self._discard()
                _log.warning("BERT server at %s: %s", self.address, exc)
                raise
            self.dim = vectors.shape[1]
            return vectors

    @contextlib.contextmanager
    def _locked(self, deadline: float) -> Iterator[None]:
        """Hold the lock, waited for no longer than the deadline."""
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise BertUnavailable(
                f"the BERT server did not answer within {self.timeout:g} s "
                "(busy with other requests)",
                "busy",
            )
        try:
            yield
        finally:
            self._lock.release()

    def _connected(self, deadline: float) -> BertClient:
        """The client, created (and the server's version checked) if there is none yet."""
        if self._client is not None and self._pid == os.getpid():
            return self._client
        if self._client is not None:  # inherited through a fork: not ours to use or close
            _orphans.append(self._client)
            self._client = None
        # ignore_all_checks: the constructor would otherwise ask the server for its config,
        # and when that times out it raises without closing its context and sockets (a leak
        # and a ResourceWarning). We ask ourselves below and close on failure.
        # check_length is off for good: it counts whitespace-separated words, meaningless for
        # Chinese, and only warns.
        client = BertClient(
            ip=self.host,
            port=self.port,
            port_out=self.port_out,
            output_fmt="ndarray",
            ignore_all_checks=True,
            check_length=False,
            check_token_info=False,
            timeout=_remaining_ms(deadline),
        )
        self._client, self._pid = client, os.getpid()
        config = self._config(client, deadline)
        # The same test as BertClient(check_version=True): the protocol is versioned as a whole.
        server_version = config.get("server_version")
        client_version = client.status["client_version"]
        if server_version != client_version:
            self._discard()
            raise BertUnavailable(
                f"the BERT server is version {server_version}, "
                f"but bert-serving-client is {client_version}",
                "version",
            )
        return client

    def _config(self, client: BertClient, deadline: float) -> dict[str, Any]:
        config = self._call(client, deadline, lambda: client.server_config)
        if not isinstance(config, dict):
            self._discard()
            raise BertUnavailable(
                "the BERT server sent a bad answer: its config is not an object",
                "bad_answer",
            )
        return config

    def _call(self, client: BertClient, deadline: float, request: Callable[[], Any]) -> Any:
        """Run one request with what is left of the deadline; any failure discards the client."""
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError("no time left")
            # BertClient sets its receive timeout from this attribute on every request.
            client.timeout = _remaining_ms(deadline)
            return request()
        except TimeoutError:
            self._discard()
            _log.warning("BERT server at %s: no answer within %g s", self.address, self.timeout)
            raise BertUnavailable(
                f"the BERT server did not answer within {self.timeout:g} s",
                "timeout",
            ) from None
        except zmq.ZMQError as exc:
            self._discard()
            _log.warning("BERT server at %s: ZeroMQ error %s", self.address, exc)
            raise BertUnavailable(f"the BERT server cannot be reached: {exc}", "error") from None
        except Exception as exc:  # frames, JSON, dtype or buffer size the client cannot read
            self._discard()
            _log.warning("BERT server at %s: unreadable answer (%s)", self.address, type(exc))
            raise BertUnavailable(
                f"the BERT server sent a bad answer ({type(exc).__name__})",
                "bad_answer",
            ) from None

    def _discard(self) -> None:
        """Close and forget the client (the caller holds the lock)."""
        client, self._client = self._client, None
        if client is None:
            return
        if self._pid != os.getpid():
            _orphans.append(client)
            return
        try:
            client.close()
        except zmq.ZMQError as exc:  # closing is best effort; the next call starts afresh
            _log.warning("BERT client close failed: %s", exc)


def _remaining_ms(deadline: float) -> int:
    # An int (setsockopt refuses floats) of at least 1: 0 would not wait, -1 would wait forever.
    return max(1, int((deadline - time.monotonic()) * 1000))


def _checked_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: nothing to encode")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__}, not str")
        if not text.strip():
            raise ValueError(f"texts[{index}] is blank: the BERT server cannot encode it")
    return texts


def _normalised(raw: Any, rows: int) -> np.ndarray:
    """Check an answer for ``rows`` texts and return it as unit-length float32 rows."""
    if not isinstance(raw, np.ndarray):
        raise BertUnavailable(f"bad answer: {type(raw).__name__}, not an array", "bad_answer")
    if raw.ndim != 2 or raw.shape[0] != rows or raw.shape[1] < 1:
        raise BertUnavailable(
            f"bad answer: shape {raw.shape} for {rows} texts, expected ({rows}, dim)", "bad_answer"
        )
    if raw.dtype.kind != "f":
        raise BertUnavailable(f"bad answer: dtype {raw.dtype}, not float", "bad_answer")
    vectors = raw.astype(np.float32)  # a copy: the client's array is a read-only buffer view
    if not np.isfinite(vectors).all():
        raise BertUnavailable("bad answer: vectors with NaN or infinity", "bad_answer")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not (norms > 0).all():
        raise BertUnavailable("bad answer: a zero vector", "bad_answer")
    vectors /= norms
    return vectors


def _setting(config: Mapping[str, Any], key: str) -> Any:
    """`key` from `config`, or its default when it is missing or empty."""
    value = config.get(key)
    return default(key) if value is None or value == "" else value


def encoder_from_config(config: Mapping[str, Any]) -> BertEncoder | None:
    """The encoder the settings describe (BERT_HOST, BERT_PORT, BERT_PORT_OUT, BERT_TIMEOUT),
    or None when BERT_HOST is empty (the BERT backend is not configured)."""
    host = str(config.get("BERT_HOST") or "").strip()
    if not host:
        return None
    try:
        return BertEncoder(
            host,
            int(_setting(config, "BERT_PORT")),
            int(_setting(config, "BERT_PORT_OUT")),
            float(_setting(config, "BERT_TIMEOUT")),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"BERT settings are invalid: {exc}") from None


def require_encoder(config: Mapping[str, Any]) -> BertEncoder:
    """Like :func:`encoder_from_config`, but BertUnavailable when BERT is not configured."""
    encoder = encoder_from_config(config)
    if encoder is None:
        raise BertUnavailable(
            "the BERT backend is not configured (BERT_HOST is empty)", "not_configured"
        )
    return encoder
