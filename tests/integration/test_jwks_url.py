"""``security.jwks_url``: the identity provider's keys fetched from a local HTTPS server
that rotates them (a CA made here, given as ``jwks_ca_file``), through the real HTTP app."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import msgspec
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from guichet import auth, jwks
from guichet.config import ConfigError, SecurityConfig, Settings, load_settings
from guichet.state import VERIFIER
from tests.conftest import Backend, Client, make_settings, metric_value

ISSUER = "https://idp.example.test/"


# --- a local certificate authority and HTTPS JWKS server ----------------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost it signed: (ca, cert, key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} CA"))
        .issuer_name(_name(f"{name} CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / f"{name}-ca.pem", directory / f"{name}-cert.pem", directory / f"{name}.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class Provider:
    """The identity provider's JWKS endpoint: its keys, and how it misbehaves."""

    signing: list[Ed25519PrivateKey]
    #: "ok", "error" (500), "hang" (never answers), or a body served as is.
    mode: str | bytes = "ok"
    cache_control: str | None = None
    fetches: int = 0
    fetched: asyncio.Event = field(default_factory=asyncio.Event)
    #: While cleared, an answer waits (a fetch in flight that requests pile up behind).
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def document(self) -> bytes:
        return json.dumps({"keys": [auth.public_jwk(k) for k in self.signing]}).encode()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.fetches += 1
        self.fetched.set()
        await self.gate.wait()
        if self.mode == "error":
            return web.Response(status=500, text="down")
        if self.mode == "hang":
            await asyncio.Event().wait()
        if self.mode == "pieces":  # the body in two writes, the second after the first is sent
            document = self.document()
            half = len(document) // 2
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(document[:half])  # written out before it returns
            # A pause the client must read through (no event tells when it has read the
            # first piece; a reader that takes one piece for the body fails the test).
            await asyncio.sleep(0.1)
            await response.write(document[half:])
            await response.write_eof()
            return response
        body = self.mode if isinstance(self.mode, bytes) else self.document()
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        return web.Response(body=body, content_type="application/json", headers=headers)


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """The CA file the service trusts and the JWKS server's TLS context (made off-loop)."""
    ca, cert, key = make_ca(tmp_path, "idp")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    return ca, server_tls


@pytest.fixture
def first_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def start_mode() -> str:
    """How the provider answers when the service starts (parametrised indirectly)."""
    return "ok"


@pytest.fixture
async def provider(
    pki: tuple[Path, ssl.SSLContext], first_key: Ed25519PrivateKey, start_mode: str
) -> AsyncIterator[Provider]:
    idp = Provider(signing=[first_key], mode=start_mode)
    idp.gate.set()
    app = web.Application()
    app.router.add_get("/jwks.json", idp.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=pki[1])
    await site.start()
    port = runner.addresses[0][1]
    idp.url = f"https://127.0.0.1:{port}/jwks.json"
    yield idp
    idp.gate.set()
    await runner.cleanup()


def idp_security(idp: Provider, ca: Path, **more: object) -> dict[str, object]:
    return {
        "issuer": ISSUER,
        "dev_issuer": False,
        "jwks_url": idp.url,
        "jwks_ca_file": str(ca),
        "jwks_timeout_s": 2.0,
        **more,
    }


@pytest.fixture
def jwks_options() -> dict[str, object]:
    """Per-test overrides of the security section (parametrised indirectly)."""
    return {}


@pytest.fixture
def settings(
    tmp_path: Path,
    backend: Backend,
    provider: Provider,
    pki: tuple[Path, ssl.SSLContext],
    jwks_options: dict[str, object],
) -> Settings:
    return make_settings(
        tmp_path, backend.redis_section, security=idp_security(provider, pki[0], **jwks_options)
    )


def token(key: Ed25519PrivateKey, subject: str = "acc-idp", ttl_s: int = 600) -> str:
    return auth.mint(key, issuer=ISSUER, audience="guichet", subject=subject, ttl_s=ttl_s)


async def me(client: Client, bearer: str) -> int:
    resp = await client.get("/v1/me", headers={"Authorization": f"Bearer {bearer}"})
    await resp.read()
    return resp.status


class Clock:
    """The JWKS source's monotonic clock, moved by the test (the minimum interval is time)."""

    def __init__(self, client: Client) -> None:
        assert client.app is not None
        source = client.app[VERIFIER].remote
        assert source is not None
        self.source = source
        self.now = self.source.clock()
        self.source.clock = lambda: self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.source.poke()


# --- through the HTTP app -------------------------------------------------------------------
async def test_provider_keys_verify_a_protected_route(
    client: Client, provider: Provider, first_key: Ed25519PrivateKey
) -> None:
    assert await me(client, token(first_key)) == 200
    stranger = Ed25519PrivateKey.generate()  # its kid is in no JWKS
    assert await me(client, token(stranger)) == 401
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()


@pytest.mark.inprocess("moves the JWKS source's clock and counts one worker's fetches")
@pytest.mark.parametrize("jwks_options", [{"jwks_min_refresh_s": 30.0}])
async def test_rotation_new_kid_once_old_kid_refused(
    client: Client, provider: Provider, first_key: Ed25519PrivateKey
) -> None:
    clock = Clock(client)
    old = token(first_key)
    assert await me(client, old) == 200  # and remembered in the verified-token cache
    assert provider.fetches == 1  # at start-up
    new_key = Ed25519PrivateKey.generate()
    provider.signing = [first_key, new_key]
    # Within the minimum interval an unknown kid is refused without a fetch.
    assert await me(client, token(new_key)) == 401
    assert provider.fetches == 1
    clock.advance(30.0)
    assert await me(client, token(new_key)) == 200  # one fetch, then verified
    assert await me(client, token(new_key, "acc-2")) == 200
    assert provider.fetches == 2
    # The provider retires the old key; the next refresh drops it, cached tokens included.
    provider.signing = [new_key]
    provider.fetched.clear()
    clock.advance(600.0)  # the periodic refresh (jwks_max_age_s) is due
    await asyncio.wait_for(provider.fetched.wait(), 5)
    await clock.source.settled()
    assert await me(client, old) == 401
    assert await me(client, token(new_key, "acc-3")) == 200
    assert provider.fetches == 3
    text = await (await client.get("/metrics")).text()
    assert metric_value(text, "guichet_jwks_fetches_total", outcome="ok") >= 3
    assert metric_value(text, "guichet_jwks_keys") == 1


@pytest.mark.inprocess("moves the JWKS source's clock and counts one worker's fetches")
@pytest.mark.parametrize("jwks_options", [{"jwks_min_refresh_s": 30.0}])
async def test_floods_of_new_and_unknown_kids_cost_one_fetch(
    client: Client, provider: Provider, first_key: Ed25519PrivateKey
) -> None:
    clock = Clock(client)
    new_key = Ed25519PrivateKey.generate()
    provider.signing = [first_key, new_key]
    provider.gate.clear()  # the refresh hangs until every request waits on it
    provider.fetched.clear()
    clock.advance(30.0)
    fresh = token(new_key)
    flood = [asyncio.create_task(me(client, fresh)) for _ in range(60)]
    await asyncio.wait_for(provider.fetched.wait(), 5)
    await asyncio.sleep(0.05)  # most requests reach the fetch in flight and wait for it
    provider.gate.set()
    assert await asyncio.gather(*flood) == [200] * 60
    assert provider.fetches == 2  # start-up and one refresh, shared by 60 requests
    # Then many tokens of unknown kids: the minimum interval holds, no fetch at all.
    strangers = [token(Ed25519PrivateKey.generate()) for _ in range(40)]
    assert await asyncio.gather(*(me(client, t) for t in strangers)) == [401] * 40
    assert provider.fetches == 2
    # Once the interval has passed, another flood of unknown kids costs exactly one fetch.
    clock.advance(30.0)
    assert await asyncio.gather(*(me(client, t) for t in strangers)) == [401] * 40
    assert provider.fetches == 3


@pytest.mark.inprocess("moves the JWKS source's clock and counts one worker's fetches")
@pytest.mark.parametrize("jwks_options", [{"jwks_min_refresh_s": 30.0, "jwks_timeout_s": 0.3}])
async def test_provider_failures_keep_the_last_good_keys(
    client: Client, provider: Provider, first_key: Ed25519PrivateKey
) -> None:
    clock = Clock(client)
    private = auth.public_jwk(first_key) | {"d": "AAAA"}
    failures: list[tuple[str | bytes, str]] = [
        ("error", "http_status"),
        ("hang", "timeout"),
        (b"{not json", "invalid"),
        (b"\xff\xfe\x00hostile", "invalid"),
        (json.dumps({"keys": [private]}).encode(), "invalid"),
        (json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).encode(), "invalid"),
        (b'{"keys": []}', "invalid"),
        (b" " * (jwks.MAX_JWKS_BYTES + 1), "too_large"),
    ]
    for mode, outcome in failures:
        provider.mode = mode
        clock.advance(30.0)
        before = provider.fetches
        # An unknown kid makes the fetch happen; the refusal comes after it.
        assert await me(client, token(Ed25519PrivateKey.generate())) == 401
        assert provider.fetches == before + 1
        assert await me(client, token(first_key, f"acc-{outcome}")) == 200, outcome
        text = await (await client.get("/metrics")).text()
        assert metric_value(text, "guichet_jwks_fetches_total", outcome=outcome) >= 1, outcome
    ready = await client.get("/readyz")
    assert ready.status == 200  # keys were fetched once: still ready


@pytest.mark.parametrize("start_mode", ["error"])
@pytest.mark.parametrize("jwks_options", [{"jwks_min_refresh_s": 0.1, "jwks_max_age_s": 0.2}])
async def test_readiness_503_until_a_first_key_set_then_200(
    client: Client, provider: Provider, first_key: Ed25519PrivateKey
) -> None:
    # The provider was down when the service started: not ready, and it says why.
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["reason"] == "no identity-provider keys fetched from security.jwks_url yet"
    assert await me(client, token(first_key)) == 401
    provider.mode = "ok"  # it comes back; the worker retries every jwks_min_refresh_s
    async with asyncio.timeout(10):
        while (resp := await client.get("/readyz")).status != 200:
            await resp.read()
            await asyncio.sleep(0.05)
    assert await me(client, token(first_key)) == 200


# --- the fetcher on its own -----------------------------------------------------------------
def source_for(url: str, **more: object) -> tuple[jwks.Source, list[dict[str, Any]]]:
    """A Source whose key sets land in the returned list (built off-loop: it reads the CA)."""
    cfg = msgspec.convert({"jwks_url": url, "jwks_timeout_s": 2.0, **more}, SecurityConfig)
    got: list[dict[str, Any]] = []
    return jwks.Source(cfg, got.append), got


@pytest.fixture
def untrusted(provider: Provider, tmp_path: Path) -> list[jwks.Source]:
    other_ca = make_ca(tmp_path, "other")[0]
    return [source_for(provider.url)[0], source_for(provider.url, jwks_ca_file=str(other_ca))[0]]


async def test_a_server_whose_certificate_is_not_trusted_is_refused(
    provider: Provider, untrusted: list[jwks.Source]
) -> None:
    before = metric_value(_exposition(), "guichet_jwks_fetches_total", outcome="tls_error")
    for source in untrusted:  # the system's CAs, then another CA's bundle
        async with source.running():
            assert not source.fetched
    assert provider.fetches == 0  # no request reached the server: the handshake failed
    after = metric_value(_exposition(), "guichet_jwks_fetches_total", outcome="tls_error")
    assert after == before + 2


def _exposition() -> str:
    from prometheus_client import REGISTRY, generate_latest

    return generate_latest(REGISTRY).decode()


@pytest.fixture
def plain_source(provider: Provider, pki: tuple[Path, ssl.SSLContext]) -> jwks.Source:
    return source_for(provider.url, jwks_ca_file=str(pki[0]))[0]


jwk_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
jwk_members = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["OKP", "EC", "RSA", "oct"]) | jwk_values,
        "crv": st.sampled_from(["Ed25519", "P-256", "X25519"]) | jwk_values,
        "x": st.sampled_from(["", "AAAA", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"])
        | jwk_values,
        "y": jwk_values,
        "n": jwk_values,
        "e": st.sampled_from(["AQAB"]) | jwk_values,
        "kid": jwk_values,
        "alg": st.sampled_from(["EdDSA", "ES256", "RS256", "none"]) | jwk_values,
        "use": st.sampled_from(["sig", "enc"]) | jwk_values,
        "d": jwk_values,
    },
)
jwks_bodies = (
    st.binary(max_size=300)
    | st.builds(lambda keys: json.dumps({"keys": keys}).encode(), st.lists(jwk_members, max_size=4))
    | jwk_values.map(lambda v: json.dumps(v).encode())
)


@hsettings(max_examples=200, deadline=None)
@given(body=jwks_bodies)
def test_parse_refuses_any_hostile_body_with_rejected_only(body: bytes) -> None:
    try:
        keys = jwks.parse(body, ("EdDSA", "ES256", "RS256"))
    except jwks.Rejected as exc:
        keys, outcome = {}, exc.outcome
    else:
        outcome = "ok"
        assert keys
    assert outcome in ("ok", "invalid")
    assert all(isinstance(k, str) for k in keys)


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=jwks_bodies)
async def test_the_fetcher_survives_any_body(
    provider: Provider, plain_source: jwks.Source, body: bytes
) -> None:
    provider.mode = body
    source = jwks.Source(plain_source.cfg, lambda keys: None, tls=plain_source.tls)  # fresh
    async with source.running():  # a first fetch; never an exception out of it
        pass
    try:
        jwks.parse(body, source.cfg.algorithms)
    except jwks.Rejected:
        assert not source.fetched
    else:
        assert source.fetched


async def test_cache_control_max_age_sets_the_next_refresh(
    provider: Provider, plain_source: jwks.Source
) -> None:
    provider.cache_control = "public, max-age=45"
    now = [plain_source.clock()]
    plain_source.clock = lambda: now[0]
    async with plain_source.running():
        assert provider.fetches == 1
        provider.fetched.clear()
        now[0] += 44.0  # not due yet (jwks_max_age_s is 600, the answer said 45)
        plain_source.poke()
        for _ in range(5):  # the refresh loop wakes, reads the clock, waits again
            await asyncio.sleep(0)
        assert not plain_source.busy  # a fetch would be in flight from the wake on
        assert provider.fetches == 1
        now[0] += 1.0
        plain_source.poke()
        await asyncio.wait_for(provider.fetched.wait(), 5)
        await plain_source.settled()
        assert provider.fetches == 2


def test_cache_control_max_age_is_bounded() -> None:
    assert jwks.max_age("public, max-age=120", 30, 600) == 120
    assert jwks.max_age("max-age=1", 30, 600) == 30
    assert jwks.max_age("max-age=99999999", 30, 600) == 600
    assert jwks.max_age(None, 30, 600) == 600
    assert jwks.max_age("no-cache", 30, 600) == 600


def test_keys_another_algorithm_uses_are_left_out(first_key: Ed25519PrivateKey) -> None:
    ed = auth.public_jwk(first_key)
    enc = ed | {"kid": "enc", "use": "enc"}
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    es = json.loads(__import__("jwt").algorithms.ECAlgorithm.to_jwk(p256)) | {"kid": "es"}
    keys = jwks.parse(json.dumps({"keys": [ed, enc, es]}).encode(), ("EdDSA",))
    assert list(keys) == [ed["kid"]]
    both = jwks.parse(json.dumps({"keys": [ed, es]}).encode(), ("EdDSA", "ES256"))
    assert list(both) == [ed["kid"], "es"]


@pytest.mark.parametrize(
    ("security", "message"),
    [
        ({"jwks_url": "http://idp.example.com/jwks"}, "loopback"),
        ({"jwks_url": "ftp://127.0.0.1/jwks"}, "not allowed"),
        ({"jwks_url": "/jwks.json"}, "absolute"),
        ({"jwks_ca_file": "/etc/ca.pem"}, "jwks_url"),
        ({"jwks_url": "https://idp/j", "jwks_min_refresh_s": 900.0}, "jwks_max_age_s"),
        ({"jwks_url": "https://idp/j", "jwks_timeout_s": 0}, "jwks_timeout_s"),
    ],
)
def test_bad_jwks_settings_stop_start_up(
    tmp_path: Path, security: dict[str, object], message: str
) -> None:
    empty = tmp_path / "guichet.toml"
    empty.touch()
    with pytest.raises(ConfigError, match=message):
        load_settings(empty, environ={}, overrides={"security": security})


def test_http_is_accepted_for_loopback_hosts_only(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:9/j", "http://localhost/j", "http://[::1]/j", "https://idp/j"):
        cfg = msgspec.convert({"jwks_url": url}, SecurityConfig)
        assert cfg.jwks_url == url


async def test_a_key_set_sent_in_pieces_is_read_whole(
    provider: Provider, plain_source: jwks.Source, first_key: Ed25519PrivateKey
) -> None:
    provider.signing = [first_key, Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()]
    provider.mode = "pieces"
    got: list[dict[str, Any]] = []
    source = jwks.Source(plain_source.cfg, got.append, tls=plain_source.tls)
    async with source.running():
        assert source.fetched
    assert [set(keys) for keys in got] == [{auth.public_jwk(k)["kid"] for k in provider.signing}]


async def test_a_body_past_the_limit_is_refused_however_it_arrives(
    provider: Provider, plain_source: jwks.Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.mode = "pieces"
    monkeypatch.setattr(jwks, "MAX_JWKS_BYTES", len(provider.document()) - 1)
    source = jwks.Source(plain_source.cfg, lambda keys: None, tls=plain_source.tls)
    before = metric_value(_exposition(), "guichet_jwks_fetches_total", outcome="too_large")
    async with source.running():
        assert not source.fetched
    after = metric_value(_exposition(), "guichet_jwks_fetches_total", outcome="too_large")
    assert after == before + 1


@pytest.mark.inprocess("moves the JWKS source's clock and counts one worker's fetches")
@pytest.mark.parametrize("jwks_options", [{"jwks_min_refresh_s": 30.0}])
async def test_only_tokens_a_provider_key_could_verify_refresh(
    client: Client, provider: Provider, first_key: Ed25519PrivateKey
) -> None:
    """HS256 (no JWKS carries its secret) and algorithms not configured never make a fetch,
    whatever kid they name; an allowed algorithm with an unknown kid does."""
    clock = Clock(client)
    clock.advance(30.0)
    claims = auth.claims_for(issuer=ISSUER, audience="guichet", subject="acc-x", ttl_s=600)
    hs256 = jwt.encode(claims, b"k" * 32, algorithm="HS256", headers={"kid": "new-kid"})
    es256 = jwt.encode(
        claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
        headers={"kid": "new-kid"},
    )  # fmt: skip
    assert await me(client, hs256) == 401
    assert await me(client, es256) == 401  # ES256 is not configured (EdDSA only)
    assert provider.fetches == 1  # start-up only
    assert await me(client, token(Ed25519PrivateKey.generate())) == 401
    assert provider.fetches == 2


async def test_an_unknown_kid_is_refused_without_trying_every_key(
    client: Client, provider: Provider, first_key: Ed25519PrivateKey
) -> None:
    """With keys from a URL, a token naming a kid no key has is refused even when one of
    the keys would verify its signature, and a token without kid is not tried against the
    provider's keys: no token costs more than one signature check per configured key."""
    claims = auth.claims_for(issuer=ISSUER, audience="guichet", subject="acc-y", ttl_s=600)
    renamed = jwt.encode(claims, first_key, algorithm="EdDSA", headers={"kid": "not-a-kid"})
    no_kid = jwt.encode(claims, first_key, algorithm="EdDSA")
    assert await me(client, token(first_key)) == 200  # the provider's key, its own kid
    assert await me(client, renamed) == 401
    assert await me(client, no_kid) == 401


def test_kid_less_tokens_still_verify_with_the_configured_keys(
    tmp_path: Path, first_key: Ed25519PrivateKey
) -> None:
    """A static Ed25519 PEM key with keys from a URL too: a token without kid, signed by the
    PEM key, verifies (as it did before jwks_url); the same token signed by a provider's key
    does not (kid-less tokens never try the provider's set)."""
    pem_key = Ed25519PrivateKey.generate()
    pem = tmp_path / "front.pem"
    pem.write_bytes(pem_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    cfg = msgspec.convert(
        {"issuer": ISSUER, "dev_issuer": False, "public_keys": [str(pem)],
         "jwks_url": "http://127.0.0.1:9/jwks.json"},
        SecurityConfig,
    )  # fmt: skip
    verifier = auth.Verifier.from_config(cfg)
    verifier._use_remote({auth.public_jwk(first_key)["kid"]: first_key.public_key()})
    claims = auth.claims_for(issuer=ISSUER, audience="guichet", subject="acc-pem", ttl_s=600)
    assert verifier.account(jwt.encode(claims, pem_key, algorithm="EdDSA")).id == "acc-pem"
    with pytest.raises(auth.Refused):
        verifier.account(jwt.encode(claims, first_key, algorithm="EdDSA"))
    assert verifier.account(token(first_key, "acc-idp")).id == "acc-idp"  # its own kid


def test_provider_keys_without_kid_are_left_out() -> None:
    """No token could name them (kid-less tokens try the configured keys only): a set of
    such keys alone is invalid, so the worker stays unready instead of refusing every token."""
    keys = [Ed25519PrivateKey.generate() for _ in range(2)]
    entries = [auth.public_jwk(k) for k in keys]
    del entries[0]["kid"]
    found = jwks.parse(json.dumps({"keys": entries}).encode(), ("EdDSA",))
    assert list(found) == [entries[1]["kid"]]
    del entries[1]["kid"]
    with pytest.raises(jwks.Rejected) as refused:
        jwks.parse(json.dumps({"keys": entries}).encode(), ("EdDSA",))
    assert refused.value.outcome == "invalid"
