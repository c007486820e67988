"""Faults on demand for the tracking API: errors, latency, dropped connections, downtime.

Faults are off by default, apply only to ``POST /v1/*`` (never to settings, management or
pages), and are changed only by admins. One random draw per request picks at most one of
500 / 503 / 429 / dropped connection, by their shares; "down" answers every tracking request
503 with ``Retry-After`` (the seconds left) until it ends. The random source is seeded, so a
test that sets a seed sees the same sequence every time. Downtime is measured on the
receiver's ``Clock``: with a simulated one shared with the client, "down for 20 s" ends as soon
as the client has slept 20 s on it, without 20 real seconds.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from segbridge.core.clock import SYSTEM_CLOCK, Clock

MAX_RETRY_AFTER = 3600
MAX_LATENCY_MS = 60_000
MAX_DOWN_SECONDS = 86_400


class FaultSettingsError(ValueError):
    """Invalid fault settings; ``problems`` lists every one of them."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class FaultSettings:
    """Shares are probabilities per tracking request (0..1, summing to at most 1)."""

    error_500: float = 0.0
    error_503: float = 0.0
    error_429: float = 0.0
    drop: float = 0.0
    retry_after: int = 1
    latency_ms: int = 0
    down_seconds: float = 0.0

    def total_share(self) -> float:
        return self.error_500 + self.error_503 + self.error_429 + self.drop


def parse_fault_request(payload: object) -> tuple[FaultSettings, int | None]:
    """Read settings (and an optional ``seed``) from JSON, reporting every problem at once."""
    if not isinstance(payload, Mapping):
        raise FaultSettingsError([{"field": "body", "message": "must be a JSON object"}])
    problems: list[dict[str, str]] = []
    known = set(FaultSettings.__dataclass_fields__) | {"seed"}
    problems += [{"field": k, "message": "unknown field"} for k in payload if k not in known]
    values: dict[str, Any] = {}
    for name in ("error_500", "error_503", "error_429", "drop"):
        values[name] = _number(payload, name, 0.0, 1.0, problems)
    values["retry_after"] = _integer(payload, "retry_after", 0, MAX_RETRY_AFTER, problems)
    values["latency_ms"] = _integer(payload, "latency_ms", 0, MAX_LATENCY_MS, problems)
    values["down_seconds"] = _number(payload, "down_seconds", 0.0, MAX_DOWN_SECONDS, problems)
    seed = payload.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        problems.append({"field": "seed", "message": "must be an integer"})
    settings = FaultSettings(**values)
    if not problems and settings.total_share() > 1.0:
        problems.append({"field": "error_500", "message": "shares must add up to at most 1"})
    if problems:
        raise FaultSettingsError(problems)
    return settings, seed


def _number(
    payload: Mapping[str, Any], name: str, low: float, high: float, problems: list[dict[str, str]]
) -> Any:
    value = payload.get(name, FaultSettings.__dataclass_fields__[name].default)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        problems.append({"field": name, "message": "must be a number"})
        return 0.0
    if not low <= value <= high:
        problems.append({"field": name, "message": f"must be between {low:g} and {high:g}"})
    return float(value)


def _integer(
    payload: Mapping[str, Any], name: str, low: int, high: int, problems: list[dict[str, str]]
) -> Any:
    value = payload.get(name, FaultSettings.__dataclass_fields__[name].default)
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append({"field": name, "message": "must be an integer"})
        return low
    if not low <= value <= high:
        problems.append({"field": name, "message": f"must be between {low} and {high}"})
    return value


@dataclass(frozen=True)
class FaultAction:
    """What to do with one tracking request: answer ``status`` or drop the connection."""

    kind: str  # "500", "503", "429", "down" or "drop"
    status: int | None
    retry_after: int | None = None


@dataclass
class Faults:
    """The current fault settings, the seeded random source and counts of injected faults."""

    settings: FaultSettings = field(default_factory=FaultSettings)
    seed: int | None = None
    clock: Clock = SYSTEM_CLOCK
    injected: Counter[str] = field(default_factory=Counter)
    _down_until: float = 0.0
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.apply(self.settings, self.seed)

    def apply(self, settings: FaultSettings, seed: int | None = None) -> None:
        """Replace the settings; downtime starts now; a seed restarts the random sequence."""
        self.settings = settings
        down = settings.down_seconds
        self._down_until = self.clock.monotonic() + down if down else 0.0
        if seed is not None:
            self.seed = seed
            self._rng = random.Random(seed)

    def reset(self) -> None:
        self.apply(FaultSettings())

    def down_remaining(self) -> float:
        return max(0.0, self._down_until - self.clock.monotonic())

    def active(self) -> bool:
        s = self.settings
        return bool(s.total_share() or s.latency_ms or self.down_remaining())

    def decide(self) -> FaultAction | None:
        """Pick this request's fault, if any, and count it."""
        action = self._pick()
        if action is not None:
            self.injected[action.kind] += 1
        return action

    def _pick(self) -> FaultAction | None:
        s = self.settings
        remaining = self.down_remaining()
        if remaining:
            return FaultAction("down", 503, max(1, math.ceil(remaining)))
        if not s.total_share():
            return None
        draw = self._rng.random()
        for kind, share in (("500", s.error_500), ("503", s.error_503), ("429", s.error_429)):
            if draw < share:
                retry = s.retry_after if kind != "500" else None
                return FaultAction(kind, int(kind), retry)
            draw -= share
        return FaultAction("drop", None) if draw < s.drop else None

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self.settings),
            "seed": self.seed,
            "down_remaining_seconds": round(self.down_remaining(), 3),
            "down_answer": 503,
            "active": self.active(),
            "injected": dict(self.injected),
        }
