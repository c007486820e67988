"""Request and response schemas of the REST API (ConnectionCreate / Update / Public ...)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

LEVEL_SCHEMA: JsonDict = {"minimum": 1, "maximum": 25}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectionCreate(Strict):
    """The Create connection pane. Secret settings (write_key) are write-only."""

    name: str = Field(description="1-100 characters, unique in the account (case ignored)")
    application: str = Field(description="an application key from GET /applications")
    settings: dict[str, str | None] = Field(
        default_factory=dict,
        description="the application's settings, e.g. {write_key, region, endpoint}")
    concurrency_level: int | None = Field(
        default=None, json_schema_extra=LEVEL_SCHEMA, description="1-25; null means 25")
    borrow_concurrency_from: str | None = Field(
        default=None, description="id of a connection of the same application")


class ConnectionUpdate(Strict):
    """An edit. The application cannot change and the write key must be entered again."""

    name: str
    application: str | None = Field(default=None, description="if given, must be unchanged")
    settings: dict[str, str | None] = Field(
        default_factory=dict, description="must include write_key again")
    concurrency_level: int | None = Field(default=None, json_schema_extra=LEVEL_SCHEMA)
    borrow_concurrency_from: str | None = None


class ConnectionTest(Strict):
    """A configuration to test without saving it."""

    application: str
    settings: dict[str, str | None] = Field(default_factory=dict)


class EffectiveConcurrency(BaseModel):
    level: int
    borrowing: bool
    lender_id: str | None
    lender_name: str | None
    note: str


class ConnectionPublic(BaseModel):
    """A connection as the API shows it: ``settings.has_write_key`` instead of the key."""

    id: str
    name: str
    application: str
    settings: dict[str, Any]
    concurrency_level: int | None
    borrow_concurrency_from: str | None
    effective_concurrency: EffectiveConcurrency
    status: str = Field(description="online or offline")
    last_test: dict[str, Any] | None
    used_by: dict[str, Any]
    created_at: str | None
    updated_at: str | None


class CheckPublic(BaseModel):
    name: str
    outcome: str
    label: str
    detail: str


class TestResult(BaseModel):
    ok: bool
    endpoint: str
    status: int | None
    latency_ms: float
    message_id: str | None
    cause: str | None
    message: str
    checks: list[CheckPublic]
    debugger_hint: str


class SettingPublic(BaseModel):
    name: str
    label: str
    kind: str
    required: bool
    advanced: bool
    secret: bool
    help: str
    choices: list[dict[str, str]]
    default: str | None


class ApplicationPublic(BaseModel):
    key: str
    name: str
    description: str
    capabilities: list[str]
    settings: list[SettingPublic]


class AuditPublic(BaseModel):
    at: str | None
    actor: str
    action: str
    entity: str
    entity_id: str
    fields: list[str]


class LoginRequest(Strict):
    email: str
    password: str


class Me(BaseModel):
    email: str
    account_id: str
    is_admin: bool


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
