//! The receive side: a publisher transport's SRTP datagrams (`Ingress`) and each published
//! track's forwarding state (`Track`), the twin of `Publication.rtp_received`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyTuple};

use crate::estimator::RemoteBitrateEstimator;
use crate::output::Output;
use crate::rewrite::Packet;
use crate::rtp::{self, IncomingExtensions, KeyframeCodec, Parsed};
use crate::srtp::SrtpSession;

/// Seconds between the NTP epoch (1900) and the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// Datagrams read per call at most: the event loop gets control back after this many.
const MAX_BATCH: usize = 64;
const DATAGRAM_SIZE: usize = 1600;

fn ntp_now() -> (u64, u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ms = (now.as_secs() + NTP_UNIX_OFFSET) * 1000 + u64::from(now.subsec_millis());
    let ntp = ((now.as_secs() + NTP_UNIX_OFFSET) << 32)
        | ((u64::from(now.subsec_nanos()) << 32) / 1_000_000_000);
    (ms, ntp)
}

/// One published track's forwarding state: sequence tracking, the retransmission history and
/// the native outputs. Packets for subscriptions still on the Python path are reported back.
#[pyclass(module = "switchboard_sfu._fastpath")]
pub struct Track {
    owner: PyObject,
    media_ssrc: u32,
    media_payload_types: [bool; 128],
    codec: KeyframeCodec,
    history: Vec<Option<(i64, Vec<u8>)>>,
    highest: Option<i64>,
    last_timestamp: Option<u32>,
    outputs: Vec<Py<Output>>,
    /// The publisher's uplink estimate (video), fed with every packet as aiortc's receiver does.
    estimator: Option<RemoteBitrateEstimator>,
    /// Some subscriptions are forwarded in Python: report every packet with its bytes.
    #[pyo3(get, set)]
    python_forwarding: bool,
    /// Packets the publisher never delivered (gaps seen upstream, before any repair).
    #[pyo3(get)]
    lost_upstream: u64,
}

/// What Python learns of each packet (see `Track.ingest`).
struct Outcome {
    extended: i64,
    frame_start: bool,
    keyframe: bool,
    duplicate: bool,
    sent_packets: u64,
    sent_bytes: u64,
    estimate: Option<i64>,
}

impl Track {
    fn handle(
        &mut self,
        py: Python<'_>,
        data: &[u8],
        parsed: &Parsed,
        abs_send_time: u32,
        arrival_ms: u64,
    ) -> Option<Outcome> {
        if parsed.ssrc != self.media_ssrc || !self.media_payload_types[parsed.payload_type as usize]
        {
            return None;
        }
        let estimate = match (&mut self.estimator, parsed.abs_send_time) {
            (Some(estimator), Some(sent)) => estimator.add(
                arrival_ms as i64,
                sent,
                (parsed.payload_end - parsed.payload_start + parsed.padding_size as usize) as i64,
            ),
            _ => None,
        };
        let seq = parsed.sequence_number;
        let slot = seq as usize & (self.history.len() - 1);
        if let Some((extended, stored)) = &self.history[slot] {
            if stored[2..4] == data[2..4] {
                let extended = *extended;
                return Some(Outcome {
                    extended,
                    frame_start: false,
                    keyframe: false,
                    duplicate: true,
                    sent_packets: 0,
                    sent_bytes: 0,
                    estimate,
                });
            }
        }
        let (extended, newest) = match self.highest {
            None => {
                self.highest = Some(i64::from(seq));
                (i64::from(seq), true)
            }
            Some(highest) => {
                let delta = i64::from(seq.wrapping_sub(highest as u16));
                if delta < 0x8000 {
                    let extended = highest + delta;
                    if (1..=0x1000).contains(&delta) {
                        self.lost_upstream += (delta - 1) as u64;
                    }
                    self.highest = Some(extended);
                    (extended, true)
                } else {
                    (highest - (0x10000 - delta), false)
                }
            }
        };
        let mut frame_start = false;
        if newest {
            frame_start = self.last_timestamp != Some(parsed.timestamp);
            self.last_timestamp = Some(parsed.timestamp);
        }
        self.history[slot] = Some((extended, data.to_vec()));
        let payload = &data[parsed.payload_start..parsed.payload_end];
        let keyframe = frame_start && rtp::is_keyframe_start(self.codec, payload);
        let packet = Packet {
            payload_type: parsed.payload_type,
            marker: parsed.marker,
            sequence_number: seq,
            timestamp: parsed.timestamp,
            payload,
            padding_size: parsed.padding_size,
            abs_send_time: Some(abs_send_time),
            audio_level: parsed.audio_level,
        };
        let (mut sent_packets, mut sent_bytes) = (0, 0);
        for output in &self.outputs {
            if let Some(size) = output.bind(py).borrow_mut().queue(&packet, extended) {
                sent_packets += 1;
                sent_bytes += size as u64;
            }
        }
        Some(Outcome {
            extended,
            frame_start,
            keyframe,
            duplicate: false,
            sent_packets,
            sent_bytes,
            estimate,
        })
    }

    fn flush(&self, py: Python<'_>) {
        for output in &self.outputs {
            output.bind(py).borrow_mut().flush();
        }
    }

    /// (owner, sequence number, timestamp, size incl. padding, abs-send-time or None,
    ///  arrival ms, extended seq, frame start, keyframe, duplicate, packets sent, payload
    ///  bytes sent, packet bytes when Python forwards too else None, new uplink estimate in
    ///  bit/s or None)
    fn record<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        parsed: &Parsed,
        arrival_ms: u64,
        outcome: &Outcome,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let raw = if self.python_forwarding && !outcome.duplicate {
            PyBytes::new(py, data).into_any()
        } else {
            py.None().into_bound(py)
        };
        let size = parsed.payload_end - parsed.payload_start + parsed.padding_size as usize;
        let items: [Bound<'py, PyAny>; 14] = [
            self.owner.clone_ref(py).into_bound(py),
            parsed.sequence_number.into_pyobject(py)?.into_any(),
            parsed.timestamp.into_pyobject(py)?.into_any(),
            size.into_pyobject(py)?.into_any(),
            parsed.abs_send_time.into_pyobject(py)?.into_any(),
            arrival_ms.into_pyobject(py)?.into_any(),
            outcome.extended.into_pyobject(py)?.into_any(),
            PyBool::new(py, outcome.frame_start).to_owned().into_any(),
            PyBool::new(py, outcome.keyframe).to_owned().into_any(),
            PyBool::new(py, outcome.duplicate).to_owned().into_any(),
            outcome.sent_packets.into_pyobject(py)?.into_any(),
            outcome.sent_bytes.into_pyobject(py)?.into_any(),
            raw,
            outcome.estimate.into_pyobject(py)?.into_any(),
        ];
        PyTuple::new(py, items)
    }
}

#[pymethods]
impl Track {
    /// `owner` is handed back with every record; `codec` is "video/vp8", "video/h264" or
    /// anything else (no keyframe detection); `history_size` a power of two.
    #[new]
    #[pyo3(signature = (*, owner, media_ssrc, media_payload_types, codec, history_size,
        estimate_bitrate))]
    fn new(
        owner: PyObject,
        media_ssrc: u32,
        media_payload_types: Vec<u8>,
        codec: &str,
        history_size: usize,
        estimate_bitrate: bool,
    ) -> PyResult<Self> {
        if !history_size.is_power_of_two() {
            return Err(PyValueError::new_err("history_size must be a power of two"));
        }
        let mut table = [false; 128];
        for pt in media_payload_types {
            *table
                .get_mut(pt as usize)
                .ok_or_else(|| PyValueError::new_err("payload type"))? = true;
        }
        let codec = match codec.to_ascii_lowercase().as_str() {
            "video/vp8" => KeyframeCodec::Vp8,
            "video/h264" => KeyframeCodec::H264,
            _ => KeyframeCodec::None,
        };
        Ok(Self {
            owner,
            media_ssrc,
            media_payload_types: table,
            codec,
            history: vec![None; history_size],
            highest: None,
            last_timestamp: None,
            outputs: Vec::new(),
            estimator: estimate_bitrate.then(RemoteBitrateEstimator::new),
            python_forwarding: true,
            lost_upstream: 0,
        })
    }

    #[getter]
    fn media_ssrc(&self) -> u32 {
        self.media_ssrc
    }

    /// The publisher restarted its stream under `media_ssrc`: forget sequence and history.
    fn reset(&mut self, media_ssrc: u32) {
        self.media_ssrc = media_ssrc;
        self.highest = None;
        self.last_timestamp = None;
        self.history.iter_mut().for_each(|entry| *entry = None);
    }

    /// Feed the uplink estimate with a packet that reached Python first (an RTX repair).
    fn estimate(
        &mut self,
        arrival_time_ms: i64,
        abs_send_time: u32,
        payload_size: i64,
    ) -> Option<i64> {
        self.estimator
            .as_mut()?
            .add(arrival_time_ms, abs_send_time, payload_size)
    }

    fn add_output(&mut self, output: Py<Output>) {
        self.outputs.push(output);
    }

    fn remove_output(&mut self, py: Python<'_>, output: &Bound<'_, Output>) {
        let target = output.as_ptr();
        self.outputs.retain(|o| o.bind(py).as_ptr() != target);
    }

    /// (extended sequence number, packet) for a publisher sequence number, if still kept.
    fn history_packet<'py>(
        &self,
        py: Python<'py>,
        sequence_number: u16,
    ) -> Option<(i64, Bound<'py, PyBytes>)> {
        let slot = sequence_number as usize & (self.history.len() - 1);
        match &self.history[slot] {
            Some((extended, data)) if data[2..4] == sequence_number.to_be_bytes() => {
                Some((*extended, PyBytes::new(py, data)))
            }
            _ => None,
        }
    }

    /// One decrypted packet that reached Python first (an RTX repair unwrapped there, the
    /// first packet of a new source): handled and forwarded as if it came natively.
    /// Returns its record, or None when it is not this track's.
    #[pyo3(signature = (data, ids=(0, 0)))]
    fn ingest<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        ids: (u8, u8),
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let ids = IncomingExtensions {
            abs_send_time_id: ids.0,
            audio_level_id: ids.1,
        };
        let Some(parsed) = rtp::parse(data, ids) else {
            return Ok(None);
        };
        let (arrival_ms, ntp) = ntp_now();
        let abs_send_time = ((ntp >> 14) & 0x00FF_FFFF) as u32;
        let Some(outcome) = self.handle(py, data, &parsed, abs_send_time, arrival_ms) else {
            return Ok(None);
        };
        self.flush(py);
        self.record(py, data, &parsed, arrival_ms, &outcome)
            .map(Some)
    }
}

/// What `Ingress.receive` returns: packet records, and the datagrams read that were not a
/// track's, with their source address.
type Received<'py> = (
    Vec<Bound<'py, PyTuple>>,
    Vec<(Bound<'py, PyBytes>, Option<(String, u16)>)>,
);

/// A publisher transport's incoming SRTP: packets of registered tracks are decrypted and
/// forwarded here, a burst at a time (the socket is drained with `recvmmsg`).
#[pyclass(module = "switchboard_sfu._fastpath")]
pub struct Ingress {
    srtp: Py<SrtpSession>,
    ids: IncomingExtensions,
    tracks: HashMap<u32, Py<Track>>,
    buffers: Vec<[u8; DATAGRAM_SIZE]>,
    /// Packets that failed SRTP authentication or parsing (dropped, as aiortc drops them).
    #[pyo3(get)]
    dropped: u64,
}

impl Ingress {
    /// Handle one datagram; Ok(None) when it is not a registered track's (left untouched).
    fn one<'py>(
        &mut self,
        py: Python<'py>,
        datagram: &[u8],
        abs_send_time: u32,
        arrival_ms: u64,
        touched: &mut Vec<u32>,
    ) -> PyResult<Option<Option<Bound<'py, PyTuple>>>> {
        if !rtp::is_rtp(datagram) {
            return Ok(None);
        }
        let ssrc = rtp::ssrc_of(datagram);
        let Some(track) = self.tracks.get(&ssrc) else {
            return Ok(None);
        };
        let mut data = datagram.to_vec();
        if self.srtp.get().unprotect(&mut data).is_err() {
            self.dropped += 1;
            return Ok(Some(None));
        }
        let Some(parsed) = rtp::parse(&data, self.ids) else {
            self.dropped += 1;
            return Ok(Some(None));
        };
        let mut track = track.bind(py).borrow_mut();
        let Some(outcome) = track.handle(py, &data, &parsed, abs_send_time, arrival_ms) else {
            return Ok(Some(None));
        };
        if !touched.contains(&ssrc) {
            touched.push(ssrc);
        }
        track
            .record(py, &data, &parsed, arrival_ms, &outcome)
            .map(|r| Some(Some(r)))
    }

    /// Read what else is queued on the socket (without blocking): (length, source) each.
    fn drain(&mut self, fd: i32, limit: usize) -> Vec<(usize, Option<(String, u16)>)> {
        let count = limit.min(self.buffers.len());
        let mut iovecs: Vec<libc::iovec> = self.buffers[..count]
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr() as *mut libc::c_void,
                iov_len: DATAGRAM_SIZE,
            })
            .collect();
        // SAFETY: zeroed mmsghdr/sockaddr_storage are valid; pointers below live for the call.
        let mut names: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; count];
        let mut messages: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; count];
        for i in 0..count {
            let header = &mut messages[i].msg_hdr;
            header.msg_name = &mut names[i] as *mut _ as *mut libc::c_void;
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = &mut iovecs[i];
            header.msg_iovlen = 1;
        }
        // SAFETY: valid descriptor and `count` initialised messages.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                messages.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            return Vec::new();
        }
        (0..n as usize)
            .map(|i| {
                let truncated = messages[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                let length = if truncated {
                    0
                } else {
                    messages[i].msg_len as usize
                };
                (length, address_of(&names[i]))
            })
            .collect()
    }
}

fn address_of(storage: &libc::sockaddr_storage) -> Option<(String, u16)> {
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some((ip.to_string(), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some((
                Ipv6Addr::from(sin6.sin6_addr.s6_addr).to_string(),
                u16::from_be(sin6.sin6_port),
            ))
        }
        _ => None,
    }
}

#[pymethods]
impl Ingress {
    /// `srtp`: the transport's receiving session; `abs_send_time_id`/`audio_level_id`: the
    /// publisher's extension ids (0: none).
    #[new]
    #[pyo3(signature = (*, srtp, abs_send_time_id, audio_level_id))]
    fn new(srtp: Py<SrtpSession>, abs_send_time_id: u8, audio_level_id: u8) -> PyResult<Self> {
        Ok(Self {
            srtp,
            ids: IncomingExtensions {
                abs_send_time_id,
                audio_level_id,
            },
            tracks: HashMap::new(),
            buffers: vec![[0; DATAGRAM_SIZE]; MAX_BATCH],
            dropped: 0,
        })
    }

    fn add_track(&mut self, py: Python<'_>, track: Py<Track>) {
        let ssrc = track.borrow(py).media_ssrc;
        self.tracks.retain(|_, t| !t.is(&track));
        self.tracks.insert(ssrc, track);
    }

    fn remove_track(&mut self, track: &Bound<'_, Track>) {
        self.tracks.retain(|_, t| !t.is(track));
    }

    /// Handle `datagram` and whatever else is already queued on the socket it came from
    /// (`drain_fd`, read without blocking; None for relayed datagrams). Returns None when
    /// `datagram` is not a registered track's RTP (nothing read: the caller handles it), else
    /// (records of the packets handled, [(datagram, (host, port))] read but not ours).
    #[pyo3(signature = (datagram, drain_fd=None))]
    fn receive<'py>(
        &mut self,
        py: Python<'py>,
        datagram: &[u8],
        drain_fd: Option<i32>,
    ) -> PyResult<Option<Received<'py>>> {
        let (arrival_ms, ntp) = ntp_now();
        let abs_send_time = ((ntp >> 14) & 0x00FF_FFFF) as u32;
        let mut touched = Vec::new();
        let mut records = Vec::new();
        let mut others = Vec::new();
        match self.one(py, datagram, abs_send_time, arrival_ms, &mut touched)? {
            None => return Ok(None),
            Some(record) => records.extend(record),
        }
        let mut budget = if drain_fd.is_some() { MAX_BATCH - 1 } else { 0 };
        while budget > 0 {
            let batch = self.drain(drain_fd.unwrap_or(-1), budget);
            if batch.is_empty() {
                break;
            }
            budget -= batch.len();
            for (i, (length, source)) in batch.into_iter().enumerate() {
                if length == 0 {
                    continue;
                }
                let data = self.buffers[i][..length].to_vec();
                match self.one(py, &data, abs_send_time, arrival_ms, &mut touched)? {
                    Some(record) => records.extend(record),
                    None => others.push((PyBytes::new(py, &data), source)),
                }
            }
        }
        for ssrc in touched {
            if let Some(track) = self.tracks.get(&ssrc) {
                track.bind(py).borrow().flush(py);
            }
        }
        Ok(Some((records, others)))
    }
}
