"""The database's sealing state: which keys sealed it (`admit`), and bringing every sealed
column under the current key (`seal_all`)."""

from __future__ import annotations

import json

from sqlalchemy import inspect, select, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from controller.clock import now_ms
from controller.db.models import Base, SealingKeyRow
from controller.db.sealed import SEALED, Keyring, SealedJSON, SealedString, SealingError


def _sealed_columns() -> list[tuple[type[Base], str]]:
    return [
        (mapper.class_, column.key)
        for mapper in Base.registry.mappers
        for column in mapper.columns
        if isinstance(column.type, SealedString | SealedJSON)
    ]


async def admit(session: AsyncSession, keyring: Keyring) -> None:
    """Check that `keyring` opens what this database holds, and note its sealing key there.

    The first keyring to use a database is noted; later ones must hold one of the noted keys
    (then their sealing key is noted too, which is how a key is rotated)."""
    noted = set(await session.scalars(select(SealingKeyRow.fingerprint)))
    ours = keyring.fingerprints
    if noted and noted.isdisjoint(ours):
        raise SealingError(
            f"this database was sealed with other keys than those of {keyring.source}:"
            " give every controller of one database the same HOMERUN_SECRET_KEYS"
        )
    if ours[0] not in noted:
        try:
            async with session.begin_nested():
                session.add(SealingKeyRow(fingerprint=ours[0], created=now_ms()))
        except IntegrityError:
            pass  # another controller with the same key noted it first


async def seal_all(session: AsyncSession, keyring: Keyring) -> int:
    """Seal with the primary key every sealed column's value that is stored plain or under an
    older key; returns how many values were rewritten."""
    rewritten = 0
    for model, name in _sealed_columns():
        column = getattr(model, name)
        (pk,) = inspect(model).primary_key
        raw_type = column.type.impl_instance
        rows = await session.execute(select(pk, type_coerce(column, raw_type)))
        for key, stored in rows:
            if stored is None or keyring.sealed_by_primary(stored):
                continue
            plain = stored
            if isinstance(stored, str) and stored.startswith(SEALED):
                plain = keyring.open(stored)
                if isinstance(column.type, SealedJSON):
                    plain = json.loads(plain)
            await session.execute(
                update(model).where(pk == key).values({name: plain}),
                execution_options={"synchronize_session": False},
            )
            rewritten += 1
    return rewritten
