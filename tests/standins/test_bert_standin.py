"""Tests for the BERT stand-in, over real ZeroMQ on loopback: raw frames and the real client."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import zmq
from bert_serving.client import BertClient
from bert_serving.client import __version__ as CLIENT_VERSION

from standins.bert import CORRUPT_MODES, RunningBert, embed, running

IDENTITY = b"0b5c4a57-5d0f-4b8e-9a59-2c8d7f7e0001"


@pytest.fixture
def server() -> Iterator[RunningBert]:
    with running(dim=16) as srv:
        yield srv


class RawClient:
    """The client's sockets without the client: PUSH requests, SUB to our identity."""

    def __init__(self, server: RunningBert, identity: bytes = IDENTITY) -> None:
        self.identity = identity
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.push = self.context.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(f"tcp://{server.host}:{server.port}")
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, identity)
        self.sub.setsockopt(zmq.RCVTIMEO, 2000)
        self.sub.connect(f"tcp://{server.host}:{server.port_out}")

    def send(self, *frames: bytes) -> None:
        self.push.send_multipart(list(frames))

    def request(self, payload: bytes, req_id: int, msg_len: int = 0) -> None:
        self.send(self.identity, payload, b"%d" % req_id, b"%d" % msg_len)

    def receive(self, timeout_ms: int = 2000) -> list[bytes]:
        self.sub.setsockopt(zmq.RCVTIMEO, timeout_ms)
        return self.sub.recv_multipart()

    def close(self) -> None:
        self.context.destroy(linger=0)


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Requests travel asynchronously: wait until the server has seen one."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the stand-in did not receive the request"
        time.sleep(0.005)


@pytest.fixture
def raw(server: RunningBert) -> Iterator[RawClient]:
    client = RawClient(server)
    yield client
    client.close()


def test_config_answer_is_three_frames_with_the_request_id(
    server: RunningBert, raw: RawClient
) -> None:
    raw.request(b"SHOW_CONFIG", 7)
    identity, body, req_id = raw.receive()
    assert identity == IDENTITY and req_id == b"7"
    config = json.loads(body)
    assert config["server_version"] == CLIENT_VERSION
    assert config["client"] == IDENTITY.decode()
    assert config["max_seq_len"] == 25 and config["show_tokens_to_client"] is False
    assert (config["port"], config["port_out"]) == (server.port, server.port_out)
    raw.request(b"SHOW_STATUS", 8)
    assert raw.receive()[2] == b"8"
    assert server.config_requests == 2


def test_encode_answer_carries_dtype_shape_and_the_array(
    server: RunningBert, raw: RawClient
) -> None:
    texts = ["录取", "报到时间"]
    raw.request(json.dumps(texts, ensure_ascii=False).encode(), 3, len(texts))
    identity, info, data, req_id = raw.receive()
    assert identity == IDENTITY and req_id == b"3"
    assert json.loads(info) == {"dtype": "float32", "shape": [2, 16], "tokens": ""}
    array = np.frombuffer(data, dtype=np.float32).reshape(2, 16)
    assert np.array_equal(array, np.stack([embed(t, 16) for t in texts]))
    assert (server.requests, server.texts_seen, server.answered) == (1, 2, 1)


def test_the_real_client_passes_its_checks_and_encodes(server: RunningBert) -> None:
    with BertClient(
        port=server.port, port_out=server.port_out, timeout=2000, check_length=False
    ) as client:
        vectors = client.encode(["新生报到", "宿舍"])
        assert client.server_config["server_version"] == CLIENT_VERSION
        assert client.server_status["num_worker"] == 1
    assert vectors.shape == (2, 16) and vectors.dtype == np.float32


def test_answers_go_only_to_the_identity_that_asked(server: RunningBert, raw: RawClient) -> None:
    other = RawClient(server, identity=b"0b5c4a57-5d0f-4b8e-9a59-2c8d7f7e0002")
    try:
        raw.request(json.dumps(["问题"]).encode(), 1, 1)
        assert raw.receive()[0] == IDENTITY
        with pytest.raises(zmq.Again):
            other.receive(timeout_ms=200)
    finally:
        other.close()


def test_vectors_are_deterministic_unit_length_and_similar_for_shared_characters() -> None:
    a, b, c = (embed(t) for t in ("录取通知书什么时候寄出", "录取通知书何时寄出", "食堂几点开门"))
    assert np.array_equal(a, embed("录取通知书什么时候寄出"))
    assert a.dtype == np.float32 and a.shape == (768,)
    assert np.isclose(np.linalg.norm(a), 1.0, atol=1e-6)
    assert float(a @ b) > 0.6 > 0.3 > float(a @ c)
    assert np.array_equal(embed("Hello World"), embed("hello  world"))


def test_a_blank_text_gets_a_fixed_non_zero_vector() -> None:
    blank = embed("")
    assert np.array_equal(blank, embed("   "))
    assert np.isclose(np.linalg.norm(blank), 1.0)


def test_delay_holds_each_answer(server: RunningBert, raw: RawClient) -> None:
    server.delay = 0.4
    start = time.monotonic()
    raw.request(b"SHOW_CONFIG", 1)
    raw.receive()
    assert time.monotonic() - start >= 0.4


def test_delayed_answers_do_not_hold_up_later_ones(server: RunningBert, raw: RawClient) -> None:
    server.delay = 0.8
    raw.request(json.dumps(["慢"]).encode(), 1, 1)
    wait_until(lambda: server.requests == 1)
    server.delay = 0.0
    raw.request(json.dumps(["快"]).encode(), 2, 1)
    assert raw.receive(timeout_ms=500)[-1] == b"2"
    assert raw.receive(timeout_ms=2000)[-1] == b"1"


def test_down_receives_and_counts_but_never_answers(server: RunningBert, raw: RawClient) -> None:
    server.down = True
    raw.request(b"SHOW_CONFIG", 1)
    raw.request(json.dumps(["有人吗", "在吗"]).encode(), 2, 2)
    with pytest.raises(zmq.Again):
        raw.receive(timeout_ms=300)
    assert (server.config_requests, server.requests, server.texts_seen) == (1, 1, 2)
    server.down = False
    raw.request(b"SHOW_CONFIG", 3)
    assert raw.receive()[-1] == b"3"  # nothing left over from while it was down


@pytest.mark.parametrize("mode", CORRUPT_MODES)
def test_corrupt_modes_send_what_they_announce(
    server: RunningBert, raw: RawClient, mode: str
) -> None:
    server.corrupt = mode
    raw.request(json.dumps(["一", "二"]).encode(), 1, 2)
    _, info, data, _ = raw.receive()
    if mode == "json":
        with pytest.raises(ValueError):
            json.loads(info)
        return
    header = json.loads(info)
    if mode == "shape":
        assert header["shape"] == [3, 16] and len(data) == 3 * 16 * 4
    elif mode == "dtype":
        assert header["dtype"] == "int32" and header["shape"] == [2, 16]
    else:
        assert header["shape"] == [2, 16] and len(data) < 2 * 16 * 4


def test_unknown_corrupt_mode_is_refused(server: RunningBert) -> None:
    with pytest.raises(ValueError, match="corrupt"):
        server.corrupt = "garbage"


def test_malformed_requests_are_ignored_and_serving_goes_on(
    server: RunningBert, raw: RawClient
) -> None:
    raw.send(IDENTITY, b"SHOW_CONFIG")  # two frames instead of four
    raw.request(b"not json", 1, 1)
    raw.request(json.dumps([1, 2]).encode(), 2, 2)
    raw.request(b"SHOW_CONFIG", 3)
    assert raw.receive()[-1] == b"3"
    assert server.requests == 0


def test_reset_clears_faults_counts_and_pending_answers(
    server: RunningBert, raw: RawClient
) -> None:
    server.delay = 0.3
    raw.request(json.dumps(["迟到"]).encode(), 1, 1)
    wait_until(lambda: server.requests == 1)
    server.down, server.corrupt, server.scale = True, "json", 3.0
    server.reset()
    assert (server.delay, server.down, server.corrupt, server.scale) == (0.0, False, None, 1.0)
    assert (server.requests, server.texts_seen, server.config_requests) == (0, 0, 0)
    with pytest.raises(zmq.Again):
        raw.receive(timeout_ms=600)  # the answer of before the reset is dropped


def test_scale_multiplies_the_vectors(server: RunningBert, raw: RawClient) -> None:
    server.scale = 4.0
    raw.request(json.dumps(["长度"]).encode(), 1, 1)
    data = raw.receive()[2]
    assert np.isclose(np.linalg.norm(np.frombuffer(data, dtype=np.float32)), 4.0, atol=1e-5)


def test_port_zero_picks_free_ports_and_stop_releases_them() -> None:
    first = running(dim=8)
    port, port_out = first.port, first.port_out
    assert port != port_out and min(port, port_out) > 0
    first.stop()
    first.stop()  # twice is fine
    assert not first._thread.is_alive()
    with running(port=port, port_out=port_out, dim=8) as again:
        assert (again.port, again.port_out) == (port, port_out)


def test_main_serves_in_a_separate_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "standins.bert", "--port", "0", "--port-out", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        words = proc.stdout.readline().split()
        port, port_out = int(words[words.index("port") + 1]), int(words[-1])
        with BertClient(port=port, port_out=port_out, timeout=5000, check_length=False) as bc:
            assert bc.encode(["你好"]).shape == (1, 768)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
