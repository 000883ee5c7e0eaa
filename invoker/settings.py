"""Typed invoker settings, from `HOMERUN_INVOKER_*` (and `HOMERUN_REDIS_URL`,
`HOMERUN_KEY_PREFIX`, `HOMERUN_BLACKBOX_IMAGES`, which the controller reads too)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from invoker.docker_sandbox import RELAY_IMAGE
from invoker.protocol import BLACKBOX_IMAGES_VARIABLE, ImagePatterns


class InvokerConfigError(Exception):
    """Invalid invoker configuration; the message names the variable."""


def _default_id() -> str:
    return socket.gethostname().split(".")[0] or f"invoker-{os.getpid()}"


class InvokerSettings(BaseSettings):
    """How an invoker runs. `sandbox=auto` picks docker when an engine answers, else process."""

    model_config = SettingsConfigDict(
        env_prefix="HOMERUN_INVOKER_", extra="ignore", frozen=True, populate_by_name=True
    )

    id: str = Field(default_factory=_default_id, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="HOMERUN_REDIS_URL")
    key_prefix: str = Field("homerun", validation_alias="HOMERUN_KEY_PREFIX")
    sandbox: Literal["auto", "docker", "process"] = "auto"
    slots: int = Field(16, ge=1, le=4096)
    memory_mb: int = Field(2048, ge=128)
    idle_timeout_s: float = Field(600.0, gt=0)
    pause_grace_s: float = Field(
        10.0,
        ge=0,
        description="A warm container that has run nothing for this long is paused (docker "
        "pause, or SIGSTOP of its processes) until its next activation, as OpenWhisk's "
        "pause grace; 0 never pauses.",
    )
    heartbeat_s: float = Field(1.0, gt=0)
    alive_ttl_s: float = Field(5.0, gt=0)
    drain_timeout_s: float = Field(60.0, ge=0)
    work_dir: Path = Path("/tmp/homerun-invoker")
    network: bool = False
    api_url: str | None = Field(
        None,
        pattern=r"^https?://[^/\s]+/?$",
        description="Where this invoker reaches the Homerun API for its actions (their only "
        "way out without egress): http(s)://host:port; else the API host the controller "
        "gives each activation.",
    )
    pids_limit: int = Field(256, ge=16)
    blackbox_images: Annotated[ImagePatterns, NoDecode] = Field(
        (),
        validation_alias=BLACKBOX_IMAGES_VARIABLE,
        description="The images blackbox actions may use; none by default.",
    )
    blackbox_writable_root: bool = Field(
        False,
        description="Let blackbox containers write to their root file system without a bound "
        "where the engine cannot bound it (else it is read-only, with a sized /tmp).",
    )
    relay_image: str = Field(
        RELAY_IMAGE,
        description="Homerun's node runtime image, which relays to blackbox containers.",
    )
    prewarm: bool = True


def load_invoker_settings(**overrides: object) -> InvokerSettings:
    try:
        return InvokerSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            info = InvokerSettings.model_fields.get(field)
            alias = info.validation_alias if info else None
            name = alias if isinstance(alias, str) else f"HOMERUN_INVOKER_{field.upper()}"
            lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise InvokerConfigError(
            "invalid invoker configuration:\n  " + "\n  ".join(lines)
        ) from None
