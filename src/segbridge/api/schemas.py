"""Request and response schemas of the REST API (ConnectionCreate / Update / Public ...)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.config import JsonDict

# defined beside the connection's public form (the service answers them); re-exported here
from segbridge.apps.public import ApplicationPublic as ApplicationPublic
from segbridge.apps.public import SettingPublic as SettingPublic
from segbridge.connections.model import MAX_EVENTS_PER_SECOND, MAX_REQUESTS_PER_SECOND
from segbridge.connections.views import AuditPublic as AuditPublic
from segbridge.connections.views import ConnectionPublic as ConnectionPublic
from segbridge.connections.views import EffectiveConcurrency as EffectiveConcurrency
from segbridge.connections.views import EffectiveRateLimit as EffectiveRateLimit

LEVEL_SCHEMA: JsonDict = {"minimum": 1, "maximum": 25}
# The request schemas are as strict as the services behind them (and pydantic enforces them,
# so a value the schema refuses is refused): the characters ``str.strip()`` removes, spelt
# out (JSON Schema's and pydantic's ``\s`` differ from Python's), so "not blank" and "no
# spaces" mean here what they mean to the services.
STRIPPED = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a"
            "\u2028\u2029\u202f\u205f\u3000")
NOT_BLANK = f"[^{STRIPPED}]"
EMAIL = f"^[^@{STRIPPED}]+@[^{STRIPPED}]+$"
PATTERN_PROBLEMS = {
    NOT_BLANK: "enter a name; it cannot be blank",
    EMAIL: "enter an email address like ana@example.com",
}


def _as_utc(value: datetime | None) -> datetime | None:
    """Stored times are UTC; SQLite hands them back naive. Answer them with their offset."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


UtcDatetime = Annotated[datetime | None, AfterValidator(_as_utc)]


def whole_number(value: Any) -> Any:
    """JSON's integers: 5 and 5.0 (JSON Schema counts both), never "5", true or 5.5."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("enter a whole number")
    return value


# with limits on an optional field, put them first: Annotated[int, Field(ge=1),
# BeforeValidator(whole_number)] | None (after the validator they are lost from the schema)
WholeNumber = Annotated[int, BeforeValidator(whole_number)]


def name_field(description: str = "1-100 characters, not blank", **extra: Any) -> Any:
    return Field(min_length=1, max_length=100, pattern=NOT_BLANK, description=description,
                 **extra)


def rate_field(what: str, most: float) -> Any:
    return Field(default=None, gt=0, le=most, description=(
        f"the connection's rate limit in {what} per second, shared by every worker and by "
        f"the connections that borrow from it; null: no limit"))


class Strict(BaseModel):
    """A request body: exactly the fields and JSON types its schema says (no unknown field,
    no 0 for false or "5" for 5)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ConnectionCreate(Strict):
    """The Create connection pane. Secret settings (write_key) are write-only."""

    name: str = name_field("1-100 characters, unique in the account (case ignored)")
    application: str = Field(description="an application key from GET /applications")
    settings: dict[str, str | None] = Field(
        default_factory=dict, repr=False,  # a write key never shows in a repr or a log
        description="the application's settings, e.g. {write_key, region, endpoint}")
    concurrency_level: WholeNumber | None = Field(
        default=None, json_schema_extra=LEVEL_SCHEMA, description="1-25; null means 25")
    borrow_concurrency_from: str | None = Field(
        default=None, description="id of a connection of the same application")
    requests_per_second: float | None = rate_field("requests", MAX_REQUESTS_PER_SECOND)
    events_per_second: float | None = rate_field("events", MAX_EVENTS_PER_SECOND)


class ConnectionUpdate(Strict):
    """An edit. The application cannot change and the write key must be entered again."""

    name: str = name_field("1-100 characters, unique in the account (case ignored)")
    application: str | None = Field(default=None, description="if given, must be unchanged")
    settings: dict[str, str | None] = Field(
        default_factory=dict, repr=False, description="must include write_key again")
    concurrency_level: WholeNumber | None = Field(default=None, json_schema_extra=LEVEL_SCHEMA)
    borrow_concurrency_from: str | None = None
    requests_per_second: float | None = rate_field("requests", MAX_REQUESTS_PER_SECOND)
    events_per_second: float | None = rate_field("events", MAX_EVENTS_PER_SECOND)


class ConnectionTest(Strict):
    """A configuration to test without saving it."""

    application: str
    settings: dict[str, str | None] = Field(default_factory=dict, repr=False)


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


class LoginRequest(Strict):
    email: str
    password: str


class Me(BaseModel):
    email: str
    account_id: str
    role: str = Field(description="admin, manage or monitor: what the user may do")
    is_admin: bool
    is_instance_admin: bool = Field(description="may create accounts")


RoleName = Literal["admin", "manage", "monitor"]


class UserPublic(BaseModel):
    """A user of the account as its admins see it (never a password or token)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    role: str
    disabled: bool
    disabled_at: UtcDatetime
    is_instance_admin: bool
    has_password: bool
    created_at: UtcDatetime


class UserInvite(Strict):
    email: str = Field(min_length=3, max_length=254, pattern=EMAIL,
                       description="the new user's email")
    role: RoleName = Field(default="manage", description="admin, manage or monitor")


class UserRoleChange(Strict):
    role: RoleName


class InvitationPublic(BaseModel):
    """The new user and a one-time login link to hand over; it is shown only this once."""

    user: UserPublic
    login_url: str


class AccountPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    users: int
    created_at: UtcDatetime


class AccountCreate(Strict):
    name: str = name_field()
    admin_email: str = Field(min_length=3, max_length=254, pattern=EMAIL,
                             description="the email of the account's first admin")


class NewAccountPublic(BaseModel):
    """The account, its admin, and a one-time login link for that admin (shown once)."""

    account: AccountPublic
    admin: UserPublic
    login_url: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
