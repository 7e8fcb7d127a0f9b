"""Pseudonyms and the name box: the same person gives the same pseudonym; names only encrypted."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guichet.config import ProgrammeConfig
from guichet.programme import identity

SECRET = b"s" * 32


def test_spelling_variants_of_one_person_share_a_pseudonym() -> None:
    born = date(2008, 5, 17)
    one = identity.pseudonym(SECRET, "D'Arc", "Élodie-Marie", born)
    assert identity.pseudonym(SECRET, "  d arc ", "elodie  marie", born) == one
    assert identity.pseudonym(SECRET, "DARC", "Elodie Marie", born) != one  # another spelling
    assert identity.pseudonym(SECRET, "D'Arc", "Élodie-Marie", date(2008, 5, 18)) != one
    assert identity.pseudonym(b"t" * 32, "D'Arc", "Élodie-Marie", born) != one  # keyed


@given(st.text(max_size=40))
def test_normalise_is_idempotent_and_trimmed(text: str) -> None:
    once = identity.normalise(text)
    assert identity.normalise(once) == once
    assert once == once.strip()


def test_name_box_opens_only_for_its_person_and_games() -> None:
    box = identity.NameBox(b"k" * 32)
    sealed = box.seal("olympic", "p1", "Élodie D'Arc")
    assert "Élodie" not in sealed
    assert "Arc" not in sealed
    assert box.open("olympic", "p1", sealed) == "Élodie D'Arc"
    for games, person in (("olympic", "p2"), ("paralympic", "p1")):
        with pytest.raises(identity.NameBoxError):
            box.open(games, person, sealed)
    with pytest.raises(identity.NameBoxError):
        identity.NameBox(b"j" * 32).open("olympic", "p1", sealed)
    with pytest.raises(identity.NameBoxError):
        box.open("olympic", "p1", sealed[:-4] + "AAAA")


def test_keys_from_config_or_a_private_file(tmp_path: Path) -> None:
    cfg = ProgrammeConfig(
        pseudonym_secret_file=str(tmp_path / "p"), name_key_file=str(tmp_path / "n")
    )
    first = identity.pseudonym_secret(cfg)
    assert identity.pseudonym_secret(cfg) == first
    assert len(first) == 32
    assert (tmp_path / "p").stat().st_mode & 0o777 == 0o600
    identity.name_box(cfg)
    assert (tmp_path / "n").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="at least 32 bytes"):
        identity.pseudonym_secret(ProgrammeConfig(pseudonym_secret="ab" * 8))
    with pytest.raises(ValueError, match="32 bytes"):
        identity.name_box(ProgrammeConfig(name_key="ab" * 31))
