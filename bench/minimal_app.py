"""The floor under `GET /api/ping`: a bare Flask app answering the same envelope.

One route, `GET /api/ping`, which builds `{"code": 200, "error": "", "data": {"pong": true}}`
with orjson on each request, as berater's `ok()` does, and nothing else: no hooks, no
validation, no logging. bench/token_check.py serves it with gunicorn beside the real app
and prints `/api/ping`'s rate as a share of this one's.

    gunicorn --chdir bench --worker-class sync --workers 2 minimal_app:app
"""

from __future__ import annotations

import orjson
from flask import Flask, Response

app = Flask(__name__)


@app.get("/api/ping")
def ping() -> Response:
    body = orjson.dumps({"code": 200, "error": "", "data": {"pong": True}})
    return Response(body, status=200, mimetype="application/json")
