"""Where a Segment connection sends: a region of Segment, or a Segment-compatible receiver."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from segbridge.apps.segment.limits import REGION_BASE_URLS, SETTINGS_CDN_BASE_URL


@dataclass(frozen=True)
class Endpoint:
    """Base URLs of the Tracking API and of the source-settings endpoint."""

    tracking_base: str  # e.g. https://api.segment.io/v1
    settings_base: str  # e.g. https://cdn.segment.com/v1
    custom: bool

    def url(self, path: str) -> str:
        return f"{self.tracking_base}/{path.lstrip('/')}"

    def settings_url(self, write_key: str) -> str:
        return f"{self.settings_base}/projects/{write_key}/settings"


def resolve_endpoint(region: str | None, custom_url: str | None) -> Endpoint:
    if custom_url:
        base = _strip_version(custom_url)
        return Endpoint(tracking_base=f"{base}/v1", settings_base=f"{base}/v1", custom=True)
    base = REGION_BASE_URLS[region or "us"]
    return Endpoint(
        tracking_base=f"{base}/v1", settings_base=f"{SETTINGS_CDN_BASE_URL}/v1", custom=False
    )


def _strip_version(url: str) -> str:
    base = url.strip().rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def endpoint_problem(url: str) -> str | None:
    """Why a custom endpoint URL is unusable, or None when it is fine."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "enter an http:// or https:// URL, e.g. http://127.0.0.1:8000/sandbox"
    if parts.username or parts.password:
        return "remove the user name and password from the URL; the write key is sent separately"
    if parts.query or parts.fragment:
        return "remove the query string and fragment from the URL"
    return None
