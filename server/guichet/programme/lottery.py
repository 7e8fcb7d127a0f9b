"""A lottery per allocation (programme P, session, category), with the draw engine's
guarantees (AFA recommendation §3.1, issue 14 item 5): the operator creates it, commits it to a
sealed secret seed before the candidate list closes (the commitment is published), and after
the close runs it with a public beacon. The entries are the eligible candidates whose
``lottery`` is L (one stratum, ``eligible``); the ranking is ``draw/model.py``'s formula with
draw id ``programme:<P>:<L>``; the transcript is signed with the draw keyring, so
``guichet draw verify`` checks it against the exported entries (``guichet programme lottery
export``)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from guichet import __version__, wire
from guichet.draw import audit, model, seal
from guichet.programme import cache
from guichet.programme.acting import Acting
from guichet.programme.acting import run as run_act
from guichet.programme.model import CategoryId, SessionId
from guichet.programme.tickets_refusals import Refuse
from guichet.signing import Signer
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S

CREATE = LuaScript("guichet.programme", "lottery_create.lua")
COMMIT = LuaScript("guichet.programme", "lottery_commit.lua")
BEGIN = LuaScript("guichet.programme", "lottery_begin.lua")
FINISH = LuaScript("guichet.programme", "lottery_finish.lua")
SCRIPTS = (CREATE, COMMIT, BEGIN, FINISH)
STRATUM = "eligible"

LotteryId = Annotated[str, Meta(pattern=wire.whole(r"(?!x$)[a-z0-9][a-z0-9-]{0,47}"),
                                description="lottery id (a slug; 'x' is reserved)")]  # fmt: skip


class LotteryRequest(wire.Base, kw_only=True):
    """A lottery for one allocation of the programme."""

    id: LotteryId
    session: SessionId
    category: CategoryId
    closes_at: datetime  # the candidate list closes then (RFC 3339 with an offset)

    def __post_init__(self) -> None:
        if self.closes_at.tzinfo is None:
            raise ValueError("`closes_at` needs a UTC offset (RFC 3339), e.g. ...Z")


class RunRequest(wire.Base, kw_only=True):
    """The public beacon value of the run (text, e.g. a published lottery result)."""

    beacon_text: Annotated[str, Meta(max_length=1024)] = ""


class Lottery(wire.Reply, kw_only=True):
    """A lottery as its operator and auditors see it: the commitment is public once made."""

    programme: str
    id: str
    session: str
    category: str
    state: str  # open | committed | run
    closes_at: str
    commitment: str | None = None
    committed_at: str | None = None
    ran_at: str | None = None
    ranked: int | None = None
    cursor: int = 0


def _t(us: Any) -> str:
    return wire.rfc3339(int(us) / US_PER_S)


def draw_id(programme: str, lottery: str) -> str:
    return f"programme:{programme}:{lottery}"


async def games_of(store: Store, programme: str) -> str:
    """The games of a programme (this worker's cache, else PROGRAMMES_INDEX), or a 404 refusal."""
    games = await cache.games_of(store, programme)
    if games is None:
        raise Refuse("no_programme", f"no programme {programme!r}")
    return games


async def create(store: Store, programme: str, body: LotteryRequest, acting: Acting) -> Lottery:
    k = ProgrammeKeys(await games_of(store, programme))
    closes_us = int(body.closes_at.timestamp() * US_PER_S)
    code = (await run_act(
        store, CREATE, k, [k.lottery(programme, body.id), k.programmes, k.sessions],
        [programme, body.session, body.category, closes_us, acting.actor], acting,
        programme=programme)).decode()  # fmt: skip
    if code != "ok":
        detail = {"exists": f"lottery {body.id!r} exists",
                  "no_session": f"no session {body.session!r}",
                  "closes_in_past": "`closes_at` must be in the future",
                  "no_programme": f"no programme {programme!r}"}[code]  # fmt: skip
        raise Refuse(code, detail)
    return await show(store, programme, body.id)


async def show(store: Store, programme: str, lottery: str) -> Lottery:
    k = ProgrammeKeys(await games_of(store, programme))
    raw: dict[Any, Any] = await store.client.hgetall(k.lottery(programme, lottery))
    if not raw:
        raise Refuse("no_lottery", f"no lottery {lottery!r} in {programme!r}")
    h = {a.decode(): b.decode() for a, b in raw.items() if a != b"seed"}
    return Lottery(
        programme=programme, id=lottery, session=h["session"], category=h["category"],
        state=h["state"], closes_at=_t(h["closes_at"]), commitment=h.get("commitment"),
        committed_at=_t(h["committed_at"]) if "committed_at" in h else None,
        ran_at=_t(h["ran_at"]) if "ran_at" in h else None,
        ranked=int(h["ranked"]) if "ranked" in h else None, cursor=int(h.get("cursor", 0)),
    )  # fmt: skip


async def commit(
    store: Store, seal_key: bytes, programme: str, lottery: str, acting: Acting
) -> Lottery:
    """Seal a fresh seed and publish its commitment, before the candidate list closes."""
    k = ProgrammeKeys(await games_of(store, programme))
    seed, published = seal.new_seed()
    sealed = seal.seal(seal_key, draw_id(programme, lottery), seed, published)
    code, _ = await run_act(store, COMMIT, k, [k.lottery(programme, lottery)],
                            [published, sealed.hex(), acting.actor], acting,
                            programme=programme)  # fmt: skip
    code = code.decode()
    if code != "ok":
        detail = {"no_lottery": f"no lottery {lottery!r} in {programme!r}",
                  "committed": f"lottery {lottery!r} is already committed",
                  "closed": f"lottery {lottery!r}: its list has closed"}[code]  # fmt: skip
        raise Refuse(code, detail)
    return await show(store, programme, lottery)


async def entries(store: Store, games: str, programme: str, lottery: str) -> list[str]:
    """The pseudonyms of the eligible candidates of this lottery (unordered)."""
    out: list[str] = []
    async for person, raw in store.client.hscan_iter(
        ProgrammeKeys(games).candidates(programme), count=2000
    ):
        rec = msgspec.json.decode(raw)
        if rec.get("lottery") == lottery and rec.get("eligible") is True:
            out.append(person.decode())
    return out


async def entries_by_lottery(store: Store, games: str, programme: str) -> dict[str, list[str]]:
    """Lottery -> the pseudonyms of its eligible candidates, in one scan of the programme's
    candidates (bulk helper: a programme with a lottery per allocation item reads its
    candidates once instead of once per lottery; pass each list to :func:`run`)."""
    out: dict[str, list[str]] = {}
    async for person, raw in store.client.hscan_iter(
        ProgrammeKeys(games).candidates(programme), count=2000
    ):
        rec = msgspec.json.decode(raw)
        if rec.get("eligible") is True and isinstance(rec.get("lottery"), str):
            out.setdefault(rec["lottery"], []).append(person.decode())
    return out


async def run(
    store: Store, seal_key: bytes, signer: Signer, programme: str, lottery: str, beacon: bytes,
    acting: Acting, people: list[str] | None = None,
) -> model.Transcript:  # fmt: skip
    """Rank the lottery's entries (after its close) and store the ranking and the signed
    transcript; a lottery that has run answers its transcript (idempotent). ``people``: its
    entries read beforehand by :func:`entries_by_lottery` after the close (else read here)."""
    games = await games_of(store, programme)
    k = ProgrammeKeys(games)
    key = k.lottery(programme, lottery)
    code, now = await store.scripts(BEGIN, [key], [])
    code = code.decode()
    if code == "run":
        return await transcript(store, programme, lottery)
    if code != "ok":
        detail = {"no_lottery": f"no lottery {lottery!r} in {programme!r}",
                  "not_committed": f"lottery {lottery!r} was not committed before its close",
                  "open": f"lottery {lottery!r}: its list has not closed"}[code]  # fmt: skip
        raise Refuse(code, detail)
    fields = ["seed", "commitment", "committed_at", "closes_at"]
    h: list[Any] = await store.client.hmget(key, fields)
    published = h[1].decode()
    sealed = bytes.fromhex(h[0].decode())
    seed = seal.unseal(seal_key, draw_id(programme, lottery), sealed, published)
    if people is None:
        people = await entries(store, games, programme, lottery)
    # hashing and sorting every entry is CPU work in proportion to the list (500,000
    # candidates: seconds): off the event loop, as the room's queue order is
    ranked, entry_digest, ranking_digest = await asyncio.to_thread(
        _rank, draw_id(programme, lottery), seed, beacon, people)  # fmt: skip
    t = model.Transcript(
        draw=draw_id(programme, lottery), commitment=published, committed_at=_t(h[2]),
        registration_closes_at=_t(h[3]), seed=seed.hex(), beacon=beacon.hex(), strata=[STRATUM],
        entries=len(ranked), entries_by_stratum={STRATUM: len(ranked)},
        entry_set_digest=entry_digest, ranking_digest=ranking_digest, ran_at=_t(now),
        software_version=__version__,
    )  # fmt: skip
    t = audit.sign(t, signer)
    # the run's record is written here, in its only script that changes state
    # (lottery_finish.lua stores the ranking, the transcript and the state at once;
    # lottery_begin.lua only reads): no partial run exists. A lottery is not barred by a
    # conflict with a person: its order is chance, nobody's choice
    done = (await run_act(
        store, FINISH, k, [key, k.ranking(programme, lottery)],
        [msgspec.json.encode(t), now, *ranked], acting, programme=programme)).decode()  # fmt: skip
    if done == "run":  # another run won the race: its transcript stands
        return await transcript(store, programme, lottery)
    return t


def _rank(draw: str, seed: bytes, beacon: bytes, people: list[str]) -> tuple[list[str], str, str]:
    """The ranking of ``people`` (one stratum), the entry set's digest and the ranking's (pure,
    run in a thread)."""
    pairs = [(STRATUM, p) for p in people]
    ranked = [p for _, p in model.rank(pairs, [STRATUM], model.draw_key(draw, seed, beacon))]
    return ranked, model.entry_set_digest(pairs, [STRATUM]), model.ranking_digest(ranked)


async def transcript(store: Store, programme: str, lottery: str) -> model.Transcript:
    k = ProgrammeKeys(await games_of(store, programme))
    raw: Any = await store.client.hget(k.lottery(programme, lottery), "transcript")
    if raw is None:
        raise Refuse("not_run", f"lottery {lottery!r} has not run")
    return msgspec.json.decode(raw, type=model.Transcript)


async def ranking(store: Store, programme: str, lottery: str) -> list[str]:
    k = ProgrammeKeys(await games_of(store, programme))
    raw: list[Any] = await store.client.lrange(k.ranking(programme, lottery), 0, -1)
    return [r.decode() for r in raw]


def entries_tsv(ranked: list[str]) -> str:
    """The entries export ``guichet draw verify`` reads: ``eligible<TAB>id``, sorted by id."""
    return "".join(f"{STRATUM}\t{p}\n" for p in sorted(ranked, key=str.encode))


def ranking_tsv(ranked: list[str]) -> str:
    return "".join(f"{i}\t{p}\n" for i, p in enumerate(ranked, 1))


def link_code() -> tuple[str, str]:
    """A fresh link code (what the beneficiary's link carries) and its stored hash."""
    code = secrets.token_urlsafe(18)
    return code, code_hash(code)


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
