"""Structured log lines (`time level logger message key=value ...`) for the agent process."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The HTTP client logs every request at DEBUG; keep the agent's own lines readable.
    logging.getLogger("kubernetes_asyncio").setLevel(logging.WARNING)
