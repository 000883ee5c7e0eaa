"""System limits and their defaults: the one place their values live.

Defaults follow Adobe I/O Runtime (see shared/spec/adobe-runtime.md §1.1). Operators change
any of them with `HOMERUN_LIMITS__<NAME>` (for example `HOMERUN_LIMITS__MEMORY_MAX=2048`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

MB = 1024 * 1024


class SystemLimits(BaseModel):
    """Ranges and defaults for action limits, sizes, throttles and list pages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_min: int = Field(100, ge=1)
    timeout_max: int = Field(10_800_000, ge=1)
    timeout_default: int = Field(60_000, ge=1)
    memory_min: int = Field(128, ge=1)
    memory_max: int = Field(4096, ge=1)
    memory_default: int = Field(256, ge=1)
    logs_min: int = Field(0, ge=0)
    logs_max: int = Field(10, ge=0)
    logs_default: int = Field(10, ge=0)
    # Activations one container runs at once, for kinds whose proxy can (nodejs; the others
    # run one at a time whatever the default). Adobe's range and default: 1-500, 200.
    concurrency_min: int = Field(1, ge=1)
    concurrency_max: int = Field(500, ge=1)
    concurrency_default: int = Field(200, ge=1)

    code_max_bytes: int = Field(22 * MB, ge=1)
    parameters_max_bytes: int = Field(1 * MB, ge=1)
    payload_max_bytes: int = Field(1 * MB, ge=1)
    result_max_bytes: int = Field(1 * MB, ge=1)

    invocations_per_minute: int = Field(6000, ge=1)
    concurrent_invocations: int = Field(100, ge=1)
    fires_per_minute: int = Field(600, ge=1)
    sequence_max_length: int = Field(50, ge=1)

    # Pages of the OpenWhisk API's lists, as OpenWhisk has them (`limit=0` is the maximum).
    list_default: int = Field(30, ge=1)
    list_max: int = Field(200, ge=1)

    blocking_wait_ms: int = Field(60_000, ge=1)
    activation_retention_days: int = Field(7, ge=1)

    @model_validator(mode="after")
    def _defaults_within_ranges(self) -> SystemLimits:
        for name in ("timeout", "memory", "logs", "concurrency"):
            low = getattr(self, f"{name}_min")
            high = getattr(self, f"{name}_max")
            default = getattr(self, f"{name}_default")
            if not low <= default <= high:
                raise ValueError(
                    f"{name}_default {default} must lie within {name}_min {low} "
                    f"and {name}_max {high}"
                )
        if not 1 <= self.list_default <= self.list_max:
            raise ValueError(
                f"list_default {self.list_default} must lie within 1 and list_max {self.list_max}"
            )
        return self

    @property
    def request_body_max_bytes(self) -> int:
        """Largest request body accepted: code at its limit, base64-encoded, plus room for
        parameters and annotations (deploy tools upload large zips as base64 strings)."""
        return (self.code_max_bytes * 4) // 3 + 2 * self.parameters_max_bytes + MB
