"""The draw's ranking formula, digests and verification (pure; the draw issue builds on it)."""

from __future__ import annotations

import hashlib
import secrets

import msgspec
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from guichet.draw import audit, model, ranking, seal
from guichet.signing import Keyring

STRATA = ["club", "general"]
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-é", min_size=1, max_size=20)
entry_sets = st.lists(
    st.tuples(st.sampled_from(STRATA), ids), unique_by=lambda e: e[1], max_size=200
)
seeds = st.binary(min_size=32, max_size=32)


@given(entry_sets, seeds)
def test_ranking_is_a_permutation_with_strata_in_order(entries: list[tuple[str, str]],
                                                       seed: bytes) -> None:  # fmt: skip
    ranked = model.rank(entries, STRATA, model.draw_key("d1", seed))
    assert sorted(ranked) == sorted(entries)
    strata = [STRATA.index(s) for s, _ in ranked]
    assert strata == sorted(strata)  # every club entry before any general one


@given(entry_sets, seeds)
def test_ranking_is_deterministic_and_independent_of_input_order(
    entries: list[tuple[str, str]], seed: bytes
) -> None:
    key = model.draw_key("d1", seed)
    assert model.rank(entries, STRATA, key) == model.rank(list(reversed(entries)), STRATA, key)


def test_another_seed_or_beacon_gives_another_order() -> None:
    entries = [("general", f"e{i}") for i in range(100)]
    a = model.rank(entries, STRATA, model.draw_key("d1", b"\x01" * 32))
    b = model.rank(entries, STRATA, model.draw_key("d1", b"\x02" * 32))
    c = model.rank(entries, STRATA, model.draw_key("d1", b"\x01" * 32, b"beacon"))
    d = model.rank(entries, STRATA, model.draw_key("d2", b"\x01" * 32))
    assert a != b
    assert a != c
    assert a != d  # two draws sharing a seed do not share an order


def test_first_place_is_uniform_across_seeds() -> None:
    """Chi-square over 10 entries and 20,000 seeds: each entry should win 2,000 times.
    9 degrees of freedom; 33.7 is the 0.9999 quantile (a fair draw fails 1 in 10,000)."""
    entries = [("general", f"entry-{i}") for i in range(10)]
    wins = dict.fromkeys((e for _, e in entries), 0)
    trials = 20_000
    for trial in range(trials):
        seed = hashlib.sha256(trial.to_bytes(4, "big")).digest()
        wins[model.rank(entries, STRATA, model.draw_key("d1", seed))[0][1]] += 1
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
    key = model.draw_key("d1", seed, b"\xca\xfe")
    ranked = model.rank(entries, STRATA, key)
    counts = {name: sum(1 for s, _ in entries if s == name) for name in STRATA}
    return model.Transcript(
        draw="d1", commitment=model.commitment(seed), committed_at="2026-01-01T00:00:00Z",
        registration_closes_at="2026-01-15T00:00:00Z",
        seed=seed.hex(), beacon="cafe", strata=STRATA, entries=len(entries),
        entries_by_stratum=counts,
        entry_set_digest=model.entry_set_digest(entries, STRATA),
        ranking_digest=model.ranking_digest(e for _, e in ranked),
        ran_at="2026-02-01T00:00:00Z", software_version="test",
    )  # fmt: skip


ENTRIES = [("club", "c1"), ("general", "g1"), ("general", "g2"), ("club", "c2"), ("general", "g3")]


def test_untouched_transcript_verifies() -> None:
    assert audit.verify_pairs(make_transcript(ENTRIES), ENTRIES) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", "00" * 32),
        ("beacon", "beef"),
        ("commitment", "0" * 64),
        ("strata", ["general", "club"]),
        ("entries", 6),
        ("entries_by_stratum", {"club": 1, "general": 4}),
        ("entry_set_digest", "0" * 64),
        ("ranking_digest", "0" * 64),
        ("formula", "guichet-draw-v0"),
        ("draw", "d2"),
        ("committed_at", "2026-01-16T00:00:00Z"),
        ("registration_closes_at", "2025-12-31T00:00:00Z"),
        ("ran_at", "2026-01-14T00:00:00Z"),
        ("seed", "zz"),
        ("committed_at", "yesterday"),
    ],
)
def test_changing_a_recomputed_field_fails_even_unsigned(field: str, value: object) -> None:
    altered = msgspec.structs.replace(make_transcript(ENTRIES), **{field: value})
    assert audit.verify_pairs(altered, ENTRIES) != []


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    return Keyring(tmp_path_factory.mktemp("keys"))


def test_a_signed_transcript_verifies_and_any_changed_field_fails(keyring: Keyring) -> None:
    signed = audit.sign(make_transcript(ENTRIES), keyring)
    jwks = {"keys": keyring.published()}
    assert audit.verify_pairs(signed, ENTRIES, jwks=jwks) == []
    plain = msgspec.to_builtins(signed)
    for field in plain:
        if field == "signature":
            continue
        value = plain[field]
        changed = value + 1 if isinstance(value, int) else (
            {**value, "club": value["club"] + 1} if isinstance(value, dict) else
            list(reversed(value)) if isinstance(value, list) else value[:-1] + (
                "1" if value[-1:] != "1" else "2"))  # fmt: skip
        altered = msgspec.structs.replace(signed, **{field: changed})
        assert audit.verify_pairs(altered, ENTRIES, jwks=jwks) != [], field
    assert audit.verify_pairs(signed, ENTRIES, jwks={"keys": []}) != []
    unsigned = msgspec.structs.replace(signed, signature="")
    assert audit.verify_pairs(unsigned, ENTRIES, jwks=jwks) == ["the transcript is not signed"]
    other = Keyring(keyring.directory.parent / "other-keys")
    forged = audit.sign(make_transcript(ENTRIES), other)
    forged = msgspec.structs.replace(forged, signature=forged.signature[:-4] + "AAAA")
    assert audit.verify_pairs(forged, ENTRIES, jwks=jwks) != []


@settings(max_examples=50)
@given(st.integers(min_value=0, max_value=len(ENTRIES) - 1), ids)
def test_changing_one_entry_fails(index: int, new_id: str) -> None:
    transcript = make_transcript(ENTRIES)
    changed = list(ENTRIES)
    if changed[index][1] == new_id:
        return
    changed[index] = (changed[index][0], new_id)
    assert audit.verify_pairs(transcript, changed) != []
    assert audit.verify_pairs(transcript, ENTRIES[:-1]) != []  # one entry dropped
    moved = list(ENTRIES)
    moved[index] = ("general" if moved[index][0] == "club" else "club", moved[index][1])
    assert audit.verify_pairs(transcript, moved) != []  # one entry in another stratum


def test_an_exported_ranking_is_checked() -> None:
    transcript = make_transcript(ENTRIES)
    key = model.draw_key("d1", bytes(range(32)), b"\xca\xfe")
    right = [e for _, e in model.rank(ENTRIES, STRATA, key)]
    assert audit.verify_pairs(transcript, ENTRIES, ranked_ids=right) == []
    swapped = [right[1], right[0], *right[2:]]
    assert audit.verify_pairs(transcript, ENTRIES, ranked_ids=swapped) != []


# --- the vectorised ranking equals the reference -----------------------------------------------

unicode_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),  # no tab, NUL, newline
    min_size=1, max_size=30,
)  # fmt: skip


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.sampled_from(STRATA), unicode_ids), unique_by=lambda e: e[1],
             max_size=300),
    seeds,
)  # fmt: skip
def test_vectorised_ranking_and_digests_equal_the_reference(
    entries: list[tuple[str, str]], seed: bytes
) -> None:
    key = model.draw_key("d1", seed)
    expected = [e for _, e in model.rank(entries, STRATA, key)]
    arrays = audit.arrays(entries, STRATA)
    keyed = ranking.keyed(arrays.ids.tolist(), arrays.strata, key)
    ranked = keyed.ids[ranking.order(keyed)]
    assert [x.decode() for x in ranked.tolist()] == expected
    assert ranking.ranking_digest(ranked) == model.ranking_digest(expected)
    assert ranking.entry_set_digest(keyed, STRATA) == model.entry_set_digest(entries, STRATA)
    assert ranking.lines(ranked) == b"".join(e.encode() + b"\n" for e in expected)


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 3), ids),
                unique_by=lambda e: e[3], max_size=60))  # fmt: skip
def test_order_breaks_ties_of_the_packed_key_exactly(rows: list[tuple[int, int, int, str]]) -> None:
    """Keys forced to collide in their top 60 bits (and fully): still (stratum, key, id)."""
    keyed = ranking.Keyed(
        ranking.ids_array([r[3].encode() for r in rows]),
        np.array([r[0] for r in rows], dtype=np.uint8),
        np.array([r[1] for r in rows], dtype=np.uint64),  # hi < 16: hi >> 4 always ties
        np.array([r[2] for r in rows], dtype=np.uint64),
    )
    got = [rows[i] for i in ranking.order(keyed).tolist()]
    assert got == sorted(rows, key=lambda r: (r[0], r[1], r[2], r[3].encode()))


# --- sealing and wave sizing ---------------------------------------------------------------------


def test_a_sealed_seed_opens_only_with_its_key_draw_and_commitment() -> None:
    key = secrets.token_bytes(32)
    seed, published = seal.new_seed()
    sealed = seal.seal(key, "d1", seed, published)
    assert seed not in sealed
    assert seal.unseal(key, "d1", sealed, published) == seed
    for args in ((secrets.token_bytes(32), "d1", sealed, published),
                 (key, "d2", sealed, published),
                 (key, "d1", sealed, model.commitment(secrets.token_bytes(32))),
                 (key, "d1", sealed[:-1] + bytes([sealed[-1] ^ 1]), published)):  # fmt: skip
        with pytest.raises(seal.SealError):
            seal.unseal(*args)


@given(st.integers(0, 10**7), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**7))
def test_wave_size_covers_the_remaining_stock(remaining: int, assigned: int, buyers: int,
                                              sold: int) -> None:  # fmt: skip
    buyers = min(buyers, assigned)
    n = model.wave_size(remaining, assigned, buyers, sold)
    if remaining == 0:
        assert n == 0
        return
    assert n >= 1
    if buyers >= 100 and assigned and sold:
        expected_tickets = n * (buyers / assigned) * (sold / buyers)
        assert expected_tickets >= remaining  # enough windows, by the observed conversion


def test_wave_size_uses_priors_until_enough_buyers_are_seen() -> None:
    assert model.wave_size(600, 0, 0, 0) == 220  # 600 / (0.5 * 6) * 1.1
    assert model.wave_size(600, 1000, 99, 5000) == 220  # still the priors
    assert model.wave_size(600, 1000, 200, 1200) == 550  # 600 / (0.2 * 6) * 1.1


_VALID = msgspec.json.encode(make_transcript(ENTRIES))
_VALID_ENTRIES = "".join(f"{s}\t{i}\n" for s, i in ENTRIES).encode()
_FIELDS = ["strata", "entries", "seed", "beacon", "entries_by_stratum", "ran_at"]
_VALUES = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.text(max_size=3), max_size=300),
    st.builds(lambda n: [f"s{i}" for i in range(n)], st.sampled_from([3, 300])),  # many strata
)


def _spliced(extra: bytes, at: int) -> bytes:
    return _VALID[:at] + extra + _VALID[at:]


def _replaced(fields: dict[str, object]) -> bytes:
    return msgspec.json.encode({**msgspec.json.decode(_VALID), **fields})


_TRANSCRIPTS = st.one_of(
    st.binary(max_size=300),
    st.builds(_spliced, st.binary(max_size=8), st.integers(0, len(_VALID))),
    st.builds(_replaced, st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=3)),
)


@settings(max_examples=150, deadline=None)
@example(  # more strata than a uint8 position holds (was an OverflowError)
    transcript=_replaced({"strata": [f"s{i}" for i in range(300)]}),
    entries=b"s299\tx\n",
    commitment=None,
)
@given(
    transcript=_TRANSCRIPTS,
    entries=st.one_of(st.binary(max_size=200), st.sampled_from([_VALID_ENTRIES, b"s299\tx\n"])),
    commitment=st.one_of(st.none(), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)),
)
def test_verify_of_any_files_answers_ok_or_mismatch_never_a_crash(
    transcript: bytes, entries: bytes, commitment: str | None
) -> None:
    """The auditor's files are outside bytes: `draw verify` exits 0 or 1 with a message."""
    import tempfile
    from pathlib import Path

    from guichet import cli

    with tempfile.TemporaryDirectory() as tmp:
        t, e = Path(tmp) / "t.json", Path(tmp) / "e.tsv"
        t.write_bytes(transcript)
        e.write_bytes(entries)
        argv = ["--config", str(Path(tmp) / "none.toml"), "draw", "verify", str(t), str(e)]
        (Path(tmp) / "none.toml").touch()
        extra = [] if commitment is None else ["--commitment", commitment]
        assert cli.main([*argv, *extra]) in (0, 1)
