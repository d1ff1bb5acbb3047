"""The optional native forwarding hot path: `switchboard_sfu._fastpath`, built from sfu/fastpath.

Once a publication knows its media SSRC, its packets are received natively (`Ingress`: a
burst of datagrams read from the socket, decrypted with the transport's own libsrtp session)
and tracked natively (`Track`: sequence numbers, retransmission history, frame and keyframe
starts). A subscription whose stream has started and whose packets leave through a plain UDP
socket becomes a native `Output` (rewrite, SRTP-protect, `sendmmsg`). The track also keeps
the publisher's uplink estimate (a port of aiortc's estimator), and aiortc's receive
statistics and NACK generator of the stream (ports too). Python sees one summary per burst
(counters, the NACKs to send, a new estimate) and, while some subscriptions are not native
yet, one record per packet to forward to them. Everything else stays on the
pure-Python path, which is the reference the native one matches byte for byte; without the
module (no Rust toolchain at install time) every packet takes the Python path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from .aiortc_adapter import DirectRoute, LibsrtpSession, ReceiveRoute
from .rtp_writer import RtpWriter

logger = logging.getLogger(__name__)

try:
    from switchboard_sfu import _fastpath  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on how the package was built
    _fastpath = None

Output = Any
Track = Any
Ingress = Any


def available() -> bool:
    """True when the native module was built and imports."""
    return _fastpath is not None


def native_srtp(session: LibsrtpSession) -> Any:
    assert _fastpath is not None
    return _fastpath.SrtpSession(session.owner, session.ctx, session.protect, session.unprotect)


def new_track(
    *,
    owner: object,
    media_ssrc: int,
    media_payload_types: Iterable[int],
    codec: str,
    history_size: int,
    estimate_bitrate: bool,
) -> Track:
    """A published track's native state; `owner` is handed back with every packet record;
    `estimate_bitrate`: keep the publisher's uplink estimate (video, as aiortc does)."""
    assert _fastpath is not None
    return _fastpath.Track(
        owner=owner,
        media_ssrc=media_ssrc,
        media_payload_types=list(media_payload_types),
        codec=codec,
        history_size=history_size,
        estimate_bitrate=estimate_bitrate,
    )


def new_bitrate_estimator() -> Any:
    """The track's uplink estimator on its own (`add(arrival_ms, abs_send_time, size)`)."""
    assert _fastpath is not None
    return _fastpath.BitrateEstimator()


def new_ingress(route: ReceiveRoute) -> Ingress:
    """The native receiver of one publisher transport."""
    assert _fastpath is not None
    return _fastpath.Ingress(
        srtp=native_srtp(route.srtp),
        abs_send_time_id=route.abs_send_time_id,
        audio_level_id=route.audio_level_id,
    )


def new_output(
    route: DirectRoute,
    writer: RtpWriter,
    *,
    ssrc: int,
    payload_types: Iterable[tuple[int, int]],
    seq_offset: int,
    ts_offset: int,
    start: int,
    last_sequence_number: int,
) -> Output | None:
    """A native output with the given rewrite state, or None when it cannot be native."""
    if _fastpath is None:
        return None
    try:
        return _fastpath.Output(
            srtp=native_srtp(route.srtp),
            socket_fd=route.socket_fd,
            host=route.host,
            port=route.port,
            ssrc=ssrc,
            payload_types=list(payload_types),
            seq_offset=seq_offset,
            ts_offset=ts_offset,
            start=start,
            mid_id=writer.mid_id,
            mid=writer.mid,
            abs_send_time_id=writer.abs_send_time_id,
            audio_level_id=writer.audio_level_id,
            last_sequence_number=last_sequence_number,
        )
    except (ValueError, OSError) as exc:
        logger.info("forwarding in Python reason=%s", exc)
        return None
