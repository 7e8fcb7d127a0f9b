"""The shop's pure rules and catalogue files."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guichet.shop import catalogue, demo, model

SPEC = model.SaleSpec()
SINGLES = model.SaleSpec(phase="singles")


def item(session: str, quantity: int = 1, category: str = "A") -> model.Item:
    return model.Item(session=session, category=category, quantity=quantity)


items = st.builds(item, st.sampled_from(["S1", "S2", "S3", "S4", "CER"]), st.integers(1, 6),
                  st.sampled_from(["A", "B"]))  # fmt: skip


KINDS: dict[str, model.SessionKind] = {"S1": "sport", "S2": "sport", "S3": "sport",
                                       "S4": "sport", "CER": "ceremony"}  # fmt: skip


@given(st.lists(st.lists(items, min_size=1, max_size=6), min_size=1, max_size=4))
def test_a_pack_is_accepted_exactly_when_it_has_3_tickets_in_3_sport_sessions(
    packs: list[list[model.Item]],
) -> None:
    """The seed: "au minimum trois billets (dans trois sessions sportives différentes)";
    ceremony tickets may be in a pack but do not count."""
    request = model.HoldRequest(packs=[model.Pack(items=p) for p in packs])
    verdict = model.check_shape(request, SPEC, KINDS)
    sport = [[i for i in p if i.session != "CER"] for p in packs]
    good = all(sum(i.quantity for i in p) >= 3 and len({i.session for i in p}) >= 3 for p in sport)
    assert (verdict is None) == good
    if verdict is not None:
        assert verdict.rule == "pack_composition"


@given(st.lists(items, min_size=1, max_size=8), st.integers(0, 30),
       st.dictionaries(st.sampled_from(["S1", "S2", "CER"]), st.integers(0, 6)))  # fmt: skip
def test_singles_quotas(lines: list[model.Item], have: int, per_session: dict[str, int]) -> None:
    request = model.HoldRequest(items=lines)
    usage = model.Usage(tickets=have, per_session=per_session)
    verdict = model.check_hold(request, SINGLES, usage, limited={"CER"})
    total = sum(i.quantity for i in lines)
    by_session: dict[str, int] = {}
    for i in lines:
        by_session[i.session] = by_session.get(i.session, 0) + i.quantity
    over_session = any(per_session.get(s, 0) + q > (4 if s == "CER" else 6)
                       for s, q in by_session.items())  # fmt: skip
    if have + total > 30:
        assert verdict is not None
        assert verdict.rule == "max_tickets"
    elif over_session:
        assert verdict is not None
        assert verdict.rule == "max_per_session"
    else:
        assert verdict is None


def test_ceremonies_do_not_count_towards_a_pack_but_may_be_added() -> None:
    ceremonies = model.Pack(items=[item("CER", 3), item("S1"), item("S2")])
    refused = model.check_shape(model.HoldRequest(packs=[ceremonies]), SPEC, KINDS)
    assert refused is not None
    assert (refused.rule, refused.item) == ("pack_composition", "pack 1")
    assert "2 sport sessions" in refused.detail
    added = model.Pack(items=[item("CER", 2), item("S1"), item("S2"), item("S3")])
    assert model.check_shape(model.HoldRequest(packs=[added]), SPEC, KINDS) is None
    assert model.check_shape(model.HoldRequest(packs=[ceremonies]), SPEC) is None  # no kinds


def test_the_per_session_cap_inside_packs_counts_held_and_sold_tickets() -> None:
    """Paris 2024 applied 6 tickets per session in packs (a public fact, not the seed)."""
    five = model.Pack(items=[item("S1", 5), item("S2"), item("S3")])
    assert model.check_hold(model.HoldRequest(packs=[five]), SPEC, model.Usage(), set()) is None
    again = model.check_hold(model.HoldRequest(packs=[five]), SPEC,
                             model.Usage(7, 1, {"S1": 5}), set())  # fmt: skip
    assert again is not None
    assert (again.rule, again.item) == ("max_per_session", "S1")
    wider = model.SaleSpec(pack_max_per_session=10)
    assert model.check_hold(model.HoldRequest(packs=[five]), wider,
                            model.Usage(7, 1, {"S1": 5}), set()) is None  # fmt: skip


def test_the_sale_period_and_games() -> None:
    spec = msgspec.convert({"purchase_opens_at": "2023-02-15T00:00:00+01:00",
                            "purchase_closes_at": "2023-03-15T23:59:59+01:00",
                            "games": "paralympic"}, model.SaleSpec)  # fmt: skip
    opens, closes = spec.period_us()
    assert opens == int(datetime(2023, 2, 14, 23, tzinfo=UTC).timestamp()) * 1_000_000
    assert closes is not None
    assert not model.outside_period(spec, opens, closes)
    assert model.outside_period(spec, opens - 1, closes)
    assert model.outside_period(spec, opens, closes + 1)
    assert not model.outside_period(model.SaleSpec(), 0, 2**60)  # no period: no bound
    for bad, field in (
        ({"purchase_opens_at": "2023-03-15T00:00:00Z", "purchase_closes_at":
          "2023-02-15T00:00:00Z"}, "purchase_closes_at"),
        ({"purchase_opens_at": "2023-02-15T00:00:00"}, "purchase_opens_at"),
        ({"purchase_opens_at": ""}, "purchase_opens_at"),
        ({"games": "winter"}, "games"),
    ):  # fmt: skip
        with pytest.raises(msgspec.ValidationError, match=field):
            msgspec.json.decode(msgspec.json.encode(bad), type=model.SaleSpec)
    both = demo.shipped()
    assert model.other_games(demo.shipped("paralympic"), "paralympic") is None
    index, session = model.other_games(both, "olympic") or (0, both.sessions[0])
    assert session.games == "paralympic"
    assert both.sessions[index] is session


def test_pack_quotas_and_phase() -> None:
    three = model.Pack(items=[item("S1"), item("S2"), item("S3")])
    assert (
        model.check_hold(model.HoldRequest(packs=[three]), SPEC, model.Usage(27, 9), set()) is None
    )
    refused = model.check_hold(model.HoldRequest(packs=[three]), SPEC, model.Usage(27, 10), set())
    assert refused is not None
    assert refused.rule == "max_packs"
    wrong = model.check_hold(model.HoldRequest(items=[item("S1")]), SPEC, model.Usage(), set())
    assert wrong is not None
    assert (wrong.rule, wrong.item) == ("phase", "items")
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"packs": [], "items": [{"session": "S1", "category": "A",
                                                 "quantity": 1}]}, model.HoldRequest)  # fmt: skip


def test_the_demo_catalogue_ships_767_sessions_and_round_trips_as_csv() -> None:
    shipped = demo.shipped()
    assert shipped == demo.catalogue()
    assert len(shipped.sessions) == 767
    ceremonies = {s.id for s in shipped.sessions if s.kind == "ceremony"}
    assert ceremonies == {"CER-OG-OPEN", "CER-OG-CLOSE", "CER-PG-OPEN", "CER-PG-CLOSE"}
    assert {s.games for s in shipped.sessions} == {"olympic", "paralympic"}
    assert len(demo.shipped("olympic").sessions) == 542
    assert {s.games for s in demo.shipped("paralympic").sessions} == {"paralympic"}
    assert catalogue.parse_csv(catalogue.to_csv(shipped)) == shipped


CSV_HEAD = ",".join(catalogue.COLUMNS)
ROW = "ATH-01,Athletics,Stade de France,2024-08-01T10:00:00Z,olympic,sport,true,A,125,900"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([ROW, ROW.replace(",900", ",-1")], "line 3: categories[0].seats"),
        ([ROW, ROW.replace(",A,", ",B,").replace("Stade de France", "Bercy")], "line 3: session"),
        ([ROW, ROW], "line 3: category A of ATH-01 twice"),
        ([ROW.replace("true", "maybe")], "line 2: high_demand"),
        ([ROW.replace(",sport,", ",concert,")], "line 2: kind"),
        ([ROW.replace(",olympic,", ",winter,")], "line 2: games"),
        ([ROW.replace(",125,", ",cheap,")], "line 2: price_eur and seats must be integers"),
        ([ROW.replace("2024-08-01T10:00:00Z", "2024-08-01T10:00:00")], "line 2:"),
        ([ROW + ",extra"], "line 2: expected 10 columns"),
        ([ROW.replace("ATH-01", "ath 1")], "line 2: id"),
    ],
)
def test_a_bad_csv_row_is_named_by_its_line(rows: list[str], message: str) -> None:
    with pytest.raises(catalogue.CatalogueError, match=message.replace("[", r"\[")):
        catalogue.parse_csv("\n".join([CSV_HEAD, *rows]) + "\n")


def test_a_bad_json_session_is_named_by_its_line() -> None:
    good = msgspec.json.encode(catalogue.parse_csv(f"{CSV_HEAD}\n{ROW}\n").sessions[0])
    bad = good.replace(b'"seats":900', b'"seats":"many"')
    text = b'{"sessions": [\n' + good + b",\n" + bad + b"\n]}"
    with pytest.raises(catalogue.CatalogueError, match=r"line 3 \(sessions\[1\]\): categories"):
        catalogue.parse_json(text)
    with pytest.raises(catalogue.CatalogueError, match="line 3: session ATH-01 again"):
        catalogue.parse_json(b'{"sessions": [\n' + good + b",\n" + good + b"\n]}")
    parsed = catalogue.parse(b'{"sessions": [' + good + b"]}", "x.json")
    assert parsed.sessions[0].starts_at == datetime(2024, 8, 1, 10, tzinfo=UTC)


def test_a_csv_row_without_a_kind_is_a_sport_session() -> None:
    parsed = catalogue.parse_csv(f"{CSV_HEAD}\n{ROW.replace(',sport,', ',,')}\n")
    assert parsed.sessions[0].kind == "sport"
    ceremony = catalogue.parse_csv(f"{CSV_HEAD}\n{ROW.replace(',sport,', ',ceremony,')}\n")
    assert ceremony.sessions[0].kind == "ceremony"
    assert ceremony.sessions[0].limited


CELLS = st.sampled_from(
    [
        "ATH-01",
        "Athletics",
        "2024-08-01T10:00:00Z",
        "olympic",
        "paralympic",
        "sport",
        "ceremony",
        "true",
        "",
        "A",
        "125",
        "-1",
        "x",
        '"',
        "\n",
    ]
)


@given(st.lists(st.lists(CELLS, min_size=8, max_size=11), max_size=4), st.text(max_size=40))
def test_catalogue_files_parse_or_are_refused_by_line(rows: list[list[str]], junk: str) -> None:
    """Fuzz: any bytes either parse or raise CatalogueError (never another exception)."""
    text = "\n".join([CSV_HEAD, *(",".join(r) for r in rows), junk]).encode()
    for data, name in ((text, "x.csv"), (text, "x.json"),
                       (b'{"sessions": [' + junk.encode() + b"]}", "x.json")):  # fmt: skip
        with contextlib.suppress(catalogue.CatalogueError):
            catalogue.parse(data, name)


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (f"{CSV_HEAD}\n{ROW}\nATH-02,A\rthletics,x\n".encode(), "line 3"),  # csv syntax
        (f"{CSV_HEAD}\n{ROW}\n".encode("utf-16"), "not UTF-8"),
    ],
)
def test_a_catalogue_that_is_not_csv_is_refused_by_line(data: bytes, found: str) -> None:
    with pytest.raises(catalogue.CatalogueError, match=found):
        catalogue.parse(data, "x.csv")
