"""The draw's ranking formula, digests and verification (pure; the draw issue builds on it)."""

from __future__ import annotations

import hashlib
import secrets

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guichet.draw import model

STRATA = ["club", "general"]
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-é", min_size=1, max_size=20)
entry_sets = st.lists(
    st.tuples(st.sampled_from(STRATA), ids), unique_by=lambda e: e[1], max_size=200
)
seeds = st.binary(min_size=32, max_size=32)


@given(entry_sets, seeds)
def test_ranking_is_a_permutation_with_strata_in_order(entries: list[tuple[str, str]],
                                                       seed: bytes) -> None:  # fmt: skip
    ranked = model.rank(entries, STRATA, model.draw_key(seed))
    assert sorted(ranked) == sorted(entries)
    strata = [STRATA.index(s) for s, _ in ranked]
    assert strata == sorted(strata)  # every club entry before any general one


@given(entry_sets, seeds)
def test_ranking_is_deterministic_and_independent_of_input_order(
    entries: list[tuple[str, str]], seed: bytes
) -> None:
    key = model.draw_key(seed)
    assert model.rank(entries, STRATA, key) == model.rank(list(reversed(entries)), STRATA, key)


def test_another_seed_or_beacon_gives_another_order() -> None:
    entries = [("general", f"e{i}") for i in range(100)]
    a = model.rank(entries, STRATA, model.draw_key(b"\x01" * 32))
    b = model.rank(entries, STRATA, model.draw_key(b"\x02" * 32))
    c = model.rank(entries, STRATA, model.draw_key(b"\x01" * 32, b"beacon"))
    assert a != b
    assert a != c


def test_first_place_is_uniform_across_seeds() -> None:
    """Chi-square over 10 entries and 20,000 seeds: each entry should win 2,000 times.
    9 degrees of freedom; 33.7 is the 0.9999 quantile (a fair draw fails 1 in 10,000)."""
    entries = [("general", f"entry-{i}") for i in range(10)]
    wins = dict.fromkeys((e for _, e in entries), 0)
    trials = 20_000
    for trial in range(trials):
        seed = hashlib.sha256(trial.to_bytes(4, "big")).digest()
        wins[model.rank(entries, STRATA, model.draw_key(seed))[0][1]] += 1
    expected = trials / len(entries)
    chi2 = sum((w - expected) ** 2 / expected for w in wins.values())
    assert chi2 < 33.7, wins


def test_commitment_opens_only_with_its_seed() -> None:
    seed = secrets.token_bytes(32)
    published = model.commitment(seed)
    assert model.opens_commitment(seed, published)
    assert not model.opens_commitment(secrets.token_bytes(32), published)
    with pytest.raises(ValueError, match="32 bytes"):
        model.commitment(b"short")


def make_transcript(entries: list[tuple[str, str]]) -> model.Transcript:
    seed = bytes(range(32))
    key = model.draw_key(seed, b"\xca\xfe")
    ranked = model.rank(entries, STRATA, key)
    return model.Transcript(
        draw="d1", commitment=model.commitment(seed), committed_at="2026-01-01T00:00:00Z",
        seed=seed.hex(), beacon="cafe", strata=STRATA, entries=len(entries),
        entry_set_digest=model.entry_set_digest(entries),
        ranking_digest=model.ranking_digest(e for _, e in ranked),
        ran_at="2026-02-01T00:00:00Z", software_version="test",
    )  # fmt: skip


ENTRIES = [("club", "c1"), ("general", "g1"), ("general", "g2"), ("club", "c2"), ("general", "g3")]


def test_untouched_transcript_verifies() -> None:
    assert model.verify(make_transcript(ENTRIES), ENTRIES) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", "00" * 32),
        ("beacon", "beef"),
        ("commitment", "0" * 64),
        ("strata", ["general", "club"]),
        ("entries", 6),
        ("entry_set_digest", "0" * 64),
        ("ranking_digest", "0" * 64),
        ("formula", "guichet-draw-v0"),
    ],
)
def test_changing_any_checked_field_fails(field: str, value: object) -> None:
    altered = msgspec.structs.replace(make_transcript(ENTRIES), **{field: value})
    assert model.verify(altered, ENTRIES) != []


@settings(max_examples=50)
@given(st.integers(min_value=0, max_value=len(ENTRIES) - 1), ids)
def test_changing_one_entry_fails(index: int, new_id: str) -> None:
    transcript = make_transcript(ENTRIES)
    changed = list(ENTRIES)
    if changed[index][1] == new_id:
        return
    changed[index] = (changed[index][0], new_id)
    assert model.verify(transcript, changed) != []
    assert model.verify(transcript, ENTRIES[:-1]) != []  # one entry dropped
