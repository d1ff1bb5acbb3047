//! `switchboard_sfu._fastpath`: the SFU's optional native forwarding hot path.
//!
//! Python keeps every decision (who subscribes, when a stream starts, keyframes, feedback);
//! this module does the per-packet work: read a burst of a publisher's SRTP datagrams
//! (`Ingress`), decrypt and track them per published track (`Track`: sequence numbers,
//! retransmission history, frame and keyframe starts), and for every subscriber rewrite the
//! header, SRTP-protect with the subscriber transport's own libsrtp session and send
//! (`Output`, one `sendmmsg` per burst). The pure-Python path (`Publication.rtp_received`,
//! `Subscription.forward`, `RtpWriter`, `SenderHook.send_rtp`) is the reference it matches
//! byte for byte (tests/sfu/media/test_fastpath_equivalence.py).

// Python-facing methods take their fields as keyword arguments, one per RTP field.
#![allow(clippy::too_many_arguments)]

mod estimator;
mod ingress;
mod output;
mod receive_stats;
mod rewrite;
mod rtp;
mod srtp;

use pyo3::prelude::*;

#[pymodule]
fn _fastpath(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<srtp::SrtpSession>()?;
    m.add_class::<output::Output>()?;
    m.add_class::<estimator::BitrateEstimator>()?;
    m.add_class::<ingress::Track>()?;
    m.add_class::<ingress::Ingress>()?;
    Ok(())
}
