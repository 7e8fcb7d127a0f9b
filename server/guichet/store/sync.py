"""A blocking Redis client for ops batch jobs (draw run, waves, exports, outbox).

The server is asyncio throughout; the batch commands are plain sequential programs that also
fan out to worker processes, where a blocking client is simpler and as fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import NoScriptError

from guichet.config import ConfigError, RedisConfig
from guichet.embedded import running_url
from guichet.store.scripts import LuaScript

SyncClient = redis.Redis | RedisCluster


def target(cfg: RedisConfig) -> str | tuple[str, ...]:
    """The configured URL or Cluster seeds; for the embedded default, the running server's."""
    if cfg.cluster_seeds:
        return cfg.cluster_seeds
    if cfg.url is not None:
        return cfg.url
    url = running_url(cfg.data_dir)
    if url is None:
        raise ConfigError(
            f"no embedded server is running in {cfg.data_dir}: start `guichet serve` first, "
            "or set redis.url"
        )
    return url


def connect(cfg: RedisConfig, where: str | tuple[str, ...]) -> SyncClient:
    common: dict[str, Any] = {
        "socket_timeout": max(cfg.socket_timeout_s, 30.0),  # batch replies can be large
        "socket_connect_timeout": cfg.connect_timeout_s,
        "decode_responses": False,
    }
    if isinstance(where, tuple):
        seeds = RedisConfig(cluster_seeds=where)
        nodes = [ClusterNode(h, p) for h, p in seeds.cluster_nodes]  # type: ignore[no-untyped-call]
        common.update(seeds.cluster_auth)
        return RedisCluster(startup_nodes=nodes, **common)
    return redis.Redis.from_url(where, **common)


def call(client: SyncClient, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """EVALSHA, loading the script on NOSCRIPT."""
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        client.script_load(script.source)
        return client.evalsha(script.sha, len(keys), *keys, *args)
