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

and prints tokens of demo accounts that can shop now, and commands to try. Ctrl-C stops it.
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
from guichet.shop import demo as shop_demo
from guichet.signing import Keyring
from guichet.store import sync
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
        "logging": {"level": "WARNING"},
    }


def setup(url: str, settings: Settings, accounts: int, close_in_s: float) -> dict[str, Any]:
    """Create the sale, room and draw, register, draw, release the first wave."""
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

    async def register() -> None:
        from guichet.store.client import connect

        where = sync.target(settings.redis)
        store = connect(settings.redis, url=where if isinstance(where, str) else None,
                        scripts=DRAW_SCRIPTS)  # fmt: skip
        try:
            draws = Draws(store)
            club = frozenset({"club"})  # as an identity token's groups claim would say
            await asyncio.gather(*(draws.register(DRAW, n, "", club if i % 10 == 0 else frozenset())
                                   for i, n in enumerate(names)))  # fmt: skip
            c = await draws.commit(DRAW, seal_key)
            if c.code != "ok":
                raise RuntimeError(f"commit: {c.code}")
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
        summary = setup(url, demo_settings, args.accounts, args.close_in)
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="start a server with a sale, room, draw and demo accounts")
    p.add_argument("--workdir", default=".guichet-demo", help="data, keys and logs of the demo")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--accounts", type=int, default=3000, help="demo accounts entering the draw")
    p.add_argument("--close-in", dest="close_in", type=float, default=5.0,
                   help="seconds until the draw's registration closes")  # fmt: skip
    p.add_argument("--setup-only", dest="setup_only", action="store_true",
                   help="stop once everything is set up (tests)")  # fmt: skip
    p.set_defaults(func=cmd_demo)
