"""The SFU process's admission state: serving, draining or fenced.

Draining is one-way (the pod is going away); fencing is lifted by the next acknowledged
capacity report (one sent after fencing, see lease.py). Either one stops new joins and
makes the pod unready: readiness gates new placements and Service endpoints only, it never
moves the rooms the pod already has.
"""

import asyncio
import logging
import time

from switchboard_sfu.refusals import JoinRefused, RefusalCode

log = logging.getLogger(__name__)


class Lifecycle:
    """Flags every part of the SFU consults before admitting a join."""

    def __init__(self) -> None:
        self.started_at = time.monotonic()
        self.draining = False
        self.drain_started_at: float | None = None
        self.fenced = False
        self.drain_requested = asyncio.Event()
        """Set once when draining starts (SIGTERM or the control plane's `drain`)."""

    @property
    def ready(self) -> bool:
        return not self.draining and not self.fenced

    def start_drain(self, cause: str) -> bool:
        """Enter draining; False if it already was."""
        if self.draining:
            return False
        self.draining = True
        self.drain_started_at = time.monotonic()
        self.drain_requested.set()
        log.info("draining started cause=%s", cause)
        return True

    def fence(self) -> bool:
        """Enter the fenced state; False if already fenced."""
        if self.fenced:
            return False
        self.fenced = True
        log.warning("fenced: the control plane may have placed this pod's rooms elsewhere")
        return True

    def unfence(self) -> bool:
        """Leave the fenced state; False if it was not fenced."""
        if not self.fenced:
            return False
        self.fenced = False
        log.info("unfenced: capacity report acknowledged")
        return True

    def check_admission(self) -> None:
        """Raise JoinRefused if the pod takes no joins right now."""
        if self.draining:
            raise JoinRefused(RefusalCode.DRAINING, "this SFU pod is draining; ask the join API")
        if self.fenced:
            raise JoinRefused(
                RefusalCode.FENCED,
                "this SFU pod has lost contact with the control plane; ask the join API",
            )
