"""The webhook box of a webhook flow's page: its URL (shown once, after it is created or
rotated, with a copy button), the verification secret (write-only), the counts and the last
payloads. Thin routes over ``WebhookListeners``; the box is loaded into the builder page by
htmx (``flows/_webhook.html``) and each action answers the box again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from segbridge.accounts.roles import Permission, may
from segbridge.core.errors import SegbridgeError
from segbridge.core.secrets import Secret
from segbridge.runs.webhook_listeners import WebhookListenerPublic, WebhookListeners
from segbridge.web.auth import CheckedForm, MayEditFlows, SignedIn, WebUser, form_text, runtime_of
from segbridge.web.rendering import render
from segbridge.web.routes.flows.common import builder_url

router = APIRouter(include_in_schema=False)
TEMPLATE = "flows/_webhook.html"


def _listeners(request: Request) -> WebhookListeners:
    runtime = runtime_of(request)
    return WebhookListeners(runtime.db, runtime.vault, lambda: runtime.settings.base_url)


def _box(request: Request, user: WebUser, flow_id: str, *,
         listener: WebhookListenerPublic | None = None, status: int = 200,
         message: str = "", tone: str = "ok") -> Response:
    listeners = _listeners(request)
    try:
        shown = listener or listeners.find(user.principal, flow_id)
        payloads = listeners.payloads(user.principal, flow_id, 5) \
            if shown is not None and may(user.principal, Permission.VIEW_RECORD_DATA) else []
    except SegbridgeError as exc:
        return render(TEMPLATE, status=exc.http_status, user=user, webhook_error=exc.message,
                      builder_url=builder_url(flow_id))
    context: dict[str, Any] = {"user": user, "listener": shown, "payloads": payloads,
                               "builder_url": builder_url(flow_id), "message": message,
                               "tone": tone}
    return render(TEMPLATE, status=status, **context)


@router.get("/flows/{flow_id}/webhook")
def webhook_box(request: Request, flow_id: str, user: SignedIn) -> Response:
    return _box(request, user, flow_id)


@router.post("/flows/{flow_id}/webhook")
def create_url(request: Request, flow_id: str, user: MayEditFlows, _: CheckedForm) -> Response:
    return _act(request, user, flow_id, "create")


@router.post("/flows/{flow_id}/webhook/rotate")
def rotate_url(request: Request, flow_id: str, user: MayEditFlows, _: CheckedForm) -> Response:
    return _act(request, user, flow_id, "rotate")


@router.post("/flows/{flow_id}/webhook/secret")
def set_secret(request: Request, flow_id: str, user: MayEditFlows,
               form: CheckedForm) -> Response:
    text = form_text(form, "secret")
    try:
        listener = _listeners(request).set_secret(user.principal, flow_id,
                                                  Secret(text) if text else None)
    except SegbridgeError as exc:
        return _box(request, user, flow_id, status=exc.http_status, message=exc.message,
                    tone="error")
    _forget(request, flow_id)
    return _box(request, user, flow_id, listener=listener,
                message="Secret saved." if text else "Secret removed.")


def _act(request: Request, user: WebUser, flow_id: str, action: str) -> Response:
    listeners = _listeners(request)
    try:
        listener = listeners.create(user.principal, flow_id) if action == "create" \
            else listeners.rotate(user.principal, flow_id)
    except SegbridgeError as exc:
        return _box(request, user, flow_id, status=exc.http_status, message=exc.message,
                    tone="error")
    _forget(request, flow_id)
    done = "created" if action == "create" else "rotated: the old URL no longer works"
    return _box(request, user, flow_id, listener=listener,
                message=f"URL {done}. Copy it now: it is shown only this once.")


def _forget(request: Request, flow_id: str) -> None:
    webhooks = getattr(request.app.state, "webhooks", None)
    if webhooks is not None:
        webhooks.intake.forget(flow_id)
