"""Standalone mode: everything on one machine, with embedded defaults."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from controller.domain import TokenScope
from controller.services import credentials, namespaces
from controller.settings import Settings
from controller.setup import run_in_transaction, upgrade_database

GUEST = "guest"
CREDENTIALS_FILE = "standalone-credentials.json"


def _load_or_issue_operator_credentials(settings: Settings) -> dict[str, str]:
    """Admin token and API key for the seed API, issued on first start and kept (mode 0600)
    in the data directory so that later starts can print them again."""
    path = settings.data_dir / CREDENTIALS_FILE
    if path.exists():
        saved: dict[str, str] = json.loads(path.read_text())
        return saved

    async def issue(session: AsyncSession) -> dict[str, str]:
        _, token = await credentials.create_token(
            session, TokenScope.ADMIN, description="standalone admin"
        )
        _, key = await credentials.create_api_key(session, description="standalone")
        return {"token": token, "api_key": key}

    issued = run_in_transaction(settings, issue)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(issued, handle)
    return issued


def prepare(settings: Settings) -> str:
    """Migrate, ensure the guest namespace and operator credentials; return the banner."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings)
    guest = run_in_transaction(settings, lambda s: namespaces.ensure(s, GUEST, GUEST, name=GUEST))
    operator = _load_or_issue_operator_credentials(settings)
    host = settings.public_api_host
    org = f"{host}/runtime/namespaces/{GUEST}/{GUEST}"
    return "\n".join(
        [
            f"Homerun standalone: API host {host}",
            f"  data directory  {Path(settings.data_dir).resolve()}",
            f"  guest namespace {guest.name}, auth {guest.auth}",
            f"  operator token  {operator['token']}",
            f"  API key         {operator['api_key']}",
            "Try:",
            f"  curl -s -H 'Authorization: Bearer {operator['token']}' "
            f"-H 'X-Api-Key: {operator['api_key']}' {org}/actions",
        ]
    )
