"""A JWT issuer for tests: an RSA key pair, its JSON Web Key Set, and tokens it signs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://ims.example.test"
AUDIENCE = "homerun-apps"
# What Adobe's validators answer (README.md "require-adobe-auth").
MISSING_AUTHORIZATION = "cannot authorize request, reason: missing authorization header"
MISSING_ORG = "cannot authorize request, reason: missing x-gw-ims-org-id header"
INVALID_TOKEN = "cannot authorize request, reason: invalid token"
FAILED = (
    "request is invalid, reason: failed authorization. Please verify your token and "
    "organization id."
)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Issuer:
    issuer: str = ISSUER
    audience: str = AUDIENCE
    kid: str = "key-1"
    key: rsa.RSAPrivateKey = field(default_factory=_new_key)

    def jwks(self) -> dict[str, Any]:
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def token(
        self, lifetime_s: int = 300, headers: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        """A signed token with `iss`, `aud`, `iat`, `exp` (overridden or, as None, left out
        by `claims`)."""
        now = int(time.time())
        payload = {
            "iss": self.issuer, "aud": self.audience, "sub": "user@example.test",
            "iat": now, "exp": now + lifetime_s, **claims,
        }  # fmt: skip
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(
            payload, self.key, algorithm="RS256", headers={"kid": self.kid, **(headers or {})}
        )
