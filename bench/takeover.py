"""The takeover bound of the static stability issue: "a killed leader is replaced within
10 s with 500 rooms placed, and the new leader's restore finishes before any SFU's lease
expires". On the fault suite's stack (control plane, node agent with three SFU pods, two
operator replicas, a streaming call on every pod), the leader is SIGKILLed `--kills` times
with only the calls placed (the baseline, same run), then again with `--rooms` more rooms
placed, and each takeover prints, from the SFU pods' side (tests/fixtures/takeover.py):

- time to the new leader: from the kill to the new holder's acquireTime in the Lease;
- time to restore done: from the kill to the first acknowledgement of any SFU pod (the new
  leader answers no report before its restore is done);
- the least lease any SFU pod had left at restore done, and when it was acknowledged again
  (a lease ends `leaseSeconds` after the last acknowledged report was sent);
- rooms moved, fencing events, pods whose lease ran out (they asked their peers and served
  on), and answers SFU pods refused. The goal is 0 for each.

Run inside the loopback-only network namespace, as the tests do:
    PATH=$PWD/.venv/bin:$PATH tools/in-netns.sh nice -n 5 .venv/bin/python bench/takeover.py \
        [--rooms 500] [--kills 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the suite's stack

from fixtures.fault_stack import FaultStack, StreamingRoom, off_loop, open_calls
from fixtures.takeover import Takeover, kill_leader_and_measure, place_empty_rooms
from fixtures.waiting import wait_for

COLUMNS = (
    "| rooms | new leader (s) | restore done (s) | least lease left at restore (s) "
    "| least lease left when re-acked (s) | rooms moved | fencing events | leases run out "
    "| answers refused |"
)


def row(t: Takeover) -> str:
    refused = sum(p.rejected for p in t.pods.values())
    return (
        f"| {t.rooms} | {t.new_leader_after:.2f} | {t.restore_done_after:.2f} "
        f"| {t.min_lease_left_at_restore:.2f} | {t.min_lease_left_at_reack:.2f} "
        f"| {len(t.moved)} | {t.fencing_events} | {t.leases_expired} | {refused:g} |"
    )


def takeovers(stack: FaultStack, kills: int) -> list[Takeover]:
    measured = []
    for _ in range(kills):
        # The killed replica comes back as a standby: the next kill needs both again.
        wait_for(stack.replicas_settled, 120, "both operator replicas")
        measured.append(kill_leader_and_measure(stack))
        print(f"  {measured[-1].summary()}", flush=True)
    return measured


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="switchboard-takeover-"))
    stack = await off_loop(lambda: FaultStack(workdir).start())
    calls: list[StreamingRoom] = []
    try:
        calls = await open_calls(stack)
        print(f"baseline: {len(calls)} streaming calls only", flush=True)
        baseline = await off_loop(lambda: takeovers(stack, args.kills))
        print(f"placing {args.rooms} more rooms...", flush=True)
        await off_loop(lambda: place_empty_rooms(stack, args.rooms))
        loaded = await off_loop(lambda: takeovers(stack, args.kills))
    finally:
        for call in calls:
            await call.close()
        await off_loop(stack.stop)
    print(f"\nlogs in {workdir}\n\n{COLUMNS}\n" + "|---" * 9 + "|")
    for takeover in [*baseline, *loaded]:
        print(row(takeover))
    for name, of in (
        ("new leader", lambda t: t.new_leader_after),
        ("restore done", lambda t: t.restore_done_after),
    ):
        base, load = median([of(t) for t in baseline]), median([of(t) for t in loaded])
        print(
            f"\nmedian {name}: {load:.2f}s with {args.rooms} rooms placed, {base:.2f}s "
            f"without (x{load / base:.2f})",
            end="",
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--workdir")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
