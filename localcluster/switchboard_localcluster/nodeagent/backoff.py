"""The kubelet's crash-loop back-off: a delay that doubles per restart up to a cap."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    initial_seconds: float = 10.0
    max_seconds: float = 300.0

    @property
    def reset_after_seconds(self) -> float:
        # The kubelet forgets a container's back-off once it has run this long without exiting.
        return 2 * self.max_seconds


class RestartBackoff:
    """Delays before restarts of one container: initial, doubling, capped, reset by a long run."""

    def __init__(self, policy: BackoffPolicy) -> None:
        self.policy = policy
        self._next = policy.initial_seconds

    def next_delay(self, ran_for_seconds: float) -> float:
        """The delay before restarting a container that has just exited after running this long."""
        if ran_for_seconds >= self.policy.reset_after_seconds:
            self._next = self.policy.initial_seconds
        delay = self._next
        self._next = min(self._next * 2, self.policy.max_seconds)
        return delay
