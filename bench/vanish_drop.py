"""Vanish-to-drop: how long the SFU takes to drop a client that disappears without a goodbye.

For each transport (WHIP publisher, WHEP player, WebSocket participant) a client process
joins a room where an observer publishes and stays, then is killed (kill -9) or frozen
(SIGSTOP); the figure is the time from the signal to the observer hearing `participantLeft`.
The baseline, measured in the same run, is a polite leave (DELETE, or `leave`), and every
figure is also shown against the 30 s after which RFC 7675 says consent has expired.

Run inside a loopback-only network namespace, from the repository root:

    PATH=$PWD/.venv/bin:$PATH tools/in-netns.sh .venv/bin/python bench/vanish_drop.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))  # the test suite's SFU harness and client processes

from fixtures.sfu_client_process import ClientProcess  # noqa: E402
from fixtures.sfu_harness import JoinKeys, PodIdentity, SfuProcess, sign_join_token  # noqa: E402
from fixtures.vanishing import counted, leave_politely, observer_joins, vanish  # noqa: E402

ROOM = "bench/vanish"
TRANSPORTS = ("whip", "whep", "ws")
FORWARDED = {"whip": 2, "whep": 2, "ws": 4}
"""Tracks the SFU forwards once each client is in: to the observer, from it, or both."""
WAYS = ("left", "killed", "frozen")
CONSENT_CEILING_S = 30.0


async def measure(repeat: int) -> dict[tuple[str, str], list[tuple[float, str]]]:
    results: dict[tuple[str, str], list[tuple[float, str]]] = {}
    with tempfile.TemporaryDirectory(prefix="vanish-bench-") as workdir:
        keys, pod = JoinKeys(Path(workdir) / "keys"), PodIdentity()
        sfu = SfuProcess(Path(workdir), keys, pod)
        await sfu.start()
        observer = await observer_joins(
            sfu.ws_url, sign_join_token(keys, pod, room=ROOM, identity="observer")
        )
        try:
            for run in range(repeat):
                for transport in TRANSPORTS:
                    for way in WAYS:
                        identity = f"{transport}-{way}-{run}"
                        token = sign_join_token(keys, pod, room=ROOM, identity=identity)
                        client = await ClientProcess.start(transport, sfu.base_url, ROOM, token)
                        try:
                            await counted(sfu, participants=2, forwarded=FORWARDED[transport])
                            if way == "left":
                                drop = await leave_politely(client, observer, identity)
                            else:
                                drop = await vanish(client, way, observer, identity)
                            figure = (drop.seconds, drop.reason)
                        finally:
                            await client.stop()
                        results.setdefault((transport, way), []).append(figure)
                        print(f"{transport:5} {way:7} {figure[0]:6.2f} s  {figure[1]}", flush=True)
        finally:
            await observer.close()
            sfu.stop()
    return results


def report(results: dict[tuple[str, str], list[tuple[float, str]]]) -> None:
    print()
    print("| client | vanish | reason | runs (s) | median (s) | vs polite leave | share of 30 s |")
    print("|---|---|---|---|---|---|---|")
    for transport in TRANSPORTS:
        polite = statistics.median(s for s, _ in results[(transport, "left")])
        for way in WAYS:
            figures = results[(transport, way)]
            seconds = [s for s, _ in figures]
            median = statistics.median(seconds)
            reasons = "/".join(sorted({r for _, r in figures}))
            runs = " ".join(f"{s:.1f}" for s in seconds)
            print(
                f"| {transport} | {way} | {reasons} | {runs} | {median:.2f} "
                f"| {median / polite:.0f} | {median / CONSENT_CEILING_S:.2f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    report(asyncio.run(measure(args.repeat)))


if __name__ == "__main__":
    main()
