"""The pool file and a programme's spec (pure): all or nothing, a bad row named by its line."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from datetime import date

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guichet import errors, wire
from guichet.programme import model, pool

HEADER = "games,session,date,name,category,quantity"


def test_a_csv_pool_parses_per_games() -> None:
    text = "\n".join([HEADER, "olympic,ATH-01,2024-08-01,Athletics final,A,10",
                      "olympic,ATH-01,2024-08-01,Athletics final,B,5",
                      "paralympic,PAR-01,2024-09-01,Para athletics,A,7", ""])  # fmt: skip
    parsed = pool.parse(text.encode(), "pool.csv")
    assert parsed.counts == {"olympic": {"ATH-01:A": 10, "ATH-01:B": 5},
                             "paralympic": {"PAR-01:A": 7}}  # fmt: skip
    assert parsed.sessions["olympic"]["ATH-01"] == pool.SessionInfo(
        date="2024-08-01", games="olympic", name="Athletics final",
        withdraw_until_us=1722463199999999,  # 2024-07-31T23:59:59.999999+02:00, the eve
    )  # fmt: skip
    assert parsed.total("olympic") == 15
    rows = [pool.PoolRow(games="olympic", session="S", date=date(2024, 8, 1), name="n",
                         category="A", quantity=1)]  # fmt: skip
    assert pool.parse(pool.to_csv(rows).encode(), content_type="text/csv").total("olympic") == 1


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["olympic,ATH-01,2024-08-01,Final,A,0"], "line 2: quantity"),
        (["olympic,ATH-01,2024-08-01,Final,A,x"], "line 2: quantity must be an integer"),
        (["olympic,ATH-01,2024-08-01,Final,A,1", "olympic,ATH-01,2024-08-02,Final,B,1"],
         "line 3: session ATH-01 differs from its row on line 2"),
        (["olympic,ATH-01,2024-08-01,Final,A,1", "paralympic,ATH-01,2024-08-01,Final,B,1"],
         "line 3: session ATH-01 differs"),
        (["olympic,ATH-01,2024-08-01,Final,A,1", "olympic,ATH-01,2024-08-01,Final,A,2"],
         "line 3: ATH-01:A again (first on line 2)"),
        (["winter,ATH-01,2024-08-01,Final,A,1"], "line 2: games"),
        (["olympic,ath,2024-08-01,Final,A,1"], "line 2: session"),
        (["olympic,ATH-01,2024-13-01,Final,A,1"], "line 2: date"),
        (["olympic,ATH-01,2024-08-01,Final,A"], "line 2: expected 6 columns"),
        ([], "1 to"),
    ],
)  # fmt: skip
def test_a_bad_csv_row_is_named_by_its_line(rows: list[str], message: str) -> None:
    with pytest.raises(pool.PoolError, match=re.escape(message)):
        pool.parse_csv("\n".join([HEADER, *rows]) + "\n")


def test_a_bad_header_or_json_row_is_named() -> None:
    with pytest.raises(pool.PoolError, match="line 1: the columns must be"):
        pool.parse_csv("session,games\n")
    good = {"games": "olympic", "session": "S1", "date": "2024-08-01", "name": "n",
            "category": "A", "quantity": 1}  # fmt: skip
    text = json.dumps({"tickets": [good, {**good, "category": "B", "quantity": -1}]}, indent=1)
    with pytest.raises(pool.PoolError, match=r"line \d+ \(tickets\[1\]\): quantity"):
        pool.parse_json(text.encode())
    with pytest.raises(pool.PoolError, match="line 1: tickets"):
        pool.parse_json(b'{"tickets": 3}')
    with pytest.raises(pool.PoolError, match="not valid JSON"):
        pool.parse_json(b"{")
    with pytest.raises(pool.PoolError, match="unknown field"):
        pool.parse_json(json.dumps({"tickets": [{**good, "holder": "x"}]}).encode())


_cells = st.sampled_from(["olympic", "paralympic", "ATH-01", "2024-08-01", "A", "1", "0", "-3",
                          "x", "", "Final", "2024-02-30", "é", '"', "\x00"])  # fmt: skip


@given(st.lists(st.lists(_cells, min_size=0, max_size=8), max_size=6), st.binary(max_size=40))
def test_pool_files_parse_or_are_refused_by_a_pool_error(
    rows: list[list[str]], junk: bytes
) -> None:
    """Whatever the bytes: a Pool or a PoolError, never another exception."""
    text = "\n".join([HEADER, *(",".join(r) for r in rows)])
    for data, name in ((text.encode(), "p.csv"), (text.encode() + junk, "p.csv"),
                       (junk, "p.json"), (junk, "p.csv")):  # fmt: skip
        try:
            parsed = pool.parse(data, name)
        except pool.PoolError:
            continue
        assert all(q >= 1 for c in parsed.counts.values() for q in c.values())


@given(st.recursive(st.none() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["tickets", "games", "session", "date",
                                                       "name", "category", "quantity"]),
                                      inner, max_size=6),
                    max_leaves=20))  # fmt: skip
def test_json_pool_files_parse_or_are_refused_by_a_pool_error(value: object) -> None:
    with contextlib.suppress(pool.PoolError):
        pool.parse_json(json.dumps(value).encode())


def test_a_programme_defaults_to_its_games_reclaim_date_and_keeps_data_after_it() -> None:
    body = wire.decode(b'{"public":"youth","games":"paralympic","operator":"op-1",'
                       b'"retention_until":"2024-12-31","criteria":["age-16-25"]}',
                       pool.ProgrammeBody)  # fmt: skip
    assert body.reclaim_day() == model.RECLAIM_ON["paralympic"] == date(2024, 6, 1)
    spec = pool.spec_of("youth-75", body, "central-1")
    assert msgspec.json.decode(msgspec.json.encode(spec))["reclaim_on"] == "2024-06-01"
    assert "at" not in msgspec.json.decode(msgspec.json.encode(spec))  # the script adds it


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"retention_until": "2024-05-01"}, "retention_until"),
        ({"criteria": []}, "criteria"),
        ({"criteria": ["a", "a"]}, "criteria"),
        ({"criteria": [f"c{i}" for i in range(17)]}, "criteria"),
        ({"public": "tourists"}, "public"),
        ({"operator": "Op 1"}, "operator"),
        ({"name": "x"}, "name"),
    ],
)
def test_a_bad_programme_is_refused_naming_the_field(body: dict[str, object], field: str) -> None:
    base = {"public": "youth", "games": "olympic", "operator": "op-1",
            "retention_until": "2024-12-31", "criteria": ["age-16-25"]}  # fmt: skip
    with pytest.raises(errors.Problem) as caught:
        wire.decode(json.dumps({**base, **body}).encode(), pool.ProgrammeBody)
    assert caught.value.status == 422
    assert caught.value.errors[0].field == field


def test_an_allocation_names_an_item_given_twice() -> None:
    item = {"session": "S", "category": "A", "quantity": 1}
    body = json.dumps({"items": [item, {**item, "quantity": 2}]}).encode()
    with pytest.raises(errors.Problem) as caught:
        wire.decode(body, pool.AllocationBody)
    assert caught.value.errors[0].field == "items"


def test_the_pool_module_is_pure() -> None:
    """No web framework, no Redis client: the parser runs (and is fuzzed) without either."""
    probe = ("import sys, guichet.programme.pool; "
             "print(sorted(m for m in ('aiohttp', 'redis') if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]", done.stderr
