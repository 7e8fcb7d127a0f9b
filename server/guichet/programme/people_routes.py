"""The programme's people routes (to be built)."""

from __future__ import annotations

from aiohttp import web

from guichet.store.scripts import LuaScript

SCRIPTS: tuple[LuaScript, ...] = ()


def setup(app: web.Application) -> None:
    """Add the routes (none yet)."""
