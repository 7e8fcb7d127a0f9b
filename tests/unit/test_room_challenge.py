"""The proof-of-work puzzle (room/challenge.py): pure properties, no server."""

from __future__ import annotations

import hashlib

import hypothesis
import pytest
from hypothesis import strategies as st

from guichet.room.challenge import (
    Challenger,
    JoinProof,
    Refused,
    leading_zero_bits,
    meets,
    solve,
)

SECRET = b"s" * 32
NOW = 1_900_000_000.0
ids = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=40)


@hypothesis.given(st.binary(min_size=1, max_size=40))
def test_leading_zero_bits_counts_the_zero_prefix(digest: bytes) -> None:
    bits = "".join(f"{byte:08b}" for byte in digest)
    assert leading_zero_bits(digest) == len(bits) - len(bits.lstrip("0"))


@hypothesis.settings(max_examples=50)
@hypothesis.given(token=st.text(max_size=60), bits=st.integers(0, 10))
def test_solve_finds_a_solution_that_meets_and_the_first_one(token: str, bits: int) -> None:
    solution = solve(token, bits)
    assert meets(token, solution, bits)
    assert all(not meets(token, str(n), bits) for n in range(int(solution)))
    digest = hashlib.sha256(f"{token}:{solution}".encode()).digest()
    assert leading_zero_bits(digest) >= bits
    if bits:
        assert meets(token, solution, bits - 1)  # a harder solution solves easier levels


def _proof(token: str, bits: int) -> JoinProof:
    return JoinProof(challenge=token, solution=solve(token, bits))


@hypothesis.settings(max_examples=50)
@hypothesis.given(room=ids, account=ids, other=ids, bits=st.integers(0, 8))
def test_a_challenge_verifies_only_for_its_room_and_account(
    room: str, account: str, other: str, bits: int
) -> None:
    door = Challenger(SECRET, "guichet", 120)
    offer = door.issue(room, account, bits, NOW)
    assert offer.bits == bits
    proof = _proof(offer.token, bits)
    c = door.verify(proof, room, account, bits, NOW)
    assert (c.room, c.account, c.bits, c.expires_at) == (room, account, bits, int(NOW) + 120)
    if other != account:
        with pytest.raises(Refused) as exc:
            door.verify(proof, room, other, bits, NOW)
        assert exc.value.reason == "foreign"
    if other != room:
        with pytest.raises(Refused) as exc:
            door.verify(proof, other, account, bits, NOW)
        assert exc.value.reason == "foreign"


def test_refusal_reasons() -> None:
    door = Challenger(SECRET, "guichet", 120)
    offer = door.issue("r", "a", 8, NOW)
    good = _proof(offer.token, 8)
    cases: list[tuple[JoinProof | None, float, int, str]] = [
        (None, NOW, 8, "missing"),
        (good, NOW + 120, 8, "expired"),
        (good, NOW, 9, "expired"),  # raised since
        (JoinProof(challenge=offer.token, solution=str(int(good.solution) - 1)), NOW, 8, "wrong")
        if int(good.solution) > 0
        else (None, NOW, 8, "missing"),
        (_proof(Challenger(b"t" * 32, "guichet", 120).issue("r", "a", 8, NOW).token, 8),
         NOW, 8, "forged"),
        (_proof(Challenger(SECRET, "other", 120).issue("r", "a", 8, NOW).token, 8),
         NOW, 8, "forged"),
        (JoinProof(challenge="a.b.c", solution="1"), NOW, 8, "forged"),
    ]  # fmt: skip
    for proof, now, bits, reason in cases:
        with pytest.raises(Refused) as exc:
            door.verify(proof, "r", "a", bits, now)
        assert exc.value.reason == reason, (proof, reason)
    assert door.verify(good, "r", "a", 7, NOW).bits == 8  # lowered since: still good


@hypothesis.given(st.text(max_size=300))
def test_any_token_text_is_refused_as_forged_never_raises_else(token: str) -> None:
    door = Challenger(SECRET, "guichet", 120)
    with pytest.raises(Refused) as exc:
        door.verify(JoinProof(challenge=token, solution="0"), "r", "a", 1, NOW)
    assert exc.value.reason == "forged"
