"""Which simulcast layers a publisher is asked to send: those its subscribers use.

Pure bookkeeping over plain data with the clock passed in. A layer nobody uses is paused
after a delay (a passing switch does not pause it); the lowest layer is always kept, so a
new subscriber starts at once. A paused layer still counts as available to subscribers: one
that chooses it has it resumed, and it stays available while the publisher restarts it,
unless it does not restart in time, then it is given up for a while.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PausingSettings:
    pause_delay_s: float = 3.0
    """A layer unused this long is paused."""
    resume_wait_s: float = 5.0
    """How long a resumed layer counts as available before it is sent again."""
    retry_s: float = 30.0
    """A layer that did not resume in time is not offered to subscribers for this long."""


class LayerPausing:
    """What the publisher of one simulcast track is asked to send."""

    def __init__(self, rids: Sequence[str], settings: PausingSettings) -> None:
        self._rids = tuple(rids)
        self._settings = settings
        self.needed: tuple[str, ...] | None = None
        """The layers last asked for (None: nothing asked yet)."""
        self._unused_since: dict[str, float] = {}
        self._paused: set[str] = set()
        self._resumed_at: dict[str, float] = {}
        self._given_up_until: dict[str, float] = {}

    def available(self, rid: str, now: float, *, active: bool) -> bool:
        """Whether subscribers may choose layer `rid` (`active`: it is being received)."""
        if active:
            return True
        if rid in self._resumed_at:
            return now - self._resumed_at[rid] < self._settings.resume_wait_s
        return rid in self._paused and self._given_up_until.get(rid, now) <= now

    def update(
        self, now: float, *, used: Collection[str], lowest: str, active: Collection[str]
    ) -> tuple[tuple[str, ...] | None, bool]:
        """(The layers to ask for when that changed, else None; whether a paused layer is
        being resumed). `used`: layers subscribers receive or switch to; `active`: layers
        being received."""
        for rid, at in list(self._resumed_at.items()):
            if rid in active:
                del self._resumed_at[rid]
            elif now - at >= self._settings.resume_wait_s:
                del self._resumed_at[rid]
                self._given_up_until[rid] = now + self._settings.retry_s
        needed = []
        for rid in self._rids:
            if rid in used or rid == lowest:
                self._unused_since.pop(rid, None)
                needed.append(rid)
            elif now - self._unused_since.setdefault(rid, now) < self._settings.pause_delay_s:
                needed.append(rid)
        if tuple(needed) == self.needed:
            return None, False
        resumed = self._paused.intersection(needed)
        for rid in resumed:
            self._resumed_at[rid] = now
        self._paused = set(self._rids).difference(needed)
        self.needed = tuple(needed)
        return self.needed, bool(resumed)
