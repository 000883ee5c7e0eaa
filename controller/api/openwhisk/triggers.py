"""`/api/v1/namespaces/{namespace}/triggers`."""

from __future__ import annotations

from controller.api.endpoint import Handler

TABLE: list[tuple[str, str, Handler]] = []
