"""The runtimes manifest: which kinds exist, their images, defaults and stem cells.

The manifest is a JSON file shaped like the `runtimes` object OpenWhisk reports on `GET /`.
The packaged `controller/runtimes.json` is used unless `HOMERUN_RUNTIMES_MANIFEST` names another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller import messages
from controller.errors import InvalidInput

SEQUENCE_KIND = "sequence"
BLACKBOX_KIND = "blackbox"
DEFAULT_MANIFEST = Path(__file__).with_name("runtimes.json")


class StemCell(BaseModel):
    """How many prewarmed containers of one memory size to keep for a kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    count: int = Field(ge=0)
    memory: int = Field(ge=1)


class Runtime(BaseModel):
    """One kind: `family:version`, its image and whether it is the family's default."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    kind: str = Field(pattern=r"^[a-z][a-z0-9]*:[A-Za-z0-9._-]+$")
    image: str
    default: bool = False
    deprecated: bool = False
    stem_cells: tuple[StemCell, ...] = Field(default=(), alias="stemCells")
    # Its proxy runs several activations at once in one container (limits.concurrency > 1).
    concurrent: bool = False


class _ManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    runtimes: dict[str, list[Runtime]]


@dataclass(frozen=True)
class Manifest:
    """The loaded manifest, with kind lookups."""

    families: dict[str, tuple[Runtime, ...]]
    _by_kind: dict[str, Runtime] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_kind = {rt.kind: rt for runtimes in self.families.values() for rt in runtimes}
        object.__setattr__(self, "_by_kind", by_kind)

    @property
    def default_kind(self) -> str:
        """The default kind of the `nodejs` family, else of the first family."""
        order = ["nodejs", *sorted(f for f in self.families if f != "nodejs")]
        for family in order:
            for rt in self.families.get(family, ()):
                if rt.default:
                    return rt.kind
        raise ValueError("the runtimes manifest has no default kind")

    def valid_kinds(self) -> list[str]:
        return sorted([*self._by_kind, BLACKBOX_KIND, SEQUENCE_KIND])

    def get(self, kind: str) -> Runtime | None:
        return self._by_kind.get(kind)

    def runs_concurrently(self, kind: str) -> bool:
        """Whether `kind` may have limits.concurrency above 1 (a blackbox image may: it is
        told through `__OW_ALLOW_CONCURRENT`, as OpenWhisk's images are)."""
        if kind == BLACKBOX_KIND:
            return True
        runtime = self.get(kind)
        return runtime is not None and runtime.concurrent

    def resolve(self, kind: str) -> str:
        """Map a requested kind to a concrete one (`nodejs:default` -> `nodejs:18`).

        Raises InvalidInput for unknown or deprecated kinds.
        """
        if kind in (SEQUENCE_KIND, BLACKBOX_KIND):
            return kind
        family, _, version = kind.partition(":")
        if version == "default":
            for rt in self.families.get(family, ()):
                if rt.default:
                    return rt.kind
        runtime = self._by_kind.get(kind)
        if runtime is None:
            raise InvalidInput(messages.unsupported_kind(kind, self.valid_kinds()))
        if runtime.deprecated:
            raise InvalidInput(messages.deprecated_kind(kind))
        return runtime.kind


def load_manifest(path: Path | None = None) -> Manifest:
    """Read and validate a manifest file; raises ValueError with the file's name on error."""
    source = path or DEFAULT_MANIFEST
    try:
        data = _ManifestFile.model_validate(json.loads(source.read_text()))
        manifest = Manifest({family: tuple(rts) for family, rts in data.runtimes.items()})
        _ = manifest.default_kind  # fail at load when no default exists
    except (OSError, ValueError, ValidationError) as exc:
        raise ValueError(f"runtimes manifest {source}: {exc}") from exc
    return manifest
