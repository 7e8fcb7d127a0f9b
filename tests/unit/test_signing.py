"""The keyring: the newest key signs, a retired key stays published while its tokens live."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from guichet import auth, signing
from guichet.signing import Keyring, KeySource, Signer

WHO = {"audience": "site.example", "issuer": "guichet"}


def _claims(exp: float) -> dict[str, object]:
    return {"aud": WHO["audience"], "iss": WHO["issuer"], "sub": "a", "exp": int(exp)}


def test_a_new_keyring_makes_its_first_key_and_signs_with_it(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    signer: Signer = ring
    keys: KeySource = ring
    token = signer.sign(_claims(time.time() + 60))
    assert jwt.get_unverified_header(token)["kid"] == signer.kid == signer.jwk["kid"]
    assert keys.published() == [signer.jwk]
    claims = signing.verify(keys, token, what="token", require=("exp", "sub"), **WHO)
    assert claims["sub"] == "a"


def test_a_rotated_key_signs_after_refresh_and_the_old_one_stays_published(
    tmp_path: Path,
) -> None:
    ring = Keyring(tmp_path, max_ttl_s=100)
    old = ring.kid
    old_token = ring.sign(_claims(time.time() + 60))
    ring.rotate(now=1_000)
    assert ring.kid == old  # workers see a new key at their next refresh
    ring.refresh()
    assert ring.kid != old
    assert [k["kid"] for k in ring.published(now=1_000)] == [ring.kid, old]
    # Published until every token the old key signed has expired, and a margin.
    margin = signing.PUBLISH_MARGIN_S
    assert [k["kid"] for k in ring.published(now=1_000 + 100 + margin - 1)] == [ring.kid, old]
    assert [k["kid"] for k in ring.published(now=1_000 + 100 + margin)] == [ring.kid]
    assert signing.verify(ring, old_token, what="token", require=(), **WHO)["sub"] == "a"
    assert Keyring(tmp_path).kid == ring.kid  # another worker loads the same keys


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not a token", "malformed"),
        ("eyJhbGciOiJFZERTQSJ9.e30.c2ln", "forged"),  # no kid: an unknown key
    ],
)
def test_refusals(tmp_path: Path, token: str, reason: str) -> None:
    ring = Keyring(tmp_path)
    with pytest.raises(auth.Refused) as refused:
        signing.verify(ring, token, what="token", require=(), **WHO)
    assert refused.value.reason == reason


def test_expired_and_foreign_tokens_are_refused(tmp_path: Path) -> None:
    ring, other = Keyring(tmp_path / "ours"), Keyring(tmp_path / "theirs")
    for token, reason in [
        (ring.sign(_claims(time.time() - 60)), "expired"),
        (other.sign(_claims(time.time() + 60)), "forged"),
        (ring.sign({**_claims(time.time() + 60), "aud": "elsewhere"}), "forged"),
    ]:
        with pytest.raises(auth.Refused) as refused:
            signing.verify(ring, token, what="token", require=("exp",), **WHO)
        assert refused.value.reason == reason, token
