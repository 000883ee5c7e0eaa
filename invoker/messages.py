"""Failure messages as OpenWhisk words them (shared/spec/openwhisk.md §5.2)."""

from __future__ import annotations

INIT_EXITED = "The action did not initialize and exited unexpectedly."
RUN_EXITED = "The action did not produce a valid response and exited unexpectedly."
OOM = "The action exhausted its memory and was aborted."
PROVISION_FAILED = "Failed to provision resources to run the action."
ABANDONED = RUN_EXITED
UNDECODABLE = "The invocation could not be decoded by the invoker; it did not run."
UNENCODABLE = "The action's result could not be recorded."


def timeout(limit_ms: int, *, during_init: bool = False) -> str:
    suffix = " during initialization" if during_init else ""
    return f"The action exceeded its time limits of {limit_ms} milliseconds{suffix}."


def init_failed(body: str) -> str:
    return (
        f"The action failed during initialization: {body}"
        if body
        else ("The action failed during initialization.")
    )


def invalid_response(body: str) -> str:
    return f"The action did not produce a valid JSON or JSON Array response: {body}"


def unfit_response(problem: str) -> str:
    return f"The action produced a response that cannot be recorded: {problem}."


def result_too_large(size: int, limit: int, prefix: str) -> str:
    return (
        f"The action produced a response that exceeded the allowed length: {size} > {limit} "
        f"bytes. The truncated response was: {prefix}"
    )


def image_missing(image: str) -> str:
    return f"Failed to pull container image '{image}'."


def image_refused(image: str, variable: str) -> str:
    return (
        f"The image '{image}' is not one blackbox actions may use on this invoker: the "
        f"operator allows images in {variable}."
    )
