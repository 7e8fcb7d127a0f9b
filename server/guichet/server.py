"""Running Guichet: the embedded default, one worker in-process, or N supervised workers.

With ``--workers N`` each worker is a separate process (spawned, not forked) binding the same
port with SO_REUSEPORT; the kernel spreads connections. SIGTERM/SIGINT stop accepting, drain
in-flight requests (up to ``server.shutdown_timeout_s``) and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait
from typing import Any

import uvloop
from aiohttp import web

from guichet import edge, logs, metrics
from guichet.app import create_app, dispatcher
from guichet.config import ConfigError, Settings, mask_seed, mask_url
from guichet.embedded import embedded_valkey, set_parent_death_signal
from guichet.embedded_watchdog import Watchdog

log = logging.getLogger("guichet.server")

AppFactory = Callable[..., web.Application]
MAX_RESTARTS = 20  # over a process's life: a crash loop (port taken, bad config) stops serve
PORT_IN_USE = 2  # exit code of serve and of a worker that cannot bind


@contextlib.contextmanager
def redis_target(settings: Settings) -> Iterator[str | None]:
    """Start the private Valkey when no Redis is configured; yield its URL (else None)."""
    cfg = settings.redis
    if cfg.cluster_seeds:
        log.info("using redis cluster", extra={"seeds": [mask_seed(s) for s in cfg.cluster_seeds]})
        yield None
    elif cfg.url is not None:
        log.info("using redis", extra={"url": mask_url(cfg.url)})
        yield None
    elif not cfg.allow_embedded:
        raise ConfigError(
            "no Valkey configured and redis.allow_embedded is false: set redis.url "
            "(GUICHET_REDIS_URL, redis://[:password@]host:port/0) or redis.cluster_seeds "
            "(GUICHET_REDIS_CLUSTER_SEEDS, [:password@]host:port,...)"
        )
    else:
        with (
            embedded_valkey(cfg.data_dir, cfg.embedded_binary) as server,
            Watchdog(server, on_restart=metrics.embedded_valkey_restarted),
        ):
            log.info(
                "using embedded valkey",
                extra={"url": mask_url(server.url), "data_dir": str(server.data_dir), "aof": True},
            )
            yield server.url


def tune_gc(gen0_threshold: int) -> None:
    """After start-up: freeze what the worker holds (modules, routes, scripts, settings: a
    full collection no longer walks them) and collect young objects less often. A full
    collection over the start-up heap took tens of ms, a tail of every route it landed on."""
    metrics.watch_gc()
    if gen0_threshold == 0:
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
    log.info("gc tuned", extra={"frozen": gc.get_freeze_count(), "gen0": gen0_threshold})


async def _run(
    settings: Settings, redis_url: str | None, worker_id: int, factory: AppFactory
) -> int:
    app = factory(settings, redis_url=redis_url, worker_id=worker_id)
    access: dict[str, Any] = (
        {"access_log_class": logs.AccessLogger, "access_log": logging.getLogger("guichet.access")}
        if settings.logging.access_log
        else {"access_log": None}
    )
    runner = edge.make_runner(
        app,
        settings.server,
        dispatcher,
        handle_signals=False,
        shutdown_timeout=settings.server.shutdown_timeout_s,
        **access,
    )
    await runner.setup()
    tune_gc(settings.server.gc_gen0_threshold)
    site = web.TCPSite(
        runner,
        settings.server.host,
        settings.server.port,
        reuse_port=settings.server.workers > 1,
        backlog=settings.server.backlog,
    )
    try:
        await site.start()
    except OSError as exc:  # taken between the start-up check and this bind
        await runner.cleanup()
        if exc.errno != errno.EADDRINUSE:
            raise
        log.error("port in use", extra={"host": settings.server.host,
                                        "port": settings.server.port})  # fmt: skip
        return PORT_IN_USE
    log.info(
        "listening",
        extra={
            "host": settings.server.host,
            "port": settings.server.port,
            "worker": worker_id,
            "pid": os.getpid(),
        },
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info(
        "draining", extra={"worker": worker_id, "timeout_s": settings.server.shutdown_timeout_s}
    )
    await runner.cleanup()
    log.info("stopped", extra={"worker": worker_id})
    return 0


def run_worker(
    settings: Settings, redis_url: str | None, worker_id: int, factory: AppFactory = create_app
) -> int:
    """One worker's event loop (uvloop) until SIGTERM/SIGINT."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_run(settings, redis_url, worker_id, factory))


def _worker_entry(
    settings: Settings, redis_url: str | None, worker_id: int, factory: AppFactory
) -> None:  # pragma: no cover - runs in a spawned process
    set_parent_death_signal()
    logs.setup(settings.logging.level)
    raise SystemExit(run_worker(settings, redis_url, worker_id, factory))


def supervise(settings: Settings, redis_url: str | None, factory: AppFactory) -> int:
    """Spawn N workers, restart one that crashes, forward SIGTERM/SIGINT, wait for all."""
    ctx = multiprocessing.get_context("spawn")
    stopping = False
    restarts = 0
    workers: dict[int, Any] = {}

    def spawn(worker_id: int) -> None:
        proc = ctx.Process(
            target=_worker_entry,
            args=(settings, redis_url, worker_id, factory),
            name=f"guichet-worker-{worker_id}",
        )
        proc.start()
        workers[worker_id] = proc

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in workers.values():
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker_id in range(settings.server.workers):
            spawn(worker_id)
        codes: dict[int, int] = {}
        while workers:
            wait([p.sentinel for p in workers.values()], timeout=1.0)
            for worker_id, proc in list(workers.items()):
                if proc.exitcode is None:
                    continue
                del workers[worker_id]
                metrics.worker_exited(proc.pid)
                if stopping:
                    codes[worker_id] = proc.exitcode
                elif proc.exitcode == PORT_IN_USE:  # restarting cannot help
                    on_signal(signal.SIGTERM, None)
                    codes[worker_id] = proc.exitcode
                elif restarts >= MAX_RESTARTS:
                    log.error("workers keep dying; giving up", extra={"restarts": restarts})
                    on_signal(signal.SIGTERM, None)
                    codes[worker_id] = proc.exitcode or 1
                else:
                    restarts += 1
                    log.error(
                        "worker died; restarting",
                        extra={"worker": worker_id, "exitcode": proc.exitcode},
                    )
                    spawn(worker_id)
        if PORT_IN_USE in codes.values():
            return PORT_IN_USE
        return 0 if all(code == 0 for code in codes.values()) else 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(settings: Settings, factory: AppFactory = create_app) -> int:
    """``guichet serve``: returns the process exit code."""
    logs.setup(settings.logging.level)
    host, port = settings.server.host, settings.server.port
    if edge.port_in_use(host, port):
        sys.stderr.write(f"guichet: port {port} on {host} is in use\n")
        return PORT_IN_USE
    soft, hard = edge.raise_open_files_limit()
    log.info("open files limit", extra={"soft": soft, "hard": hard})
    code = _serve(settings, factory)
    if code == PORT_IN_USE:  # taken after the check above
        sys.stderr.write(f"guichet: port {port} on {host} is in use\n")
    return code


def _serve(settings: Settings, factory: AppFactory) -> int:
    with redis_target(settings) as redis_url:
        if settings.server.workers == 1:
            return run_worker(settings, redis_url, 0, factory)
        metrics_dir = tempfile.mkdtemp(prefix="guichet-metrics-")
        os.environ[metrics.MULTIPROC_ENV] = metrics_dir
        try:
            return supervise(settings, redis_url, factory)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
