"""Helpers of the ops commands that talk to Redis directly (``guichet draw``, ``shop``, …)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from guichet.config import Settings
from guichet.store import sync
from guichet.store.client import Store, connect
from guichet.store.scripts import LuaScript

T = TypeVar("T")


def show(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(msgspec.to_builtins(value), indent=2, ensure_ascii=False) + "\n")


def fail(message: str) -> int:
    """Say what went wrong on stderr; exit code 1."""
    print(f"guichet: {message}", file=sys.stderr)
    return 1


def with_store(
    settings: Settings, scripts: Sequence[LuaScript], work: Callable[[Store], Awaitable[T]]
) -> T:
    """Run ``work`` with an asyncio store on the configured Redis (for the embedded default,
    the running server's)."""
    where = sync.target(settings.redis)

    async def main() -> T:
        url = where if isinstance(where, str) else None
        store = connect(settings.redis, url=url, scripts=scripts)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def sync_client(settings: Settings) -> sync.SyncClient:
    return sync.connect(settings.redis, sync.target(settings.redis))
