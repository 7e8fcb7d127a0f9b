"""Price list: µs per call of each piece a status poll and a join go through, measured
in-process with the real objects (settings, verifier, ticket signer, room snapshot, metrics,
aiohttp responses, the Redis client against a private Valkey).

    python -m loadtest.pieces [--quick]

Sampling profiles (``python -m loadtest.bench --py-spy DIR``) say which share of the time each
function takes under load; this says what one call costs when run alone, so an optimisation
can be checked piece by piece. It mirrors what ``guichet/room/routes.py`` does today: when a
route changes, change the matching piece here.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import uvloop
from aiohttp import web

from guichet import auth, metrics, webio, wire
from guichet.app import SCRIPTS
from guichet.auth import Verifier
from guichet.embedded import EmbeddedValkey
from guichet.room import model
from guichet.room.service import Rooms
from guichet.room.tickets import TicketSigner, ticket_secret
from guichet.store.client import connect
from loadtest.harness import GENEROUS_JOIN_LIMITS, GuichetServer, Issuer, room_spec

ROOM = "pieces"


def per_call_us(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Best of ``repeat`` runs of ``number`` calls, in µs per call."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / number * 1e6


def line(name: str, us: float) -> str:
    return f"{us:8.2f} µs  {name}"


def sync_pieces(work: Path, n: int) -> list[str]:
    server = GuichetServer(work / "guichet", rooms=dict(GENEROUS_JOIN_LIMITS))
    server.prepare()
    settings = server.settings()
    issuer = Issuer.from_settings(settings)
    verifier = Verifier.from_config(settings.security)
    signer = TicketSigner(
        ticket_secret(settings.rooms),
        settings.rooms.admission_issuer,
        settings.security.verified_cache_size,
    )
    out: list[str] = []

    # --- tokens and tickets ---------------------------------------------------------------
    token = issuer.account("acc-1")
    verifier.account(token)
    header = f"Bearer {token}"
    out.append(
        line(
            "authenticate_account, token seen before (cache hit)",
            per_call_us(lambda: auth.authenticate_account(verifier, header), n),
        )
    )
    fresh = [issuer.account(f"fresh-{i}") for i in range(max(200, n // 20))]
    it = iter(fresh)
    out.append(
        line(
            "Verifier.account, first sight (PyJWT decode + Ed25519 verify + checks)",
            per_call_us(lambda: verifier.account(next(it)), len(fresh) // 5, repeat=5),
        )
    )
    signing_input, _, signature = token.rpartition(".")
    sig = base64.urlsafe_b64decode(signature + "==")
    public = issuer.key.public_key()
    out.append(
        line(
            "  of which Ed25519 verify alone (cryptography)",
            per_call_us(lambda: public.verify(sig, signing_input.encode()), n // 10),
        )
    )
    import jwt

    out.append(
        line(
            "  jwt.get_unverified_header (PyJWT, decodes the header a first time)",
            per_call_us(lambda: jwt.get_unverified_header(token), n),
        )
    )
    closes = time.time() + 86_400
    out.append(
        line(
            "TicketSigner.sign (PyJWT HS256 encode)",
            per_call_us(lambda: signer.sign(ROOM, "acc-1", "n:1:1700000000", closes), n),
        )
    )
    secret = ticket_secret(settings.rooms)
    body = msgspec.json.encode({"iss": "guichet", "aud": "q", "sub": "acc-1", "tid": "n:1:1"})
    out.append(
        line(
            "  vs HMAC-SHA256 of the same size alone (hmac.digest)",
            per_call_us(lambda: hmac.digest(secret, body * 2, hashlib.sha256), n),
        )
    )
    ticket = signer.sign(ROOM, "acc-1", "n:1:1700000000", closes)
    signer.verify(ticket, ROOM)
    out.append(
        line(
            "TicketSigner.verify, cached (status poll)",
            per_call_us(lambda: signer.verify(ticket, ROOM), n),
        )
    )
    tickets = [signer.sign(ROOM, f"acc-{i}", f"n:{i}:1700000000", closes) for i in range(n // 5)]
    tt = iter(tickets)
    out.append(
        line(
            "TicketSigner.verify, first sight (PyJWT HS256 decode; join does it on the "
            "ticket it just signed)",
            per_call_us(lambda: signer.verify(next(tt), ROOM), n // 25),
        )
    )
    out.append(line("secrets.token_hex(32) (join's seed argument)", per_call_us(
        lambda: secrets.token_hex(32), n)))  # fmt: skip

    # --- the room snapshot and the reply --------------------------------------------------
    from guichet.room.outcomes import Tick
    from guichet.room.service import Runtime, _counters
    from guichet.store import keys

    spec = msgspec.convert(room_spec(opens_in_s=-60), model.RoomSpec)
    rt = Runtime(ROOM, keys.RoomKeys(ROOM), spec)
    now_us = int(time.time() * 1e6)
    rt.counters = _counters(Tick(
        now=now_us, opens=now_us - 60_000_000, closes=now_us + 86_400_000_000,
        opened_us=now_us - 60_000_000, pre=0, issued=20_000, serving=5_000, floor=0, active=100,
        admitted=5_000, expired=0, measured_rate=20.0, effective_rate=20.0, stock="",
        paused=False, seed="ab" * 32, opened_now=False, reaped=0, version="1",
    ))  # fmt: skip
    rt.fetched = time.monotonic()
    t = signer.verify(signer.sign(ROOM, "acc-9", "n:12000:1700000000", closes), ROOM)
    status = rt.status(t)
    out.append(line("Runtime.status (the snapshot → Status)", per_call_us(lambda: rt.status(t), n)))
    out.append(
        line(
            "  wire.rfc3339 x2 (formatting the room window: opens_at, closes_at)",
            2 * per_call_us(lambda: wire.rfc3339(closes), n),
        )
    )
    out.append(line("wire.encode(Status) (msgspec)", per_call_us(lambda: wire.encode(status), n)))
    out.append(line("webio.respond(Status) (encode + web.Response)", per_call_us(
        lambda: webio.respond(status), n)))  # fmt: skip
    joined = model.Joined(
        **{f: getattr(status, f) for f in status.__struct_fields__}, ticket=ticket, created=False
    )
    out.append(
        line(
            "model.Joined(**{f: getattr(status, f) …}) (join copies the Status)",
            per_call_us(
                lambda: model.Joined(
                    **{f: getattr(status, f) for f in status.__struct_fields__},
                    ticket=ticket,
                    created=False,
                ),
                n,
            ),
        )
    )
    response = webio.respond(joined)

    def cookie() -> None:
        r = web.Response(body=b"{}")
        r.set_cookie(
            "guichet_ticket_" + ROOM, ticket, path="/", httponly=True, samesite="Lax",
            secure=False, max_age=7 * 86_400,
        )  # fmt: skip
        for c in r.cookies.values():
            c.output(header="")[1:]

    out.append(
        line(
            "set_cookie + its Set-Cookie rendering (http.cookies Morsel)",
            per_call_us(cookie, n) - per_call_us(lambda: web.Response(body=b"{}"), n),
        )
    )
    del response

    # --- the front middleware's bookkeeping -----------------------------------------------
    def front_metrics() -> None:
        metrics.HTTP_IN_FLIGHT.inc()
        metrics.HTTP_IN_FLIGHT.dec()
        count, latency = metrics.http_children("/v1/rooms/{room}/status", "GET", 200)
        count.inc()
        latency.observe(0.001)

    out.append(
        line("front: in-flight inc/dec + counter + histogram", per_call_us(front_metrics, n))
    )
    k = keys.RoomKeys(ROOM)
    out.append(
        line(
            "join's 5 Redis key names (RoomKeys properties, checked, blake2b x2)",
            per_call_us(
                lambda: [k.cfg, k.state, k.tickets, k.join_limit("ip", "127.0.0.1"),
                         k.join_limit("acct", "acc-1")], n,
            ),
        )
    )  # fmt: skip
    return out


async def redis_pieces(work: Path, n: int) -> list[str]:
    """Client-side CPU per join script call (what the event loop pays), and its latency."""
    out: list[str] = []
    with EmbeddedValkey(work / "valkey") as valkey:
        server = GuichetServer(work / "redis-guichet", redis_url=valkey.url)
        server.prepare()
        settings = server.settings()
        store = connect(settings.redis, valkey.url, SCRIPTS)
        await store.scripts.load_all()
        rooms = Rooms(store, settings.rooms)
        spec = msgspec.convert(room_spec(opens_in_s=-60), model.RoomSpec)
        await rooms.configure(ROOM, "put", spec)
        rt = await rooms.runtime(ROOM)
        accounts = [f"acc-{i}" for i in range(1000)]
        for a in accounts:
            await rooms.join(rt, a, "127.0.0.1")

        async def timed(
            label: str, call: Callable[[int], Awaitable[Any]], concurrency: int
        ) -> None:
            count = n if concurrency > 1 else n // 4
            wall, cpu = time.perf_counter(), time.process_time()
            for start in range(0, count, concurrency):
                await asyncio.gather(*(call(start + i) for i in range(concurrency)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            out.append(
                line(
                    f"{label}, {concurrency} in flight: CPU of this process "
                    f"(wall {wall / count * 1e6:.1f} µs/call)",
                    cpu / count * 1e6,
                )
            )

        async def join(i: int) -> Any:
            return await rooms.join(rt, accounts[i % len(accounts)], "127.0.0.1")

        await timed("Rooms.join (repeat) → join.lua", join, 1)
        await timed("Rooms.join (repeat) → join.lua, auto-pipelined", join, 64)

        async def ping(i: int) -> Any:
            return await store.client.ping()

        await timed("redis-py PING (no script, no pipeline)", ping, 64)
        await store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else 20_000
    with tempfile.TemporaryDirectory(prefix="guichet-pieces-") as tmp:
        work = Path(tmp)
        lines = sync_pieces(work, n)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            lines += runner.run(redis_pieces(work, n))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
