"""Logging for Homerun's processes, set up once per process by the command that runs."""

from __future__ import annotations

import logging

FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure(level: str = "info") -> None:
    logging.basicConfig(level=level.upper(), format=FORMAT)
