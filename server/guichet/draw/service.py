"""The draw's Redis side: configuration and registration (one script per decision)."""

from __future__ import annotations

from typing import Any

import msgspec

from guichet.draw.model import DrawSpec
from guichet.store.client import Store
from guichet.store.keys import DrawKeys
from guichet.store.scripts import LuaScript

REGISTER = LuaScript("guichet.draw", "register.lua")
WITHDRAW = LuaScript("guichet.draw", "withdraw.lua")
SCRIPTS = (REGISTER, WITHDRAW)

_US = 1_000_000


class Draws:
    """Draw configuration and registrations."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def put(self, draw: str, spec: DrawSpec) -> bool:
        """Create or replace the draw's spec (one HSET); True when it is new (every field
        was added rather than overwritten)."""
        k = DrawKeys(draw)
        fields = {
            "spec": msgspec.json.encode(spec),
            "opens_us": int(spec.registration_opens_at.timestamp() * _US),
            "closes_us": int(spec.registration_closes_at.timestamp() * _US),
            "strata": ",".join(spec.strata),
            "default_stratum": spec.default_stratum,
        }
        added = await self.store.client.hset(k.cfg, mapping=fields)  # type: ignore[arg-type]
        return int(added) == len(fields)

    async def spec(self, draw: str) -> DrawSpec | None:
        raw = await self.store.client.hget(DrawKeys(draw).cfg, "spec")
        return None if raw is None else msgspec.json.decode(raw, type=DrawSpec)

    async def counts(self, draw: str) -> dict[str, int]:
        raw: dict[Any, Any] = await self.store.client.hgetall(DrawKeys(draw).counts)
        return {k.decode(): int(v) for k, v in raw.items()}

    async def register(self, draw: str, account: str, stratum: str) -> tuple[str, str, int, int]:
        """(code, entry, opens µs, closes µs) — see register.lua."""
        k = DrawKeys(draw)
        code, entry, opens, closes = await self.store.scripts(
            REGISTER, [k.cfg, k.entries, k.counts], [account, stratum]
        )
        return code.decode(), entry.decode(), int(opens), int(closes)

    async def entry(self, draw: str, account: str) -> str | None:
        raw = await self.store.client.hget(DrawKeys(draw).entries, account)
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def withdraw(self, draw: str, account: str) -> tuple[str, int]:
        k = DrawKeys(draw)
        code, closes = await self.store.scripts(WITHDRAW, [k.cfg, k.entries, k.counts], [account])
        return code.decode(), int(closes)
