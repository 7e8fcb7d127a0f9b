"""The people's request types and records, pure: any JSON body is a 4xx at worst, and the
record built from a candidate holds neither the plain names nor the birth date."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guichet import errors, wire
from guichet.programme import identity, model, people

BOX = identity.NameBox(b"k" * 32)
SECRET = b"s" * 32
TODAY = date(2024, 3, 1)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)
FIELDS = ["family_name", "given_names", "birth_date", "lottery", "group", "criteria", "consent",
          "guardian", "reuse_consent"]  # fmt: skip
bodies = st.dictionaries(st.sampled_from([*FIELDS, "extra"]) | st.text(max_size=8), json_values,
                         max_size=10)  # fmt: skip


def _refusal(call: Callable[[], object]) -> errors.Problem | None:
    try:
        call()
    except errors.Problem as problem:
        return problem
    return None


@settings(max_examples=300)
@given(st.one_of(bodies.map(lambda b: json.dumps(b).encode()), st.binary(max_size=60)))
def test_any_body_is_a_candidate_or_a_4xx_naming_the_problem(raw: bytes) -> None:
    for typ in (people.Candidate, people.Guardian, people.Invite, people.Mobility,
                people.ReuseConsent):  # fmt: skip
        refused = _refusal(lambda t=typ: wire.decode(raw, t))  # type: ignore[misc]
        if refused is not None:
            assert 400 <= refused.status < 500
            continue
        c = wire.decode(raw, typ)
        if isinstance(c, people.Candidate):
            refused = _refusal(lambda c=c: people.check(c, TODAY))  # type: ignore[misc]
            assert refused is None or (refused.status == 422 and refused.errors)


def test_unknown_fields_are_refused_naming_them() -> None:
    body = {"family_name": "A", "given_names": "B", "birth_date": "2000-01-01", "lottery": "l",
            "criteria": [], "consent": {"version": "v", "collected_at": "2024-01-01T00:00:00Z",
                                        "collected_by": "x"}, "phone": "0600000000"}  # fmt: skip
    with pytest.raises(errors.Problem) as refused:
        wire.decode(json.dumps(body).encode(), people.Candidate)
    assert refused.value.status == 422
    assert "phone" in str(refused.value.detail)


names = st.text(st.characters(categories=["L"]), min_size=3, max_size=30).filter(
    lambda n: len(identity.normalise(n)) >= 3
)


@settings(max_examples=200)
@given(family=names, given_names=names,
       birth=st.dates(min_value=date(1930, 1, 1), max_value=date(2020, 12, 31)),
       reuse=st.booleans())  # fmt: skip
def test_the_record_never_holds_the_plain_names_or_the_birth_date(
    family: str, given_names: str, birth: date, reuse: bool
) -> None:
    c = people.Candidate(
        family_name=family, given_names=given_names, birth_date=birth, lottery="main",
        criteria=["a"], consent=people.Consent(
            version="v1", collected_at=datetime(2024, 2, 1, tzinfo=UTC), collected_by="op"),
        reuse_consent=people.ReuseConsent(version="r1") if reuse else None,
    )  # fmt: skip
    person = identity.pseudonym(SECRET, family, given_names, birth)
    record = people.candidate_record(c, person=person, games="olympic", box=BOX, actor="op",
                                     group=None)  # fmt: skip
    other = people.candidate_record(
        msgspec.structs.replace(c, family_name="Other", given_names="Person"), person=person,
        games="olympic", box=BOX, actor="op", group=None)  # fmt: skip
    # the only field the names change is the sealed name; the birth date gives the majority day
    assert msgspec.structs.replace(record, name=None) == msgspec.structs.replace(other, name=None)
    text = msgspec.json.encode(msgspec.structs.replace(record, name=None)).decode()
    assert birth.isoformat() not in text
    assert record.majority_on == model.majority_day(birth).isoformat()
    assert record.name is not None
    assert BOX.open("olympic", person, record.name) == f"{given_names.strip()} {family.strip()}"
    prefix = people.record_prefix(record)
    assert msgspec.json.decode(prefix + b"1700000000000001}", type=people.CandidateRecord).at == (
        1_700_000_000_000_001)  # fmt: skip


def test_a_missing_criterion_is_named() -> None:
    assert people.missing_criterion(["a", "b"], ["b"]) == "a"
    assert people.missing_criterion(["a"], ["a", "extra"]) is None
    assert people.minor("2024-08-03", "2024-08-02")
    assert not people.minor("2024-08-02", "2024-08-02")
