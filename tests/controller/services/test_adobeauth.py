"""The `require-adobe-auth` rules for JWTs and headers (controller.services.adobeauth); the
rules for Homerun's own tokens, which need the database, are in
tests/controller/api/openwhisk/test_adobeauth.py."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from controller import messages
from controller.domain import Namespace
from controller.services import adobeauth
from controller.services.adobeauth import JwtVerifier, Verdict
from controller.settings import AdobeAuthSettings
from tests.controller.services.jwtissuer import AUDIENCE, ISSUER, Issuer

ACME = Namespace(id=1, name="acme-int1", org_id="acme", int_id="int1", uuid="u", key="k")
ORG_HEADER = "ACME@AdobeOrg"


@contextlib.asynccontextmanager
async def no_database() -> AsyncIterator[Any]:
    raise AssertionError("a JWT is judged without the database")
    yield  # pragma: no cover


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def jwks_file(issuer: Issuer, tmp_path: Path) -> Path:
    return issuer.write_jwks(tmp_path / "jwks.json")


def verifier_for(jwks: str, **extra: Any) -> JwtVerifier:
    return JwtVerifier(AdobeAuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, **extra))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hmac_with_public_key(issuer: Issuer) -> str:
    """The algorithm-confusion forgery: HS256 keyed with the issuer's public key (PEM)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}).encode())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def verdict(verifier: JwtVerifier | None, token: str | None, org: str | None = ORG_HEADER,
                  namespace: Namespace = ACME) -> Verdict:  # fmt: skip
    authorization = None if token is None else f"Bearer {token}"
    return await adobeauth.check(no_database, namespace, authorization, org, verifier)


async def test_a_token_of_the_issuer_is_accepted(issuer: Issuer, jwks_file: Path) -> None:
    verifier = verifier_for(str(jwks_file))
    assert (await verdict(verifier, issuer.token())).accepted
    claims = await verifier.claims(issuer.token(sub="someone"))
    assert claims is not None and claims["sub"] == "someone"


@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("expired", lambda i: i.token(lifetime_s=-120)),
        ("not yet valid", lambda i: i.token(nbf=int(time.time()) + 600)),
        ("no exp", lambda i: i.token(exp=None)),
        ("other audience", lambda i: i.token(aud="someone-else")),
        ("no audience", lambda i: i.token(aud=None)),
        ("other issuer", lambda i: i.token(iss="https://evil.example.test")),
        ("unknown kid", lambda i: i.token(headers={"kid": "key-2"})),
        ("other key", lambda i: Issuer(kid=i.kid).token()),
        ("tampered", lambda i: i.token()[:-4] + "AAAA"),
        ("HS256 keyed with the public key", hmac_with_public_key),
        ("alg none", lambda i: jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}, "",
            algorithm="none", headers={"kid": i.kid})),
        ("three dots of garbage", lambda i: "abc.def.ghi"),
    ],
)  # fmt: skip
async def test_a_token_that_fails_a_check_is_refused(
    issuer: Issuer, jwks_file: Path, case: str, make: Any
) -> None:
    result = await verdict(verifier_for(str(jwks_file)), make(issuer))
    assert result == Verdict(401, messages.ADOBE_AUTH_INVALID_TOKEN), case


async def test_the_leeway_allows_a_little_clock_skew(issuer: Issuer, jwks_file: Path) -> None:
    just_expired = issuer.token(lifetime_s=-5)
    assert (await verdict(verifier_for(str(jwks_file)), just_expired)).accepted
    assert not (await verdict(verifier_for(str(jwks_file), leeway_s=0), just_expired)).accepted


async def test_a_token_without_kid_uses_the_key_set(issuer: Issuer, jwks_file: Path) -> None:
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}, issuer.key,
        algorithm="RS256",
    )  # fmt: skip
    assert (await verdict(verifier_for(str(jwks_file)), token)).accepted


@pytest.mark.parametrize(
    ("claim", "accepted"),
    [("acme", True), (["other", "acme"], True), ("other", False), (None, False)],
)
async def test_the_org_claim_must_name_the_namespace_org(
    issuer: Issuer, jwks_file: Path, claim: Any, accepted: bool
) -> None:
    verifier = verifier_for(str(jwks_file), org_claim="org")
    result = await verdict(verifier, issuer.token(org=claim))
    assert result == (adobeauth.ACCEPTED if accepted else Verdict(403, messages.ADOBE_AUTH_FAILED))


@pytest.mark.parametrize(
    ("authorization", "org", "message"),
    [
        (None, ORG_HEADER, "cannot authorize request, reason: missing authorization header"),
        ("  ", ORG_HEADER, "cannot authorize request, reason: missing authorization header"),
        ("Bearer x", None, "cannot authorize request, reason: missing x-gw-ims-org-id header"),
        ("Bearer x", "", "cannot authorize request, reason: missing x-gw-ims-org-id header"),
        (None, None, "cannot authorize request, reason: missing authorization header"),
        ("Basic dTpr", ORG_HEADER, messages.ADOBE_AUTH_INVALID_TOKEN),
        ("Bearer", ORG_HEADER, messages.ADOBE_AUTH_INVALID_TOKEN),
        ("token-without-scheme", ORG_HEADER, messages.ADOBE_AUTH_INVALID_TOKEN),
    ],
)
async def test_headers_are_required(
    authorization: str | None, org: str | None, message: str
) -> None:
    result = await adobeauth.check(no_database, ACME, authorization, org, None)
    assert result == Verdict(401, message)


async def test_a_jwt_is_refused_when_no_issuer_is_configured(
    issuer: Issuer, empty_database: Any
) -> None:
    """Without an issuer a JWT is looked up as an operator token, and matches none."""
    result = await adobeauth.check(
        empty_database, ACME, f"Bearer {issuer.token()}", ORG_HEADER, None
    )
    assert result == Verdict(401, messages.ADOBE_AUTH_INVALID_TOKEN)


@pytest.fixture
def empty_database() -> Any:
    """A transaction whose session finds no operator token."""

    class Session:
        async def scalar(self, query: Any) -> None:
            return None

    @contextlib.asynccontextmanager
    async def transaction() -> AsyncIterator[Session]:
        yield Session()

    return transaction


async def test_a_changed_jwks_file_is_reread(issuer: Issuer, jwks_file: Path) -> None:
    verifier = verifier_for(str(jwks_file))
    assert (await verdict(verifier, issuer.token())).accepted
    rotated = Issuer(kid="key-2")
    rotated.write_jwks(jwks_file)
    assert (await verdict(verifier, rotated.token())).accepted
    assert not (await verdict(verifier, issuer.token())).accepted


async def test_an_unreadable_jwks_is_a_503(issuer: Issuer, jwks_file: Path) -> None:
    verifier = verifier_for(str(jwks_file))
    jwks_file.write_text("{not json")
    assert await verdict(verifier, issuer.token()) == adobeauth.KEYS_UNAVAILABLE
    jwks_file.unlink()
    assert await verdict(verifier, issuer.token()) == adobeauth.KEYS_UNAVAILABLE


@contextlib.contextmanager
def serving(body: bytes) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on a loopback port answering `body` to every GET; yields its URL and
    the paths it was asked for."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks", asked
    finally:
        server.shutdown()
        server.server_close()


async def test_a_jwks_url_is_fetched_once_and_cached(issuer: Issuer) -> None:
    with serving(json.dumps(issuer.jwks()).encode()) as (url, asked):
        verifier = verifier_for(url)
        for _ in range(3):
            assert (await verdict(verifier, issuer.token())).accepted
        assert asked == ["/jwks"]
        assert not (await verdict(verifier, Issuer(kid=issuer.kid).token())).accepted


async def test_an_unreachable_jwks_url_is_a_503(issuer: Issuer) -> None:
    with serving(b"") as (url, _):
        pass  # the port is closed again
    result = await verdict(verifier_for(url), issuer.token())
    assert result == adobeauth.KEYS_UNAVAILABLE
