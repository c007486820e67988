"""Helpers of the HTTP application's tests: a connection to the test API, and an export
opened as a run opens it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segbridge.apps.base import ConnectionConfig, ExportRequest, OpenedExport, ResumeState
from segbridge.apps.http.app import HttpApplication
from segbridge.core.access import AccessPolicy
from segbridge.core.secrets import Secret
from segbridge.exports.contracts import SourceRecord
from segbridge.exports.limits import RecordLimits
from tests.integration.apps.http.shop_api import API_KEY, CLIENT_SECRET, PASSWORD, TOKEN
from tests.integration.flows.conftest import receiver, shop, workers

__all__ = ["receiver", "shop", "workers"]  # the flow tests' fixtures, for test_http_flows

APPLICATION = HttpApplication()
OPEN_POLICY = AccessPolicy(file_roots=(), protected=())


def connection(base_url: str, auth: str = "none", **values: str) -> ConnectionConfig:
    """A connection to the test API with the credentials it expects for ``auth``."""
    settings: dict[str, str | None] = {"base_url": base_url, "auth": auth, **values}
    secrets: dict[str, Secret] = {}
    if auth == "basic":
        settings.setdefault("username", "shop")
        secrets["password"] = Secret(PASSWORD)
    elif auth == "bearer":
        secrets["token"] = Secret(TOKEN)
    elif auth in ("api_key_header", "api_key_query"):
        settings.setdefault("api_key_name",
                            "X-API-Key" if auth == "api_key_header" else "api_key")
        secrets["api_key"] = Secret(API_KEY)
    elif auth == "oauth2":
        settings.setdefault("token_url", f"{base_url}/oauth/token")
        settings.setdefault("client_id", "segbridge")
        secrets["client_secret"] = Secret(CLIENT_SECRET)
    return ConnectionConfig(settings, secrets)


def open_export(export: dict[str, Any], config: ConnectionConfig, *,
                policy: AccessPolicy = OPEN_POLICY, resume: ResumeState | None = None,
                preview: bool = False) -> OpenedExport:
    def no_uploads(upload_id: str) -> Path:
        raise AssertionError(upload_id)

    request = ExportRequest({"type": "http", "connection": "Shop API", **export}, config,
                            policy, RecordLimits(), no_uploads, resume or ResumeState(),
                            preview)
    return APPLICATION.open_export(request)


def read(export: dict[str, Any], config: ConnectionConfig, start: int = 0,
         **options: Any) -> list[SourceRecord]:
    return list(open_export(export, config, **options).export.records(start))


def ids(records: list[SourceRecord]) -> list[Any]:
    return [record.data["id"] if record.data else record.error for record in records]
