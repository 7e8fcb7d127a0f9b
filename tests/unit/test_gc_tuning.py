"""A worker's collector settings (``server.gc_gen0_threshold``) and the pause metric."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from guichet import metrics
from guichet.server import tune_gc


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the collector back as it was (this process runs other tests after)."""
    threshold, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.callbacks[:] = callbacks


def pauses(generation: str) -> float:
    value = REGISTRY.get_sample_value("guichet_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


@pytest.mark.usefixtures("collector")
def test_a_tuned_worker_freezes_its_start_up_heap_and_counts_pauses() -> None:
    gc.unfreeze()
    tune_gc(50_000)
    assert gc.get_freeze_count() > 1000  # modules, classes, settings: out of every collection
    assert gc.get_threshold()[0] == 50_000
    tune_gc(50_000)  # a second call adds no second callback
    metrics.flush_gc_pauses()
    before = pauses("2"), pauses("0")
    gc.collect()
    gc.collect(0)
    assert (pauses("2"), pauses("0")) == before  # noted, observed at the next flush
    metrics.HTTP.flush()  # every 250 ms and before every scrape
    assert (pauses("2"), pauses("0")) == (before[0] + 1, before[1] + 1)


_NEW_LABELS_UNDER_GC = """
import gc
from prometheus_client import Counter
from guichet import metrics
metrics.watch_gc()
gc.set_threshold(1)  # a collection at nearly every allocation
counter = Counter("guichet_test_gc_labels", "labels made while collections run", ["n"])
for n in range(3000):
    counter.labels(str(n)).inc()
metrics.flush_gc_pauses()
print("done")
"""


def test_collections_while_prometheus_holds_its_lock_do_not_hang(tmp_path: Path) -> None:
    """In multiprocess mode prometheus-client allocates under one non-reentrant lock (a new
    label child); a collection starting then must not ask for that lock from the callback."""
    env = {**os.environ, metrics.MULTIPROC_ENV: str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _NEW_LABELS_UNDER_GC],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"


@pytest.mark.usefixtures("collector")
def test_threshold_zero_leaves_the_collector_as_python_sets_it() -> None:
    gc.unfreeze()
    threshold = gc.get_threshold()
    tune_gc(0)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == threshold
