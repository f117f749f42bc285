"""The handbook Q&A: corpus, segmentation, the lexical index, the BERT backend, the engine
each worker serves (`/api/qna`, `/api/bert`, the webhook's text answers) and
`flask qna build|eval|ask`."""

from flask import Blueprint, Flask

bp = Blueprint("qna", __name__)


def init_app(app: Flask, api: Blueprint) -> None:
    """Load the engine for this app, register its routes under `api` and its commands."""
    from berater.extensions import qna
    from berater.qna import views  # noqa: F401 - routes register on bp
    from berater.qna.cli import qna_cli

    qna.init_app(app)
    api.register_blueprint(bp)
    app.cli.add_command(qna_cli)
