"""Per-tenant request-rate limits: a token bucket per tenant, in this process.

Each replica enforces its own buckets; behind N replicas a tenant gets up to N times its rate.
A shared limiter (Redis) is the upgrade path when that matters.
"""

from __future__ import annotations

import time


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens left, last refill time)

    def take(self, tenant: str, per_minute: int, now: float | None = None, *, spend: bool = True) -> float | None:
        """Spend one request; None if allowed, else the seconds to wait before retrying.

        With `spend=False` only check: a login form charges failed attempts, not successful ones.
        """
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(tenant, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - last) * per_minute / 60.0)
        if tokens < 1.0:
            self._buckets[tenant] = (tokens, now)
            return (1.0 - tokens) * 60.0 / per_minute
        self._buckets[tenant] = (tokens - 1.0 if spend else tokens, now)
        return None
