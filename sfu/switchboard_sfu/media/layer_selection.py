"""Which simulcast layer a subscriber receives, and when to probe for a better one.

Pure decisions over plain data: the subscription gathers the layers' state, the subscriber's
bandwidth estimate (REMB) and its explicit request, and carries the choice out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

UP_HEADROOM = 0.9
"""A higher layer is chosen when its bitrate is within this share of the estimate; the layer
being received is kept while its bitrate is within the whole estimate (hysteresis)."""


@dataclass(frozen=True)
class LayerState:
    """What the choice needs to know of one layer."""

    rid: str
    bitrate_bps: int | None
    """Measured (the last figure while it is paused); None before it was ever received."""
    height: int | None
    available: bool
    """Being received, or paused at the SFU's request (it resumes once chosen)."""


@dataclass(frozen=True)
class LayerRequest:
    """A subscriber's explicit ceiling: at most layer `rid`, at most `max_height` pixels."""

    rid: str | None = None
    max_height: int | None = None


@dataclass(frozen=True)
class LayerChoice:
    rid: str | None
    """The layer to receive (None: nothing is available)."""
    probe_bps: int | None = None
    """Bitrate of the next layer up that only the bandwidth estimate rules out: worth probing
    for (None: nothing better is allowed)."""


def choose_layer(
    layers: Sequence[LayerState],
    request: LayerRequest,
    estimate_bps: int | None,
    current: str | None,
) -> LayerChoice:
    """The best layer that fits the request and the bandwidth estimate.

    `layers` go from the lowest to the highest. Without an estimate (no REMB yet) the best
    allowed layer is chosen; with one, the best whose bitrate fits it (see UP_HEADROOM),
    and never less than the lowest allowed layer.
    """
    available = [layer for layer in layers if layer.available]
    if not available:
        return LayerChoice(rid=current)
    allowed = [layer for layer in available if _within(layer, request, available, layers)]
    if not allowed:
        allowed = available[:1]
    if estimate_bps is None:
        return LayerChoice(rid=allowed[-1].rid)
    rank = {layer.rid: index for index, layer in enumerate(layers)}
    current_rank = rank.get(current, -1) if current is not None else -1
    chosen = allowed[0]
    for layer in allowed[1:]:
        headroom = 1.0 if rank[layer.rid] <= current_rank else UP_HEADROOM
        if layer.bitrate_bps is not None and layer.bitrate_bps <= estimate_bps * headroom:
            chosen = layer
    above = allowed[allowed.index(chosen) + 1 :]
    probe = above[0].bitrate_bps if above else None
    return LayerChoice(rid=chosen.rid, probe_bps=probe)


def _within(
    layer: LayerState,
    request: LayerRequest,
    available: list[LayerState],
    layers: Sequence[LayerState],
) -> bool:
    if request.rid is not None:
        ceiling = next((i for i, x in enumerate(layers) if x.rid == request.rid), None)
        if ceiling is not None and layers.index(layer) > ceiling:
            return False
    if request.max_height is not None:
        if layer.height is None:
            return layer is available[0]
        return layer.height <= request.max_height
    return True


@dataclass(frozen=True)
class ProbeSettings:
    """How bandwidth probes for a higher layer are paced."""

    first_delay_s: float = 5.0
    """No probe this soon after forwarding starts or the layer changes."""
    max_duration_s: float = 20.0
    """A probe that has not raised the estimate enough by then failed."""
    backoff_s: float = 10.0
    """Wait after a failed probe, doubled per consecutive failure up to `max_backoff_s`."""
    max_backoff_s: float = 120.0


class BandwidthProbe:
    """Decides when a subscriber's stream is padded so its bandwidth estimate can grow.

    A REMB estimate never rises much above what the subscriber receives (about 1.5 times),
    so a subscriber moved to a low layer would never be offered a higher one again. While a
    higher layer is allowed but does not fit, the stream is padded up to that layer's
    bitrate; the estimate then grows if the path has room, and the layer choice follows.
    The probe stops when the estimate drops (the padding congests the path), or after
    `max_duration_s`; failures back off exponentially.
    """

    def __init__(self, settings: ProbeSettings, now: float) -> None:
        self._settings = settings
        self._not_before = now + settings.first_delay_s
        self._failures = 0
        self._started: float | None = None
        self._start_estimate = 0

    @property
    def probing(self) -> bool:
        return self._started is not None

    def layer_changed(self, now: float) -> None:
        """A switch happened: the estimate settles at the new rate before the next probe."""
        if self._started is not None:
            self._failures = 0
        self._started = None
        self._not_before = max(self._not_before, now + self._settings.first_delay_s)

    def padding_bps(
        self,
        now: float,
        *,
        sending_bps: int | None,
        probe_bps: int | None,
        estimate_bps: int | None,
    ) -> int:
        """Padding to add to what is sent now (0: none)."""
        if probe_bps is None or estimate_bps is None or sending_bps is None:
            self._started = None
            return 0
        if self._started is None:
            if now < self._not_before:
                return 0
            self._started = now
            self._start_estimate = estimate_bps
        elif (
            estimate_bps < 0.9 * self._start_estimate
            or now - self._started > self._settings.max_duration_s
        ):
            self._fail(now)
            return 0
        return max(probe_bps - sending_bps, 0)

    def _fail(self, now: float) -> None:
        self._started = None
        self._failures += 1
        backoff = self._settings.backoff_s * 2 ** (self._failures - 1)
        self._not_before = now + min(backoff, self._settings.max_backoff_s)


class LaggingEstimate:
    """The subscriber's REMB estimate, as far as it may hold its layer back.

    A receiver's estimate grows slowly (about 8% a second) and never much above what it
    receives, so right after a subscriber moves up, or asks for a different layer, it lags
    behind the new bitrate without any sign of congestion. For `grace_s` after such a change
    the estimate is not held against the layer, unless it falls (the receiver detected
    overuse): then it counts again, until the next change.
    """

    FALL = 0.95

    def __init__(self, grace_s: float) -> None:
        self._grace_s = grace_s
        self._grace_until = float("-inf")
        self.bps: int | None = None

    def report(self, bps: int, now: float) -> None:
        if self.bps is not None and bps < self.FALL * self.bps:
            self._grace_until = float("-inf")
        self.bps = bps

    def changed(self, now: float) -> None:
        """The subscriber moved up or changed its request."""
        self._grace_until = now + self._grace_s

    def usable(self, now: float) -> int | None:
        """The estimate to choose by (None: choose as if unconstrained)."""
        return None if now < self._grace_until else self.bps
