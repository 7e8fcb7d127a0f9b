"""The proof-of-work door at join, web side (the puzzle itself is challenge.py): read the
optional proof from the join's body, check it against the room's ``challenge_bits`` before any
Redis call, and answer a refused one with a fresh challenge (403 ``challenge-required``)."""

from __future__ import annotations

from aiohttp import web

from guichet import metrics, webio
from guichet.room.challenge import (
    Challenge,
    ChallengeRequired,
    JoinProof,
    Reason,
    Refused,
    decode_proof,
)
from guichet.room.service import Runtime
from guichet.state import CHALLENGER

#: The largest join body read (a proof is a token of at most 1 KiB and a few numbers).
MAX_PROOF_BYTES = 4096


async def proof_of(request: web.Request) -> JoinProof | None:
    """The join's proof of work; None for an empty body (a client that sends none)."""
    if not request.body_exists:
        return None
    body = await webio.read_large(request, MAX_PROOF_BYTES)
    if not body.strip():
        return None
    webio.require_json(request)
    return decode_proof(body)


def check(
    request: web.Request, rt: Runtime, account: str, proof: JoinProof | None
) -> Challenge | None:
    """The verified challenge when the room asks for one (None when it does not), or the
    403 problem with a fresh challenge. The nonce is spent by join.lua."""
    bits = rt.spec.challenge_bits
    if bits <= 0:
        return None
    try:
        return request.app[CHALLENGER].verify(proof, rt.id, account, bits, rt.now())
    except Refused as exc:
        raise refused(request, rt, account, exc.reason, exc.detail) from None


def refused(
    request: web.Request,
    rt: Runtime,
    account: str,
    reason: Reason,
    detail: str,
    bits: int | None = None,
) -> ChallengeRequired:
    """The 403 answering a refused proof, with a fresh challenge of ``bits`` (default: the
    room's spec as this worker knows it), counted."""
    metrics.ROOM_CHALLENGES.labels(rt.id, "failed").inc()
    metrics.ROOM_CHALLENGE_FAILURES.labels(rt.id, reason).inc()
    metrics.ROOM_CHALLENGES.labels(rt.id, "issued").inc()
    bits = rt.spec.challenge_bits if bits is None else bits
    offer = request.app[CHALLENGER].issue(rt.id, account, bits, rt.now())
    return ChallengeRequired(reason, detail, offer)


def solved(rt: Runtime, proof: JoinProof | None) -> None:
    """Count an accepted proof and the solve time its client reported (clamped)."""
    metrics.ROOM_CHALLENGES.labels(rt.id, "solved").inc()
    if proof is not None and proof.solve_ms is not None:
        seconds = min(600.0, max(0.0, proof.solve_ms / 1000))
        metrics.ROOM_CHALLENGE_SOLVE.labels(rt.id).observe(seconds)
