"""``guichet serve --workers 2`` keeps its embedded Valkey up: ``kill -9`` of it during a storm
of purchase confirms loses no purchase answered 200, and the service serves again by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from guichet import auth
from guichet.config import SecurityConfig
from guichet.embedded import free_port, running_url
from guichet.store.keys import SaleKeys
from tests.conftest import metric_value
from tests.e2e.processes import Served, guichet
from tests.e2e.test_shop_http import catalogue, pack

pytestmark = pytest.mark.slow

SALE = "paris"
BUYERS = 120
US = 1_000_000


def _windows(data_dir: Path, accounts: list[str]) -> None:
    """Open a purchase window for each account (the key layout is the draw's contract)."""
    url = running_url(data_dir)
    assert url is not None
    with redis.Redis.from_url(url) as client:
        seconds, micros = client.time()
        now = int(seconds) * US + int(micros)
        windows = {a: f"{now - 3600 * US}:{now + 48 * 3600 * US}:test:1" for a in accounts}
        client.hset(SaleKeys(SALE).windows("packs"), mapping=windows)


async def _json(resp: aiohttp.ClientResponse) -> Any:
    return await resp.json(content_type=None)


async def test_kill_9_of_embedded_valkey_during_confirms(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    served = Served(guichet("serve", "--port", str(port), "--workers", "2"), cwd=tmp_path)
    try:
        valkey = served.wait_msg("embedded valkey started", timeout=60)
        served.wait_msg("listening", worker=0, timeout=60)
        served.wait_msg("listening", worker=1, timeout=60)
        sec = SecurityConfig(dev_issuer_key_file=str(tmp_path / ".guichet/dev-issuer.pem"))
        key = await asyncio.to_thread(auth.load_or_create_dev_key, sec.dev_issuer_key_file)

        def bearer(account: str) -> dict[str, str]:
            token = auth.mint(key, issuer=sec.issuer, audience=sec.audience, subject=account,
                              ttl_s=900)  # fmt: skip
            return {"Authorization": f"Bearer {token}"}

        admin_token = auth.mint(key, issuer=sec.issuer, audience=sec.admin_audience,
                                subject="admin:t", ttl_s=900, scopes=["sales:write"])  # fmt: skip
        admin = {"Authorization": f"Bearer {admin_token}"}
        buyers = [f"buyer-{i}" for i in range(BUYERS)]
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.put(f"{base}/v1/admin/sales/{SALE}", json={}, headers=admin) as r:
                assert r.status in (200, 201), await r.text()
            async with http.put(f"{base}/v1/admin/sales/{SALE}/catalogue",
                                json=catalogue(seats=1000), headers=admin) as r:  # fmt: skip
                assert r.status == 200, await r.text()
            await asyncio.to_thread(_windows, tmp_path / ".guichet/data", buyers)
            holds: dict[str, str] = {}
            for i, buyer in enumerate(buyers):
                headers = {**bearer(buyer), "Idempotency-Key": f"k-{buyer}"}
                body = {"packs": [pack(i % 6, (i + 1) % 6, (i + 2) % 6)]}
                async with http.post(f"{base}/v1/sales/{SALE}/holds", json=body,
                                     headers=headers) as r:  # fmt: skip
                    assert r.status == 201, await r.text()
                    holds[buyer] = (await r.json())["id"]

            answers: dict[str, int] = {}
            done_before_kill = asyncio.Event()
            gate = asyncio.Semaphore(16)

            async def confirm(buyer: str) -> None:
                url = f"{base}/v1/sales/{SALE}/holds/{holds[buyer]}/confirm"
                async with gate:
                    try:
                        async with http.post(url, json={"payment_reference": f"PAY-{buyer}"},
                                             headers=bearer(buyer)) as r:  # fmt: skip
                            answers[buyer] = r.status
                            await r.read()
                    except aiohttp.ClientError:
                        answers[buyer] = 0
                if len(answers) >= 20:
                    done_before_kill.set()

            storm = [asyncio.create_task(confirm(b)) for b in buyers]
            await asyncio.wait_for(done_before_kill.wait(), 60)
            os.kill(valkey["pid"], signal.SIGKILL)
            await asyncio.gather(*storm)
            await asyncio.to_thread(served.wait_msg, "embedded valkey died", 30)
            restarted = await asyncio.to_thread(served.wait_msg, "embedded valkey restarted", 30)
            assert restarted["port"] == valkey["port"]  # the workers' pools reconnect there
            assert restarted["pid"] != valkey["pid"]
            assert restarted["down_s"] < 10

            async with asyncio.timeout(30):  # serving again by itself, within seconds
                while True:
                    async with http.get(f"{base}/readyz") as r:
                        if r.status == 200:
                            break
                    await asyncio.sleep(0.1)

            ok = [b for b, status in answers.items() if status == 200]
            assert len(ok) >= 20, answers
            assert set(answers.values()) <= {0, 200, 503}, answers
            for buyer in buyers:  # every 200 is still a purchase; the rest can now confirm
                url = f"{base}/v1/sales/{SALE}/holds/{holds[buyer]}"
                if buyer in ok:
                    async with http.get(url, headers=bearer(buyer)) as r:
                        assert r.status == 200, await r.text()
                        assert (await r.json())["state"] == "confirmed", buyer
                else:
                    async with asyncio.timeout(30):
                        while True:
                            async with http.post(url + "/confirm", json={"payment_reference": "x"},
                                                 headers=bearer(buyer)) as r:  # fmt: skip
                                if r.status != 503:
                                    assert r.status == 200, await r.text()
                                    break
                            await asyncio.sleep(0.1)
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
            assert metric_value(text, "guichet_embedded_valkey_restarts_total") == 1
        audit = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, *guichet("shop", "audit", SALE)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert audit.returncode == 0, audit.stdout + audit.stderr
        served.signal(signal.SIGTERM)
        assert await asyncio.to_thread(served.wait, 30) == 0
    finally:
        served.stop()
