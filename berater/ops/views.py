"""`/healthz` (alive, no I/O) and `/readyz` (the database, the store, the Q&A index)."""

from __future__ import annotations

import logging

import orjson
from flask import Response, current_app

from berater import metrics
from berater.ops import bp, health

log = logging.getLogger("berater.ops")
NO_STORE = {"Cache-Control": "no-store"}


def _answer(status: int, error: str, data: object) -> Response:
    """The envelope, always with the real status on the status line (also under
    LEGACY_STATUS_200: a probe reads the status line, not the body)."""
    body = orjson.dumps({"code": status, "error": error, "data": data})
    return Response(body, status, NO_STORE, content_type="application/json")


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; nothing else is asked (a restart cannot fix a database outage)."""
    return _answer(200, "", {"alive": True})


@bp.get("/readyz")
def readyz() -> Response:
    """200 when the database, the store and (when QNA_BACKEND uses it) the Q&A index are
    usable; else 503 naming the parts that are not, in `error` and in `data`."""
    state = health.readiness()
    if state.ready:
        return _answer(200, "", state.parts)
    failed = ", ".join(state.failed)
    log.warning("not ready: %s", "; ".join(f"{name} {state.parts[name]}" for name in state.failed))
    return _answer(503, f"not ready: {failed}", state.parts)


def metrics_view() -> Response:
    """Prometheus metrics, added up over the workers (registered when METRICS is on)."""
    body, media_type = metrics.render(current_app.config["PROMETHEUS_MULTIPROC_DIR"])
    return Response(body, 200, NO_STORE, content_type=media_type)
