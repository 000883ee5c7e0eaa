"""Secrets at rest: namespace keys, default parameters and log-forwarding settings are sealed
(Fernet: AES-128-CBC with an HMAC-SHA256) with the operator's key before they reach the
database, so that a copy of the database alone reveals no credential.

The key comes from `HOMERUN_SECRET_KEYS` (comma-separated; the first seals, all open, so a key
can be rotated), or else from `secret.key` in the data directory, made on first use. Which keys
sealed a database is noted in it by fingerprint, so that a controller holding another key refuses
to start instead of writing rows its peers cannot read.

The columns are typed `SealedString` and `SealedJSON`; the engine carries the keyring
(`bind_keyring`). A value written before sealing existed reads as it is until
`controller.db.sealing.seal_all` (run by `homerun db upgrade`) seals it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import JSON, String
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeDecorator

SEALED = "hr1:"  # how a sealed value starts, in either column type
KEY_FILE = "secret.key"
_DIALECT_ATTRIBUTE = "homerun_keyring"
_FINGERPRINT_LABEL = b"homerun sealing key"


class SealingError(Exception):
    """A sealed value that cannot be opened, or a keyring that does not fit the database; the
    message says what to set."""


class Keyring:
    """The operator's keys: the first seals, any opens."""

    def __init__(self, keys: Iterable[bytes], source: str) -> None:
        self.keys = tuple(keys)
        if not self.keys:
            raise SealingError(f"{source}: no key")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in self.keys])
            self._primary = Fernet(self.keys[0])
        except ValueError:
            raise SealingError(
                f"{source}: each key must be 32 url-safe base64-encoded bytes"
                " (make one with `homerun admin secret-key`)"
            ) from None
        self.source = source

    @classmethod
    def parse(cls, text: str, source: str) -> Keyring:
        return cls((part.strip().encode() for part in text.split(",") if part.strip()), source)

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        """The keys in `path`, which is made (0600, one new key) if it does not exist yet."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(Fernet.generate_key() + b"\n")
        return cls.parse(path.read_text(), str(path))

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    @staticmethod
    def fingerprint(key: bytes) -> str:
        return hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:32]

    @property
    def fingerprints(self) -> list[str]:
        return [self.fingerprint(key) for key in self.keys]

    def seal(self, plain: str) -> str:
        return SEALED + self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed[len(SEALED) :].encode()).decode()
        except InvalidToken:
            raise SealingError(
                f"a sealed value does not open with the keys of {self.source}:"
                " set HOMERUN_SECRET_KEYS to include the key that sealed this database"
            ) from None

    def sealed_by_primary(self, stored: object) -> bool:
        if not (isinstance(stored, str) and stored.startswith(SEALED)):
            return False
        try:
            self._primary.decrypt(stored[len(SEALED) :].encode())
        except InvalidToken:
            return False
        return True


def bind_keyring(engine: AsyncEngine, keyring: Keyring | None) -> None:
    """Let the sealed columns of `engine` use `keyring` (None: they refuse to)."""
    setattr(engine.sync_engine.dialect, _DIALECT_ATTRIBUTE, keyring)


def _keyring(dialect: Dialect) -> Keyring:
    keyring = getattr(dialect, _DIALECT_ATTRIBUTE, None)
    if keyring is None:
        raise SealingError("this database engine was made without the operator's keys")
    assert isinstance(keyring, Keyring)
    return keyring


class SealedString(TypeDecorator[str]):
    """A string stored sealed."""

    impl = String(512)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else _keyring(dialect).seal(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or not value.startswith(SEALED):
            return value
        return _keyring(dialect).open(value)


class SealedJSON(TypeDecorator[Any]):
    """A JSON value stored sealed, as a JSON string."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else _keyring(dialect).seal(json.dumps(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if not (isinstance(value, str) and value.startswith(SEALED)):
            return value
        return json.loads(_keyring(dialect).open(value))
