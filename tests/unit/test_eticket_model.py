"""The pure rules of e-tickets: one ticket per seat, ids, claims, the format a request asks."""

from __future__ import annotations

from typing import Any

import hypothesis
from hypothesis import strategies as st

from guichet.eticket import model
from guichet.eticket.cli import JwksKeys

HOLD = st.from_regex(r"\A[A-Za-z0-9_-]{9,40}\Z")
ITEMS = st.lists(
    st.tuples(st.sampled_from(["ATH-01", "SWM-02", "CER-00"]), st.sampled_from(["A", "B"]),
              st.integers(1, 6)),
    min_size=1, max_size=8,
)  # fmt: skip


def as_record(items: list[tuple[str, str, int]]) -> list[tuple[str, int, str]]:
    return [(f"{s}:{c}", q, s) for s, c, q in items]


@hypothesis.given(hold=HOLD, items=ITEMS)
def test_one_ticket_per_seat_numbered_in_item_order(
    hold: str, items: list[tuple[str, str, int]]
) -> None:
    got = model.seats("paris", hold, "fan", as_record(items))
    assert len(got) == sum(q for _, _, q in items)
    assert [s.number for s in got] == list(range(1, len(got) + 1))
    assert [(s.session, s.category) for s in got] == [(s, c) for s, c, q in items for _ in range(q)]
    assert len({s.id for s in got}) == len(got)
    for s in got:
        assert model.parse_ticket_id(s.id) == (hold, s.number)
        assert (s.hold, s.account, s.sale) == (hold, "fan", "paris")


@hypothesis.given(raw=st.text(max_size=80))
def test_parse_ticket_id_takes_any_text(raw: str) -> None:
    parsed = model.parse_ticket_id(raw)
    if parsed is not None:
        hold, n = parsed
        assert model.ticket_id(hold, n) == raw
        assert 1 <= n <= model.MAX_SEATS


def test_ticket_ids_that_cannot_be() -> None:
    for raw in ("", "abcdefghi", "abcdefghi.0", "abcdefghi.01", "abcdefghi.1001", "short.1",
                "abcdefghi.1.2", "abcdefghi.1\n", "abc/efghi.1"):  # fmt: skip
        assert model.parse_ticket_id(raw) is None, raw
    assert model.parse_ticket_id("abcdefghi.1000") == ("abcdefghi", 1000)


@hypothesis.given(hold=HOLD, items=ITEMS)
def test_claims_round_trip_to_the_seat(hold: str, items: list[tuple[str, str, int]]) -> None:
    for seat in model.seats("paris", hold, "fan", as_record(items)):
        c = model.claims(seat, issuer="guichet", audience="gate", issued_s=100, valid_s=50)
        assert set(c) == set(model.REQUIRED)
        assert c["exp"] == 150
        assert model.seat_of(c) == seat


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8,
)  # fmt: skip


@hypothesis.given(
    c=st.dictionaries(st.sampled_from(["tid", "sale", "ses", "cat", "sub", "x"]), JSONISH)
)
def test_seat_of_any_verified_claims_is_a_seat_or_none(c: dict[str, Any]) -> None:
    seat = model.seat_of(c)  # signed by us yet odd: never raises
    if seat is not None:
        assert model.parse_ticket_id(seat.id) == (seat.hold, seat.number)


def test_format_from_query_or_accept() -> None:
    assert model.pick_format(None, None) == "json"
    assert model.pick_format("svg", "image/png") == "svg"  # the query wins
    assert model.pick_format("gif", None) is None
    assert model.pick_format(None, "image/png;q=0.9, image/svg+xml") == "png"
    assert model.pick_format(None, "text/html, image/svg+xml") == "svg"
    assert model.pick_format(None, "application/json") == "json"
    assert model.pick_format(None, "text/html") == "json"


@hypothesis.given(query=st.none() | st.text(max_size=10), accept=st.none() | st.text(max_size=60))
def test_format_of_any_request(query: str | None, accept: str | None) -> None:
    assert model.pick_format(query, accept) in ("json", "svg", "png", None)


def test_used_record() -> None:
    assert model.used_record("1700000000000001 SDF-N3") == (1700000000000001, "SDF-N3")


@hypothesis.given(
    keys=st.lists(st.dictionaries(st.sampled_from(["kty", "crv", "x", "kid", "alg"]),
                                  st.sampled_from(["OKP", "Ed25519", "AAAA", "", "k1"])),
                  max_size=4),
)  # fmt: skip
def test_a_saved_jwks_of_any_shape_loads_or_skips_its_keys(keys: list[dict[str, str]]) -> None:
    source = JwksKeys({"keys": keys})
    assert all(source.public_key(k["kid"]) is not None for k in source.published())
