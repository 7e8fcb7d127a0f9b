"""``guichet ticket …``: check a ticket payload offline against a saved JWKS (what a gate
without the network does), and rotate the ticket signing key."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from guichet import opscli
from guichet.auth import Refused
from guichet.config import EticketsConfig, Settings
from guichet.eticket import model
from guichet.room import keys_audit
from guichet.signing import JWK, Keyring, verify


class JwksKeys:
    """The Ed25519 keys of a JWKS document (a :class:`guichet.signing.KeySource`)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._raw: dict[str, bytes] = {}
        self._jwks: list[JWK] = []
        for raw in document.get("keys", []):
            if not isinstance(raw, dict) or raw.get("kty") != "OKP" or "kid" not in raw:
                continue
            try:
                key = jwt.PyJWK.from_dict(raw).key
            except (jwt.PyJWTError, ValueError, TypeError):  # not a usable key: skipped
                continue
            if isinstance(key, Ed25519PublicKey):
                self._keys[str(raw["kid"])] = key
                self._raw[str(raw["kid"])] = key.public_bytes_raw()
                self._jwks.append({k: str(v) for k, v in raw.items()})

    def published(self, now: float | None = None) -> list[JWK]:
        return list(self._jwks)

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)

    def raw_public_key(self, kid: str) -> bytes | None:
        return self._raw.get(kid)


def check_offline(payload: str, jwks: dict[str, Any], cfg: EticketsConfig) -> model.Seat:
    """The ticket a payload names if it verifies against ``jwks`` (signature, issuer,
    audience, expiry), else :class:`Refused`. It cannot tell whether a gate scanned it already:
    only the online scan marks a ticket used."""
    claims = verify(JwksKeys(jwks), payload.strip(), what="ticket", audience=cfg.audience,
                    issuer=cfg.issuer, require=model.REQUIRED)  # fmt: skip
    seat = model.seat_of(claims)
    if seat is None:
        raise Refused("malformed", "the payload's claims are not a ticket's")
    return seat


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    try:
        jwks = json.loads(Path(args.jwks).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return opscli.fail(f"{args.jwks}: not a readable JWKS ({exc})")
    if not isinstance(jwks, dict):
        return opscli.fail(f"{args.jwks}: not a JWKS (an object with `keys`)")
    try:
        seat = check_offline(args.payload, jwks, settings.etickets)
    except Refused as exc:
        return opscli.fail(f"ticket refused ({exc.reason}): {exc.detail}")
    opscli.show({"ticket": seat.id, "sale": seat.sale, "session": seat.session,
                 "category": seat.category, "account": seat.account,
                 "checked_at": int(time.time()),
                 "note": "signature valid; only an online scan tells if it was used"})  # fmt: skip
    return 0


def cmd_rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    cfg = settings.etickets
    path = Keyring(cfg.signing_key_dir, max_ttl_s=cfg.valid_days * 24 * 3600).rotate()
    keys_audit.rotated(settings, "eticket.rotate-key", keys_audit.ETICKET_KEYS, path)
    print(f"new e-ticket key {path}; workers sign with it within seconds, and the old key "
          f"stays in the JWKS for etickets.valid_days ({cfg.valid_days})")  # fmt: skip
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ticket", help="e-tickets: check a payload offline, rotate the key")
    inner = p.add_subparsers(dest="ticket_command", required=True)
    q = inner.add_parser(
        "verify", help="check a ticket payload (the QR code's text) against a saved JWKS"
    )
    q.add_argument("payload", help="the payload: the compact JWS the QR code holds")
    q.add_argument("--jwks", required=True,
                   help="JWKS file saved from /.well-known/jwks.json")  # fmt: skip
    q.set_defaults(func=cmd_verify)
    q = inner.add_parser("rotate-key", help="add a new e-ticket signing key")
    q.set_defaults(func=cmd_rotate_key)
