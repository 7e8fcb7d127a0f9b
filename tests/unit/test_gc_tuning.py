"""A worker's collector settings (``server.gc_gen0_threshold``) and the pause metric."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

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
    before = pauses("2"), pauses("0")
    gc.collect()
    gc.collect(0)
    assert (pauses("2"), pauses("0")) == (before[0] + 1, before[1] + 1)


@pytest.mark.usefixtures("collector")
def test_threshold_zero_leaves_the_collector_as_python_sets_it() -> None:
    gc.unfreeze()
    threshold = gc.get_threshold()
    tune_gc(0)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == threshold
