"""Token verification: every way a token can be wrong is refused with a bounded reason."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import threading
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from guichet import auth
from guichet.config import SecurityConfig


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Ed25519PrivateKey:
    return auth.load_or_create_dev_key(tmp_path_factory.mktemp("k") / "dev.pem")


@pytest.fixture(scope="module")
def verifier(key: Ed25519PrivateKey) -> auth.Verifier:
    cfg = SecurityConfig(dev_issuer=False)
    return auth.Verifier(cfg, {auth.public_jwk(key)["kid"]: key.public_key()})


def account_token(key: Ed25519PrivateKey, **kw: object) -> str:
    args: dict[str, object] = {
        "issuer": "guichet-dev",
        "audience": "guichet",
        "subject": "acc-1",
        "ttl_s": 600,
    }
    args.update(kw)
    return auth.mint(key, **args)


def reason(verifier: auth.Verifier, token: str) -> str:
    with pytest.raises(auth.Refused) as info:
        verifier.account(token)
    return info.value.reason


def test_valid_account_token(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    account = verifier.account(account_token(key))
    assert account.id == "acc-1"
    assert account.expires_at > time.time()


def test_expired(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    assert reason(verifier, account_token(key, now=time.time() - 3600, ttl_s=60)) == "expired"


def test_not_yet_valid(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    assert reason(verifier, account_token(key, now=time.time() + 3600)) == "not_yet_valid"


def test_wrong_issuer(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    assert reason(verifier, account_token(key, issuer="evil")) == "wrong_issuer"


def test_wrong_audience(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    assert reason(verifier, account_token(key, audience="other-site")) == "wrong_audience"


def test_other_key(verifier: auth.Verifier) -> None:
    assert reason(verifier, account_token(Ed25519PrivateKey.generate())) == "bad_signature"


def test_ttl_too_long(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    assert reason(verifier, account_token(key, ttl_s=30 * 24 * 3600)) == "ttl_too_long"


def test_alg_none_refused(verifier: auth.Verifier) -> None:
    now = int(time.time())
    claims = {"iss": "guichet-dev", "aud": "guichet", "sub": "x", "iat": now, "exp": now + 60}
    token = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    assert reason(verifier, token) in ("bad_algorithm", "malformed")


def test_hmac_with_public_key_refused(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    """The classic confusion attack: HS256 signed with the public key bytes."""
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"iss": "guichet-dev", "aud": "guichet", "sub": "x", "iat": now, "exp": now + 60}
    header = {"alg": "HS256", "typ": "JWT"}
    signing = b".".join(
        base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=") for p in (header, claims)
    )
    import hashlib
    import hmac

    sig = base64.urlsafe_b64encode(hmac.new(public, signing, hashlib.sha256).digest()).rstrip(b"=")
    assert reason(verifier, (signing + b"." + sig).decode()) in ("bad_algorithm", "bad_signature")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "Bearer", "é.é.é"])
def test_garbage(verifier: auth.Verifier, token: str) -> None:
    assert reason(verifier, token) == "malformed"


def test_missing_subject(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    now = int(time.time())
    claims = {"iss": "guichet-dev", "aud": "guichet", "iat": now, "exp": now + 60}
    token = jwt.encode(claims, key, algorithm="EdDSA")
    assert reason(verifier, token) == "malformed"


def test_control_characters_in_subject(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    assert reason(verifier, account_token(key, subject="acc\n1")) == "malformed"


def test_altered_payload_refused(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    header, payload, sig = account_token(key).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert reason(verifier, f"{header}.{forged}.{sig}") == "bad_signature"


@settings(max_examples=60, deadline=None)
@given(
    position=st.integers(min_value=0),
    replacement=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
)
def test_any_altered_character_is_refused(
    verifier: auth.Verifier, key: Ed25519PrivateKey, position: int, replacement: str
) -> None:
    token = account_token(key)
    i = position % len(token)
    if token[i] in (".", replacement):
        return
    altered = token[:i] + replacement + token[i + 1 :]
    try:
        verifier.account(altered)
    except auth.Refused:
        return

    # Accepted only if the change hit base64url padding bits: the decoded bytes are unchanged.
    def decoded(t: str) -> list[bytes]:
        return [jwt.utils.base64url_decode(part) for part in t.split(".")]

    assert decoded(altered) == decoded(token)


def admin_token(key: Ed25519PrivateKey, *scopes: str) -> str:
    return auth.mint(
        key,
        issuer="guichet-dev",
        audience="guichet-admin",
        subject="ops",
        ttl_s=60,
        scopes=list(scopes),
    )


def test_admin_scope(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    token = admin_token(key, "ops:read", "room:write")
    admin = verifier.admin(token, "ops:read")
    assert admin.scopes == {"ops:read", "room:write"}
    with pytest.raises(auth.Refused) as info:
        verifier.admin(token, "draw:run")
    assert info.value.reason == "insufficient_scope"


def test_account_token_is_not_an_admin_token(
    verifier: auth.Verifier, key: Ed25519PrivateKey
) -> None:
    with pytest.raises(auth.Refused) as info:
        verifier.admin(account_token(key), "ops:read")
    assert info.value.reason == "wrong_audience"


def test_admin_token_is_not_an_account_token(
    verifier: auth.Verifier, key: Ed25519PrivateKey
) -> None:
    assert reason(verifier, admin_token(key, "ops:read")) == "wrong_audience"


def test_pem_and_jwks_keys_from_config(tmp_path: Path) -> None:
    """Production keys: a PEM public key file and a JWKS file both verify their tokens."""
    pem_key = Ed25519PrivateKey.generate()
    pem_file = tmp_path / "idp.pem"
    pem_file.write_bytes(
        pem_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    jwks_key = Ed25519PrivateKey.generate()
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [auth.public_jwk(jwks_key)]}))
    cfg = SecurityConfig(
        dev_issuer=False,
        issuer="https://idp",
        public_keys=(str(pem_file),),
        jwks_file=str(jwks_file),
    )
    verifier = auth.Verifier.from_config(cfg)
    for k in (pem_key, jwks_key):
        assert verifier.account(account_token(k, issuer="https://idp")).id == "acc-1"
    with pytest.raises(auth.Refused):
        verifier.account(account_token(Ed25519PrivateKey.generate(), issuer="https://idp"))


def test_no_keys_configured_fails_loudly() -> None:
    with pytest.raises(ValueError, match="no token verification keys"):
        auth.Verifier.from_config(SecurityConfig(dev_issuer=False))


def test_dev_key_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    auth.load_or_create_dev_key(path)
    assert path.stat().st_mode & 0o077 == 0
    assert auth.public_jwk(auth.load_or_create_dev_key(path))["kid"]


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "missing"),
        ("Basic abc", "malformed"),
        ("Bearer ", "malformed"),
        ("Bearer", "malformed"),
    ],
)
def test_bearer_header(header: str | None, why: str) -> None:
    with pytest.raises(auth.Refused) as info:
        auth.bearer(header)
    assert info.value.reason == why


def test_operator_programmes_claim_binds_the_admin(
    verifier: auth.Verifier, key: Ed25519PrivateKey
) -> None:
    bound = auth.mint(key, issuer="guichet-dev", audience="guichet-admin", subject="op-1",
                      ttl_s=600, scopes=["programme:operate"],
                      programmes=["youth-75", "agents"])  # fmt: skip
    assert verifier.admin(bound, "programme:operate").programmes == {"youth-75", "agents"}
    unbound = admin_token(key, "programme:operate")
    assert verifier.admin(unbound, "programme:operate").programmes == frozenset()


def test_servers_starting_together_share_one_dev_key(tmp_path: Path) -> None:
    """Several processes creating the development key at once (CI started eight servers in one
    folder): none fails, and every one gets the key that was written first."""
    path = tmp_path / ".guichet" / "dev-issuer.pem"
    start = threading.Barrier(16)

    def load() -> bytes:
        start.wait()
        key = auth.load_or_create_dev_key(path)
        return key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        keys = list(pool.map(lambda _: load(), range(16)))
    on_disk = auth.load_or_create_dev_key(path).public_key()
    assert set(keys) == {
        on_disk.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    }
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["dev-issuer.pem"]  # no temporary left
