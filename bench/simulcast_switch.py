"""Layer-switch time: how long a viewer waits for the simulcast layer it asked for.

Headless Chromium publishes its 1280x720 fake camera as three layers (q 320x180, h 640x360,
f 1280x720, 15 fps) over WebSocket signalling; one viewer watches f throughout, so f keeps
running, and the viewer under test asks for layers in turn with `setVideoLayer`:

* down to q, which always runs: the SFU waits for a keyframe of q it asked for;
* up to f, running for the other viewer: the same, on a bigger keyframe;
* up to h, which nobody watched and the publisher had paused: the publisher is told to
  resume it, and its first frame is the keyframe.

Per switch: *SFU*, from the request reaching the SFU to the new layer's first packet sent
(from its log); *viewer*, from the page sending the request to the first frame of the new
size shown (`requestVideoFrameCallback`, the page's clock). The same run's frame interval
is the yardstick: a switch cannot beat waiting for the next keyframe, and a frame is the
shortest anything can take at 15 fps.

Run inside a loopback-only network namespace, from the repository root:

    PATH=$PWD/.venv/bin:$PATH tools/in-netns.sh \
        .venv/bin/python bench/simulcast_switch.py [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))  # the test suite's SFU harness and browser pages

from fixtures.browser_pages import Browser, PageServer  # noqa: E402
from fixtures.sfu_harness import (  # noqa: E402
    JoinKeys,
    PodIdentity,
    SfuProcess,
    sign_join_token,
    wait_for,
)

PAGE_DIR = TESTS / "sfu" / "browser" / "page"
ROOM = "bench/simulcast"
DEADLINE_S = 90.0
WIDTHS = {"q": 320, "h": 640, "f": 1280}
STEPS = (
    ("f", "up to a running layer"),
    ("q", "down to a running layer"),
    ("h", "up to a paused layer"),
    ("q", "down to a running layer"),
)
SWITCHED = re.compile(r"layer switched subscriber=(\S+) .* to=(\S+) after_ms=(\d+)")


class Bench:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.sfu = SfuProcess(workdir, JoinKeys(workdir / "keys"), PodIdentity())
        self.pages = PageServer(PAGE_DIR)
        self.browsers: list[Browser] = []

    def latest(self, page: str, kind: str) -> dict | None:
        reports = self.pages.of(page, kind)
        return reports[-1] if reports else None

    async def shows(self, page: str, width: int) -> None:
        def check() -> bool:
            render = self.latest(page, "render")
            return bool(render) and render["inbound"].get("frameWidth") == width

        await wait_for(check, DEADLINE_S, f"{page} to show {width}px frames")


async def measure(repeat: int) -> tuple[dict[str, list[tuple[float, float]]], float]:
    with tempfile.TemporaryDirectory(prefix="simulcast-bench-") as directory:
        bench = Bench(Path(directory))
        await bench.sfu.start()
        await bench.pages.start()
        try:
            return await run(bench, repeat)
        finally:
            for browser in bench.browsers:
                browser.stop()
            await bench.pages.stop()
            bench.sfu.stop()


async def run(bench: Bench, repeat: int) -> tuple[dict[str, list[tuple[float, float]]], float]:
    pages = bench.pages
    publisher = open_page(bench, "cam", role="publish", simulcast="1")
    await wait_for(lambda: pages.of(publisher, "published"), DEADLINE_S, "the publisher")
    watcher = open_page(bench, "watcher", role="subscribe")
    await bench.shows(watcher, WIDTHS["f"])
    viewer = open_page(bench, "viewer", role="subscribe", layer="q")
    await bench.shows(viewer, WIDTHS["q"])
    layer = next(m for m in pages.of(viewer, "message") if m["type"] == "videoLayer")
    session = next(m for m in pages.of(viewer, "message") if m["type"] == "joined")["sessionId"]

    viewer_ms: dict[str, list[float]] = {}
    sfu_ms: dict[str, list[float]] = {}
    for _ in range(repeat):
        for rid, kind in STEPS:
            if rid == "h":
                await paused(bench, publisher, "h")
            log_before = len(bench.sfu.log())
            sent_before = len(pages.of(viewer, "sent"))
            resized_before = len(pages.of(viewer, "resized"))
            request = {"type": "setVideoLayer", "trackId": layer["trackId"], "rid": rid}
            pages.command(viewer, request)

            def resized(width: int = WIDTHS[rid], after: int = resized_before) -> dict | None:
                shown = [r for r in pages.of(viewer, "resized")[after:] if r["width"] == width]
                return shown[0] if shown else None

            shown = await wait_for(resized, DEADLINE_S, f"the viewer to show layer {rid}")
            sent = pages.of(viewer, "sent")[sent_before]
            viewer_ms.setdefault(kind, []).append(shown["atMs"] - sent["atMs"])  # type: ignore[index]
            switched = next(
                m
                for m in SWITCHED.finditer(bench.sfu.log()[log_before:])
                if m[1] == session and m[2] == rid
            )
            sfu_ms.setdefault(kind, []).append(float(switched[3]))
            await settled(bench, viewer)
    renders = pages.of(viewer, "render")
    frames = renders[-1]["framesDecoded"] - renders[0]["framesDecoded"]
    frame_ms = 1000 * (renders[-1]["receivedAt"] - renders[0]["receivedAt"]) / max(frames, 1)
    figures = {kind: list(zip(sfu_ms[kind], viewer_ms[kind], strict=True)) for kind in sfu_ms}
    return figures, frame_ms


def open_page(bench: Bench, identity: str, **query: str) -> str:
    token = sign_join_token(bench.sfu.keys, bench.sfu.pod, room=ROOM, identity=identity)
    base = {"sfu": bench.sfu.base_url, "token": token, "room": ROOM, "report": identity}
    url = f"{bench.pages.origin}/?{urlencode({**base, 'transport': 'ws', **query})}"
    bench.browsers.append(
        Browser(bench.workdir / f"profile-{identity}", url, bench.workdir / f"{identity}.log")
    )
    return identity


async def paused(bench: Bench, publisher: str, rid: str) -> None:
    """Until the publisher stopped sending `rid` (nobody has needed it for a while)."""

    def check() -> bool:
        sent = bench.pages.of(publisher, "outbound")[-3:]
        return len(sent) == 3 and all(
            not s["layers"][rid]["active"]
            and s["layers"][rid]["bytesSent"] == sent[0]["layers"][rid]["bytesSent"]
            for s in sent
        )

    await wait_for(check, DEADLINE_S, f"the publisher to pause {rid}")


async def settled(bench: Bench, viewer: str) -> None:
    """Until the viewer has shown a second's worth of frames of its new layer."""
    start = bench.latest(viewer, "render")["framesDecoded"]  # type: ignore[index]
    await wait_for(
        lambda: bench.latest(viewer, "render")["framesDecoded"] >= start + 15,  # type: ignore[index]
        DEADLINE_S,
        "frames of the new layer",
    )


def print_figures(figures: dict[str, list[tuple[float, float]]], frame_ms: float) -> None:
    print(f"\nframe interval (same run): {frame_ms:.0f} ms")
    header = (
        f"{'switch':26} {'n':>3} {'SFU p50':>8} {'SFU max':>8} "
        f"{'viewer p50':>11} {'viewer max':>11} {'in frames':>10}"
    )
    print(header)
    print("-" * len(header))
    for kind, pairs in figures.items():
        sfu = [p[0] for p in pairs]
        viewer = [p[1] for p in pairs]
        print(
            f"{kind:26} {len(pairs):>3} {statistics.median(sfu):>6.0f}ms {max(sfu):>6.0f}ms "
            f"{statistics.median(viewer):>9.0f}ms {max(viewer):>9.0f}ms "
            f"{statistics.median(viewer) / frame_ms:>10.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures, frame_ms = asyncio.run(measure(args.repeat))
    print_figures(figures, frame_ms)


if __name__ == "__main__":
    main()
