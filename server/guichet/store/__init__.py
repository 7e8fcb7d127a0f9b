"""Redis access: connection, key names, Lua script registry."""

from guichet.store.client import Store, connect
from guichet.store.scripts import LuaScript, ScriptRegistry

__all__ = ["LuaScript", "ScriptRegistry", "Store", "connect"]
