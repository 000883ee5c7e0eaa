"""`require-adobe-auth` on Homerun: may a request's bearer token call a namespace's secured
web actions?

`aio app deploy` turns a web action with `require-adobe-auth: true` into a web sequence whose
first component is `/adobeio/shared-validators-v1/headless-v2` (or `.../app-registry`); the
catalog ships those validators (controller.services.catalog), and they ask this module, through
the API, about the request's `Authorization` and `x-gw-ims-org-id` headers. Adobe validates the
token with IMS and Adobe Exchange; Homerun accepts, for a namespace:

- one of its own operator tokens (`homerun token create`) that reaches the namespace: an admin
  token, or an org token of the namespace's organization (the rule of the `/runtime/api/v1`
  surface);
- a JWT of the issuer the operator configures (settings.AdobeAuthSettings): signature by a key
  of its JWKS, `iss`, `aud`, `exp` and `nbf`, and, when configured, an organization claim
  naming the namespace's organization.

Missing headers and unknown, malformed or expired tokens answer 401, a valid token that does
not reach the namespace 403, as Adobe words them (controller.messages). Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet
from sqlalchemy.ext.asyncio import AsyncSession

from controller import messages
from controller.domain import Namespace
from controller.errors import NotAuthenticated
from controller.services import credentials
from controller.settings import AdobeAuthSettings

log = logging.getLogger(__name__)

# A session in a transaction of its own; the JWT path needs none, and a JWKS fetch holds none.
Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]

AUTHORIZATION_HEADER = "authorization"
ORG_HEADER = "x-gw-ims-org-id"
# Public-key algorithms only: a JWKS holds public keys, and an HMAC "signed" with one of them
# would be forgeable by anyone who reads it.
ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
JWKS_CACHE_S = 300
JWKS_FETCH_TIMEOUT_S = 10


@dataclass(frozen=True)
class Verdict:
    """What the validator answers: `status` 200 lets the request through to the secured
    action; any other is the web response's status, with `error` as its body's message."""

    status: int
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == 200


ACCEPTED = Verdict(200)
INVALID_TOKEN = Verdict(401, messages.ADOBE_AUTH_INVALID_TOKEN)
NOT_THIS_ORG = Verdict(403, messages.ADOBE_AUTH_FAILED)
KEYS_UNAVAILABLE = Verdict(503, messages.ADOBE_AUTH_UNAVAILABLE)


class KeysUnavailable(Exception):
    """The issuer's key set cannot be read or fetched: no JWT can be judged right now."""


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


class JwtVerifier:
    """Checks JWTs against one issuer's settings. A JWKS URL is fetched in a thread and cached
    (refetched when a token names a key it does not hold); a JWKS file is reread when it
    changes."""

    def __init__(self, settings: AdobeAuthSettings) -> None:
        assert settings.enabled, "a verifier needs an issuer"
        self.settings = settings
        self._client: PyJWKClient | None = None
        if settings.jwks_is_url:
            self._client = PyJWKClient(
                str(settings.jwks), cache_keys=False, cache_jwk_set=True,
                lifespan=JWKS_CACHE_S, timeout=JWKS_FETCH_TIMEOUT_S,
            )  # fmt: skip
        self._file_stamp: tuple[int, int] | None = None
        self._file_keys: PyJWKSet | None = None

    async def claims(self, token: str) -> dict[str, Any] | None:
        """The token's claims if it is valid for the issuer, else None; KeysUnavailable when
        the key set cannot be had."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        candidates = await self._keys_for(token, header.get("kid"))
        for key in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token, key.key, algorithms=list(ALGORITHMS),
                    audience=self.settings.audience, issuer=self.settings.issuer,
                    leeway=self.settings.leeway_s, options={"require": ["exp", "iss", "aud"]},
                )  # fmt: skip
            except (jwt.PyJWTError, TypeError, ValueError) as exc:
                log.info("a JWT was refused: %s", type(exc).__name__)
                continue
            return claims
        return None

    async def _keys_for(self, token: str, kid: object) -> list[PyJWK]:
        if self._client is not None:
            return await asyncio.to_thread(self._fetched_key, token)
        keys = await asyncio.to_thread(self._read_file)
        return [k for k in keys.keys if kid is None or k.key_id == kid]

    def _fetched_key(self, token: str) -> list[PyJWK]:
        assert self._client is not None
        try:
            return [self._client.get_signing_key_from_jwt(token)]
        except jwt.PyJWKClientConnectionError as exc:
            raise KeysUnavailable(str(exc)) from exc
        except jwt.PyJWTError as exc:  # no key for its `kid`, a malformed header or key set
            log.info("no JWKS key for a JWT: %s", exc)
            return []

    def _read_file(self) -> PyJWKSet:
        path = Path(str(self.settings.jwks))
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if self._file_keys is None or stamp != self._file_stamp:
                self._file_keys = PyJWKSet.from_dict(json.loads(path.read_text()))
                self._file_stamp = stamp
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise KeysUnavailable(f"the JWKS file {path}: {exc}") from exc
        return self._file_keys


async def check(
    transaction: Transaction,
    namespace: Namespace,
    authorization: str | None,
    org_id: str | None,
    verifier: JwtVerifier | None,
) -> Verdict:
    """The verdict on a request to `namespace`'s secured actions that carries these
    `Authorization` and `x-gw-ims-org-id` header values (None when absent)."""
    if not (authorization or "").strip():
        return Verdict(401, messages.adobe_auth_missing(AUTHORIZATION_HEADER))
    if not (org_id or "").strip():
        return Verdict(401, messages.adobe_auth_missing(ORG_HEADER))
    token = bearer_token(authorization or "")
    if token is None:
        return INVALID_TOKEN
    if verifier is not None and looks_like_jwt(token):
        return await _check_jwt(namespace, token, verifier)
    try:
        async with transaction() as session:
            principal = await credentials.principal_of(session, token)
    except NotAuthenticated:
        return INVALID_TOKEN
    return ACCEPTED if principal.reaches(namespace) else NOT_THIS_ORG


async def _check_jwt(namespace: Namespace, token: str, verifier: JwtVerifier) -> Verdict:
    try:
        claims = await verifier.claims(token)
    except KeysUnavailable as exc:
        log.warning("cannot judge a JWT for %s: %s", namespace.name, exc)
        return KEYS_UNAVAILABLE
    if claims is None:
        return INVALID_TOKEN
    claim = verifier.settings.org_claim
    if claim is None:
        return ACCEPTED
    value = claims.get(claim)
    orgs = value if isinstance(value, list) else [value]
    return ACCEPTED if namespace.org_id is not None and namespace.org_id in orgs else NOT_THIS_ORG
