"""Keep the embedded Valkey up: restart it from its AOF when it dies, on the same port.

``guichet serve`` runs one watchdog thread beside its embedded server. When the server exits
without being asked to (OOM killer, ``kill -9``, a crash), the thread logs it, waits a backoff
(0.1 s, then doubling up to 5 s while restarts keep failing), and starts it again with the
same port, password and data folder, so the workers' connection pools simply reconnect and
the AOF brings back every write it had acknowledged. Meanwhile Redis is unreachable, so
``/readyz`` answers 503 and requests that need Redis answer 503 problems.

The thread lives as long as the server: the kernel's parent-death signal of a child started
from a thread fires when that *thread* ends, so it must not end before the server is stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from guichet.embedded import EmbeddedError, EmbeddedValkey

log = logging.getLogger("guichet.embedded")

FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
RESTART_TIMEOUT_S = 60.0  # replaying a big AOF takes a while
STABLE_S = 30.0  # up this long after a restart: the next death starts the backoff over


class Watchdog:
    """Restart ``server`` whenever it dies, until :meth:`stop` (a context manager too)."""

    def __init__(
        self,
        server: EmbeddedValkey,
        on_restart: Callable[[], None] = lambda: None,
        first_backoff_s: float = FIRST_BACKOFF_S,
    ) -> None:
        self.server = server
        self.on_restart = on_restart
        self.first_backoff_s = first_backoff_s
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # start/stop of the server: one at a time
        self._thread = threading.Thread(target=self._run, name="valkey-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop watching and stop the server (SIGTERM: the AOF is flushed)."""
        with self._lock:
            self._stopping.set()
            self.server.stop()
        if self._thread.is_alive():
            self._thread.join(RESTART_TIMEOUT_S)

    def _run(self) -> None:
        backoff = self.first_backoff_s
        while True:
            process = self.server.process
            if process is None:
                return
            up_since = time.monotonic()
            code = process.wait()
            started = time.monotonic()
            if self._stopping.is_set():
                return
            if started - up_since > STABLE_S:
                backoff = self.first_backoff_s
            log.error(
                "embedded valkey died",
                extra={"pid": process.pid, "exitcode": code, "port": self.server.port},
            )
            while True:
                if self._stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, max(MAX_BACKOFF_S, self.first_backoff_s))
                with self._lock:
                    if self._stopping.is_set():
                        return
                    try:
                        self.server.start(timeout_s=RESTART_TIMEOUT_S)
                    except (EmbeddedError, OSError) as exc:
                        log.error("embedded valkey restart failed", extra={"error": str(exc)})
                        continue
                self.restarts += 1
                self.on_restart()
                log.warning(
                    "embedded valkey restarted",
                    extra={
                        "pid": self.server.process.pid if self.server.process else None,
                        "port": self.server.port,
                        "restarts": self.restarts,
                        "down_s": round(time.monotonic() - started, 3),
                    },
                )
                break
