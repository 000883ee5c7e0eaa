"""Activation records: written once per activation id from invoker results; read back."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.engine import dialect_insert
from controller.db.models import ActivationRow, NamespaceRow
from invoker.protocol import Outcome, Result

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Activation:
    """An activation as OpenWhisk reports it (shared/spec/openwhisk.md §3.5)."""

    activation_id: str
    namespace: str
    name: str
    subject: str
    version: str
    start: int
    end: int
    duration: int
    status_code: int
    response: dict[str, Any]
    logs: list[str]
    annotations: list[dict[str, Any]]
    cause: str | None = None

    @property
    def outcome(self) -> Outcome:
        return list(Outcome)[self.status_code]

    @property
    def annotation_map(self) -> dict[str, Any]:
        return {a["key"]: a["value"] for a in self.annotations}


def response_of(result: Result) -> dict[str, Any]:
    size = len(json.dumps(result.result, separators=(",", ":"), ensure_ascii=False))
    return {
        "status": result.outcome.value,
        "statusCode": result.outcome.status_code,
        "success": result.outcome is Outcome.SUCCESS,
        "result": result.result,
        "size": size,
    }


def annotations_of(result: Result) -> list[dict[str, Any]]:
    limits = result.action.limits
    annotations: list[dict[str, Any]] = [
        {"key": "path", "value": result.action.path},
        {"key": "waitTime", "value": result.wait_time},
        {"key": "kind", "value": result.action.kind},
        {"key": "timeout", "value": result.timed_out},
        {
            "key": "limits",
            "value": {
                "timeout": limits.timeout,
                "memory": limits.memory,
                "logs": limits.logs,
                "concurrency": limits.concurrency,
            },
        },
    ]
    if result.init_time is not None:
        annotations.append({"key": "initTime", "value": result.init_time})
    if result.binding:
        annotations.append({"key": "binding", "value": result.binding})
    if result.cause:
        annotations.append({"key": "causedBy", "value": "sequence"})
    return annotations


def from_result(result: Result) -> Activation:
    """The activation record a result becomes."""
    return Activation(
        activation_id=result.activation_id,
        namespace=result.namespace,
        name=result.action.name,
        subject=result.subject,
        version=result.action.version,
        start=result.start,
        end=result.end,
        duration=max(0, result.end - result.start),
        status_code=result.outcome.status_code,
        response=response_of(result),
        logs=list(result.logs),
        annotations=annotations_of(result),
        cause=result.cause,
    )


def _view(row: ActivationRow, namespace: str) -> Activation:
    return Activation(
        activation_id=row.activation_id,
        namespace=namespace,
        name=row.name,
        subject=row.subject,
        version=row.version,
        start=row.start,
        end=row.end or 0,
        duration=row.duration or 0,
        status_code=row.status_code,
        response=row.response,
        logs=list(row.logs or []),
        annotations=list(row.annotations or []),
        cause=row.cause,
    )


async def record_all(session: AsyncSession, results: list[Result]) -> int:
    """Store the activations of `results` in one statement, each once per id (a redelivered
    result is recorded once); those of namespaces that are gone, and successful blocking ones
    of namespaces that drop them, are left out. How many rows were offered."""
    names = {result.namespace for result in results}
    found = await session.execute(
        select(NamespaceRow.name, NamespaceRow.id, NamespaceRow.limits).where(
            NamespaceRow.name.in_(names)
        )
    )
    namespaces = {name: (namespace_id, options or {}) for name, namespace_id, options in found}
    rows = []
    for result in results:
        if result.namespace not in namespaces:
            log.warning(
                "dropping activation %s: namespace %s is gone",
                result.activation_id, result.namespace,
            )  # fmt: skip
            continue
        namespace_id, options = namespaces[result.namespace]
        blocking_success = result.reply_to is not None and result.outcome is Outcome.SUCCESS
        if blocking_success and options.get(DROP_BLOCKING_SUCCESSES):
            continue
        rows.append(_values(from_result(result), namespace_id, result.action.path))
    if rows:
        # One statement, compiled once and cached, executed for every row.
        await session.execute(dialect_insert(session)(ActivationRow).on_conflict_do_nothing(), rows)
    return len(rows)


DROP_BLOCKING_SUCCESSES = "dropBlockingSuccesses"
"""Namespace option: like Adobe I/O Runtime, do not keep successful blocking activations
(their caller has the result); everything else is still recorded."""


def _values(activation: Activation, namespace_id: int, path: str) -> dict[str, Any]:
    return {
        "activation_id": activation.activation_id,
        "namespace_id": namespace_id,
        "name": activation.name,
        "path": path,
        "subject": activation.subject,
        "version": activation.version,
        "publish": False,
        "start": activation.start,
        "end": activation.end,
        "duration": activation.duration,
        "status_code": activation.status_code,
        "response": activation.response,
        "logs": activation.logs,
        "annotations": activation.annotations,
        "cause": activation.cause,
    }


async def store(session: AsyncSession, activation: Activation, path: str) -> Activation | None:
    """Store one activation once per id; None when its namespace no longer exists."""
    namespace_id = await session.scalar(
        select(NamespaceRow.id).where(NamespaceRow.name == activation.namespace)
    )
    if namespace_id is None:
        log.warning(
            "dropping activation %s: namespace %s is gone",
            activation.activation_id, activation.namespace,
        )  # fmt: skip
        return None
    try:
        async with session.begin_nested():
            session.add(ActivationRow(**_values(activation, namespace_id, path)))
    except IntegrityError:
        return await get(session, activation.activation_id)
    return activation


async def get(session: AsyncSession, activation_id: str) -> Activation | None:
    found = (
        await session.execute(
            select(ActivationRow, NamespaceRow.name)
            .join(NamespaceRow, NamespaceRow.id == ActivationRow.namespace_id)
            .where(ActivationRow.activation_id == activation_id)
        )
    ).first()
    if found is None:
        return None
    row, namespace = found
    return _view(row, namespace)


@dataclass(frozen=True)
class ActivationFilter:
    """`name` is `action` or `package/action`; `since`/`upto` bound `start` (inclusive)."""

    name: str | None = None
    since: int | None = None
    upto: int | None = None


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(namespace_id: int, f: ActivationFilter) -> Any:
    query = select(ActivationRow).where(ActivationRow.namespace_id == namespace_id)
    if f.name:
        # Exactly `ns/name` or `ns/package/name` (the path's namespace is the action's owner).
        package, _, simple = f.name.rpartition("/")
        query = query.where(ActivationRow.name == simple)
        if package:
            pattern = f"%/{_like_literal(package)}/{_like_literal(simple)}"
            query = query.where(ActivationRow.path.like(pattern, escape="\\"))
            query = query.where(~ActivationRow.path.like("%/%/%/%"))
        else:
            query = query.where(~ActivationRow.path.like("%/%/%"))
    if f.since is not None:
        query = query.where(ActivationRow.start >= f.since)
    if f.upto is not None:
        query = query.where(ActivationRow.start <= f.upto)
    return query


async def list_activations(
    session: AsyncSession, namespace_id: int, namespace: str, f: ActivationFilter,
    skip: int, limit: int,
) -> list[Activation]:  # fmt: skip
    """Newest first."""
    query = _filtered(namespace_id, f).order_by(ActivationRow.start.desc()).offset(skip)
    rows = await session.scalars(query.limit(limit))
    return [_view(row, namespace) for row in rows]


async def count_activations(session: AsyncSession, namespace_id: int, f: ActivationFilter) -> int:
    subquery = _filtered(namespace_id, f).subquery()
    return int(await session.scalar(select(func.count()).select_from(subquery)) or 0)


async def record_trigger(
    session: AsyncSession, *, namespace_id: int, namespace: str, activation_id: str,
    trigger: str, version: str, start: int, result: dict[str, Any], logs: list[str],
) -> Activation:  # fmt: skip
    """Store the activation of a fired trigger (shared/spec/openwhisk.md §10.1): it never
    ends (`end` and `duration` are absent), has no annotations, and logs one JSON line per
    rule it activated."""
    response = {
        "status": Outcome.SUCCESS.value,
        "statusCode": Outcome.SUCCESS.status_code,
        "success": True,
        "result": result,
        "size": len(json.dumps(result, separators=(",", ":"))),
    }
    row = ActivationRow(
        activation_id=activation_id,
        namespace_id=namespace_id,
        name=trigger,
        path=f"{namespace}/{trigger}",
        subject=namespace,
        version=version,
        publish=False,
        start=start,
        end=None,
        duration=None,
        status_code=Outcome.SUCCESS.status_code,
        response=response,
        logs=logs,
        annotations=[],
        cause=None,
    )
    session.add(row)
    await session.flush()
    return _view(row, namespace)


async def purge(session: AsyncSession, before_ms: int) -> int:
    """Delete activations that started before `before_ms`; returns how many."""
    result = await session.execute(delete(ActivationRow).where(ActivationRow.start < before_ms))
    return int(getattr(result, "rowcount", 0) or 0)
