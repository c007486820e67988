"""/api/v1/alerts: the account's alert settings (the webhook URL is write-only) and a test
notification."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from segbridge.alerts.service import AlertSettingsPublic, AlertSettingsUpdate, AlertTestResult
from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.api.schemas import ErrorResponse

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 422)}
router = APIRouter(prefix="/alerts", tags=["alerts"], responses=ERRORS)


@router.get("", operation_id="get_alert_settings")
def get_alert_settings(principal: CurrentPrincipal, runtime: RuntimeDep) -> AlertSettingsPublic:
    return runtime.alerts.get(principal)


@router.put("", operation_id="update_alert_settings")
def update_alert_settings(body: AlertSettingsUpdate, principal: CurrentPrincipal,
                          runtime: RuntimeDep) -> AlertSettingsPublic:
    """Replace the settings; ``webhook_url`` left out keeps the stored one, ``""`` removes it."""
    return runtime.alerts.update(principal, body)


@router.post("/test", operation_id="send_test_alert")
def send_test_alert(principal: CurrentPrincipal, runtime: RuntimeDep) -> AlertTestResult:
    """Send a test notification to every configured channel; answers what each did."""
    return runtime.alerts.send_test(principal)
