"""The demo page `make up` serves, in real headless Chromium with a fake camera: tabs join
through the page's form as a person does, see each other, watch over WHEP, and follow
`migrate` when the SFU pod of their room goes away."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from fixtures.chromium import FRAME_JS
from fixtures.devtools import Chromium, Tab
from fixtures.waiting import eventually
from switchboard_dev.demo.apikey import DEMO_NAMESPACE

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.nodeagent,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
]

SEE_DEADLINE_SECONDS = 120.0
"""Generous: Chromium's tabs, SFU pods and a control plane share two loaded cores."""
MIGRATE_DEADLINE_SECONDS = 180.0
"""Generous: the pod drains, is deleted, the room is placed again, the tabs rejoin."""
MIN_NON_BLACK = 0.3
"""Chromium's fake camera is a bright test pattern: most pixels of a real frame are lit."""

# What the page's tiles show: for each, the name on it, frames decoded for its video track
# (getStats of the connection it arrives on) and the share of lit pixels of its last frame.
TILES_JS = (
    FRAME_JS.read_text()
    + """(async () => {
  const session = window.demo.session;
  const stats = [];
  for (const pc of session ? session.receivers() : []) {
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") stats.push(s);
    });
  }
  return [...document.querySelectorAll(".tile.remote")].map((tile) => {
    const video = tile.querySelector("video");
    const track = video.srcObject ? video.srcObject.getVideoTracks()[0] : null;
    const framesDecoded = stats
      .filter((s) => track && s.trackIdentifier === track.id)
      .reduce((sum, s) => sum + (s.framesDecoded || 0), 0);
    const frame = frameOf(video);
    const nonBlack = frame ? frame.nonBlack : 0;
    return { name: tile.querySelector(".name").textContent, framesDecoded, nonBlack };
  });
})()"""
)

STATUS_JS = """(() => {
  const session = window.demo.session;
  return {
    state: document.getElementById("state").dataset.state,
    shown: document.getElementById("where").textContent,
    pod: session && session.placement ? session.placement.pod : null,
    region: session && session.placement ? session.placement.region : null,
    migrations: session ? session.migrations || 0 : 0,
    reconnections: session ? session.reconnections || 0 : 0,
    events: session ? session.events : [],
  };
})()"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chromium]:
    workdir = tmp_path_factory.mktemp("chromium")
    chromium = await Chromium(workdir / "profile", workdir / "chromium.log").start()
    yield chromium
    await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def open_tab(browser: Chromium, make_up) -> AsyncIterator[Callable]:
    """open_tab(room, name, watch=False, publisher="") -> a tab that joined through the form.
    The rooms are deleted afterwards, giving their reserved capacity back for the next test."""
    tabs: list[Tab] = []
    rooms: set[str] = set()

    async def join(room: str, name: str, watch: bool = False, publisher: str = "") -> Tab:
        tab = await browser.new_tab(make_up.env["SWITCHBOARD_DEMO_PAGE_URL"], name)
        tabs.append(tab)
        rooms.add(room)
        await tab.fill("#room", room)
        await tab.fill("#name", name)
        if watch:
            await tab.click('input[name="mode"][value="watch"]')
            await tab.fill("#publisher", publisher)
        await tab.click("#join-button")
        return tab

    yield join
    for tab in tabs:
        await tab.close()
    for room in rooms:
        make_up.kubectl("delete", "room", room, "-n", DEMO_NAMESPACE, "--wait=false")
    assert not [(t.name, t.errors) for t in tabs if t.errors]


async def status(tab: Tab) -> dict:
    return dict(await tab.evaluate(STATUS_JS))


async def sees(tab: Tab, name: str, deadline: float = SEE_DEADLINE_SECONDS) -> dict:
    """The tile showing `name` once it decodes lit frames; fails with the page's state."""

    async def seen() -> dict | None:
        assert not tab.errors, f"{tab.name}: {tab.errors}"
        tiles = [t for t in await tab.evaluate(TILES_JS) if t["name"] == name]
        good = [t for t in tiles if t["framesDecoded"] > 0 and t["nonBlack"] > MIN_NON_BLACK]
        return good[0] if good else None

    try:
        return await eventually(seen, deadline, f"{tab.name} to see {name}", interval=0.5)
    except AssertionError as error:
        raise AssertionError(
            f"{error}\ntiles: {await tab.evaluate(TILES_JS)}\n"
            f"page: {json.dumps(await status(tab), indent=1)}"
        ) from None


async def connected_pod(tab: Tab, other_than: str | None = None) -> str:
    async def placed() -> str | None:
        now = await status(tab)
        ok = now["state"] == "connected" and now["pod"] and now["pod"] != other_than
        return now["pod"] if ok else None

    try:
        return await eventually(placed, MIGRATE_DEADLINE_SECONDS, f"{tab.name} connected")
    except AssertionError as error:
        raise AssertionError(f"{error}\npage: {json.dumps(await status(tab), indent=1)}") from None


def room_status(make_up, name: str) -> dict:
    room = json.loads(
        make_up.kubectl("get", "room", name, "-n", DEMO_NAMESPACE, "-o", "json").stdout
    )
    return room.get("status") or {}


async def test_two_tabs_join_one_room_and_see_each_other(make_up, open_tab, artifacts):
    alice = await open_tab("meet", "alice")
    bob = await open_tab("meet", "bob")

    await sees(alice, "bob")
    await sees(bob, "alice")
    seconds = time.monotonic() - make_up.ready_at

    # The page says where the room is, and it is where the control plane placed it.
    shown = await status(alice)
    placed = room_status(make_up, "meet")
    assert shown["pod"] == placed["pod"] == (await status(bob))["pod"]
    assert placed["pod"] in shown["shown"] and placed["region"] in shown["shown"]
    assert shown["state"] == "connected"
    # Evidence for people: the page with both tiles, and how long the first call took.
    screenshot = await alice.screenshot(artifacts / "two-tabs.png")
    (artifacts / "two-tabs.txt").write_text(
        f"make up ready -> two tabs see each other: {seconds:.1f}s\n"
    )
    print(f"make up ready -> two tabs see each other: {seconds:.1f}s; screenshot {screenshot}")


async def test_a_watch_only_tab_sees_the_publisher(open_tab, artifacts):
    alice = await open_tab("stage", "alice")
    await connected_pod(alice)
    carol = await open_tab("stage", "carol", watch=True, publisher="alice")

    await sees(carol, "watching alice")

    await carol.screenshot(artifacts / "watch-only.png")
    # A watcher publishes nothing, so the call shows no tile for them.
    assert [t["name"] for t in await alice.evaluate(TILES_JS)] == []


async def test_deleting_the_rooms_sfu_pod_moves_the_tabs_with_migrate(make_up, open_tab, artifacts):
    alice = await open_tab("move", "alice")
    bob = await open_tab("move", "bob")
    await sees(alice, "bob")
    await sees(bob, "alice")
    carol = await open_tab("move", "carol", watch=True, publisher="alice")
    await sees(carol, "watching alice")
    first = room_status(make_up, "move")
    pod = first["pod"]
    namespace = make_up.kubectl(
        "get", "region", first["region"], "-o", "jsonpath={.spec.namespace}"
    ).stdout

    make_up.kubectl("delete", "pod", pod, "-n", namespace, "--wait=false")

    for tab in (alice, bob, carol):
        assert await connected_pod(tab, other_than=pod)
    # Media flows again on the new pod's connections (their counters start from zero).
    await sees(alice, "bob", MIGRATE_DEADLINE_SECONDS)
    await sees(bob, "alice", MIGRATE_DEADLINE_SECONDS)
    await sees(carol, "watching alice", MIGRATE_DEADLINE_SECONDS)
    for tab in (alice, bob):
        page = await status(tab)
        assert page["migrations"] >= 1, page["events"]
        assert "the SFU says migrate (draining)" in page["events"]
    await alice.screenshot(artifacts / "after-migrate.png")
    # WHEP gets no `migrate`: the watcher noticed its connection end and joined again.
    assert (await status(carol))["reconnections"] >= 1
    assert room_status(make_up, "move")["pod"] == (await status(alice))["pod"]
