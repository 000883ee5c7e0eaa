"""Logging for Homerun's processes, set up once per process by the command that runs."""

from __future__ import annotations

import logging

FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure(level: str = "info") -> None:
    logging.basicConfig(level=level.upper(), format=FORMAT)
    # One line per request to an action proxy is noise at info level.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
