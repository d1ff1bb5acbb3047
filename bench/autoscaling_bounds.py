"""What any policy that never cuts a room must pay on a trace, at best: pods that start at
once, are removed the second they empty, with no window, filled up to the admission
limit (`HIGH_WATER_MARK`), with the rooms never moved. Two placements:

- `Packed` (the fullest pod that fits, as the built-in's placement): knows nothing of how
  long a room will last, like every real placement;
- clairvoyant: knows every room's end and puts it on the pod whose rooms outlast it by
  the least (else the one that would be extended least): no real placement can know this.

Their gap is what not knowing room durations costs without cuts; the oracle (free moves
at the target) and the HPA (cuts rooms) are below both when durations are long-tailed.
"""

from __future__ import annotations

import math

from autoscaling_sim import HIGH_WATER_MARK, RESERVATION, Shape, end_of


def no_cut_pod_seconds(
    rooms: list[tuple[int, int]], shape: Shape, *, clairvoyant: bool = False
) -> float:
    per_pod = math.floor(shape.capacity * HIGH_WATER_MARK / RESERVATION + 1e-9)
    ends_at: dict[int, list[int]] = {}
    for at, duration in rooms:
        ends_at.setdefault(at, []).append(at + duration)
    pods: list[list[int]] = []  # the end second of each room on each pod, oldest pod first
    total = 0
    for now in range(end_of(rooms, shape)):
        pods = [kept for pod in pods if (kept := [end for end in pod if end > now])]
        for end in sorted(ends_at.get(now, [])):
            fits = [pod for pod in pods if len(pod) < per_pod]
            if not fits:
                pods.append([end])
            elif clairvoyant:
                outlasting = [pod for pod in fits if max(pod) >= end]
                if outlasting:
                    min(outlasting, key=lambda pod: max(pod) - end).append(end)
                else:
                    max(fits, key=max).append(end)
            else:
                max(fits, key=len).append(end)
        total += max(shape.min_pods, len(pods))
    return float(total)


def print_bounds(rooms: list[tuple[int, int]], oracle: float, shape: Shape) -> None:
    """The two no-cut bounds, in pod-minutes and against the oracle."""
    for name, clairvoyant in (("Packed", False), ("clairvoyant", True)):
        seconds = no_cut_pod_seconds(rooms, shape, clairvoyant=clairvoyant)
        print(
            f"no cut at best, {name} placement (start-up 0, no window, removed when empty, "
            f"filled to {HIGH_WATER_MARK:.0%}): {seconds / 60:.1f} pod-min, "
            f"{seconds / oracle:.2f}x the oracle"
        )
