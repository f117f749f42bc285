"""The BERT transport (berater/qna/bert.py) against the stand-in server, over real ZeroMQ."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from berater.qna.bert import (
    BertEncoder,
    BertUnavailable,
    encoder_from_config,
    require_encoder,
)
from berater.settings import ConfigError, load_config
from standins.bert import CORRUPT_MODES, RunningBert, embed, running

QUESTIONS = ["录取通知书什么时候寄出？", "新生报到需要带什么材料", "宿舍有没有空调"]
SLACK = 1.5  # seconds beyond the timeout a failing call may take


def expected(texts: list[str], dim: int = 768) -> np.ndarray:
    return np.stack([embed(text, dim) for text in texts])


def timed_failure(encoder: BertEncoder, texts: list[str]) -> tuple[BertUnavailable, float]:
    start = time.monotonic()
    with pytest.raises(BertUnavailable) as info:
        encoder.encode(texts)
    return info.value, time.monotonic() - start


def test_encode_returns_one_unit_float32_row_per_text(
    bert: RunningBert, encoder: BertEncoder
) -> None:
    vectors = encoder.encode(QUESTIONS)
    assert vectors.shape == (3, 768)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors, expected(QUESTIONS), atol=1e-6)
    assert encoder.dim == 768
    assert vectors.flags.writeable  # a copy, not a view of the client's receive buffer
    assert bert.requests == 1 and bert.texts_seen == 3


def test_encode_is_deterministic_across_calls_and_connections(
    bert: RunningBert, encoder: BertEncoder
) -> None:
    first = encoder.encode(QUESTIONS)
    assert np.array_equal(encoder.encode(QUESTIONS), first)
    with BertEncoder(bert.host, bert.port, bert.port_out, timeout=0.5) as other:
        assert np.array_equal(other.encode(QUESTIONS), first)


def test_similar_questions_score_a_higher_cosine_than_unrelated_ones(
    encoder: BertEncoder,
) -> None:
    query, similar, unrelated = encoder.encode(
        ["录取通知书什么时候寄出", "录取通知书何时寄出？", "食堂几点开门"]
    )
    assert float(query @ similar) > 0.6
    assert float(query @ unrelated) < 0.3


def test_rows_are_normalised_when_the_server_answers_longer_vectors(
    bert: RunningBert, encoder: BertEncoder
) -> None:
    bert.scale = 7.5  # real BERT vectors are not unit length
    vectors = encoder.encode(QUESTIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors, expected(QUESTIONS), atol=1e-6)


def test_a_server_that_does_not_answer_raises_within_the_timeout(
    bert: RunningBert, encoder: BertEncoder
) -> None:
    encoder.encode(["先连上"])  # the client exists; now the encode itself goes unanswered
    bert.down = True
    error, elapsed = timed_failure(encoder, ["有人吗"])
    assert error.reason == "timeout"
    assert "did not answer within 0.5 s" in str(error)
    assert 0.4 < elapsed < 0.5 + SLACK
    assert bert.requests == 2  # it was received, just never answered


def test_first_call_to_a_silent_server_fails_within_the_timeout_while_connecting(
    bert: RunningBert, encoder: BertEncoder
) -> None:
    bert.down = True
    error, elapsed = timed_failure(encoder, ["有人吗"])
    assert error.reason == "timeout"
    assert elapsed < 0.5 + SLACK
    assert bert.config_requests == 1 and bert.requests == 0  # stopped at the config request


def test_a_port_nobody_listens_on_raises_within_the_timeout() -> None:
    with running() as gone:
        host, port, port_out = gone.host, gone.port, gone.port_out
    with BertEncoder(host, port, port_out, timeout=0.5) as encoder:
        error, elapsed = timed_failure(encoder, ["有人吗"])
    assert error.reason == "timeout"
    assert elapsed < 0.5 + SLACK


def test_encoder_recovers_when_the_server_answers_again(
    bert: RunningBert, encoder: BertEncoder
) -> None:
    bert.down = True
    timed_failure(encoder, ["有人吗"])
    bert.down = False
    assert np.allclose(encoder.encode(QUESTIONS), expected(QUESTIONS), atol=1e-6)


def test_a_late_answer_to_a_timed_out_request_is_not_taken_for_the_next_one(
    bert: RunningBert,
) -> None:
    with BertEncoder(bert.host, bert.port, bert.port_out, timeout=1.0) as encoder:
        encoder.encode(["先连上"])
        bert.delay = 1.3
        error, _ = timed_failure(encoder, ["第一个问题：学费多少"])
        assert error.reason == "timeout"
        # A new connection asks for the config (due at about 1.35 s), then encodes (1.7 s):
        # the stale answer goes out at 1.3 s, while the new client waits.
        bert.delay = 0.35
        vectors = encoder.encode(["第二个问题：宿舍在哪"])
    assert bert.answered == 3  # the first, the late one, the second
    assert np.allclose(vectors, expected(["第二个问题：宿舍在哪"]), atol=1e-6)


def test_a_slow_server_raises_then_the_next_call_works(
    bert: RunningBert, encoder: BertEncoder
) -> None:
    bert.delay = 1.0
    error, elapsed = timed_failure(encoder, ["慢"])
    assert error.reason == "timeout" and elapsed < 0.5 + SLACK
    bert.delay = 0.0
    assert np.allclose(encoder.encode(["快"]), expected(["快"]), atol=1e-6)


@pytest.mark.parametrize("mode", CORRUPT_MODES)
def test_a_bad_answer_raises_and_the_next_good_one_is_used(
    bert: RunningBert, encoder: BertEncoder, mode: str
) -> None:
    bert.corrupt = mode
    error, elapsed = timed_failure(encoder, QUESTIONS)
    assert error.reason == "bad_answer"
    assert "bad answer" in str(error)
    assert elapsed < 0.5 + SLACK
    bert.corrupt = None
    assert np.allclose(encoder.encode(QUESTIONS), expected(QUESTIONS), atol=1e-6)


def test_a_server_of_another_version_is_refused(bert: RunningBert, encoder: BertEncoder) -> None:
    bert.server_version = "1.9.1"
    error, _ = timed_failure(encoder, ["你好"])
    assert error.reason == "version"
    assert "1.9.1" in str(error) and "1.10.0" in str(error)
    assert bert.requests == 0


def test_concurrent_encodes_each_get_their_own_vectors(
    bert: RunningBert, encoder: BertEncoder
) -> None:
    barrier = threading.Barrier(4)
    results: dict[int, list[tuple[list[str], np.ndarray]]] = {}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            barrier.wait()
            results[worker] = []
            for round_ in range(5):
                texts = [f"线程{worker}的第{round_}个问题", f"问题{worker}-{round_}：报到时间"]
                results[worker].append((texts, encoder.encode(texts)))
        except BaseException as exc:  # re-raised in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors
    assert sorted(results) == [0, 1, 2, 3]
    for pairs in results.values():
        for texts, vectors in pairs:
            assert np.allclose(vectors, expected(texts), atol=1e-6)
    assert bert.requests == 20


def test_concurrent_calls_to_a_silent_server_each_fail_within_the_timeout(
    bert: RunningBert, encoder: BertEncoder
) -> None:
    bert.delay = 3.0
    outcomes: list[tuple[str, float]] = []

    def work() -> None:
        error, elapsed = timed_failure(encoder, ["等待"])
        outcomes.append((error.reason, elapsed))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(outcomes) == 3
    assert all(reason in ("timeout", "busy") for reason, _ in outcomes)
    assert all(elapsed < 0.5 + SLACK for _, elapsed in outcomes)


def test_long_lists_are_sent_in_batches_with_progress(
    bert: RunningBert, encoder: BertEncoder
) -> None:
    texts = [f"手册第{n}段" for n in range(600)]
    seen: list[tuple[int, int]] = []
    vectors = encoder.encode_batches(texts, batch=256, progress=lambda d, t: seen.append((d, t)))
    assert vectors.shape == (600, 768)
    assert np.allclose(vectors, expected(texts), atol=1e-6)
    assert seen == [(256, 600), (512, 600), (600, 600)]
    assert bert.requests == 3
    assert encoder.encode(texts[:300]).shape == (300, 768)
    assert bert.requests == 5  # encode() batches too


def test_blank_or_empty_input_is_refused_before_any_request(
    bert: RunningBert, encoder: BertEncoder
) -> None:
    with pytest.raises(ValueError, match="empty"):
        encoder.encode([])
    with pytest.raises(ValueError, match="blank"):
        encoder.encode(["问题", "  "])
    with pytest.raises(TypeError):
        encoder.encode("一个字符串")
    assert bert.requests == 0 and bert.config_requests == 0


def test_close_then_encode_opens_a_new_connection(bert: RunningBert, encoder: BertEncoder) -> None:
    encoder.encode(["一"])
    encoder.close()
    encoder.close()  # twice is fine
    assert np.allclose(encoder.encode(["二"]), expected(["二"]), atol=1e-6)
    assert bert.config_requests == 2


def test_server_config_reports_the_server_settings(bert: RunningBert, encoder: BertEncoder) -> None:
    config = encoder.server_config()
    assert config["server_version"] == "1.10.0"
    assert config["port"] == bert.port and config["port_out"] == bert.port_out


def test_not_configured_gives_no_encoder() -> None:
    assert encoder_from_config({}) is None
    assert encoder_from_config({"BERT_HOST": "", "BERT_PORT": 5555}) is None
    assert encoder_from_config({"BERT_HOST": "   "}) is None
    with pytest.raises(BertUnavailable, match="not configured") as info:
        require_encoder({"BERT_HOST": ""})
    assert info.value.reason == "not_configured"


def test_encoder_from_config_reads_the_settings_from_the_environment() -> None:
    environ = {
        "BERT_HOST": "bert.internal",
        "BERT_PORT": "6000",
        "BERT_PORT_OUT": "6001",
        "BERT_TIMEOUT": "2.5",
    }
    settings = load_config("testing", environ=environ)
    encoder = encoder_from_config(settings)
    assert encoder is not None
    assert (encoder.host, encoder.port, encoder.port_out) == ("bert.internal", 6000, 6001)
    assert encoder.timeout == 2.5
    defaults = load_config("testing", environ={"BERT_HOST": "10.0.0.8"})
    assert (defaults["BERT_PORT"], defaults["BERT_PORT_OUT"], defaults["BERT_TIMEOUT"]) == (
        5555,
        5556,
        3.0,
    )
    with pytest.raises(ConfigError, match="BERT_PORT"):
        load_config("testing", environ={"BERT_PORT": "fifty"})


@pytest.mark.parametrize(
    "settings",
    [
        {"BERT_HOST": "bert host"},
        {"BERT_HOST": "tcp://bert"},
        {"BERT_HOST": "bert", "BERT_PORT": 70000},
        {"BERT_HOST": "bert", "BERT_PORT_OUT": -1},
        {"BERT_HOST": "bert", "BERT_TIMEOUT": -1.0},
    ],
)
def test_unusable_settings_are_a_config_error(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="BERT settings are invalid"):
        encoder_from_config(settings)


def test_the_shared_fixture_settings_reach_the_stand_in(
    bert: RunningBert, bert_settings: dict[str, Any]
) -> None:
    encoder = require_encoder(bert_settings)
    try:
        assert np.allclose(encoder.encode(["你好"]), expected(["你好"]), atol=1e-6)
    finally:
        encoder.close()
