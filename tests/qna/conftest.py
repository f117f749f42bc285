"""Fixtures for the Q&A tests: the stand-in BERT server, an encoder pointed at it, and the test
handbook's index with the stand-in's embeddings (the handbook and its plain index are in
tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berater.qna.bert import BertEncoder
from berater.qna.corpus import load
from berater.qna.engine import Engine
from berater.qna.index import Index
from standins import bert as bert_standin
from tests.conftest import HANDBOOK

# Short, so that timeout tests are quick; the stand-in answers in milliseconds.
BERT_TEST_TIMEOUT = 1.0


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """An index file built from the test handbook, for an app or gunicorn to serve."""
    from tests.qna.test_reload import build

    path = tmp_path / "served" / "qna-index.npz"
    build(HANDBOOK, path)
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


@pytest.fixture(scope="session")
def bert_index(
    bert_server: bert_standin.RunningBert, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The test handbook's index with the stand-in's paragraph embeddings, built once."""
    index = Index.build(load(HANDBOOK), ["缓考", "绩点"])
    with BertEncoder(bert_server.host, bert_server.port, bert_server.port_out, 2.0) as enc:
        index.vectors = Engine(index, enc).embed_paragraphs()
    path = tmp_path_factory.mktemp("qna-bert") / "qna-index.npz"
    index.save(path)
    return path
