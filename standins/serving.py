"""Serving a stand-in: a threaded server on a background thread, or in the foreground."""

from __future__ import annotations

import logging
import threading
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class Fake(Protocol):
    def make_app(self) -> Flask: ...


F = TypeVar("F", bound=Fake)


def _handler(log: logging.Logger) -> type[WSGIRequestHandler]:
    class RedactingRequestHandler(WSGIRequestHandler):
        """Logs method, path and status only: query strings carry secrets, phones and codes."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            log.info("%s %s -> %s", self.command, urlsplit(self.path).path, code)

        def log_error(self, format: str, *args: Any) -> None:
            log.warning("request error from %s", self.address_string())

    return RedactingRequestHandler


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make(fake: Fake, host: str, port: int, log: logging.Logger) -> BaseWSGIServer:
    """A threaded server for the fake's app (port 0 = any free port)."""
    return make_server(host, port, fake.make_app(), threaded=True, request_handler=_handler(log))


class Running(Generic[F]):
    """A stand-in server on a background thread; use as a context manager or call stop()."""

    def __init__(self, fake: F, host: str, port: int, log: logging.Logger) -> None:
        self.fake = fake
        self._server = make(fake, host, port, log)
        self.url = base_url(host, self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=log.name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (safe to call twice)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
            self._server.server_close()

    def __enter__(self) -> Running[F]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_forever(fake: Fake, host: str, port: int, log: logging.Logger, label: str) -> None:
    """Serve in the foreground until interrupted, printing where."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {log.name} %(message)s")
    server = make(fake, host, port, log)
    print(f"{label} on {base_url(host, server.server_port)}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
