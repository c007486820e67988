"""The Debugger's "Pretty" view: a call reconstructed as the analytics.js call that made it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson


def _arg(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _args(call: Mapping[str, Any]) -> list[object]:
    kind = call.get("type")
    user = [call["userId"]] if call.get("userId") not in (None, "") else []
    if kind == "identify":
        return [*user, call.get("traits") or {}]
    if kind == "track":
        return [call.get("event"), call.get("properties") or {}]
    if kind == "page":
        named = [v for v in (call.get("category"), call.get("name")) if v]
        return [*named, call.get("properties") or {}]
    if kind == "screen":
        return [v for v in (call.get("name"),) if v] + [call.get("properties") or {}]
    if kind == "group":
        return [call.get("groupId"), call.get("traits") or {}]
    if kind == "alias":
        return [call.get("userId"), call.get("previousId")]
    return [dict(call)]


def pretty(call: Mapping[str, Any]) -> str:
    """E.g. ``analytics.identify("user-1", {"email": "a@example.com"})``."""
    kind = call.get("type")
    name = kind if isinstance(kind, str) and kind.isidentifier() else "call"
    return f"analytics.{name}(" + ", ".join(_arg(a) for a in _args(call)) + ")"
