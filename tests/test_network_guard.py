"""The suite reaches nothing beyond this machine: only loopback and unix sockets connect."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest
import pytest_socket


def test_connections_beyond_loopback_are_refused_before_any_packet() -> None:
    # The guard must be in place first, so that the connect below can never go out.
    assert socket.socket.connect is not pytest_socket._true_connect
    with (
        socket.socket() as sock,
        pytest.raises(pytest_socket.SocketConnectBlockedError),
        pytest.warns(UserWarning, match="192.0.2.1"),
    ):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1: refused by the guard, never sent


def test_loopback_and_unix_sockets_still_connect() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "s")
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(path)
            server.listen(1)
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(path)
