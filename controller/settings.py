"""Typed settings, parsed once at start-up from `HOMERUN_*` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from controller.db.engine import async_url
from controller.db.sealed import KEY_FILE, Keyring, SealingError
from controller.limits import SystemLimits
from invoker.protocol import ImagePatterns

ENV_PREFIX = "HOMERUN_"
NESTED_DELIMITER = "__"


class ConfigError(Exception):
    """Configuration that cannot be used; the message names the offending variable."""


def default_data_dir() -> Path:
    return Path.home() / ".homerun"


class AdobeAuthSettings(BaseModel):
    """The JWTs the `require-adobe-auth` validators accept besides Homerun's own operator
    tokens (controller.services.adobeauth): those of one issuer, `HOMERUN_ADOBE_AUTH__ISSUER`,
    for one audience, `__AUDIENCE`, signed by a key of the JSON Web Key Set at `__JWKS` (a
    file path, or an http(s) URL fetched and cached). All three or none; none accepts no JWT.
    With `__ORG_CLAIM` set, that claim must also name the namespace's organization.
    `__LEEWAY_S` is the clock skew allowed on `exp` and `nbf`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str | None = None
    audience: str | None = None
    jwks: str | None = None
    org_claim: str | None = None
    leeway_s: int = Field(30, ge=0, le=600)

    @property
    def jwks_is_url(self) -> bool:
        return (self.jwks or "").lower().startswith(("http://", "https://"))

    @property
    def enabled(self) -> bool:
        return self.jwks is not None

    @model_validator(mode="after")
    def _complete(self) -> AdobeAuthSettings:
        given = {name: getattr(self, name) for name in ("issuer", "audience", "jwks")}
        if any(given.values()) and not all(given.values()):
            missing = ", ".join(
                variable_name(("adobe_auth", name)) for name, value in given.items() if not value
            )
            raise ValueError(f"a JWT issuer needs its issuer, audience and JWKS: set {missing}")
        if self.org_claim and not self.jwks:
            raise ValueError(
                f"{variable_name(('adobe_auth', 'org_claim'))} applies to JWTs: set the issuer, "
                "audience and JWKS too"
            )
        if self.jwks and not self.jwks_is_url and not Path(self.jwks).is_file():
            raise ValueError(f"the JWKS file {self.jwks} does not exist")
        return self


class StateSettings(BaseModel):
    """The State API (`@adobe/aio-lib-state`, controller.services.statestore): each
    namespace's container holds at most `HOMERUN_STATE__MAX_BYTES`, counted as twice its keys'
    size plus its values' (Adobe's limit for a production workspace is 1 GiB)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_bytes: int = Field(1024**3, ge=1)


class Settings(BaseSettings):
    """Everything the controller needs to start.

    `database_url` defaults to a SQLite file in `data_dir`; `redis_url` is unset until an
    execution engine uses it. `api_host` is the public base URL printed in action URLs.
    `secret_keys` seal secrets at rest (controller.db.sealed); unset, a key file in `data_dir`
    is used, made on first use. `blackbox_images` are the images blackbox actions may use
    (`invoker.protocol.image_allowed`); none by default, as Adobe restricts blackbox.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="ignore",
        frozen=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    redis_url: str | None = None
    key_prefix: str = Field("homerun", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    host: str = "127.0.0.1"
    port: int = Field(3233, ge=0, le=65535)
    api_host: str | None = None
    runtimes_manifest: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    limits: SystemLimits = Field(default_factory=SystemLimits)
    secret_keys: SecretStr | None = None
    blackbox_images: Annotated[ImagePatterns, NoDecode] = ()
    adobe_auth: AdobeAuthSettings = Field(default_factory=AdobeAuthSettings)
    state: StateSettings = Field(default_factory=StateSettings)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        if value:
            async_url(value)  # raises ValueError naming what is wrong
        return value

    @field_validator("secret_keys")
    @classmethod
    def _usable_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                Keyring.parse(value.get_secret_value(), "the keys")
            except SealingError as exc:
                raise ValueError(str(exc)) from None
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'homerun.db').resolve()}"

    def keyring(self) -> Keyring:
        if self.secret_keys is not None:
            return Keyring.parse(self.secret_keys.get_secret_value(), f"{ENV_PREFIX}SECRET_KEYS")
        return Keyring.from_file(self.data_dir / KEY_FILE)

    @property
    def running_redis_file(self) -> Path:
        """Where a running standalone notes its private Redis, so that `homerun admin`
        with the same data directory reaches its controller."""
        return self.data_dir / "standalone-redis-url"

    def running_redis_url(self) -> str | None:
        try:
            return self.running_redis_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    @property
    def public_api_host(self) -> str:
        if self.api_host:
            return self.api_host.rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "::", "127.0.0.1") else self.host
        return f"http://{host}:{self.port}"


def variable_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable behind a settings field location."""
    return ENV_PREFIX + NESTED_DELIMITER.join(str(part).upper() for part in loc)


def _field_of(loc: tuple[int | str, ...], message: str) -> tuple[int | str, ...]:
    """Cross-field checks of the limits name the limits involved in their message: point the
    error at the variable of one of them rather than at the whole group."""
    if loc == ("limits",):
        named = [w for w in message.split() if w in SystemLimits.model_fields]
        for field in named:  # prefer the limit the operator actually set
            if variable_name(("limits", field)) in os.environ:
                return ("limits", field)
        if named:
            return ("limits", named[0])
    return loc


def load_settings(**overrides: object) -> Settings:
    """Parse settings from the process environment; `overrides` win over it.

    Raises ConfigError with one line per bad variable, naming it.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [
            f"{variable_name(_field_of(err['loc'], err['msg']))}: {err['msg']}"
            f" (got {err.get('input')!r})"
            for err in exc.errors()
        ]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
