"""The programme's beneficiaries on the Redis side: registration, groups and their leaders,
mobility counts, guardian and reuse consent, the export of reuse consents, the purge of names.
One script per decision (people_register, _group, _mobility, _update, _purge); every key of a
games in its one slot (``ProgrammeKeys``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, timedelta

import msgspec

from guichet.programme import identity, model
from guichet.programme.people import (
    Candidate,
    CandidateRecord,
    GroupRecord,
    Guardian,
    Invite,
    ProgrammeView,
    ReuseRecord,
    candidate_record,
    check,
    decode_candidate,
    decode_group,
    decode_programme,
    guardian_record,
    missing_criterion,
    record_prefix,
    today_utc,
    us,
)
from guichet.programme.people_refusals import (
    GroupCode,
    MobilityCode,
    PeopleRefused,
    PurgeCode,
    RegisterCode,
    UpdateCode,
)
from guichet.refusals import code_of
from guichet.store.client import Store
from guichet.store.keys import PROGRAMMES_INDEX, ProgrammeKeys
from guichet.store.scripts import LuaScript

REGISTER = LuaScript("guichet.programme", "people_register.lua")
UPDATE = LuaScript("guichet.programme", "people_update.lua")
GROUP = LuaScript("guichet.programme", "people_group.lua")
MOBILITY = LuaScript("guichet.programme", "people_mobility.lua")
PURGE = LuaScript("guichet.programme", "people_purge.lua")
SCRIPTS = (REGISTER, UPDATE, GROUP, MOBILITY, PURGE)
#: Candidate records per people_purge.lua call (each call is one short atomic step).
PURGE_BATCH = 500
_STALE_RETRIES = 5

_DETAILS: dict[str, str] = {
    "not_your_group": "this account does not lead this group of the programme",
    "retention_over": "the programme's retention period is over: no candidate can be added",
    "no_group": "no such group in this programme",
    "no_lottery": "no such lottery in this programme",
    "lottery_closed": "this lottery's candidate list is closed",
    "already_registered": "this person is already a candidate of this programme",
    "group_exists": "this group exists with another leader",
    "leader_busy": "this account already leads another group of the programme",
}


def retention_cutoff(day: date) -> int:
    """When a programme kept until ``day`` may be purged: the end of that day (00:00
    Europe/Paris the next day), in µs."""
    return us(model.paris_midnight(day + timedelta(days=1)))


@dataclass(frozen=True)
class Registered:
    """A registration: the pseudonym operators refer to afterwards, whether the person is a
    minor on the lottery's session day (and so needs a guardian's consent), the record."""

    pseudonym: str
    minor: bool
    session_day: str | None
    record: CandidateRecord


@dataclass(frozen=True)
class ReuseConsentRow:
    pseudonym: str
    version: str
    at_us: int


class People:
    """A programme's beneficiaries, groups and consents."""

    def __init__(
        self, store: Store, secret: bytes | None = None, box: identity.NameBox | None = None
    ) -> None:
        """``secret`` and ``box`` are needed to register (the purge and the rest do without)."""
        self.store = store
        self.client = store.client
        self._secret = secret
        self._box = box

    async def now_us(self) -> int:
        seconds, micros = await self.client.time()
        return int(seconds) * 1_000_000 + int(micros)

    async def programme(self, programme: str) -> tuple[ProgrammeKeys, ProgrammeView]:
        """The programme's keys and spec, or a refusal 'no_programme'."""
        games = await self.client.hget(PROGRAMMES_INDEX, programme)
        if games is not None:
            k = ProgrammeKeys(games.decode() if isinstance(games, bytes) else games)
            raw = await self.client.hget(k.programmes, programme)
            if raw is not None:
                return k, decode_programme(raw)
        raise PeopleRefused("no_programme", f"no programme {programme!r}")

    # --- registration ---------------------------------------------------------------------------

    async def register(
        self, programme: str, c: Candidate, actor: str, *, leader: str | None = None,
        group: str | None = None,
    ) -> Registered:  # fmt: skip
        """Register ``c`` (by an operator; or by ``leader`` for its ``group``)."""
        k, spec = await self.programme(programme)
        today = today_utc(await self.now_us())
        check(c, today)
        if missing := missing_criterion(spec.criteria, c.criteria):
            detail = f"the programme's criterion {missing!r} is not attested"
            raise PeopleRefused("criteria", detail)
        if group is not None and c.group not in (None, group):
            raise PeopleRefused("no_group", f"a leader registers candidates of its group {group!r}")
        group = group if group is not None else c.group
        if self._secret is None or self._box is None:
            raise RuntimeError("registering needs the pseudonym secret and the name box")
        person = identity.pseudonym(self._secret, c.family_name, c.given_names, c.birth_date)
        record = candidate_record(c, person=person, games=k.games, box=self._box, actor=actor,
                                  group=group)  # fmt: skip
        cutoff = "" if spec.retention_until is None else str(retention_cutoff(spec.retention_until))
        keys = [k.programmes, k.candidates(programme), k.stats(programme),
                k.lottery(programme, c.lottery), k.sessions, k.groups(programme),
                k.leaders(programme)]  # fmt: skip
        args = [programme, person, record_prefix(record), group or "", leader or "", cutoff,
                record.majority_on]  # fmt: skip
        raw_code, minor, day = await self.store.scripts(REGISTER, keys, args)
        code: RegisterCode = code_of(raw_code, RegisterCode, "people_register")
        if code == "no_programme":
            raise PeopleRefused(code, f"no programme {programme!r}")
        if code != "created":
            raise PeopleRefused(code, _DETAILS[code])
        return Registered(person, minor == b"1", day.decode() or None, record)

    async def candidate(self, programme: str, person: str) -> CandidateRecord:
        k, _ = await self.programme(programme)
        raw = await self.client.hget(k.candidates(programme), person)
        if raw is None:
            raise PeopleRefused("no_candidate", "no such candidate in this programme")
        return decode_candidate(raw)

    # --- consents -------------------------------------------------------------------------------

    async def _update(
        self, programme: str, person: str,
        change: Callable[[CandidateRecord, int], CandidateRecord | None], *,
        leader: str | None = None,
        group: str | None = None,
    ) -> CandidateRecord:  # fmt: skip
        """Apply ``change(record, now_us) -> new record | None (unchanged)`` atomically (compare
        and set, retried when another act changed the record between)."""
        k, _ = await self.programme(programme)
        key = k.candidates(programme)
        for _ in range(_STALE_RETRIES):
            raw = await self.client.hget(key, person)
            if raw is None:
                raise PeopleRefused("no_candidate", "no such candidate in this programme")
            record = decode_candidate(raw)
            if leader is not None and record.group != group:
                raise PeopleRefused("not_your_group", _DETAILS["not_your_group"])
            new = change(record, await self.now_us())
            if new is None:
                return record
            args = [person, raw, msgspec.json.encode(new), leader or "", record.group or ""]
            keys = [key, k.leaders(programme), k.stats(programme), k.tickets(programme),
                    k.sessions]  # fmt: skip
            answer = await self.store.scripts(UPDATE, keys, args)
            code: UpdateCode = code_of(answer, UpdateCode, "people_update")
            match code:
                case "ok":
                    return new
                case "missing":
                    raise PeopleRefused("no_candidate", "no such candidate in this programme")
                case "not_your_group":
                    raise PeopleRefused(code, _DETAILS[code])
                case "stale":
                    continue
        raise RuntimeError("the candidate's record keeps changing")

    async def guardian(
        self, programme: str, person: str, g: Guardian, actor: str, *,
        leader: str | None = None, group: str | None = None,
    ) -> CandidateRecord:  # fmt: skip
        """Record a legal guardian's consent (once; 409 if one is recorded already)."""

        def change(record: CandidateRecord, now: int) -> CandidateRecord:
            if record.guardian is not None:
                raise PeopleRefused("guardian_recorded", "a guardian's consent is recorded already")
            given = guardian_record(g, actor, today_utc(now))
            return msgspec.structs.replace(record, guardian=given)

        return await self._update(programme, person, change, leader=leader, group=group)

    async def reuse(self, programme: str, person: str, version: str | None) -> CandidateRecord:
        """Give (``version``) or revoke (None: the right to object) consent to reuse."""

        def change(record: CandidateRecord, now: int) -> CandidateRecord | None:
            if version is None:
                return None if record.reuse is None else msgspec.structs.replace(record, reuse=None)
            if record.reuse is not None and record.reuse.version == version:
                return None
            return msgspec.structs.replace(record, reuse=ReuseRecord(version=version, at=now))

        return await self._update(programme, person, change)

    async def reuse_consents(self, programme: str) -> AsyncIterator[ReuseConsentRow]:
        """The candidates that gave consent to reuse and did not object since."""
        k, _ = await self.programme(programme)
        async for person, raw in self.client.hscan_iter(k.candidates(programme), count=1000):
            record = decode_candidate(raw)
            if record.reuse is not None:
                yield ReuseConsentRow(person.decode(), record.reuse.version, record.reuse.at)

    # --- groups ---------------------------------------------------------------------------------

    async def invite(self, programme: str, invite: Invite, actor: str) -> tuple[bool, GroupRecord]:
        """Create a group led by ``invite.leader``: (created, the group)."""
        k, _ = await self.programme(programme)
        keys = [k.programmes, k.groups(programme), k.leaders(programme)]
        raw_code, value = await self.store.scripts(
            GROUP, keys, [programme, invite.id, invite.leader, actor]
        )
        code: GroupCode = code_of(raw_code, GroupCode, "people_group")
        if code == "no_programme":
            raise PeopleRefused(code, f"no programme {programme!r}")
        if code in ("group_exists", "leader_busy"):
            raise PeopleRefused(code, _DETAILS[code])
        return code == "created", decode_group(value)

    async def mobility(
        self, programme: str, group: str, count: int, actor: str, leader: str | None = None
    ) -> GroupRecord:
        """Set the group's mobility needs (a count for the group)."""
        k, _ = await self.programme(programme)
        raw_code, value = await self.store.scripts(
            MOBILITY, [k.groups(programme), k.leaders(programme)],
            [group, count, actor, leader or ""])  # fmt: skip
        code: MobilityCode = code_of(raw_code, MobilityCode, "people_mobility")
        if code == "no_group":
            raise PeopleRefused("unknown_group", "no such group in this programme")
        if code == "not_your_group":
            raise PeopleRefused(code, _DETAILS[code])
        return decode_group(value)

    # --- purge ----------------------------------------------------------------------------------

    async def purge_batch(
        self, programme: str, cursor: str, count: int = PURGE_BATCH
    ) -> tuple[str, int]:
        """One batch of the purge: (next cursor, '0' when done; names erased)."""
        for _ in range(_STALE_RETRIES):
            k, spec = await self.programme(programme)
            if spec.retention_until is None:
                raise PeopleRefused("early", "the programme has no retention date")
            until = spec.retention_until
            keys = [k.programmes, k.candidates(programme), k.stats(programme)]
            args = [programme, until.isoformat(), retention_cutoff(until), cursor, count]
            raw_code, after, purged = await self.store.scripts(PURGE, keys, args)
            code: PurgeCode = code_of(raw_code, PurgeCode, "people_purge")
            match code:
                case "ok":
                    return after.decode(), int(purged)
                case "no_programme":
                    raise PeopleRefused(code, f"no programme {programme!r}")
                case "early":
                    end = model.paris_midnight(until + timedelta(days=1)).isoformat()
                    raise PeopleRefused(code, f"the programme keeps its data until {until} "
                                              f"(purge from {end})")  # fmt: skip
                case "stale":
                    continue
        raise RuntimeError("the programme's retention date keeps changing")

    async def purge(self, programme: str, cursor: str = "0", count: int = PURGE_BATCH) -> int:
        """Erase every name of the programme's candidates (after its retention date)."""
        total = 0
        while True:
            cursor, purged = await self.purge_batch(programme, cursor, count)
            total += purged
            if cursor == "0":
                return total
