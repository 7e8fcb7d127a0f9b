"""What the pool's scripts refuse, and the one table of the problems their refusals become."""

from __future__ import annotations

from typing import Literal

import msgspec

from guichet import errors
from guichet.refusals import Explained, Explaining, check_complete

#: Every refusal of the pool's scripts (pool_load, programme_put, allocate, reclaim).
Refused = Literal[
    "pool_loaded", "public_fixed", "games_fixed", "no_programme", "reclaimed", "unknown_item",
    "pool_short", "too_early",
]  # fmt: skip
LoadCode = Literal["ok", "pool_loaded"]
PutCode = Literal["created", "updated", "public_fixed"]
AllocateCode = Literal["ok", "no_programme", "reclaimed", "unknown_item", "pool_short"]
ReclaimCode = Literal["ok", "done", "no_programme", "too_early", "stale"]


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    """What a refusal names."""

    games: str = ""
    item: str = ""
    left: int = 0
    value: str = ""  # the fixed public or games; the reclaim instant (RFC 3339)


NO_FACTS = Facts()


def _field(field: str, detail: str, context: dict[str, object] | None = None) -> Explained:
    return Explained(f"{field}: {detail}", context=context,
                     errors=[errors.FieldError(field=field, detail=detail)])  # fmt: skip


REFUSALS: dict[Refused, Explaining[Facts]] = {
    "pool_loaded": Explaining(
        409, "pool-loaded", "Pool loaded already",
        lambda _p, f: Explained(
            f"the {f.games} pool is loaded already ({f.left} tickets); it loads once",
            context={"games": f.games, "loaded": f.left}),
    ),
    "public_fixed": Explaining(
        409, "programme-fixed", "Public and games are fixed",
        lambda p, f: _field("public", f"programme {p} serves the {f.value} public; it cannot "
                            "change", {"public": f.value}),
    ),
    "games_fixed": Explaining(
        409, "programme-fixed", "Public and games are fixed",
        lambda p, f: _field("games", f"programme {p} is of the {f.value} games; it cannot "
                            "change", {"games": f.value}),
    ),
    "no_programme": Explaining(
        404, "not-found", "Not found", lambda p, _f: Explained(f"no programme {p!r}")),
    "reclaimed": Explaining(
        409, "programme-reclaimed", "Programme reclaimed",
        lambda p, _f: Explained(f"programme {p} was reclaimed: its tickets went back to the "
                                "pool, it receives no more")),
    "unknown_item": Explaining(
        422, "validation", "Invalid request body",
        lambda _p, f: _field("items", f"no {f.item} in the pool", {"item": f.item})),
    "pool_short": Explaining(
        409, "pool-short", "Not enough tickets in the pool",
        lambda _p, f: Explained(f"{f.left} tickets left in the pool for {f.item}",
                                context={"item": f.item, "left": f.left}),
    ),
    "too_early": Explaining(
        409, "reclaim-too-early", "Before the reclaim date",
        lambda p, f: Explained(f"programme {p} can be reclaimed from {f.value}",
                               context={"programme": p, "reclaim_at": f.value}),
    ),
}  # fmt: skip
check_complete(REFUSALS, Refused, "programme pool")


def problem(code: Refused, programme: str, facts: Facts = NO_FACTS) -> errors.Problem:
    return REFUSALS[code].problem(programme, facts)
