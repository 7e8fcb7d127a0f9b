"""The per-request HTTP tally: exact counts at flush, one latency sample in four."""

from __future__ import annotations

from guichet import metrics


def test_tally_counts_exactly_and_samples_one_in_four() -> None:
    tally = metrics.HttpTally()
    route = "/test/tally"
    counter = metrics.http_children(route, "GET", 200)[0]
    before = counter._value.get()
    sampled = [tally.sample() for _ in range(12)]
    assert sampled.count(True) == 12 // metrics.LATENCY_SAMPLE_EVERY
    for _ in range(5):
        tally.done(route, "GET", 200)
    assert counter._value.get() == before  # not yet flushed
    tally.in_flight = 3
    tally.flush()
    assert counter._value.get() == before + 5
    assert metrics.HTTP_IN_FLIGHT._value.get() == 3
    tally.flush()  # nothing new: nothing added
    assert counter._value.get() == before + 5
