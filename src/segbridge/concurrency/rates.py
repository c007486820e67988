"""Rate limits per connection pool: requests per second and events per second, as token
buckets (a burst of one second's worth).

A caller reserves what it is about to send at once, even when the bucket does not hold that
much: the bucket goes into debt and the caller waits until the debt is paid back by the
refill. So callers are served in the order they asked, one step per call, and a batch larger
than the burst simply waits longer. ``LocalBuckets`` keeps the buckets of one process; the
cluster governor keeps them in ``governor_buckets`` with the same arithmetic in one statement
(``cluster.py``), so every process on every machine draws from one budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from segbridge.core.clock import SYSTEM_CLOCK, Clock

REQUESTS = "requests"
EVENTS = "events"


@dataclass(frozen=True)
class RateLimit:
    """A connection's (its lender's) budget; None: no limit of that kind."""

    requests_per_second: float | None = None
    events_per_second: float | None = None

    def rates(self) -> dict[str, float]:
        """The limited kinds and their rates."""
        kinds = {REQUESTS: self.requests_per_second, EVENTS: self.events_per_second}
        return {kind: rate for kind, rate in kinds.items() if rate is not None}


@dataclass
class _Bucket:
    rate: float
    tokens: float
    at: float

    def reserve(self, amount: float, now: float) -> float:
        """Take ``amount`` (into debt if need be); the seconds until the debt is paid."""
        self.tokens = min(self.rate, self.tokens + self.rate * (now - self.at)) - amount
        self.at = now
        return max(0.0, -self.tokens / self.rate)


class LocalBuckets:
    """The buckets of one process (one event loop)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._buckets: dict[str, dict[str, _Bucket]] = {}

    def configure(self, pool: str, limit: RateLimit) -> None:
        now, old = self._clock.monotonic(), self._buckets.get(pool, {})
        self._buckets[pool] = {
            kind: old[kind] if kind in old and old[kind].rate == rate
            else _Bucket(rate=rate, tokens=rate, at=now)
            for kind, rate in limit.rates().items()}

    def limited(self, pool: str) -> bool:
        return bool(self._buckets.get(pool))

    def reserve(self, pool: str, requests: int, events: int) -> float:
        """Reserve the request and its events; the seconds to wait before sending."""
        now, wait = self._clock.monotonic(), 0.0
        amounts = {REQUESTS: requests, EVENTS: events}
        for kind, bucket in self._buckets.get(pool, {}).items():
            wait = max(wait, bucket.reserve(amounts[kind], now))
        return wait

    async def take(self, pool: str, requests: int, events: int) -> float:
        """Wait until the pool's budget allows sending; returns the seconds waited."""
        wait = self.reserve(pool, requests, events)
        if wait > 0:
            await self._clock.sleep(wait)
        return wait
