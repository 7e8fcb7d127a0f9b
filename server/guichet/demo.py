"""``guichet demo``: the whole flow on this machine in a minute.

It starts ``guichet serve`` (embedded Valkey, in ``--workdir``), then, as ops would:

1. a sale ``paris-2024`` (Olympic games) in its packs phase with the Olympic sessions of the
   shipped demo catalogue, and a separate sale ``paris-2024-paralympic`` with its Paralympic
   sessions (the seed: the Paralympic sale is a separate one, in autumn 2023; in the demo it
   sells at once, without windows); each sale's purchase period runs 28 days from now (the
   seed's packs sale: 15 February to 15 March, compressed to start now);
2. a waiting room ``paris-2024`` in front of it (metered by its stock);
3. a draw ``paris-2024-packs`` (strata ``club`` then ``general``), ``--accounts`` demo
   accounts registered (1 in 10 in the club), the commitment, the close, the run;
4. a first wave of purchase windows, open now, for the first half of the ranking;
5. the State programme (seed 002): the pool of 401,220 tickets over the demo catalogue, the
   eight programmes (four publics x two games) with the published split allocated
   (``programme/demo_plan.py``), and per programme one lottery on its largest allocation with
   ``--programme-candidates`` synthetic candidates ("Fictif Demo-…"), committed, closed, run,
   and half of them given a ticket. The games are shifted so that the Olympic opening is
   ``--games-in`` days from today (reclaim dates keep the seed's distance: 86 days before);

and prints tokens of demo accounts that can shop now, the programme's central, operator and
auditor tokens, and commands to try. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import tomli_w

from guichet import auth
from guichet.config import Settings, load_settings
from guichet.draw import seal, waves
from guichet.draw.run import ranked_ids
from guichet.draw.run import run as run_draw
from guichet.draw.service import SCRIPTS as DRAW_SCRIPTS
from guichet.draw.service import Draws
from guichet.embedded import free_port
from guichet.programme import acting, demo_plan, designate, identity, lottery, model, pool, roles
from guichet.programme import people_service as ps
from guichet.programme import pool_service as pls
from guichet.programme.people import Candidate, Consent, Guardian
from guichet.shop import demo as shop_demo
from guichet.signing import Keyring
from guichet.store import sync
from guichet.store.keys import ProgrammeKeys
from guichet.units import US_PER_S

SALE = ROOM = "paris-2024"
PARALYMPIC_SALE = "paris-2024-paralympic"
PERIOD = timedelta(days=28)
DRAW = "paris-2024-packs"
SCOPES = ["rooms:write", "rooms:read", "draws:write", "sales:write"]


def _http(method: str, url: str, token: str | None = None, body: Any = None) -> Any:
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (loopback)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {url}: HTTP {exc.code} {exc.read()[:300]!r}") from None


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"guichet serve exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout_s:.0f} s")


def _config(workdir: Path, port: int) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "redis": {"data_dir": str(workdir / "data")},
        "security": {"dev_issuer_key_file": str(workdir / "dev-issuer.pem")},
        "rooms": {
            "ticket_secret_file": str(workdir / "ticket-secret"),
            "signing_key_dir": str(workdir / "admission-keys"),
        },
        "draws": {
            "seal_key_file": str(workdir / "draw-seal-key"),
            "signing_key_dir": str(workdir / "draw-signing-keys"),
        },
        "etickets": {"signing_key_dir": str(workdir / "eticket-keys")},
        "programme": {
            "pseudonym_secret_file": str(workdir / "programme-pseudonym-secret"),
            "name_key_file": str(workdir / "programme-name-key"),
        },
        "logging": {"level": "WARNING"},
    }


PROGRAMME_SCRIPTS = (*pls.SCRIPTS, *ps.SCRIPTS, *lottery.SCRIPTS, *designate.SCRIPTS)
DEMO_LOTTERY = "demo"


def _candidates(programme: str, public: model.Public, n: int) -> list[Candidate]:
    """Obviously fake people: family name "Fictif", given names "Demo-<programme>-<i>"; in the
    youth programmes one in four is a minor (with a guardian's consent, but one in ten of them
    without, so the counter of missing consents shows)."""
    now = datetime.now(UTC)
    consent = Consent(version="demo-v1", collected_at=now, collected_by="guichet demo")
    out = []
    for i in range(n):
        minor = public == "youth" and i % 4 == 0
        born = now.date() - timedelta(days=365 * (15 if minor else 30) + i)
        guardian = None if not minor or i % 40 == 0 else Guardian(
            name="Fictif Tuteur", relationship="parent", consented_at=now)  # fmt: skip
        out.append(Candidate(family_name="Fictif", given_names=f"Demo-{programme}-{i:04d}",
                             birth_date=born, lottery=DEMO_LOTTERY,
                             criteria=list(demo_plan.CRITERIA[public]), consent=consent,
                             guardian=guardian))  # fmt: skip
    return out


async def load_programme(store: Any, settings: Settings, games_in_days: int,
                         candidates: int) -> dict[str, Any]:  # fmt: skip
    """The State programme through the service layer (the scripts the routes call)."""
    by = "central:demo"
    shift = demo_plan.shift_to(datetime.now(UTC).date() + timedelta(days=games_in_days))
    rows = demo_plan.pool_rows(shift=shift)
    parsed = pool.Pool(sessions={}, counts={})
    for r in rows:
        parsed.sessions.setdefault(r.games, {})[r.session] = pool.SessionInfo(
            date=r.date, games=r.games, name=r.name)  # fmt: skip
        parsed.counts.setdefault(r.games, {})[model.item(r.session, r.category)] = r.quantity
    pools = pls.PoolService(store)
    loaded = await pools.load(parsed, acting.internal(by, "programme.pool-load", "pool"))
    if any(a.code != "ok" for a in loaded):
        raise RuntimeError(f"programme pool: {loaded}")
    plan = demo_plan.allocations(rows)
    people = ps.People(store, identity.pseudonym_secret(settings.programme),
                       identity.name_box(settings.programme))  # fmt: skip
    seal_key = seal.seal_key(settings.draws)
    signer = Keyring(settings.draws.signing_key_dir)
    out: dict[str, Any] = {}
    for games in model.GAMES:
        for public in model.PUBLICS:
            p = demo_plan.programme_id(public, games)
            put = await pools.put(
                p,
                demo_plan.programme_body(public, games, shift),
                acting.internal(by, "programme.put", f"programme:{p}"),
            )
            items = plan[p]
            got = await pools.allocate(
                p,
                {model.item(s, c): q for s, c, q in items},
                acting.internal(by, "programme.allocate", f"programme:{p}"),
            )
            if put.spec is None or got.code != "ok":
                raise RuntimeError(f"programme {p}: {put.code} / {got.code}")
            session, category, quantity = max(items, key=lambda x: x[2])
            operator = demo_plan.operator_of(public)
            lot = f"programme:{p}/lottery:{DEMO_LOTTERY}"  # the lottery's acts' object
            await lottery.create(store, p, lottery.LotteryRequest(
                id=DEMO_LOTTERY, session=session, category=category,
                closes_at=datetime.now(UTC) + timedelta(hours=1)),
                acting.internal(operator, "programme.lottery-create", lot))  # fmt: skip
            await lottery.commit(
                store,
                seal_key,
                p,
                DEMO_LOTTERY,
                acting.internal(operator, "programme.lottery-commit", lot),
            )
            registering = acting.internal(operator, "programme.register", f"programme:{p}")
            await asyncio.gather(*(people.register(p, c, registering)
                                   for c in _candidates(p, public, candidates)))  # fmt: skip
            # the demo's one shortcut: its list closes once its candidates are in
            k = ProgrammeKeys(games)
            seconds, micros = await store.client.time()
            await store.client.hset(k.lottery(p, DEMO_LOTTERY), "closes_at",
                                    int(seconds) * US_PER_S + int(micros))  # fmt: skip
            await lottery.run(
                store,
                seal_key,
                signer,
                p,
                DEMO_LOTTERY,
                b"guichet demo",
                acting.internal(operator, "programme.lottery-run", lot),
            )
            given = await designate.assign(
                store, p, DEMO_LOTTERY, acting.internal(operator, "programme.lottery-assign", lot),
                candidates // 2)  # fmt: skip
            out[p] = {"public": public, "games": games, "operator": operator,
                      "allocated": sum(q for _, _, q in items),
                      "reclaim_on": put.spec.reclaim_on.isoformat(),
                      "lottery": {"id": DEMO_LOTTERY, "session": session, "category": category,
                                  "tickets": quantity, "candidates": candidates,
                                  "assigned": given.assigned}}  # fmt: skip
    notice: Any = await store.client.xrange(ProgrammeKeys("olympic").outbox, count=1)
    link = notice[0][1][b"link"].decode() if notice else ""
    return {"pool": sum(r.quantity for r in rows),
            "olympic_opening": (demo_plan.OLYMPIC_OPENING + shift).isoformat(),
            "programmes": out, "a_beneficiary_link": link}  # fmt: skip


def _admin(key: Any, settings: Settings, subject: str, scope: str,
           programmes: list[str] | None = None) -> str:  # fmt: skip
    sec = settings.security
    return auth.mint(key, issuer=sec.issuer, audience=sec.admin_audience, subject=subject,
                     ttl_s=24 * 3600, scopes=[scope], programmes=programmes,
                     programmes_claim=sec.programmes_claim)  # fmt: skip


def setup(
    url: str, settings: Settings, accounts: int, close_in_s: float, games_in_days: int = 120,
    programme_candidates: int = 200,
) -> dict[str, Any]:  # fmt: skip
    """Create the sale, room and draw, register, draw, release the first wave; load the State
    programme."""
    sec = settings.security
    key = auth.load_or_create_dev_key(sec.dev_issuer_key_file)
    admin = auth.mint(key, issuer=sec.issuer, audience=sec.admin_audience, subject="admin:demo",
                      ttl_s=3600, scopes=SCOPES)  # fmt: skip
    now = datetime.now(UTC)
    period = {"purchase_opens_at": (now - timedelta(minutes=1)).isoformat(),
              "purchase_closes_at": (now + PERIOD).isoformat()}  # fmt: skip
    _http("PUT", f"{url}/v1/admin/sales/{SALE}", admin,
          {"phase": "packs", "games": "olympic", **period})  # fmt: skip
    loaded = _http("PUT", f"{url}/v1/admin/sales/{SALE}/catalogue", admin,
                   msgspec.json.encode(shop_demo.shipped("olympic")))  # fmt: skip
    _http(
        "PUT",
        f"{url}/v1/admin/sales/{PARALYMPIC_SALE}",
        admin,
        {"phase": "packs", "games": "paralympic", "window_required": False, **period},
    )
    paralympic = _http("PUT", f"{url}/v1/admin/sales/{PARALYMPIC_SALE}/catalogue", admin,
                       msgspec.json.encode(shop_demo.shipped("paralympic")))  # fmt: skip
    _http("PUT", f"{url}/v1/admin/rooms/{ROOM}", admin, {
        "opens_at": (now - timedelta(minutes=1)).isoformat(),
        "closes_at": (now + timedelta(days=2)).isoformat(),
        "rate_per_s": 20, "max_active": 500, "audience": "shop", "sale": SALE,
        "target_url": f"{url}/v1/sales/{SALE}/availability",
    })  # fmt: skip
    closes = now + timedelta(seconds=close_in_s)
    _http("PUT", f"{url}/v1/admin/draws/{DRAW}", admin, {
        "registration_opens_at": (now - timedelta(minutes=1)).isoformat(),
        "registration_closes_at": closes.isoformat(),
        "strata": ["club", "general"], "sale": SALE, "phase": "packs",
    })  # fmt: skip
    names = [f"demo-{i:05d}" for i in range(accounts)]
    seal_key = seal.seal_key(settings.draws)

    programme: dict[str, Any] = {}

    async def register() -> None:
        from guichet.store.client import connect

        where = sync.target(settings.redis)
        store = connect(settings.redis, url=where if isinstance(where, str) else None,
                        scripts=(*DRAW_SCRIPTS, *PROGRAMME_SCRIPTS))  # fmt: skip
        try:
            draws = Draws(store)
            club = frozenset({"club"})  # as an identity token's groups claim would say
            await asyncio.gather(*(draws.register(DRAW, n, "", club if i % 10 == 0 else frozenset())
                                   for i, n in enumerate(names)))  # fmt: skip
            c = await draws.commit(DRAW, seal_key)
            if c.code != "ok":
                raise RuntimeError(f"commit: {c.code}")
            # while the draw's registration closes: the State programme
            started = time.monotonic()
            programme.update(await load_programme(store, settings, games_in_days,
                                                  programme_candidates))  # fmt: skip
            print(f"guichet demo: State programme loaded in {time.monotonic() - started:.1f} s",
                  file=sys.stderr)  # fmt: skip
        finally:
            await store.close()

    asyncio.run(register())
    time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()) + 0.1)
    where = sync.target(settings.redis)
    transcript, _ = run_draw(settings.redis, where, DRAW, beacon=b"guichet demo",
                             seal_key=seal_key, signer=Keyring(settings.draws.signing_key_dir),
                             processes=settings.draws.run_processes)  # fmt: skip
    client = sync.connect(settings.redis, where)
    seconds, micros = client.time()
    wave = waves.release(client, DRAW, count=max(1, accounts // 2),
                         starts_us=int(seconds) * US_PER_S + int(micros),
                         allow_short_notice=True)  # fmt: skip
    winners = ranked_ids(client, DRAW, 0, min(3, wave.target))
    return {
        "url": url,
        "sale": SALE,
        "paralympic_sale": PARALYMPIC_SALE,
        "paralympic_sessions": paralympic["sessions"],
        "room": ROOM,
        "draw": DRAW,
        "sessions": loaded["sessions"],
        "seats": loaded["seats"],
        "entries": transcript.entries,
        "windows": wave.assigned,
        "demo_accounts": [
            {
                "account": a,
                "token": auth.mint(
                    key, issuer=sec.issuer, audience=sec.audience, subject=a, ttl_s=24 * 3600
                ),
            }
            for a in winners
        ],
        "programme": {
            **programme,
            "central_token": _admin(key, settings, "central-demo", roles.CENTRAL),
            "auditor_token": _admin(key, settings, "auditor-demo", roles.AUDIT),
            "operator_tokens": {
                demo_plan.operator_of(u): _admin(
                    key,
                    settings,
                    demo_plan.operator_of(u),
                    roles.OPERATE,
                    [demo_plan.programme_id(u, g) for g in model.GAMES],
                )
                for u in model.PUBLICS
            },
        },
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    from guichet.edge import port_in_use

    port = args.port or free_port()
    if port_in_use("127.0.0.1", port):  # else the demo would talk to whatever listens there
        print(f"guichet demo: port {port} on 127.0.0.1 is in use (try --port)", file=sys.stderr)
        return 2
    config = workdir / "guichet.toml"
    config.write_text(tomli_w.dumps(_config(workdir, port)))
    demo_settings = load_settings(config, environ={})
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    with (workdir / "server.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "guichet", "--config", str(config), "serve"],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _wait_ready(url, proc)
        print(f"guichet demo: server at {url} (data and logs in {workdir})", file=sys.stderr)
        started = time.monotonic()
        summary = setup(url, demo_settings, args.accounts, args.close_in, args.games_in,
                        args.programme_candidates)  # fmt: skip
        print(f"guichet demo: set up in {time.monotonic() - started:.1f} s", file=sys.stderr)
        print(json.dumps(summary, indent=1), flush=True)
        token = summary["demo_accounts"][0]["token"]
        print(
            f"\ntry:\n  curl -s {url}/v1/sales/{SALE}/availability | head -c 400\n"
            f"  curl -s -H 'Authorization: Bearer {token[:16]}…' {url}/v1/sales/{SALE}/me\n"
            f"  open {url}/rooms/{ROOM}#token=<a token above>\n"
            "Ctrl-C stops the demo.",
            file=sys.stderr,
            flush=True,
        )
        _programme_hints(url, config, summary["programme"])
        if args.setup_only:
            return 0
        proc.wait()
        return 1  # the server stopped on its own
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"guichet demo: {exc}; see {workdir / 'server.log'}", file=sys.stderr)
        return 1
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _programme_hints(url: str, config: Path, programme: dict[str, Any]) -> None:
    central = programme["central_token"]
    operator = programme["operator_tokens"]["op-youth"]
    link = programme["a_beneficiary_link"]
    path, _, code = link.partition("#")
    print(
        f"\nthe State programme ({programme['pool']:,} tickets, 8 programmes; the Olympic "
        f"opening moved to {programme['olympic_opening']}):\n"
        f"  CENTRAL={central}\n  OPERATOR={operator}   # op-youth: youth-olympic, "
        "youth-paralympic\n"
        f'  curl -s -H "Authorization: Bearer $CENTRAL" '
        f"'{url}/v1/admin/programme/audit?games=olympic'\n"
        f'  curl -s -H "Authorization: Bearer $OPERATOR" '
        f"{url}/v1/admin/programmes/youth-olympic\n"
        f'  curl -s -H "Authorization: Bearer $OPERATOR" '
        f"{url}/v1/admin/programmes/youth-olympic/lotteries/{DEMO_LOTTERY}\n"
        f"  curl -s -H 'X-Ticket-Code: {code}' {url}{path}   # a beneficiary's ticket\n"
        f"  curl -s -X POST -H 'Content-Type: application/json' -d "
        f'\'{{"charter_version": "v1", "attend": true, "code": "{code}"}}\' '
        f"{url}{path}/commit\n"
        f"  guichet --config {config} programme audit --games paralympic",
        file=sys.stderr,
        flush=True,
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="start a server with a sale, room, draw and demo accounts")
    p.add_argument("--workdir", default=".guichet-demo", help="data, keys and logs of the demo")
    p.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    p.add_argument("--accounts", type=int, default=3000, help="demo accounts entering the draw")
    p.add_argument("--close-in", dest="close_in", type=float, default=5.0,
                   help="seconds until the draw's registration closes")  # fmt: skip
    p.add_argument("--games-in", dest="games_in", type=int, default=120,
                   help="days from today to the Olympic opening, for the State programme's "
                        "dates (its reclaim is 86 days before)")  # fmt: skip
    p.add_argument("--programme-candidates", dest="programme_candidates", type=int,
                   default=200, help="synthetic candidates per State programme")  # fmt: skip
    p.add_argument(
        "--setup-only", dest="setup_only", action="store_true", help=argparse.SUPPRESS
    )  # stop once set up; not for users
    p.set_defaults(func=cmd_demo)
