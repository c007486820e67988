"""/api/v1/alerts: the account's alert settings (the webhook URL is write-only) and a test
notification."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

from segbridge.alerts.service import (
    MAX_RECIPIENTS,
    MAX_URL_CHARS,
    AlertSettingsDraft,
    AlertSettingsPublic,
    AlertTestResult,
)
from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.api.schemas import STRIPPED, ErrorResponse, whole_number

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 422)}
router = APIRouter(prefix="/alerts", tags=["alerts"], responses=ERRORS)

# as strict as the service (alerts.service._validate): what one refuses, the other does too
_NOT_IN_ADDRESS = f"@{STRIPPED},;<>\""
ALERT_EMAIL = (f"^[^{_NOT_IN_ADDRESS}]{{1,64}}@([A-Za-z0-9.-]{{1,253}}\\.[A-Za-z]{{2,63}}"
               "|localhost)$")
_NOT_IN_URL = f"{STRIPPED}*•●·"
WEBHOOK_URL = f"^(https?://[A-Za-z0-9.-]+(:[0-9]{{1,5}})?([/?#][^{_NOT_IN_URL}]*)?)?$"

Recipient = Annotated[str, Field(min_length=6, max_length=254, pattern=ALERT_EMAIL)]
StrictBool = Annotated[bool, Strict()]
Count = Annotated[int, Field(ge=0), BeforeValidator(whole_number)]
Share = Annotated[float, Field(ge=0, lt=1), Strict()]


class AlertSettingsUpdate(BaseModel):
    """PUT /api/v1/alerts. ``webhook_url``: leave it out (or null) to keep the stored one,
    ``""`` to remove it; it is never answered back (``has_webhook_url``)."""

    model_config = ConfigDict(extra="forbid")

    email_recipients: list[Recipient] = Field(
        default_factory=list, max_length=MAX_RECIPIENTS,
        json_schema_extra={"uniqueItems": True},
        description="who gets alert emails (the server's SMTP settings send them)")
    webhook_url: Annotated[str, Field(max_length=MAX_URL_CHARS, pattern=WEBHOOK_URL)] | None = \
        Field(default=None, description="a Slack-compatible incoming webhook (write-only)")
    run_failed: StrictBool = Field(default=True, description="notify when a run fails")
    run_errors_over_count: Count | None = Field(
        default=None, description="notify when a run completes with more record errors")
    run_errors_over_share: Share | None = Field(
        default=None, description="... or with a larger share (0-1) of its records failed")
    connection_offline: StrictBool = Field(default=True,
                                           description="notify when a connection goes offline")
    connection_online: StrictBool = Field(default=True,
                                          description="notify when it comes back online")


@router.get("", operation_id="get_alert_settings")
def get_alert_settings(principal: CurrentPrincipal, runtime: RuntimeDep) -> AlertSettingsPublic:
    return runtime.alerts.get(principal)


@router.put("", operation_id="update_alert_settings")
def update_alert_settings(body: AlertSettingsUpdate, principal: CurrentPrincipal,
                          runtime: RuntimeDep) -> AlertSettingsPublic:
    """Replace the settings; ``webhook_url`` left out keeps the stored one, ``""`` removes it."""
    return runtime.alerts.update(principal, AlertSettingsDraft(**body.model_dump()))


@router.post("/test", operation_id="send_test_alert")
def send_test_alert(principal: CurrentPrincipal, runtime: RuntimeDep) -> AlertTestResult:
    """Send a test notification to every configured channel; answers what each did."""
    return runtime.alerts.send_test(principal)
