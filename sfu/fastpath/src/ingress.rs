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
use crate::receive_stats::{NackGenerator, StreamStatistics};
use crate::rewrite::Packet;
use crate::rtp::{self, IncomingExtensions, KeyframeCodec, Parsed};
use crate::srtp::SrtpSession;

/// Seconds between the NTP epoch (1900) and the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// Datagrams read per call at most: the event loop gets control back after this many.
const MAX_BATCH: usize = 64;
const DATAGRAM_SIZE: usize = 1600;

/// The time now: (NTP milliseconds, as aiortc's clock.current_ms; 64-bit NTP; Unix seconds,
/// as time.time()).
fn ntp_now() -> (u64, u64, f64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ms = (now.as_secs() + NTP_UNIX_OFFSET) * 1000 + u64::from(now.subsec_millis());
    let ntp = ((now.as_secs() + NTP_UNIX_OFFSET) << 32)
        | ((u64::from(now.subsec_nanos()) << 32) / 1_000_000_000);
    (ms, ntp, now.as_secs_f64())
}

/// aiortc's `StreamStatistics` fields as Python hands them over: (base_seq, max_seq, cycles,
/// packets_received, jitter_q4, last_arrival, last_timestamp).
type StatisticsState = (
    Option<u16>,
    Option<u16>,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<u32>,
);

/// What a track received in one burst, reported to Python once (see `Track::summary`).
#[derive(Default)]
struct Burst {
    packets: u64,
    bytes: u64,
    sent_packets: u64,
    sent_bytes: u64,
    estimate: Option<i64>,
    /// The missing sequence numbers each time a packet revealed new gaps (one NACK each).
    nacks: Vec<Vec<u16>>,
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
    /// aiortc's receive statistics and NACK generator of this stream, once Python handed them
    /// over (`adopt_receive_state`): natively received packets are counted here.
    stats: Option<StreamStatistics>,
    nacks: Option<NackGenerator>,
    burst: Burst,
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

    /// Account for one natively received packet as aiortc's receiver and the publication do:
    /// receive statistics, NACK generator, received and sent counts, uplink estimate.
    fn count(&mut self, parsed: &Parsed, outcome: &Outcome, now: f64) {
        if let Some(stats) = &mut self.stats {
            stats.add(parsed.sequence_number, parsed.timestamp, now);
        }
        if let Some(nacks) = &mut self.nacks {
            if nacks.add(parsed.sequence_number) {
                self.burst
                    .nacks
                    .push(nacks.missing.iter().copied().collect());
            }
        }
        let burst = &mut self.burst;
        burst.packets += 1;
        burst.bytes +=
            (parsed.payload_end - parsed.payload_start) as u64 + u64::from(parsed.padding_size);
        burst.sent_packets += outcome.sent_packets;
        burst.sent_bytes += outcome.sent_bytes;
        if outcome.estimate.is_some() {
            burst.estimate = outcome.estimate;
        }
    }

    /// (owner, packets received, their bytes incl. padding, packets sent, payload bytes sent,
    ///  newest uplink estimate in bit/s or None, [missing sequence numbers of each NACK due])
    /// since the last summary.
    fn summary<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let burst = std::mem::take(&mut self.burst);
        (
            self.owner.clone_ref(py),
            burst.packets,
            burst.bytes,
            burst.sent_packets,
            burst.sent_bytes,
            burst.estimate,
            burst.nacks,
        )
            .into_pyobject(py)
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
            stats: None,
            nacks: None,
            burst: Burst::default(),
        })
    }

    #[getter]
    fn media_ssrc(&self) -> u32 {
        self.media_ssrc
    }

    /// Count natively received packets in aiortc's receive statistics from now on, starting
    /// from `statistics` ((base_seq, max_seq, cycles, packets_received, jitter_q4,
    /// last_arrival, last_timestamp), all None for a new stream) with clock rate
    /// `clock_rate`; and in its NACK generator when `nack` ((max_seq, missing)) is given.
    #[pyo3(signature = (*, clock_rate, statistics, nack))]
    fn adopt_receive_state(
        &mut self,
        clock_rate: i64,
        statistics: Option<StatisticsState>,
        nack: Option<(Option<u16>, Vec<u16>)>,
    ) {
        let mut stats = StreamStatistics {
            clock_rate,
            ..Default::default()
        };
        if let Some((base_seq, max_seq, cycles, received, jitter_q4, arrival, timestamp)) =
            statistics
        {
            stats.base_seq = base_seq;
            stats.max_seq = max_seq;
            stats.cycles = cycles;
            stats.packets_received = received;
            stats.jitter_q4 = jitter_q4;
            stats.last_arrival = arrival;
            stats.last_timestamp = timestamp;
        }
        self.stats = Some(stats);
        self.nacks = nack.map(|(max_seq, missing)| NackGenerator {
            max_seq,
            missing: missing.into_iter().collect(),
        });
    }

    /// The receive statistics' fields, in `adopt_receive_state`'s order (None before then).
    #[getter]
    fn receive_statistics(&self) -> Option<StatisticsState> {
        self.stats.as_ref().map(|s| {
            (
                s.base_seq,
                s.max_seq,
                s.cycles,
                s.packets_received,
                s.jitter_q4,
                s.last_arrival,
                s.last_timestamp,
            )
        })
    }

    /// The NACK generator's (max_seq, sorted missing), None when there is none.
    #[getter]
    fn nack_state(&self) -> Option<(Option<u16>, Vec<u16>)> {
        self.nacks
            .as_ref()
            .map(|n| (n.max_seq, n.missing.iter().copied().collect()))
    }

    /// Count a packet of this stream that reached Python first (`StreamStatistics.add`).
    fn count_received(&mut self, sequence_number: u16, timestamp: u32) {
        if let Some(stats) = &mut self.stats {
            stats.add(sequence_number, timestamp, ntp_now().2);
        }
    }

    /// `NackGenerator.add` for a packet that reached Python first (a repair).
    fn nack_add(&mut self, sequence_number: u16) -> bool {
        self.nacks
            .as_mut()
            .is_some_and(|nacks| nacks.add(sequence_number))
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
        let (arrival_ms, ntp, _) = ntp_now();
        let abs_send_time = ((ntp >> 14) & 0x00FF_FFFF) as u32;
        let Some(outcome) = self.handle(py, data, &parsed, abs_send_time, arrival_ms) else {
            return Ok(None);
        };
        self.flush(py);
        self.record(py, data, &parsed, arrival_ms, &outcome)
            .map(Some)
    }
}

/// A datagram read that was not a track's, and its source address.
type Other<'py> = (Bound<'py, PyBytes>, Option<(String, u16)>);

/// What `Ingress.receive` returns: a summary of each track that received packets, a record
/// of each packet Python forwards too, and the datagrams read that were not a track's, with
/// their source address.
type Received<'py> = (
    Vec<Bound<'py, PyTuple>>,
    Vec<Bound<'py, PyTuple>>,
    Vec<Other<'py>>,
);

/// A publisher transport's incoming SRTP: packets of registered tracks are decrypted and
/// forwarded here, a burst at a time (the socket is drained with `recvmmsg`).
#[pyclass(module = "switchboard_sfu._fastpath")]
pub struct Ingress {
    srtp: Py<SrtpSession>,
    ids: IncomingExtensions,
    tracks: HashMap<u32, Py<Track>>,
    buffers: Vec<[u8; DATAGRAM_SIZE]>,
    names: Vec<libc::sockaddr_storage>,
    /// Packets that failed SRTP authentication or parsing (dropped, as aiortc drops them).
    #[pyo3(get)]
    dropped: u64,
}

/// The time of one burst: arrival (NTP ms), abs-send-time to write, Unix seconds.
#[derive(Clone, Copy)]
struct BurstTime {
    arrival_ms: u64,
    abs_send_time: u32,
    now: f64,
}

impl BurstTime {
    fn now() -> Self {
        let (arrival_ms, ntp, now) = ntp_now();
        Self {
            arrival_ms,
            abs_send_time: ((ntp >> 14) & 0x00FF_FFFF) as u32,
            now,
        }
    }
}

/// Records and touched tracks of the burst being handled.
#[derive(Default)]
struct BurstOutput<'py> {
    touched: Vec<u32>,
    records: Vec<Bound<'py, PyTuple>>,
}

impl Ingress {
    /// Handle one datagram; false when it is not a registered track's (left untouched).
    fn one<'py>(
        &mut self,
        py: Python<'py>,
        datagram: &[u8],
        time: BurstTime,
        out: &mut BurstOutput<'py>,
    ) -> PyResult<bool> {
        if !rtp::is_rtp(datagram) {
            return Ok(false);
        }
        let ssrc = rtp::ssrc_of(datagram);
        let Some(track) = self.tracks.get(&ssrc) else {
            return Ok(false);
        };
        let mut data = datagram.to_vec();
        if self.srtp.get().unprotect(&mut data).is_err() {
            self.dropped += 1;
            return Ok(true);
        }
        let Some(parsed) = rtp::parse(&data, self.ids) else {
            self.dropped += 1;
            return Ok(true);
        };
        let mut track = track.bind(py).borrow_mut();
        let Some(outcome) = track.handle(py, &data, &parsed, time.abs_send_time, time.arrival_ms)
        else {
            return Ok(true);
        };
        track.count(&parsed, &outcome, time.now);
        if !out.touched.contains(&ssrc) {
            out.touched.push(ssrc);
        }
        if track.python_forwarding {
            out.records
                .push(track.record(py, &data, &parsed, time.arrival_ms, &outcome)?);
        }
        Ok(true)
    }

    /// Read what is queued on the socket (without blocking), at most `limit` datagrams: their
    /// lengths (0: truncated) in `self.buffers`, sources in `self.names`; Err(errno) when
    /// the read failed for another reason than an empty queue.
    fn drain(&mut self, fd: i32, limit: usize) -> Result<Vec<usize>, i32> {
        let count = limit.min(self.buffers.len());
        let mut iovecs: Vec<libc::iovec> = self.buffers[..count]
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr() as *mut libc::c_void,
                iov_len: DATAGRAM_SIZE,
            })
            .collect();
        // SAFETY: a zeroed mmsghdr is valid; the pointers below live for the call.
        let mut messages: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; count];
        for (i, message) in messages.iter_mut().enumerate() {
            let header = &mut message.msg_hdr;
            header.msg_name = &mut self.names[i] as *mut _ as *mut libc::c_void;
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
        if n < 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return if errno == libc::EAGAIN || errno == libc::EWOULDBLOCK || errno == libc::EINTR {
                Ok(Vec::new())
            } else {
                Err(errno)
            };
        }
        Ok((0..n as usize)
            .map(|i| {
                if messages[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    0
                } else {
                    messages[i].msg_len as usize
                }
            })
            .collect())
    }

    /// Handle the datagrams `drain` just read; those not ours go to `others`.
    fn handle_drained<'py>(
        &mut self,
        py: Python<'py>,
        lengths: Vec<usize>,
        time: BurstTime,
        out: &mut BurstOutput<'py>,
        others: &mut Vec<Other<'py>>,
    ) -> PyResult<()> {
        for (i, length) in lengths.into_iter().enumerate() {
            if length == 0 {
                continue;
            }
            let data = self.buffers[i][..length].to_vec();
            if !self.one(py, &data, time, out)? {
                others.push((PyBytes::new(py, &data), address_of(&self.names[i])));
            }
        }
        Ok(())
    }

    /// Send what the touched tracks queued and summarise the burst.
    fn finish<'py>(
        &mut self,
        py: Python<'py>,
        out: BurstOutput<'py>,
        others: Vec<Other<'py>>,
    ) -> PyResult<Received<'py>> {
        let mut summaries = Vec::with_capacity(out.touched.len());
        for ssrc in out.touched {
            if let Some(track) = self.tracks.get(&ssrc) {
                let mut track = track.bind(py).borrow_mut();
                track.flush(py);
                summaries.push(track.summary(py)?);
            }
        }
        Ok((summaries, out.records, others))
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
            // SAFETY: all-zero is a valid sockaddr_storage.
            names: vec![unsafe { std::mem::zeroed() }; MAX_BATCH],
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
    /// (summaries, records, others): each track's `Track` summary of the burst, the records
    /// of packets Python forwards too (`python_forwarding`), and [(datagram, (host, port))]
    /// read but not ours.
    #[pyo3(signature = (datagram, drain_fd=None))]
    fn receive<'py>(
        &mut self,
        py: Python<'py>,
        datagram: &[u8],
        drain_fd: Option<i32>,
    ) -> PyResult<Option<Received<'py>>> {
        let time = BurstTime::now();
        let mut out = BurstOutput::default();
        let mut others = Vec::new();
        if !self.one(py, datagram, time, &mut out)? {
            return Ok(None);
        }
        if let Some(fd) = drain_fd {
            let mut budget = MAX_BATCH - 1;
            while budget > 0 {
                let lengths = self.drain(fd, budget).unwrap_or_default();
                if lengths.is_empty() {
                    break;
                }
                budget -= lengths.len();
                self.handle_drained(py, lengths, time, &mut out, &mut others)?;
            }
        }
        self.finish(py, out, others).map(Some)
    }

    /// Read and handle what is queued on the socket `fd` (up to 64 datagrams, without
    /// blocking), as `receive` does: the socket's reader when the event loop says it is
    /// readable. None when the read failed (the caller lets the event loop's own reader meet
    /// the error), else as `receive`.
    fn receive_from<'py>(&mut self, py: Python<'py>, fd: i32) -> PyResult<Option<Received<'py>>> {
        let Ok(lengths) = self.drain(fd, MAX_BATCH) else {
            return Ok(None);
        };
        let time = BurstTime::now();
        let mut out = BurstOutput::default();
        let mut others = Vec::new();
        self.handle_drained(py, lengths, time, &mut out, &mut others)?;
        self.finish(py, out, others).map(Some)
    }
}
