"""`/api/v1/namespaces/{namespace}/rules`."""

from __future__ import annotations

from controller.api.endpoint import Handler

TABLE: list[tuple[str, str, Handler]] = []
