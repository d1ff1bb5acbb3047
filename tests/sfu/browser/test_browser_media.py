"""Real browsers through the SFU: a headless Chromium page publishes, another one
subscribes and renders frames, over WebSocket signalling and over WHIP/WHEP (the pages are
served from another origin than the SFU, so WHIP/WHEP go through CORS), and with
end-to-end encrypted frames that only render if the SFU forwarded them untouched."""

from __future__ import annotations

import pytest

from fixtures.waiting import eventually

pytestmark = pytest.mark.slow

BROWSER_DEADLINE_SECONDS = 60.0
"""Generous: two Chromium processes start on a shared 2-core machine."""
PATTERN_RGB = (200, 40, 160)


async def rendered(pages, page_id: str, min_frames: int = 10) -> dict:
    """The page's render report once it decoded and drew frames; fails on page errors."""

    def check() -> dict | None:
        errors = pages.errors(page_id)
        assert not errors, f"{page_id}: {errors}"
        renders = pages.of(page_id, "render")
        if renders and renders[-1]["framesDecoded"] >= min_frames and renders[-1]["nonBlack"]:
            return renders[-1]
        return None

    try:
        return await eventually(check, BROWSER_DEADLINE_SECONDS, f"{page_id} to render frames")
    except AssertionError as error:
        latest = (pages.of(page_id, "render") or [None])[-1]
        raise AssertionError(f"{error}; latest render report: {latest}") from None


async def test_camera_over_websocket_signalling(pages, open_page) -> None:
    publisher = open_page("cam", role="publish", transport="ws")
    await eventually(lambda: pages.of(publisher, "published"), BROWSER_DEADLINE_SECONDS, "publish")
    viewer = open_page("viewer", role="subscribe", transport="ws")

    frame = await rendered(pages, viewer)

    assert pages.of(publisher, "published")[0]["tracks"] == 2  # fake camera and microphone
    assert frame["nonBlack"] > 0.5
    assert (frame["width"], frame["height"]) == (320, 240)


async def test_camera_over_whip_and_whep(pages, open_page) -> None:
    publisher = open_page("whip-cam", role="publish", transport="whip")
    await eventually(lambda: pages.of(publisher, "published"), BROWSER_DEADLINE_SECONDS, "WHIP")
    viewer = open_page("whep-viewer", role="subscribe", transport="whep")

    frame = await rendered(pages, viewer)

    [created] = pages.of(publisher, "http")
    assert created["status"] == 201
    assert created["location"].startswith("/whip/resource/")  # readable: CORS exposes it
    assert pages.of(viewer, "http")[0]["location"].startswith("/whep/resource/")
    assert frame["nonBlack"] > 0.5


@pytest.mark.parametrize("transport", ["ws", "whip"])
async def test_end_to_end_encrypted_frames_pass_through(pages, open_page, transport) -> None:
    key = "90"
    publisher = open_page(
        "e2ee-cam", role="publish", transport=transport, source="pattern", e2ee=key
    )
    await eventually(lambda: pages.of(publisher, "published"), BROWSER_DEADLINE_SECONDS, "publish")
    viewer = open_page(
        "e2ee-viewer",
        role="subscribe",
        transport="ws" if transport == "ws" else "whep",
        e2ee=key,
    )

    frame = await rendered(pages, viewer)

    # The publisher's known colour survives only if every encrypted byte reached the
    # subscriber exactly as sent: decoding or re-encoding at the SFU garbles or stops it.
    mean = frame["mean"]
    assert all(abs(m - e) < 40 for m, e in zip(mean, PATTERN_RGB, strict=True)), mean
