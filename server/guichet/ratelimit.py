"""Rate limits shared by every worker: one GCRA script per decision, time from Redis."""

from __future__ import annotations

import math
from dataclasses import dataclass

from guichet.store import keys
from guichet.store.client import Store
from guichet.store.scripts import LuaScript

GCRA = LuaScript("guichet", "ratelimit.lua")
SCRIPTS = (GCRA,)


@dataclass(frozen=True)
class Limit:
    """``rate`` requests per ``period_s`` on average, with bursts of up to ``burst``."""

    rate: int
    period_s: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate < 1 or self.period_s <= 0 or self.burst < 1:
            raise ValueError("rate and burst must be >= 1 and period_s > 0")

    @property
    def interval_us(self) -> int:
        return max(1, round(self.period_s * 1_000_000 / self.rate))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int  # whole seconds, rounded up, for a Retry-After header
    remaining: int


async def hit(store: Store, limit: Limit, scope: str, subject: str, cost: int = 1) -> Decision:
    """Count one request of ``subject`` against ``limit`` atomically (one round trip)."""
    allowed, retry_us, remaining = await store.scripts(
        GCRA, [keys.rate_limit(scope, subject)], [limit.interval_us, limit.burst, cost]
    )
    return Decision(bool(allowed), math.ceil(int(retry_us) / 1_000_000), int(remaining))
