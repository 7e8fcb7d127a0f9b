"""The identity provider's keys from a URL (``security.jwks_url``): fetch, parse, refresh.

Each worker fetches on its own with aiohttp (never blocking the loop): once at start-up, then
when the keys grow old (Cache-Control max-age within ``jwks_min_refresh_s`` ..
``jwks_max_age_s``), and when a token names a ``kid`` no key has. Fetches are coalesced (one
in flight) and never closer together than ``jwks_min_refresh_s``. A failed fetch keeps the last
good keys; it is logged and counted (``guichet_jwks_fetches_total{outcome}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from guichet import metrics
from guichet.config import SecurityConfig

log = logging.getLogger("guichet.jwks")

#: A provider's key set is a few kilobytes; anything bigger is refused unread.
MAX_JWKS_BYTES = 256 * 1024
MAX_KEYS = 100
#: RSA moduli accepted, in bits (smaller is weak; larger only slows every verification).
RSA_BITS = (2048, 8192)
#: Members that only private or symmetric keys carry: a JWKS holding one is refused whole.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: Which configured algorithms can use a key of this (kty, crv).
_USABLE = {
    ("OKP", "Ed25519"): {"EdDSA"},
    ("EC", "P-256"): {"ES256"},
    ("RSA", None): {"RS256", "PS256"},
}
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)
#: The bounded outcomes of a fetch (the metric's label values).
OUTCOMES = ("ok", "timeout", "unreachable", "tls_error", "http_status", "too_large", "invalid")


class Rejected(Exception):
    """A fetch that gave no usable key set; ``outcome`` is one of :data:`OUTCOMES`."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


def parse(body: bytes, algorithms: tuple[str, ...]) -> dict[str, Any]:
    """The public keys of a JWKS document, by ``kid``, that the configured algorithms can use.

    Keys marked for another use than signatures, without a ``kid`` (a token verified with the
    provider's keys must name its key), or of a type no configured algorithm uses, are left
    out; a document that is not a JWKS, holds private or symmetric key material, a
    malformed or weak key, or no usable key at all is :class:`Rejected` (outcome ``invalid``).
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise Rejected("invalid", "the JWKS is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise Rejected("invalid", "the JWKS has no `keys` list")
    if len(entries) > MAX_KEYS:
        raise Rejected("invalid", f"the JWKS holds more than {MAX_KEYS} keys")
    keys: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise Rejected("invalid", "a JWKS entry is not an object")
        if entry.get("kty") == "oct" or _PRIVATE_MEMBERS & entry.keys():
            raise Rejected("invalid", "the JWKS holds a private or symmetric key")
        kid = entry.get("kid")
        if kid is not None and not (isinstance(kid, str) and 0 < len(kid) <= 256):
            raise Rejected("invalid", "a JWKS `kid` is not a short string")
        if entry.get("use", "sig") != "sig" or kid is None:
            continue  # not for signatures; or no kid, so no token could ever name it
        kty, crv, alg = entry.get("kty"), entry.get("crv"), entry.get("alg")
        if not isinstance(kty, str) or not isinstance(crv, str | None):
            raise Rejected("invalid", "a JWKS `kty` or `crv` is not a string")
        usable = _USABLE.get((kty, None if kty == "RSA" else crv), set()) & set(algorithms)
        if not usable or (alg is not None and (not isinstance(alg, str) or alg not in usable)):
            continue  # a key for another algorithm
        try:
            key = jwt.PyJWK(entry).key
        except Exception:  # outside bytes into a third-party parser: any failure refuses
            raise Rejected("invalid", "a JWKS key is malformed") from None
        if isinstance(key, RSAPublicKey) and not RSA_BITS[0] <= key.key_size <= RSA_BITS[1]:
            raise Rejected("invalid", f"an RSA key is not {RSA_BITS[0]}-{RSA_BITS[1]} bits")
        keys[kid] = key
    if not keys:
        raise Rejected("invalid", "the JWKS holds no key the configured algorithms can use")
    return keys


def max_age(cache_control: str | None, low_s: float, high_s: float) -> float:
    """How long a fetched key set stays fresh: Cache-Control max-age within [low, high]."""
    found = _MAX_AGE.search(cache_control or "")
    return high_s if found is None else min(high_s, max(low_s, float(found.group(1))))


def tls_context(cfg: SecurityConfig) -> ssl.SSLContext:
    """Certificate and host checks on, with the configured CA bundle (read here, off-loop)."""
    return ssl.create_default_context(cafile=cfg.jwks_ca_file)


async def read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, however many pieces it arrives in; :class:`Rejected` past ``limit``
    bytes (read no further than that)."""
    body = bytearray()
    while chunk := await stream.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise Rejected("too_large", f"the JWKS exceeds {limit} bytes")
    return bytes(body)


class Source:
    """One worker's view of ``security.jwks_url``; ``on_keys`` receives every good key set."""

    def __init__(
        self,
        cfg: SecurityConfig,
        on_keys: Callable[[dict[str, Any]], None],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        assert cfg.jwks_url is not None
        self.url = cfg.jwks_url
        self.cfg = cfg
        self._on_keys = on_keys
        #: Built here, outside the event loop (it reads the CA bundle), unless given.
        self.tls = tls or (tls_context(cfg) if self.url.startswith("https:") else None)
        self.clock: Callable[[], float] = time.monotonic  # tests move time on
        #: A key set was fetched at least once (readiness).
        self.fetched = False
        self.key_count = 0
        self._session: aiohttp.ClientSession | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._last_attempt: float | None = None
        self._next_due = 0.0
        self._wake = asyncio.Event()

    @property
    def busy(self) -> bool:
        """A fetch is in flight (a request may wait for it)."""
        return self._inflight is not None

    async def settled(self) -> None:
        """Wait for the fetch in flight, if any, to be applied."""
        if self._inflight is not None:
            await asyncio.shield(self._inflight)

    def may_fetch(self) -> bool:
        """No fetch in the last ``jwks_min_refresh_s``."""
        last = self._last_attempt
        return last is None or self.clock() - last >= self.cfg.jwks_min_refresh_s

    async def refresh(self) -> None:
        """Fetch now unless one is in flight (then wait for it) or one ran too recently."""
        if self._inflight is None:
            if not self.may_fetch():
                return
            self._last_attempt = self.clock()
            self._inflight = asyncio.create_task(self._fetch())
            self._inflight.add_done_callback(self._done)
        await asyncio.shield(self._inflight)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight = None

    async def _fetch(self) -> None:
        """One fetch; whatever happens, the outcome is counted and nothing escapes."""
        try:
            keys, fresh_s = await self._get()
        except Rejected as exc:
            metrics.JWKS_FETCHES.labels(exc.outcome).inc()
            log.warning(
                "jwks fetch failed; keeping the last good keys",
                extra={"outcome": exc.outcome, "error": exc.detail, "keys": self.key_count},
            )
            self._next_due = self.clock() + self.cfg.jwks_min_refresh_s
            return
        self._on_keys(keys)
        self.fetched = True
        self.key_count = len(keys)
        self._next_due = self.clock() + fresh_s
        metrics.JWKS_FETCHES.labels("ok").inc()
        metrics.JWKS_KEYS.set(len(keys))
        metrics.JWKS_LAST_SUCCESS.set(time.time())

    async def _get(self) -> tuple[dict[str, Any], float]:
        if self._session is None:
            raise Rejected("unreachable", "the JWKS client is not started")
        cfg = self.cfg
        try:
            async with (
                asyncio.timeout(cfg.jwks_timeout_s),
                self._session.get(self.url, allow_redirects=False, ssl=self.tls or True) as resp,
            ):
                if resp.status != 200:
                    raise Rejected("http_status", f"the JWKS server answered {resp.status}")
                if (resp.content_length or 0) > MAX_JWKS_BYTES:
                    raise Rejected("too_large", f"the JWKS exceeds {MAX_JWKS_BYTES} bytes")
                body = await read_bounded(resp.content, MAX_JWKS_BYTES)
                cache_control = resp.headers.get("Cache-Control")
        except TimeoutError:
            raise Rejected("timeout", f"no JWKS within {cfg.jwks_timeout_s} s") from None
        except aiohttp.ClientSSLError as exc:
            raise Rejected("tls_error", f"TLS: {type(exc).__name__}") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise Rejected("unreachable", f"{type(exc).__name__}") from None
        keys = parse(body, cfg.algorithms)
        return keys, max_age(cache_control, cfg.jwks_min_refresh_s, cfg.jwks_max_age_s)

    async def run(self) -> None:
        """Refresh when the keys are due (a failed fetch is retried after the minimum)."""
        while True:
            delay = max(self._next_due - self.clock(), 0.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if self.clock() >= self._next_due:
                await self.refresh()
                if self.clock() < self._next_due:
                    continue
                # Refused by the minimum interval: wait until it allows a fetch.
                self._next_due = (self._last_attempt or 0.0) + self.cfg.jwks_min_refresh_s

    def poke(self) -> None:
        """Re-read the clock now (tests that move it)."""
        self._wake.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The client session, a first fetch (awaited) and the refresh loop."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.cfg.jwks_timeout_s),
            headers={"Accept": "application/jwk-set+json, application/json"},
        )
        try:
            await self.refresh()
            task = asyncio.create_task(self.run())
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                if self._inflight is not None:
                    self._inflight.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._inflight
        finally:
            await self._session.close()
            self._session = None
