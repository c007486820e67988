"""Identifiers: a short prefix saying what the id names, then 24 random base32 characters."""

from __future__ import annotations

import base64
import secrets


def new_id(prefix: str) -> str:
    raw = base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()
    return f"{prefix}_{raw}"


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
