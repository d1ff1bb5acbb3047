//! Reading incoming RTP: the fixed header, the extensions the forwarding core uses, and where
//! frames and keyframes start (the twin of `switchboard_sfu.media.keyframes`).

/// A parsed (already decrypted) RTP packet; `payload` excludes padding.
pub struct Parsed {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload_start: usize,
    pub payload_end: usize,
    pub padding_size: u8,
    pub abs_send_time: Option<u32>,
    pub audio_level: Option<(bool, u8)>,
}

/// Extension ids of the publisher's transport (0: not negotiated).
#[derive(Clone, Copy, Default)]
pub struct IncomingExtensions {
    pub abs_send_time_id: u8,
    pub audio_level_id: u8,
}

pub fn ssrc_of(data: &[u8]) -> u32 {
    u32::from_be_bytes([data[8], data[9], data[10], data[11]])
}

/// RTP (not RTCP, RFC 5761) by its first two bytes, as aiortc tells them apart.
pub fn is_rtp(data: &[u8]) -> bool {
    data.len() >= 12 && (128..192).contains(&data[0]) && !(192..224).contains(&data[1])
}

/// Parse like aiortc's `RtpPacket.parse` (None where it raises).
pub fn parse(data: &[u8], ids: IncomingExtensions) -> Option<Parsed> {
    if data.len() < 12 || data[0] >> 6 != 2 {
        return None;
    }
    let padding = data[0] & 0x20 != 0;
    let extension = data[0] & 0x10 != 0;
    let csrc_count = (data[0] & 0x0F) as usize;
    let mut pos = 12 + 4 * csrc_count;
    let mut abs_send_time = None;
    let mut audio_level = None;
    if extension {
        if data.len() < pos + 4 {
            return None;
        }
        let profile = u16::from_be_bytes([data[pos], data[pos + 1]]);
        let length = 4 * u16::from_be_bytes([data[pos + 2], data[pos + 3]]) as usize;
        pos += 4;
        if data.len() < pos + length {
            return None;
        }
        let mut each = |id: u8, value: &[u8]| {
            if id == 0 {
                return;
            }
            if id == ids.abs_send_time_id && value.len() == 3 {
                abs_send_time = Some(u32::from_be_bytes([0, value[0], value[1], value[2]]));
            } else if id == ids.audio_level_id && value.len() == 1 {
                audio_level = Some((value[0] & 0x80 != 0, value[0] & 0x7F));
            }
        };
        let block = &data[pos..pos + length];
        let mut i = 0;
        if profile == 0xBEDE {
            while i < block.len() {
                if block[i] == 0 {
                    i += 1;
                    continue;
                }
                let id = block[i] >> 4;
                let len = (block[i] & 0x0F) as usize + 1;
                i += 1;
                if block.len() < i + len {
                    return None;
                }
                each(id, &block[i..i + len]);
                i += len;
            }
        } else if profile == 0x1000 {
            while i < block.len() {
                if block[i] == 0 {
                    i += 1;
                    continue;
                }
                if block.len() < i + 2 {
                    return None;
                }
                let (id, len) = (block[i], block[i + 1] as usize);
                i += 2;
                if block.len() < i + len {
                    return None;
                }
                each(id, &block[i..i + len]);
                i += len;
            }
        }
        pos += length;
    }
    let mut end = data.len();
    let mut padding_size = 0;
    if padding {
        padding_size = *data.last()?;
        if padding_size == 0 || end < pos + padding_size as usize {
            return None;
        }
        end -= padding_size as usize;
    }
    if pos > end {
        return None;
    }
    Some(Parsed {
        marker: data[1] & 0x80 != 0,
        payload_type: data[1] & 0x7F,
        sequence_number: u16::from_be_bytes([data[2], data[3]]),
        timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        ssrc: ssrc_of(data),
        payload_start: pos,
        payload_end: end,
        padding_size,
        abs_send_time,
        audio_level,
    })
}

/// Which codec's keyframes a track recognises.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum KeyframeCodec {
    None,
    Vp8,
    H264,
}

/// True when this payload (of a packet that starts a frame) begins a keyframe.
pub fn is_keyframe_start(codec: KeyframeCodec, payload: &[u8]) -> bool {
    match codec {
        KeyframeCodec::Vp8 => vp8_keyframe_start(payload),
        KeyframeCodec::H264 => h264_has_keyframe(payload),
        KeyframeCodec::None => false,
    }
}

fn vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    if first & 0x10 == 0 || first & 0x07 != 0 {
        return false;
    }
    let mut pos = 1;
    if first & 0x80 != 0 {
        let Some(&ext) = payload.get(1) else {
            return false;
        };
        pos = 2;
        if ext & 0x80 != 0 {
            let Some(&picture_id) = payload.get(pos) else {
                return false;
            };
            pos += if picture_id & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            pos += 1;
        }
        if ext & 0x30 != 0 {
            pos += 1;
        }
    }
    match payload.get(pos) {
        Some(header) => header & 0x01 == 0,
        None => false,
    }
}

fn h264_has_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1F {
        IDR | SPS => true,
        24 => {
            // STAP-A: walk the aggregated NAL units.
            let mut pos = 1;
            while pos + 2 < payload.len() {
                let size = u16::from_be_bytes([payload[pos], payload[pos + 1]]) as usize;
                if matches!(payload[pos + 2] & 0x1F, IDR | SPS) {
                    return true;
                }
                pos += 2 + size;
            }
            false
        }
        28 => payload.len() > 1 && payload[1] & 0x80 != 0 && matches!(payload[1] & 0x1F, IDR | SPS),
        _ => false,
    }
}
