"""The programme's beneficiaries, minimised: request types and the records built from them.
Pure: no I/O.

What a candidate's registration may carry is closed (``wire.Base`` refuses unknown fields), so
no personal data beyond the identity needed for the pseudonym and the printed name can enter
(CNIL recommendation 1, seed 002 §4): the plain names and the birth date are turned into the
keyed pseudonym, the majority day and the encrypted printed name (identity.py), and never
stored. Consent is recorded (time, version of the text, who collected it; recommendation 2),
a minor's legal guardian's consent too (who gave it — the guardian's name, stored only sealed
like the printed name and purged with it —, the relationship, the time, who collected it),
and consent to reuse the data later is separate and revocable (recommendation 4).

Mobility needs are a count per group, never per person: CNIL recommendation 2 (seed 002 §4),
"il est préférable de ne collecter que le nombre de personnes ayant des besoins spécifiques
sans que l'identité de celles-ci ne soit renseignée".
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from guichet import errors, wire
from guichet.programme import identity, model

Relationship = Literal["parent", "legal-guardian"]
State = Literal["candidate", "designated", "assigned", "withdrawn"]
Name = Annotated[str, Meta(min_length=1, max_length=100)]
Version = Annotated[str, Meta(pattern=wire.whole(r"[\x21-\x7e]{1,32}"), description="text version")]
Collector = Annotated[
    str,
    Meta(
        pattern=wire.whole(r"[\x20-\x7e]{1,128}"), description="who collected it (printable ASCII)"
    ),
]
Account = Annotated[str, Meta(pattern=wire.whole(r"[\x21-\x7e]{1,128}"), description="account id")]
#: A pseudonym as it appears in paths and answers (identity.pseudonym: 64 hex characters).
PSEUDONYM = wire.whole(r"[0-9a-f]{64}")
Pseudonym = Annotated[str, Meta(pattern=PSEUDONYM, description="the person's keyed pseudonym")]
#: Earliest date a consent or birth date may carry (no µs time below 0 reaches a record).
EARLIEST = date(1900, 1, 1)
MAX_CRITERIA = 16


class Consent(wire.Base, kw_only=True):
    """The candidate's consent to the programme's processing (recommendation 2)."""

    version: Version
    collected_at: datetime
    collected_by: Collector


class Guardian(wire.Base, kw_only=True):
    """A legal guardian's consent for a minor: who gave it (their name, stored only encrypted
    and purged with the printed names), relationship and time (and who collected it; by
    default the caller)."""

    name: Name
    relationship: Relationship
    consented_at: datetime
    collected_by: Collector | None = None


class ReuseConsent(wire.Base, kw_only=True):
    """Consent to reuse the data later for a message about the programme (recommendation 4):
    optional, separate, revocable."""

    version: Version


class Candidate(wire.Base, kw_only=True):
    """A candidate as an operator (or a group leader) registers it."""

    family_name: Name
    given_names: Name
    birth_date: date
    lottery: wire.Slug
    group: wire.Slug | None = None
    #: The eligibility criteria the caller attests (every one of the programme's).
    criteria: Annotated[list[wire.Slug], Meta(max_length=MAX_CRITERIA)]
    consent: Consent
    guardian: Guardian | None = None
    reuse_consent: ReuseConsent | None = None


class Invite(wire.Base, kw_only=True):
    """An operator invites a group leader (an account) into a group of its programme."""

    id: wire.Slug
    leader: Account


class Mobility(wire.Base, kw_only=True):
    """A group's mobility needs, as one count (never per person)."""

    count: Annotated[int, Meta(ge=0, le=10_000)]


# --- records (the JSON stored; the spec's formats) ----------------------------------------------


class ConsentRecord(msgspec.Struct, kw_only=True):
    version: str
    at: int
    by: str


class GuardianRecord(msgspec.Struct, kw_only=True):
    relationship: str
    by: str
    at: int
    #: The guardian's name, sealed (identity.NameBox, for ``<pseudonym>/guardian``); null once
    #: purged. Its own key, so that the purge finds it apart from the printed ``name``.
    sealed_name: str | None = None


class ReuseRecord(msgspec.Struct, kw_only=True):
    version: str
    at: int


class CandidateRecord(msgspec.Struct, kw_only=True):
    """``candidates:<P>`` value (p14-spec.md). ``at`` is last: register.lua appends it from
    Redis TIME to the prefix the service sends (:func:`record_prefix`)."""

    lottery: str
    group: str | None
    criteria: list[str]
    eligible: bool
    consent: ConsentRecord
    #: The 18th birthday, kept only for someone under 18 on the games' first session day
    #: (null otherwise, and after the purge): what the guardian-consent rule needs, no more.
    majority_on: str | None
    guardian: GuardianRecord | None
    reuse: ReuseRecord | None
    name: str | None
    state: State
    ticket: str | None
    by: str
    at: int


class GroupRecord(msgspec.Struct, kw_only=True):
    """``groups:<P>`` value (p14-spec.md); group.lua and mobility.lua write it."""

    leader: str
    mobility_needs: int
    by: str
    at: int


class ProgrammeView(msgspec.Struct, kw_only=True):
    """What this part reads of a programme's spec (slice A writes it; other fields ignored)."""

    id: str
    games: model.Games
    criteria: list[str] = []
    retention_until: date | None = None


_CANDIDATE = msgspec.json.Decoder(CandidateRecord)
_GROUP = msgspec.json.Decoder(GroupRecord)
_PROGRAMME = msgspec.json.Decoder(ProgrammeView)


def decode_candidate(raw: bytes | str) -> CandidateRecord:
    return _CANDIDATE.decode(raw)


def decode_group(raw: bytes | str) -> GroupRecord:
    return _GROUP.decode(raw)


def decode_programme(raw: bytes | str) -> ProgrammeView:
    return _PROGRAMME.decode(raw)


def us(moment: datetime) -> int:
    """A time as µs since the epoch (UTC)."""
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _field(field: str, detail: str) -> errors.Problem:
    return errors.invalid_body([errors.FieldError(field=field, detail=detail)])


def _when(value: datetime, field: str, today: date) -> int:
    if value.tzinfo is None:
        raise _field(field, "needs a UTC offset (RFC 3339)")
    if not EARLIEST <= value.astimezone(UTC).date() <= today:
        raise _field(field, "must be a past time")
    return us(value)


def check(c: Candidate, today: date) -> None:
    """422 naming the field for what the types cannot say: names that normalise to nothing, a
    birth date or consent time out of range."""
    for field, value in (("family_name", c.family_name), ("given_names", c.given_names)):
        if not identity.normalise(value):
            raise _field(field, "has no letters")
    if not EARLIEST <= c.birth_date <= today:
        raise _field("birth_date", "must be a past date")
    _when(c.consent.collected_at, "consent.collected_at", today)
    if c.guardian is not None:
        _when(c.guardian.consented_at, "guardian.consented_at", today)


#: A field check the registration script finishes: (field, the UTC day number since the epoch
#: that must not be after Redis' today, or None when the field is invalid already, the detail).
FieldCheck = tuple[str, int | None, str]
_EPOCH = date(1970, 1, 1).toordinal()


def _day(d: date) -> int:
    return d.toordinal() - _EPOCH


def field_checks(c: Candidate) -> list[FieldCheck]:
    """:func:`check` without a clock, in its order, for the script to finish against Redis
    TIME: everything up to and including the first field known invalid here (its day None)."""
    out: list[FieldCheck] = []
    for field, value in (("family_name", c.family_name), ("given_names", c.given_names)):
        if not identity.normalise(value):
            return [(field, None, "has no letters")]
    past = "must be a past date"
    if c.birth_date < EARLIEST:
        return [("birth_date", None, past)]
    out.append(("birth_date", _day(c.birth_date), past))
    times: list[tuple[str, datetime]] = [("consent.collected_at", c.consent.collected_at)]
    if c.guardian is not None:
        times.append(("guardian.consented_at", c.guardian.consented_at))
    for field, moment in times:
        if moment.tzinfo is None:
            return [*out, (field, None, "needs a UTC offset (RFC 3339)")]
        day = moment.astimezone(UTC).date()
        if day < EARLIEST:
            return [*out, (field, None, "must be a past time")]
        out.append((field, _day(day), "must be a past time"))
    return out


def field_problem(check: FieldCheck) -> errors.Problem:
    return _field(check[0], check[2])


def missing_criterion(required: list[str], attested: list[str]) -> str | None:
    """The first of the programme's criteria the caller did not attest, else None."""
    given = set(attested)
    return next((c for c in required if c not in given), None)


def guardian_box_id(person: str) -> str:
    """Whom a guardian's sealed name is bound to (not the minor's own printed name)."""
    return f"{person}/guardian"


def guardian_record(
    g: Guardian, actor: str, today: date, *, games: str, person: str, box: identity.NameBox
) -> GuardianRecord:
    at = _when(g.consented_at, "consented_at", today)
    sealed = box.seal(games, guardian_box_id(person), g.name.strip())
    return GuardianRecord(relationship=g.relationship, by=g.collected_by or actor, at=at,
                          sealed_name=sealed)  # fmt: skip


def candidate_record(
    c: Candidate, *, person: str, games: str, box: identity.NameBox, actor: str, group: str | None
) -> CandidateRecord:
    """The record stored for ``c`` (its ``at`` 0: register.lua sets it). Only the pseudonym,
    the majority day and the sealed printed name come from the identity fields."""
    consent = c.consent
    return CandidateRecord(
        lottery=c.lottery,
        group=group,
        criteria=sorted(set(c.criteria)),
        eligible=True,
        consent=ConsentRecord(
            version=consent.version, at=us(consent.collected_at), by=consent.collected_by
        ),
        majority_on=model.majority_day(c.birth_date).isoformat(),
        guardian=None
        if c.guardian is None
        else GuardianRecord(
            relationship=c.guardian.relationship,
            by=c.guardian.collected_by or actor,
            at=us(c.guardian.consented_at),
            sealed_name=box.seal(games, guardian_box_id(person), c.guardian.name.strip()),
        ),
        # given with the registration: collected with the consent, at the same time
        reuse=None
        if c.reuse_consent is None
        else ReuseRecord(version=c.reuse_consent.version, at=us(consent.collected_at)),
        name=box.seal(games, person, f"{c.given_names.strip()} {c.family_name.strip()}"),
        state="candidate",
        ticket=None,
        by=actor,
        at=0,
    )


_AT_ZERO = b',"at":0}'


def record_prefix(record: msgspec.Struct) -> bytes:
    """The JSON of a record whose last field is ``at`` = 0, without that value and the closing
    brace: the script appends Redis TIME (µs, exact; cjson would round it) and ``}``."""
    raw = msgspec.json.encode(record)
    if not raw.endswith(_AT_ZERO):
        raise ValueError("the record's last field must be at = 0")
    return raw[: -len(b"0}")]


def minor(majority_on: str, session_day: str) -> bool:
    """Is a candidate of this majority day a minor on the session's day (ISO dates)?"""
    return session_day < majority_on


def today_utc(now_us: int) -> date:
    return datetime.fromtimestamp(now_us / 1_000_000, UTC).date()
