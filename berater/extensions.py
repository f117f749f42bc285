"""Unbound extension instances; `create_app` binds each one once."""

from __future__ import annotations

from typing import Any

from flask_migrate import Migrate
from spectree import SecurityScheme
from spectree.models import InType, SecureType, SecuritySchemeData

from berater.db import db
from berater.docs.pages import PAGE_TEMPLATES
from berater.ext.crypto import Crypto
from berater.ext.sms import Sms
from berater.ext.store import Store
from berater.ext.tasks import Tasks
from berater.ext.upstream import Upstream
from berater.ext.wechat import WeChat
from berater.http import Spec, Validation, on_errors_only
from berater.qna.answers import Qna


@on_errors_only
def _reject_invalid(
    req: Any, resp: Any, req_validation_error: Any, instance: Any, *args: Any
) -> None:
    """Turn spectree's validation failure into our 400 envelope with field-level details."""
    from berater.errors import ValidationFailed

    if req_validation_error is None:
        return
    raise ValidationFailed.of(req_validation_error.errors(include_input=False, include_url=False))


spec = Spec(
    "flask",
    backend=Validation,
    title="Berater API",
    version="1",
    path="docs",
    mode="strict",  # document the API routes, not the sign-in pages
    page_templates=PAGE_TEMPLATES,  # /docs/swagger/, /docs/redoc/, /docs/scalar/: no CDN
    description="Sign-in and identity for the admissions office's WeChat service account. "
    'Every answer is the envelope {"code", "error", "data"}.',
    before=_reject_invalid,
    validation_error_status=400,
    security_schemes=[
        SecurityScheme(
            name="bearer",
            data=SecuritySchemeData(
                type=SecureType.HTTP, scheme="bearer", description="a Berater token"
            ),
        ),
        SecurityScheme(
            name="app",
            data=SecuritySchemeData(
                type=SecureType.API_KEY,
                field_in=InType.HEADER,
                name="Authorization",
                description="server-to-server: `Bearer <app> <app_token>`",
            ),
        ),
    ],
)

migrate = Migrate(render_as_batch=True, compare_type=True)
store = Store()
crypto = Crypto()
wechat = WeChat()
tasks = Tasks()  # the background pool (berater/ext/tasks.py): TASK_WORKERS, TASK_QUEUE
sms = Sms()  # SMS codes: Aliyun or the console backend (berater/ext/sms.py)
upstream = Upstream()  # slots of outbound sign-in and SMS calls (ext/upstream.py)
qna = Qna()  # the Q&A engine's interface (berater/qna/answers.py), QNA_BACKEND

__all__ = ["crypto", "db", "migrate", "qna", "sms", "spec", "store", "tasks", "upstream", "wechat"]
