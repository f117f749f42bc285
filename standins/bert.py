"""Stand-in bert-serving-server speaking its ZeroMQ protocol (development and tests only).

The protocol of bert-serving 1.10, as its client speaks it:

- The client PUSHes to ``port`` (our PULL) four frames: ``[identity, payload, req_id,
  msg_len]``. ``identity`` is the client's UUID in ASCII, ``req_id`` and ``msg_len`` are decimal
  ASCII. ``payload`` is ``b"SHOW_CONFIG"`` or ``b"SHOW_STATUS"`` for the server's settings, else
  a JSON list of strings to encode.
- The client SUBscribes on ``port_out`` (our PUB) to its own identity. Answers are
  ``[identity, config JSON, req_id]`` for the settings and ``[identity, info JSON, array bytes,
  req_id]`` for vectors, where info is ``{"dtype": "float32", "shape": [n, dim], "tokens": ""}``
  and the bytes are the C-ordered array.

Run it in-process with :func:`running`, or as a separate process with
``python -m standins.bert --port 5555 --port-out 5556``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import zmq

_log = logging.getLogger(__name__)

# The client refuses (check_version) any server whose version differs from its own.
SERVER_VERSION = "1.10.0"
DEFAULT_DIM = 768
CONFIG_COMMANDS = (b"SHOW_CONFIG", b"SHOW_STATUS")
# Ways to answer badly, for the client's error handling: a consistent array with one row too
# many, an integer array, fewer bytes than the header announces, an info frame that is not JSON.
CORRUPT_MODES = ("shape", "dtype", "bytes", "json")
# The arguments of bert-serving-start that a server reports (with max_seq_len and the ports).
START_ARGS: dict[str, Any] = json.loads(
    """{"ckpt_name": "bert_model.ckpt", "config_name": "bert_config.json", "cors": "*",
    "cpu": true, "do_lower_case": true, "fixed_embed_length": false, "fp16": false,
    "gpu_memory_fraction": 0.5, "graph_tmp_dir": null, "http_max_connect": 10,
    "http_port": null, "mask_cls_sep": false, "max_batch_size": 256,
    "model_dir": "chinese_L-12_H-768_A-12 (stand-in)", "no_position_embeddings": false,
    "no_special_token": false, "num_worker": 1, "pooling_layer": [-2], "pooling_strategy": 2,
    "prefetch_size": 10, "priority_batch_size": 16, "show_tokens_to_client": false,
    "tuned_model_dir": null, "verbose": false, "xla": false}"""
)
POLL_MS = 20
# A PUB socket drops what it sends before the subscriber's subscription has arrived (the "slow
# joiner"). A real server is slow enough for that never to matter; we are not, so an answer to
# an identity never seen subscribing is held this long for its subscription.
SUBSCRIBE_WAIT = 1.0


@functools.lru_cache(maxsize=65536)
def _slot(gram: str, dim: int) -> tuple[int, float]:
    """The bucket and sign of one character n-gram (stable across processes, unlike hash())."""
    value = int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest(), "big")
    return value % dim, 1.0 if value >> 63 else -1.0


def embed(text: str, dim: int = DEFAULT_DIM) -> np.ndarray:
    """The stand-in's sentence vector: hashed character unigrams and bigrams, L2-normalised.

    Texts that share characters get a high cosine; a blank text gets a fixed unit vector.
    """
    chars = "".join(text.casefold().split())
    grams = list(chars) + [chars[i : i + 2] for i in range(len(chars) - 1)]
    vector = np.zeros(dim, dtype=np.float32)
    for gram in grams:
        index, sign = _slot(gram, dim)
        vector[index] += sign
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:  # blank, or (rarely) n-grams that cancel out
        vector[:] = 0.0
        vector[0] = 1.0
        return vector
    return vector / np.float32(norm)


class FakeBertServer:
    """State of the stand-in: its settings, what it received, and injected faults.

    Set ``delay`` (seconds before each answer), ``down`` (receive but never answer),
    ``corrupt`` (one of CORRUPT_MODES, or None) and ``scale`` (vectors are multiplied by it,
    as real BERT vectors are not unit length) from the test thread at any time.
    """

    def __init__(
        self,
        dim: int = DEFAULT_DIM,
        max_seq_len: int | None = 25,
        server_version: str = SERVER_VERSION,
    ) -> None:
        if dim < 1:
            raise ValueError("dim must be >= 1")
        self.dim = dim
        self.max_seq_len = max_seq_len
        self.server_version = server_version
        self.delay = 0.0
        self.down = False
        self._corrupt: str | None = None
        self.scale = 1.0
        self.started = datetime.now()
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(("requests", "texts", "config", "answered"), 0)

    @property
    def corrupt(self) -> str | None:
        return self._corrupt

    @corrupt.setter
    def corrupt(self, mode: str | None) -> None:
        if mode is not None and mode not in CORRUPT_MODES:
            raise ValueError(f"corrupt must be None or one of {CORRUPT_MODES}")
        self._corrupt = mode

    @property
    def requests(self) -> int:
        """Encode requests received (also those left unanswered while down)."""
        return self._count("requests")

    @property
    def texts_seen(self) -> int:
        """Texts received in encode requests."""
        return self._count("texts")

    @property
    def config_requests(self) -> int:
        """SHOW_CONFIG and SHOW_STATUS requests received."""
        return self._count("config")

    @property
    def answered(self) -> int:
        """Encode answers published (late ones included)."""
        return self._count("answered")

    def _count(self, name: str, add: int = 0) -> int:
        with self._lock:
            self._counts[name] += add
            return self._counts[name]

    def reset(self) -> None:
        """Clear faults and counts."""
        self.delay, self.down, self.corrupt, self.scale = 0.0, False, None, 1.0
        self.server_version = SERVER_VERSION
        with self._lock:
            self._counts = dict.fromkeys(self._counts, 0)

    def config(self, client: bytes, port: int, port_out: int) -> dict[str, Any]:
        """The settings a bert-serving-server 1.10 reports: runtime, arguments and versions."""
        return {
            # runtime
            "client": client.decode("ascii", "replace"),
            "num_process": 3,
            "ventilator -> worker": ["ipc://standin-worker-0"],
            "worker -> sink": "ipc://standin-sink",
            "ventilator <-> sink": "ipc://standin-ventilator-sink",
            "server_current_time": str(datetime.now()),
            "statistic": {"num_data_request": self.requests, "num_total_seq": self.texts_seen},
            "device_map": [],
            "num_concurrent_socket": 8,
            **START_ARGS,
            "max_seq_len": self.max_seq_len,
            "port": port,
            "port_out": port_out,
            # versions
            "tensorflow_version": ["1", "15", "0"],
            "python_version": sys.version,
            "server_version": self.server_version,
            "pyzmq_version": zmq.pyzmq_version(),
            "zmq_version": zmq.zmq_version(),
            "server_start_time": str(self.started),
        }

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The (n, dim) float32 answer for ``texts``."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = np.stack([embed(text, self.dim) for text in texts])
        return np.ascontiguousarray(rows * np.float32(self.scale), dtype=np.float32)

    def encode_frames(self, texts: Sequence[str]) -> list[bytes]:
        """The info and array frames of an encode answer, corrupted if asked to."""
        array = self.vectors(texts)
        mode = self.corrupt
        if mode == "shape":
            array = np.concatenate([array, embed("", self.dim)[np.newaxis, :]])
        elif mode == "dtype":
            array = (array * 1000).astype(np.int32)
        info = {"dtype": str(array.dtype), "shape": list(array.shape), "tokens": ""}
        data = array.tobytes()
        if mode == "bytes":
            data = data[: len(data) // 2]
        info_frame = b"{not json" if mode == "json" else json.dumps(info).encode()
        return [info_frame, data]


@dataclass
class _Answer:
    due: float
    seq: int
    generation: int
    identity: bytes
    frames: list[bytes]


def _bind(sock: zmq.Socket[bytes], host: str, port: int) -> int:
    """Bind on ``host``; port 0 lets the OS pick a free one. Returns the port bound."""
    sock.bind(f"tcp://{host}:{port or '*'}")
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return int(endpoint.rsplit(":", 1)[1])


class RunningBert(FakeBertServer):
    """The stand-in serving on a background thread: PULL on ``port``, PUB on ``port_out``.

    Use as a context manager or call :meth:`stop`. Faults and counts are those of
    :class:`FakeBertServer`, set and read from the test thread.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        port_out: int = 0,
        dim: int = DEFAULT_DIM,
        max_seq_len: int | None = 25,
    ) -> None:
        super().__init__(dim, max_seq_len)
        self.host = host
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            self._pull = self._context.socket(zmq.PULL)
            self._pull.setsockopt(zmq.LINGER, 0)
            # XPUB is PUB on the wire; it also tells us who subscribed (see SUBSCRIBE_WAIT).
            self._pub = self._context.socket(zmq.XPUB)
            self._pub.setsockopt(zmq.LINGER, 0)
            self.port = _bind(self._pull, host, port)
            self.port_out = _bind(self._pub, host, port_out)
        except zmq.ZMQError:
            self._context.destroy(linger=0)
            raise
        self._stopping = threading.Event()
        self._pending: list[_Answer] = []
        self._seq = 0
        self._generation = 0  # bumped by reset(): answers of earlier tests are dropped
        self._subscribed: set[bytes] = set()
        self._departed: set[bytes] = set()
        # The sockets belong to this thread from here on (zmq sockets are not thread-safe).
        self._thread = threading.Thread(target=self._serve, name=_log.name, daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"RunningBert(host={self.host!r}, port={self.port}, port_out={self.port_out})"

    def reset(self) -> None:
        """Clear faults and counts, and drop answers still waiting to go out."""
        self._generation += 1
        super().reset()

    # -- lifecycle -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop serving and release both ports (safe to call twice)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if not self._context.closed:
            self._context.destroy(linger=0)

    def wait(self) -> None:
        """Block until the server stops (foreground use)."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> RunningBert:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the server thread -----------------------------------------------------------------------

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._pull, zmq.POLLIN)
        poller.register(self._pub, zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                events = dict(poller.poll(self._poll_ms()))
                if self._pub in events:
                    self._read_subscriptions()
                if self._pull in events:
                    self._read_requests()
                self._publish_due()
        except Exception:  # a broken stand-in must say why, not die silently
            _log.exception("BERT stand-in stopped on an error")
        finally:
            self._pull.close(linger=0)
            self._pub.close(linger=0)

    def _poll_ms(self) -> int:
        now = time.monotonic()
        future = [answer.due - now for answer in self._pending if answer.due > now]
        if self._pending and not future:
            return 5  # answers held for a subscription: look again soon
        return min([POLL_MS, *(int(wait * 1000) + 1 for wait in future)])

    def _read_subscriptions(self) -> None:
        while True:
            try:
                message = self._pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not message:
                continue
            topic = message[1:]
            if message[0] == 1:
                self._subscribed.add(topic)
                self._departed.discard(topic)
            else:
                self._subscribed.discard(topic)
                if len(self._departed) > 10_000:  # long-running dev server: bound the memory
                    self._departed.clear()
                self._departed.add(topic)

    def _read_requests(self) -> None:
        while True:
            try:
                frames = self._pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self._handle(frames)
            except Exception:  # one odd request must not stop the stand-in
                _log.exception("BERT stand-in could not handle a request")

    def _handle(self, frames: list[bytes]) -> None:
        if len(frames) != 4:
            _log.warning("ignoring a request of %d frames (expected 4)", len(frames))
            return
        identity, payload, req_id, _msg_len = frames
        if payload in CONFIG_COMMANDS:
            self._count("config", 1)
            if self.down:
                return
            answer = [json.dumps(self.config(identity, self.port, self.port_out)).encode()]
        else:
            try:
                texts = json.loads(payload)
            except ValueError:
                texts = None
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                _log.warning("ignoring an encode request that is not a JSON list of strings")
                return
            self._count("requests", 1)
            self._count("texts", len(texts))
            _log.info("encode request: %d texts", len(texts))  # never the texts: user questions
            if self.down:
                return
            answer = self.encode_frames(texts)
        self._seq += 1
        due = time.monotonic() + max(0.0, self.delay)
        frames = [identity, *answer, req_id]
        self._pending.append(_Answer(due, self._seq, self._generation, identity, frames))

    def _publish_due(self) -> None:
        if not self._pending:
            return
        now = time.monotonic()
        ready: list[_Answer] = []
        waiting: list[_Answer] = []
        for answer in self._pending:
            if answer.generation != self._generation:
                continue
            known = answer.identity in self._subscribed or answer.identity in self._departed
            if answer.due > now or (not known and now < answer.due + SUBSCRIBE_WAIT):
                waiting.append(answer)
            else:
                ready.append(answer)
        self._pending = waiting
        for answer in sorted(ready, key=lambda a: (a.due, a.seq)):
            # Counted before the send, so a client that has the answer sees it counted.
            if len(answer.frames) == 4:
                self._count("answered", 1)
            self._pub.send_multipart(answer.frames)


def running(
    port: int = 0,
    port_out: int = 0,
    dim: int = DEFAULT_DIM,
    host: str = "127.0.0.1",
    max_seq_len: int | None = 25,
) -> RunningBert:
    """Start the stand-in on a background thread (port 0 = any free port) and return it."""
    return RunningBert(host, port, port_out, dim, max_seq_len)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the stand-in in the foreground until interrupted, by default on the ports the
    service's settings expect (BERT_PORT, BERT_PORT_OUT)."""
    from berater.settings import default

    parser = argparse.ArgumentParser(description="Stand-in bert-serving server (development).")
    parser.add_argument("--host", default="127.0.0.1")
    port, port_out = default("BERT_PORT"), default("BERT_PORT_OUT")
    parser.add_argument("--port", type=int, default=port, help="requests (0: any free port)")
    parser.add_argument("--port-out", type=int, default=port_out, help="answers (0: any free port)")
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM)
    parser.add_argument("--max-seq-len", type=int, default=25)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {_log.name} %(message)s")
    server = running(args.port, args.port_out, args.dim, args.host, args.max_seq_len)
    server.delay = args.delay
    print(f"BERT stand-in on {args.host} port {server.port} port_out {server.port_out}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
