"""The control report's rendering (programme/report_render.py): any data renders; every field
is escaped in the HTML; every CSV annex round-trips through csv.reader."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import fields
from html.parser import HTMLParser
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from guichet.programme import report_render as render

TEXT = st.text(max_size=12)
HOSTILE = "<script>alert(1)</script>"


def rows(kind: type[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.builds(kind), max_size=3)


DATA = st.builds(
    render.ReportData,
    programme=st.builds(render.ProgrammeInfo, criteria=st.lists(TEXT, max_size=3)),
    summary=st.builds(render.Summary),
    allocation=rows(render.AllocationRow),
    left=st.dictionaries(TEXT, st.integers(), max_size=3),
    designations=rows(render.DesignationRow),
    assignments=rows(render.AssignmentRow),
    withdrawals=st.lists(
        st.builds(render.WithdrawalRow,
                  outcome=st.sampled_from(["reassigned", "returned", render.NOT_STORED])),
        max_size=3),
    reclaims=rows(render.ReclaimRow),
    declarations=rows(render.DeclarationRow),
    lotteries=st.lists(st.builds(render.LotteryCheck, problems=st.lists(TEXT, max_size=2)),
                       max_size=3),
    audit=rows(render.AuditRow),
    chain=st.builds(render.ChainCheck, problems=st.lists(TEXT, max_size=2)),
    pool_breaches=st.lists(TEXT, max_size=2),
    notes=st.lists(TEXT, max_size=2),
)  # fmt: skip


class Tags(HTMLParser):
    """The start tags and the text of a document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(page: str) -> Tags:
    p = Tags()
    p.feed(page)
    p.close()
    return p


def page_of(d: render.ReportData) -> str:
    return render.html(d, render.annexes(d), {"lottery-l.transcript.json": "ab" * 32})


@given(DATA)
def test_any_data_renders_with_no_script_and_no_outside_resource(d: render.ReportData) -> None:
    page = page_of(d)
    tags = parsed(page).tags
    assert "script" not in tags
    assert not {"link", "img", "iframe", "object"} & set(tags)
    assert "@media print" in page
    assert tags.count("table") >= 8


@given(DATA)
def test_every_annex_round_trips_through_the_csv_reader(d: render.ReportData) -> None:
    for annex in render.annexes(d):
        read = list(csv.reader(io.StringIO(annex.text, newline="")))
        assert len(read) == annex.rows + 1
        assert all(len(r) == len(read[0]) for r in read)
    by_name = {a.name: a for a in render.annexes(d)}
    read = list(csv.reader(io.StringIO(by_name["designations.csv"].text, newline="")))
    assert read[1:] == [[str(getattr(r, f.name)) for f in fields(r)] for r in d.designations]
    read = list(csv.reader(io.StringIO(by_name["audit.csv"].text, newline="")))
    assert read[1:] == [[str(getattr(r, f.name)) for f in fields(r)] for r in d.audit]


@settings(max_examples=40)
@given(DATA, st.sampled_from(["operator", "generated_by", "justification", "subject", "actor"]))
def test_a_hostile_name_stays_text(d: render.ReportData, where: str) -> None:
    if where == "operator":
        d = _replace(d, programme=_replace(d.programme, operator=HOSTILE))
    elif where == "generated_by":
        d = _replace(d, generated_by=HOSTILE)
    elif where == "justification":
        d = _replace(d, designations=[render.DesignationRow(
            "t", "exception", "", "S", "C", "at", "op", HOSTILE)])  # fmt: skip
    elif where == "subject":
        d = _replace(d, declarations=[render.DeclarationRow(HOSTILE, "", "", "[]")])
    else:
        d = _replace(d, allocation=[render.AllocationRow("*", 1, "", HOSTILE)])
    page = page_of(d)
    p = parsed(page)
    assert "script" not in p.tags
    assert HOSTILE in "".join(p.text)
    assert HOSTILE not in page  # escaped


def test_the_manifest_is_canonical_and_sorted() -> None:
    m = render.manifest({"b.csv": "2", "a.csv": "1"})
    assert json.loads(m) == {"files": [{"name": "a.csv", "sha256": "1"},
                                       {"name": "b.csv", "sha256": "2"}]}  # fmt: skip
    assert m == render.manifest({"a.csv": "1", "b.csv": "2"})


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)
