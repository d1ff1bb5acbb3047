//! What aiortc's receiver keeps per received stream, kept natively for a native track: its
//! receive statistics (`StreamStatistics`: the receiver reports' sequence, loss and jitter
//! fields) and its NACK generator (`NackGenerator`: the missing sequence numbers). Ports of
//! aiortc 1.16's, field for field, so Python hands their state over in both directions
//! (`Track.adopt_receive_state`, `Track.receive_statistics`, `Track.nack_state`).

use std::collections::BTreeSet;

/// aiortc's RTP_HISTORY_SIZE: how far behind the newest packet a missing one is still NACKed.
const NACK_HISTORY: u16 = 128;

/// `aiortc.utils.uint16_gt`: a > b in 16-bit serial order.
fn uint16_gt(a: u16, b: u16) -> bool {
    (a < b && b - a > 0x8000) || (a > b && a - b < 0x8000)
}

/// The fields of `StreamStatistics` that `add` changes.
#[derive(Clone, Debug, Default)]
pub struct StreamStatistics {
    pub base_seq: Option<u16>,
    pub max_seq: Option<u16>,
    pub cycles: i64,
    pub packets_received: i64,
    pub clock_rate: i64,
    pub jitter_q4: i64,
    pub last_arrival: Option<i64>,
    pub last_timestamp: Option<u32>,
}

impl StreamStatistics {
    /// `StreamStatistics.add`; `now` is the arrival time in seconds since the Unix epoch.
    pub fn add(&mut self, sequence_number: u16, timestamp: u32, now: f64) {
        let in_order = match self.max_seq {
            None => true,
            Some(max_seq) => uint16_gt(sequence_number, max_seq),
        };
        self.packets_received += 1;
        if self.base_seq.is_none() {
            self.base_seq = Some(sequence_number);
        }
        if !in_order {
            return;
        }
        let arrival = (now * self.clock_rate as f64) as i64;
        if let Some(max_seq) = self.max_seq {
            if sequence_number < max_seq {
                self.cycles += 1 << 16;
            }
        }
        self.max_seq = Some(sequence_number);
        if self.last_timestamp != Some(timestamp) && self.packets_received > 1 {
            if let (Some(last_arrival), Some(last_timestamp)) =
                (self.last_arrival, self.last_timestamp)
            {
                let diff = ((arrival - last_arrival)
                    - (i64::from(timestamp) - i64::from(last_timestamp)))
                .abs();
                self.jitter_q4 += diff - ((self.jitter_q4 + 8) >> 4);
            }
        }
        self.last_arrival = Some(arrival);
        self.last_timestamp = Some(timestamp);
    }
}

/// `NackGenerator`: the newest sequence number and the missing ones still worth a NACK.
#[derive(Clone, Debug, Default)]
pub struct NackGenerator {
    pub max_seq: Option<u16>,
    pub missing: BTreeSet<u16>,
}

impl NackGenerator {
    /// `NackGenerator.add`: true when this packet revealed missing ones.
    pub fn add(&mut self, sequence_number: u16) -> bool {
        let Some(max_seq) = self.max_seq else {
            self.max_seq = Some(sequence_number);
            return false;
        };
        let mut missed = false;
        if uint16_gt(sequence_number, max_seq) {
            let mut seq = max_seq.wrapping_add(1);
            while uint16_gt(sequence_number, seq) {
                self.missing.insert(seq);
                missed = true;
                seq = seq.wrapping_add(1);
            }
            self.max_seq = Some(sequence_number);
        } else {
            self.missing.remove(&sequence_number);
        }
        let min_seq = self.max_seq.unwrap_or(0).wrapping_sub(NACK_HISTORY);
        self.missing.retain(|&seq| !uint16_gt(min_seq, seq));
        missed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nacks_follow_aiortc() {
        let mut nacks = NackGenerator::default();
        assert!(!nacks.add(65534));
        assert!(nacks.add(1)); // 65535 and 0 missing, across the wrap
        assert_eq!(
            nacks.missing.iter().copied().collect::<Vec<_>>(),
            vec![0, 65535]
        );
        assert!(!nacks.add(0));
        assert_eq!(
            nacks.missing.iter().copied().collect::<Vec<_>>(),
            vec![65535]
        );
        assert!(nacks.add(300)); // everything older than 300 - 128 is forgotten
        assert_eq!(nacks.missing.len(), 128);
    }

    #[test]
    fn statistics_count_cycles_and_jitter() {
        let mut stats = StreamStatistics {
            clock_rate: 90000,
            ..Default::default()
        };
        stats.add(65535, 0, 1.0);
        stats.add(0, 3000, 1.0 + 1.0 / 30.0 + 0.01);
        stats.add(65534, 0, 1.1); // late: counted, no jitter
        assert_eq!(stats.packets_received, 3);
        assert_eq!(stats.cycles, 1 << 16);
        assert_eq!(stats.max_seq, Some(0));
        assert!(stats.jitter_q4 > 0);
    }
}
