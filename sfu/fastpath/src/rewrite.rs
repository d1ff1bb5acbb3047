//! Per-subscriber rewriting of a forwarded RTP packet: the byte-level twin of
//! `switchboard_sfu.media.rtp_writer.RtpWriter` plus the offsets `Subscription.forward` applies.

/// What the publisher's packet contributes to the forwarded one (its header is not reused).
pub struct Packet<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub payload: &'a [u8],
    pub padding_size: u8,
    pub abs_send_time: Option<u32>,
    /// (voice activity, level) from the publisher's ssrc-audio-level extension.
    pub audio_level: Option<(bool, u8)>,
}

/// Header extensions negotiated with the subscriber (RFC 8285 one-byte form).
#[derive(Clone, Default)]
pub struct Extensions {
    /// The encoded MID element (id/length byte and value), empty when not negotiated.
    pub mid_element: Vec<u8>,
    /// Extension ids, 0 when not negotiated.
    pub abs_send_time_id: u8,
    pub audio_level_id: u8,
}

/// VP8 payload-descriptor rewriting for layer switches (RFC 7741 picture ID and TL0PICIDX).
///
/// Reserved for simulcast: when a subscriber moves between layers, each layer's picture IDs
/// and TL0PICIDX must continue the previous ones. Nothing sets it yet; an output that needs it
/// is not native (`Output` refuses it) and its packets take the Python path.
#[derive(Clone, Copy)]
#[allow(dead_code)] // the slot simulcast fills in
pub struct Vp8Rewrite {
    pub picture_id_offset: u16,
    pub tl0picidx_offset: u8,
}

/// One subscriber's rewrite state: what turns a publisher packet into the subscriber's.
///
/// * `ssrc`: the subscriber-side SSRC (its sender's);
/// * `payload_types`: publisher payload type → negotiated subscriber payload type, indexed by
///   the publisher's (0..128), `NOT_NEGOTIATED` when the subscriber has no such codec;
/// * `seq_offset`, `ts_offset`: added (mod 2^16, 2^32) to sequence number and timestamp;
/// * `start`: extended publisher sequence number of the first forwarded packet (older ones
///   are never sent: they precede this subscriber's stream);
/// * `vp8`: picture-id/TL0PICIDX rewriting slot (see `Vp8Rewrite`);
/// * `extensions`: the subscriber's header extension ids and MID.
///
/// A layer switch changes only this struct: new offsets (and, for VP8, `vp8`) chosen at the
/// target layer's keyframe; the subscriber keeps its `ssrc` and sees one continuous stream.
#[derive(Clone)]
pub struct Rewrite {
    pub ssrc: u32,
    pub payload_types: [u8; 128],
    pub seq_offset: u16,
    pub ts_offset: u32,
    pub start: i64,
    #[allow(dead_code)] // always None until layer switching sets it
    pub vp8: Option<Vp8Rewrite>,
    pub extensions: Extensions,
}

pub const NOT_NEGOTIATED: u8 = 0xFF;
const ONE_BYTE_PROFILE: u16 = 0xBEDE;

impl Rewrite {
    /// Serialise `packet` as this subscriber's into `out` (cleared first); returns the
    /// subscriber-side sequence number and timestamp, or None when the payload type was not
    /// negotiated with the subscriber.
    pub fn write(&self, packet: &Packet, out: &mut Vec<u8>) -> Option<(u16, u32)> {
        let payload_type = *self.payload_types.get(packet.payload_type as usize)?;
        if payload_type == NOT_NEGOTIATED {
            return None;
        }
        let sequence_number = packet.sequence_number.wrapping_add(self.seq_offset);
        let timestamp = packet.timestamp.wrapping_add(self.ts_offset);
        write_packet(
            out,
            &self.extensions,
            payload_type,
            packet,
            sequence_number,
            timestamp,
            self.ssrc,
        );
        Some((sequence_number, timestamp))
    }
}

/// Exactly `RtpWriter.write`: fixed header, one-byte extensions (MID, abs-send-time, audio
/// level, in that order, zero-padded to a word), payload, then RTP padding.
pub fn write_packet(
    out: &mut Vec<u8>,
    extensions: &Extensions,
    payload_type: u8,
    packet: &Packet,
    sequence_number: u16,
    timestamp: u32,
    ssrc: u32,
) {
    out.clear();
    let mut elements = [0u8; 64];
    let mut n = 0;
    let mid = &extensions.mid_element;
    elements[..mid.len()].copy_from_slice(mid);
    n += mid.len();
    if let (Some(value), id @ 1..) = (packet.abs_send_time, extensions.abs_send_time_id) {
        let value = value & 0x00FF_FFFF;
        elements[n..n + 4].copy_from_slice(&[
            (id << 4) | 2,
            (value >> 16) as u8,
            (value >> 8) as u8,
            value as u8,
        ]);
        n += 4;
    }
    if let (Some((voice, level)), id @ 1..) = (packet.audio_level, extensions.audio_level_id) {
        elements[n] = id << 4;
        elements[n + 1] = (if voice { 0x80 } else { 0 }) | (level & 0x7F);
        n += 2;
    }
    let mut first = 0x80u8;
    if packet.padding_size > 0 {
        first |= 0x20;
    }
    if n > 0 {
        first |= 0x10;
    }
    out.push(first);
    out.push(((packet.marker as u8) << 7) | payload_type);
    out.extend_from_slice(&sequence_number.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    if n > 0 {
        let words = n.div_ceil(4);
        out.extend_from_slice(&ONE_BYTE_PROFILE.to_be_bytes());
        out.extend_from_slice(&(words as u16).to_be_bytes());
        out.extend_from_slice(&elements[..n]);
        out.resize(out.len() + words * 4 - n, 0);
    }
    out.extend_from_slice(packet.payload);
    if packet.padding_size > 0 {
        out.resize(out.len() + packet.padding_size as usize - 1, 0);
        out.push(packet.padding_size);
    }
}

/// Encode the MID element as `RtpWriter` does (`id` 0 or an empty MID: none).
pub fn mid_element(id: u8, mid: &str) -> Vec<u8> {
    let bytes = mid.as_bytes();
    if id == 0 || bytes.is_empty() || bytes.len() > 16 {
        return Vec::new();
    }
    let mut element = vec![(id << 4) | (bytes.len() as u8 - 1)];
    element.extend_from_slice(bytes);
    element
}
