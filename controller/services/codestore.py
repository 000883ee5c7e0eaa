"""Action code stored once per content digest, loaded only when a single action is read."""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.engine import dialect_insert
from controller.db.models import ActionRow, CodeBlobRow


def code_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


async def put(session: AsyncSession, code: str) -> str:
    """Store `code` unless its digest is stored already; return the digest."""
    data = code.encode()
    digest = hashlib.sha256(data).hexdigest()
    values = {"digest": digest, "size": len(data), "data": data}
    insert = dialect_insert(session)(CodeBlobRow).values(**values)
    await session.execute(insert.on_conflict_do_nothing())
    return digest


async def get(session: AsyncSession, digest: str) -> str | None:
    data = await session.scalar(select(CodeBlobRow.data).where(CodeBlobRow.digest == digest))
    return None if data is None else data.decode()


async def collect_garbage(session: AsyncSession, digests: list[str] | None = None) -> None:
    """Delete blobs no action refers to (only those in `digests`, when given)."""
    referenced = exists().where(ActionRow.code_digest == CodeBlobRow.digest)
    statement = delete(CodeBlobRow).where(~referenced)
    if digests is not None:
        if not digests:
            return
        statement = statement.where(CodeBlobRow.digest.in_(digests))
    await session.execute(statement)
