"""Fixtures for the Q&A tests: the test handbook's index, the stand-in BERT server and an
encoder pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berater.qna.bert import BertEncoder
from berater.qna.corpus import load
from berater.qna.index import Index
from berater.standins import bert as bert_standin

# Short, so that timeout tests are quick; the stand-in answers in milliseconds.
BERT_TEST_TIMEOUT = 1.0
# A small handbook in the text format: 9 paragraphs in 3 chapters, pages 3 to 41.
HANDBOOK = Path(__file__).with_name("handbook.txt")


@pytest.fixture(scope="session")
def qna_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test handbook's index file, built once."""
    path = tmp_path_factory.mktemp("qna") / "qna-index.npz"
    Index.build(load(HANDBOOK), ["缓考", "绩点", "校园卡"]).save(path)
    return path


@pytest.fixture(scope="session")
def bert_server() -> Iterator[bert_standin.RunningBert]:
    """The stand-in bert-serving server on loopback ports, for the whole session."""
    server = bert_standin.running()
    yield server
    server.stop()


@pytest.fixture
def bert(bert_server: bert_standin.RunningBert) -> Iterator[bert_standin.RunningBert]:
    """The session's stand-in with no faults and zero counts; faults are cleared afterwards."""
    bert_server.reset()
    yield bert_server
    bert_server.reset()


@pytest.fixture
def bert_settings(bert: bert_standin.RunningBert) -> dict[str, Any]:
    """App settings pointing the BERT backend at the stand-in: ``make_app(**bert_settings)``."""
    return {
        "BERT_HOST": bert.host,
        "BERT_PORT": bert.port,
        "BERT_PORT_OUT": bert.port_out,
        "BERT_TIMEOUT": BERT_TEST_TIMEOUT,
    }


@pytest.fixture
def encoder(bert: bert_standin.RunningBert) -> Iterator[BertEncoder]:
    """An encoder for the stand-in with a 0.5 s timeout, closed after the test."""
    enc = BertEncoder(bert.host, bert.port, bert.port_out, timeout=0.5)
    yield enc
    enc.close()
