"""Who the client is (its address) and the SSE slots of a worker, shared by room and shop.

A client's address is the peer address of the connection. Only when that peer is a trusted
proxy (``rooms.trusted_proxies``, loopback by default) and ``rooms.client_ip_header`` is set
is the last entry of that header used instead: the one the proxy appended, which a client
cannot forge.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
from collections.abc import Iterator

from aiohttp import web

from guichet import errors, metrics
from guichet.config import RoomsConfig

log = logging.getLogger("guichet.streams")
RETRY_AFTER_S = 5


@functools.cache
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


@functools.lru_cache(maxsize=4096)
def _trusted(peer: str, cidrs: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in net for net in _networks(cidrs))


def client_address(request: web.Request, cfg: RoomsConfig) -> str:
    """The client's address (see the module doc); ``unknown`` without a peer."""
    peer = request.remote or "unknown"
    if cfg.client_ip_header:
        forwarded = request.headers.get(cfg.client_ip_header, "")
        if not _trusted(peer, cfg.trusted_proxies):
            if forwarded and not _UNTRUSTED_WARNED:
                _warn_untrusted(peer, cfg.client_ip_header)
            return peer
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return peer


_UNTRUSTED_WARNED = False


def _warn_untrusted(peer: str, header: str) -> None:
    """Once per worker: a proxy off ``rooms.trusted_proxies`` makes every client one address
    (one rate limit, one SSE allowance), which ops must hear of before the sale does."""
    global _UNTRUSTED_WARNED
    _UNTRUSTED_WARNED = True
    log.warning(
        "client_ip_header from an untrusted peer: its clients count as one address; "
        "add the proxy to rooms.trusted_proxies",
        extra={"peer": peer, "header": header},
    )


class StreamSlots:
    """Open SSE streams of this worker: in all, per client address, per queue ticket."""

    def __init__(self, cfg: RoomsConfig) -> None:
        self.cfg = cfg
        self.total = 0
        self.by_address: dict[str, int] = {}
        self.by_ticket: dict[str, int] = {}

    def _refuse(self, limit: str, what: str, key: str, poll: str) -> errors.Problem:
        metrics.SSE_REFUSALS.labels(limit).inc()
        value = getattr(self.cfg, key)
        return errors.too_many(
            f"too many live streams {what} (rooms.{key} {value}); poll {poll} instead",
            RETRY_AFTER_S,
        )

    @contextlib.contextmanager
    def hold(self, poll: str, address: str, ticket: str | None = None) -> Iterator[None]:
        """One slot for the stream's life, or a 429 problem naming the limit reached and
        what to ``poll`` instead."""
        cfg = self.cfg
        if self.total >= cfg.sse_max_clients:
            raise self._refuse("server", "on this server", "sse_max_clients", poll)
        if self.by_address.get(address, 0) >= cfg.sse_max_per_address:
            raise self._refuse("address", "from this address", "sse_max_per_address", poll)
        if ticket is not None and self.by_ticket.get(ticket, 0) >= cfg.sse_max_per_ticket:
            raise self._refuse("ticket", "for this queue ticket", "sse_max_per_ticket", poll)
        self.total += 1
        self.by_address[address] = self.by_address.get(address, 0) + 1
        if ticket is not None:
            self.by_ticket[ticket] = self.by_ticket.get(ticket, 0) + 1
        try:
            yield
        finally:
            self.total -= 1
            _release(self.by_address, address)
            if ticket is not None:
                _release(self.by_ticket, ticket)


def _release(counts: dict[str, int], key: str) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]
