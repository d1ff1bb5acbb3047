//! The receive-side bandwidth estimate of a publisher's uplink: a line-by-line port of aiortc
//! 1.16's `aiortc.rate.RemoteBitrateEstimator` (abs-send-time inter-arrival filter, Kalman
//! overuse estimator and detector, AIMD rate control), so the native path reports the same
//! estimates aiortc would. Python's `round()` rounds half to even: `round_ties_even` here.

const BURST_DELTA_THRESHOLD_MS: i64 = 5;
const MAX_ADAPT_OFFSET_MS: f64 = 15.0;
const MIN_NUM_DELTAS: i64 = 60;
const DELTA_COUNTER_MAX: i64 = 1000;
const MIN_FRAME_PERIOD_HISTORY_LENGTH: usize = 60;
const INTER_ARRIVAL_SHIFT: u32 = 26;
const TIMESTAMP_GROUP_LENGTH_MS: i64 = 5;
const TIMESTAMP_TO_MS: f64 = 1000.0 / (1u64 << INTER_ARRIVAL_SHIFT) as f64;

fn uint32_add(a: i64, b: i64) -> i64 {
    (a + b).rem_euclid(1 << 32)
}

fn uint32_gt(a: i64, b: i64) -> bool {
    let half = 0x8000_0000;
    (a > b && a - b < half) || (a < b && b - a > half)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Usage {
    Normal,
    Underusing,
    Overusing,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RateState {
    Hold,
    Increase,
    Decrease,
}

struct AimdRateControl {
    avg_max_bitrate_kbps: Option<f64>,
    var_max_bitrate_kbps: f64,
    current_bitrate: i64,
    current_bitrate_initialized: bool,
    first_estimated_throughput_time: Option<i64>,
    last_change_ms: Option<i64>,
    near_max: bool,
    latest_estimated_throughput: i64,
    rtt: i64,
    state: RateState,
}

impl AimdRateControl {
    fn new() -> Self {
        Self {
            avg_max_bitrate_kbps: None,
            var_max_bitrate_kbps: 0.4,
            current_bitrate: 30_000_000,
            current_bitrate_initialized: false,
            first_estimated_throughput_time: None,
            last_change_ms: None,
            near_max: false,
            latest_estimated_throughput: 30_000_000,
            rtt: 200,
            state: RateState::Hold,
        }
    }

    fn feedback_interval(&self) -> i64 {
        500
    }

    fn update(
        &mut self,
        usage: Usage,
        estimated_throughput: Option<i64>,
        now_ms: i64,
    ) -> Option<i64> {
        if !self.current_bitrate_initialized {
            if let Some(throughput) = estimated_throughput {
                match self.first_estimated_throughput_time {
                    None => self.first_estimated_throughput_time = Some(now_ms),
                    Some(first) if now_ms - first > 3000 => {
                        self.current_bitrate = throughput;
                        self.current_bitrate_initialized = true;
                    }
                    Some(_) => {}
                }
            }
        }
        if !self.current_bitrate_initialized && usage != Usage::Overusing {
            return None;
        }
        if usage == Usage::Normal && self.state == RateState::Hold {
            self.last_change_ms = Some(now_ms);
            self.state = RateState::Increase;
        } else if usage == Usage::Overusing {
            self.state = RateState::Decrease;
        } else if usage == Usage::Underusing {
            self.state = RateState::Hold;
        }
        let mut new_bitrate = self.current_bitrate;
        let estimated_throughput = match estimated_throughput {
            Some(value) => {
                self.latest_estimated_throughput = value;
                value
            }
            None => self.latest_estimated_throughput,
        };
        let estimated_throughput_kbps = estimated_throughput as f64 / 1000.0;
        if self.state == RateState::Increase {
            if let Some(avg) = self.avg_max_bitrate_kbps {
                let sigma_kbps = (self.var_max_bitrate_kbps * avg).sqrt();
                if estimated_throughput_kbps >= avg + 3.0 * sigma_kbps {
                    self.near_max = false;
                    self.avg_max_bitrate_kbps = None;
                }
            }
            if self.near_max {
                new_bitrate += self.additive_rate_increase(self.last_change_ms, now_ms);
            } else {
                new_bitrate +=
                    self.multiplicative_rate_increase(new_bitrate, self.last_change_ms, now_ms);
            }
            self.last_change_ms = Some(now_ms);
        } else if self.state == RateState::Decrease {
            if let Some(avg) = self.avg_max_bitrate_kbps {
                let sigma_kbps = (self.var_max_bitrate_kbps * avg).sqrt();
                if estimated_throughput_kbps < avg - 3.0 * sigma_kbps {
                    self.avg_max_bitrate_kbps = None;
                }
            }
            self.update_max_throughput_estimate(estimated_throughput_kbps);
            self.near_max = true;
            new_bitrate = (0.85 * estimated_throughput as f64).round_ties_even() as i64;
            self.last_change_ms = Some(now_ms);
            self.state = RateState::Hold;
        }
        self.current_bitrate = self.clamp_bitrate(new_bitrate, estimated_throughput);
        Some(self.current_bitrate)
    }

    fn additive_rate_increase(&self, last_ms: Option<i64>, now_ms: i64) -> i64 {
        // aiortc passes last_change_ms, always set by then.
        let last_ms = last_ms.unwrap_or(now_ms);
        (((now_ms - last_ms) * self.near_max_rate_increase()) as f64 / 1000.0) as i64
    }

    fn clamp_bitrate(&self, new_bitrate: i64, estimated_throughput: i64) -> i64 {
        let max_bitrate =
            ((1.5 * estimated_throughput as f64) as i64 + 10000).max(self.current_bitrate);
        new_bitrate.min(max_bitrate)
    }

    fn multiplicative_rate_increase(
        &self,
        new_bitrate: i64,
        last_ms: Option<i64>,
        now_ms: i64,
    ) -> i64 {
        let mut alpha: f64 = 1.08;
        if let Some(last_ms) = last_ms {
            let elapsed_ms = (now_ms - last_ms).min(1000);
            alpha = alpha.powf(elapsed_ms as f64 / 1000.0);
        }
        ((alpha - 1.0) * new_bitrate as f64).max(1000.0) as i64
    }

    fn near_max_rate_increase(&self) -> i64 {
        let bits_per_frame = self.current_bitrate as f64 / 30.0;
        let packets_per_frame = (bits_per_frame / (8.0 * 1200.0)).ceil();
        let avg_packet_size_bits = bits_per_frame / packets_per_frame;
        let response_time = (self.rtt + 100) as f64;
        4000.max(((avg_packet_size_bits * 1000.0) / response_time) as i64)
    }

    fn update_max_throughput_estimate(&mut self, estimated_throughput_kbps: f64) {
        let alpha = 0.05;
        let avg = match self.avg_max_bitrate_kbps {
            None => estimated_throughput_kbps,
            Some(avg) => (1.0 - alpha) * avg + alpha * estimated_throughput_kbps,
        };
        self.avg_max_bitrate_kbps = Some(avg);
        let norm = avg.max(1.0);
        self.var_max_bitrate_kbps = (1.0 - alpha) * self.var_max_bitrate_kbps
            + alpha * (avg - estimated_throughput_kbps).powi(2) / norm;
        self.var_max_bitrate_kbps = self.var_max_bitrate_kbps.clamp(0.4, 2.5);
    }
}

struct TimestampGroup {
    arrival_time: Option<i64>,
    first_timestamp: i64,
    last_timestamp: i64,
    size: i64,
}

impl TimestampGroup {
    fn new(timestamp: i64) -> Self {
        Self {
            arrival_time: None,
            first_timestamp: timestamp,
            last_timestamp: timestamp,
            size: 0,
        }
    }
}

struct InterArrival {
    group_length: i64,
    current: Option<TimestampGroup>,
    previous: Option<TimestampGroup>,
}

/// (timestamp delta, arrival time delta, size delta) between two complete groups.
type Deltas = (i64, i64, i64);

impl InterArrival {
    fn compute_deltas(
        &mut self,
        timestamp: i64,
        arrival_time: i64,
        packet_size: i64,
    ) -> Option<Deltas> {
        let mut deltas = None;
        match &self.current {
            None => self.current = Some(TimestampGroup::new(timestamp)),
            Some(current) => {
                if uint32_add(timestamp, -current.first_timestamp) >= 0x8000_0000 {
                    return None; // out of order
                }
                if self.new_timestamp_group(timestamp, arrival_time) {
                    let current = self.current.take().expect("current group");
                    if let Some(previous) = &self.previous {
                        deltas = Some((
                            uint32_add(current.last_timestamp, -previous.last_timestamp),
                            current.arrival_time.unwrap_or(0) - previous.arrival_time.unwrap_or(0),
                            current.size - previous.size,
                        ));
                    }
                    self.previous = Some(current);
                    self.current = Some(TimestampGroup::new(timestamp));
                } else if uint32_gt(timestamp, current.last_timestamp) {
                    self.current.as_mut().expect("current group").last_timestamp = timestamp;
                }
            }
        }
        let current = self.current.as_mut().expect("current group");
        current.size += packet_size;
        current.arrival_time = Some(arrival_time);
        deltas
    }

    fn belongs_to_burst(&self, timestamp: i64, arrival_time: i64) -> bool {
        let current = self.current.as_ref().expect("current group");
        let timestamp_delta = uint32_add(timestamp, -current.last_timestamp);
        let timestamp_delta_ms =
            (TIMESTAMP_TO_MS * timestamp_delta as f64).round_ties_even() as i64;
        let arrival_time_delta = arrival_time - current.arrival_time.unwrap_or(0);
        timestamp_delta_ms == 0
            || ((arrival_time_delta - timestamp_delta_ms) < 0
                && arrival_time_delta <= BURST_DELTA_THRESHOLD_MS)
    }

    fn new_timestamp_group(&self, timestamp: i64, arrival_time: i64) -> bool {
        if self.belongs_to_burst(timestamp, arrival_time) {
            return false;
        }
        let current = self.current.as_ref().expect("current group");
        uint32_add(timestamp, -current.first_timestamp) > self.group_length
    }
}

struct OveruseDetector {
    hypothesis: Usage,
    last_update_ms: Option<i64>,
    k_up: f64,
    k_down: f64,
    overuse_counter: i64,
    overuse_time: Option<f64>,
    overuse_time_threshold: f64,
    previous_offset: f64,
    threshold: f64,
}

impl OveruseDetector {
    fn new() -> Self {
        Self {
            hypothesis: Usage::Normal,
            last_update_ms: None,
            k_up: 0.0087,
            k_down: 0.039,
            overuse_counter: 0,
            overuse_time: None,
            overuse_time_threshold: 10.0,
            previous_offset: 0.0,
            threshold: 12.5,
        }
    }

    fn detect(&mut self, offset: f64, timestamp_delta_ms: f64, num_of_deltas: i64, now_ms: i64) {
        if num_of_deltas < 2 {
            return;
        }
        let t = num_of_deltas.min(MIN_NUM_DELTAS) as f64 * offset;
        if t > self.threshold {
            self.overuse_time = Some(match self.overuse_time {
                None => timestamp_delta_ms / 2.0,
                Some(time) => time + timestamp_delta_ms,
            });
            self.overuse_counter += 1;
            if self.overuse_time.unwrap_or(0.0) > self.overuse_time_threshold
                && self.overuse_counter > 1
                && offset >= self.previous_offset
            {
                self.overuse_counter = 0;
                self.overuse_time = Some(0.0);
                self.hypothesis = Usage::Overusing;
            }
        } else if t < -self.threshold {
            self.overuse_counter = 0;
            self.overuse_time = None;
            self.hypothesis = Usage::Underusing;
        } else {
            self.overuse_counter = 0;
            self.overuse_time = None;
            self.hypothesis = Usage::Normal;
        }
        self.previous_offset = offset;
        self.update_threshold(t, now_ms);
    }

    fn update_threshold(&mut self, modified_offset: f64, now_ms: i64) {
        let last = *self.last_update_ms.get_or_insert(now_ms);
        if modified_offset.abs() > self.threshold + MAX_ADAPT_OFFSET_MS {
            self.last_update_ms = Some(now_ms);
            return;
        }
        let k = if modified_offset.abs() < self.threshold {
            self.k_down
        } else {
            self.k_up
        };
        let time_delta_ms = (now_ms - last).min(100);
        self.threshold += k * (modified_offset.abs() - self.threshold) * time_delta_ms as f64;
        self.threshold = self.threshold.clamp(6.0, 600.0);
        self.last_update_ms = Some(now_ms);
    }
}

struct OveruseEstimator {
    e: [[f64; 2]; 2],
    num_of_deltas: i64,
    offset: f64,
    previous_offset: f64,
    slope: f64,
    ts_delta_hist: Vec<f64>,
    avg_noise: f64,
    var_noise: f64,
    process_noise: [f64; 2],
}

impl OveruseEstimator {
    fn new() -> Self {
        Self {
            e: [[100.0, 0.0], [0.0, 0.1]],
            num_of_deltas: 0,
            offset: 0.0,
            previous_offset: 0.0,
            slope: 1.0 / 64.0,
            ts_delta_hist: Vec::new(),
            avg_noise: 0.0,
            var_noise: 50.0,
            process_noise: [1e-13, 1e-3],
        }
    }

    fn update(
        &mut self,
        time_delta_ms: i64,
        timestamp_delta_ms: f64,
        size_delta: i64,
        hypothesis: Usage,
    ) {
        let min_frame_period = self.update_min_frame_period(timestamp_delta_ms);
        let t_ts_delta = time_delta_ms as f64 - timestamp_delta_ms;
        let fs_delta = size_delta as f64;
        self.num_of_deltas = (self.num_of_deltas + 1).min(DELTA_COUNTER_MAX);
        self.e[0][0] += self.process_noise[0];
        self.e[1][1] += self.process_noise[1];
        if (hypothesis == Usage::Overusing && self.offset < self.previous_offset)
            || (hypothesis == Usage::Underusing && self.offset > self.previous_offset)
        {
            self.e[1][1] += 10.0 * self.process_noise[1];
        }
        let h = [fs_delta, 1.0];
        let eh = [
            self.e[0][0] * h[0] + self.e[0][1] * h[1],
            self.e[1][0] * h[0] + self.e[1][1] * h[1],
        ];
        let residual = t_ts_delta - self.slope * h[0] - self.offset;
        if hypothesis == Usage::Normal {
            let max_residual = 3.0 * self.var_noise.sqrt();
            if residual.abs() < max_residual {
                self.update_noise_estimate(residual, min_frame_period);
            } else {
                let clamped = if residual < 0.0 {
                    -max_residual
                } else {
                    max_residual
                };
                self.update_noise_estimate(clamped, min_frame_period);
            }
        }
        let denom = self.var_noise + h[0] * eh[0] + h[1] * eh[1];
        let k = [eh[0] / denom, eh[1] / denom];
        let ikh = [
            [1.0 - k[0] * h[0], -k[0] * h[1]],
            [-k[1] * h[0], 1.0 - k[1] * h[1]],
        ];
        let e00 = self.e[0][0];
        let e01 = self.e[0][1];
        self.e[0][0] = e00 * ikh[0][0] + self.e[1][0] * ikh[0][1];
        self.e[0][1] = e01 * ikh[0][0] + self.e[1][1] * ikh[0][1];
        self.e[1][0] = e00 * ikh[1][0] + self.e[1][0] * ikh[1][1];
        self.e[1][1] = e01 * ikh[1][0] + self.e[1][1] * ikh[1][1];
        self.previous_offset = self.offset;
        self.slope += k[0] * residual;
        self.offset += k[1] * residual;
    }

    fn update_min_frame_period(&mut self, ts_delta: f64) -> f64 {
        let mut min_frame_period = ts_delta;
        if self.ts_delta_hist.len() >= MIN_FRAME_PERIOD_HISTORY_LENGTH {
            self.ts_delta_hist.remove(0);
        }
        for &old in &self.ts_delta_hist {
            min_frame_period = old.min(min_frame_period);
        }
        self.ts_delta_hist.push(ts_delta);
        min_frame_period
    }

    fn update_noise_estimate(&mut self, residual: f64, ts_delta: f64) {
        let alpha = if self.num_of_deltas > 10 * 30 {
            0.002
        } else {
            0.01
        };
        let beta = (1.0f64 - alpha).powf(ts_delta * 30.0 / 1000.0);
        self.avg_noise = beta * self.avg_noise + (1.0 - beta) * residual;
        self.var_noise = beta * self.var_noise + (1.0 - beta) * (self.avg_noise - residual).powi(2);
        if self.var_noise < 1.0 {
            self.var_noise = 1.0;
        }
    }
}

/// Received bytes in 1 ms buckets over a window (aiortc's `RateCounter`).
struct RateCounter {
    buckets: Vec<(i64, i64)>,
    origin_index: usize,
    origin_ms: Option<i64>,
    scale: i64,
    total: (i64, i64),
}

impl RateCounter {
    fn new(window_size: usize, scale: i64) -> Self {
        Self {
            buckets: vec![(0, 0); window_size],
            origin_index: 0,
            origin_ms: None,
            scale,
            total: (0, 0),
        }
    }

    fn add(&mut self, value: i64, now_ms: i64) {
        let origin = match self.origin_ms {
            None => {
                self.origin_ms = Some(now_ms);
                now_ms
            }
            Some(_) => {
                self.erase_old(now_ms);
                self.origin_ms.expect("origin")
            }
        };
        let window = self.buckets.len() as i64;
        let index = (self.origin_index as i64 + now_ms - origin).rem_euclid(window) as usize;
        self.buckets[index].0 += 1;
        self.buckets[index].1 += value;
        self.total.0 += 1;
        self.total.1 += value;
    }

    fn rate(&mut self, now_ms: i64) -> Option<i64> {
        self.origin_ms?;
        self.erase_old(now_ms);
        let active_window_size = now_ms - self.origin_ms.expect("origin") + 1;
        if self.total.0 > 0 && active_window_size > 1 {
            let rate = (self.scale * self.total.1) as f64 / active_window_size as f64;
            return Some(rate.round_ties_even() as i64);
        }
        None
    }

    fn reset(&mut self) {
        self.buckets.iter_mut().for_each(|bucket| *bucket = (0, 0));
        self.origin_index = 0;
        self.origin_ms = None;
        self.total = (0, 0);
    }

    fn erase_old(&mut self, now_ms: i64) {
        let window = self.buckets.len();
        let new_origin_ms = now_ms - window as i64 + 1;
        let Some(mut origin) = self.origin_ms else {
            return;
        };
        // A long silence empties every bucket: no need to walk them one by one.
        if new_origin_ms - origin > window as i64 {
            let skipped = (new_origin_ms - origin - window as i64) as usize;
            self.buckets.iter_mut().for_each(|bucket| *bucket = (0, 0));
            self.total = (0, 0);
            self.origin_index = (self.origin_index + skipped) % window;
            origin += skipped as i64;
        }
        while origin < new_origin_ms {
            let bucket = self.buckets[self.origin_index];
            self.total.0 -= bucket.0;
            self.total.1 -= bucket.1;
            self.buckets[self.origin_index] = (0, 0);
            self.origin_index = (self.origin_index + 1) % window;
            origin += 1;
        }
        self.origin_ms = Some(origin);
    }
}

/// aiortc's `RemoteBitrateEstimator` for one publisher stream.
pub struct RemoteBitrateEstimator {
    incoming_bitrate: RateCounter,
    incoming_bitrate_initialized: bool,
    inter_arrival: InterArrival,
    estimator: OveruseEstimator,
    detector: OveruseDetector,
    rate_control: AimdRateControl,
    last_update_ms: Option<i64>,
}

impl RemoteBitrateEstimator {
    pub fn new() -> Self {
        Self {
            incoming_bitrate: RateCounter::new(1000, 8000),
            incoming_bitrate_initialized: true,
            inter_arrival: InterArrival {
                group_length: (TIMESTAMP_GROUP_LENGTH_MS << INTER_ARRIVAL_SHIFT) / 1000,
                current: None,
                previous: None,
            },
            estimator: OveruseEstimator::new(),
            detector: OveruseDetector::new(),
            rate_control: AimdRateControl::new(),
            last_update_ms: None,
        }
    }

    /// One packet: its arrival time, abs-send-time (24 bits) and payload size (with padding).
    /// Returns a new bitrate estimate when one is due.
    pub fn add(
        &mut self,
        arrival_time_ms: i64,
        abs_send_time: u32,
        payload_size: i64,
    ) -> Option<i64> {
        let timestamp = i64::from(abs_send_time) << 8;
        if self.incoming_bitrate.rate(arrival_time_ms).is_some() {
            self.incoming_bitrate_initialized = true;
        } else if self.incoming_bitrate_initialized {
            self.incoming_bitrate.reset();
            self.incoming_bitrate_initialized = false;
        }
        self.incoming_bitrate.add(payload_size, arrival_time_ms);
        if let Some((ts_delta, arrival_delta, size_delta)) =
            self.inter_arrival
                .compute_deltas(timestamp, arrival_time_ms, payload_size)
        {
            let timestamp_delta_ms = ts_delta as f64 * TIMESTAMP_TO_MS;
            self.estimator.update(
                arrival_delta,
                timestamp_delta_ms,
                size_delta,
                self.detector.hypothesis,
            );
            self.detector.detect(
                self.estimator.offset,
                timestamp_delta_ms,
                self.estimator.num_of_deltas,
                arrival_time_ms,
            );
        }
        let due = match self.last_update_ms {
            None => true,
            Some(last) => arrival_time_ms - last > self.rate_control.feedback_interval(),
        } || self.detector.hypothesis == Usage::Overusing;
        if due {
            let throughput = self.incoming_bitrate.rate(arrival_time_ms);
            if let Some(target) =
                self.rate_control
                    .update(self.detector.hypothesis, throughput, arrival_time_ms)
            {
                self.last_update_ms = Some(arrival_time_ms);
                return Some(target);
            }
        }
        None
    }
}

/// The estimator on its own, for comparing it with aiortc's (tests).
#[pyo3::pyclass(module = "switchboard_sfu._fastpath")]
pub struct BitrateEstimator {
    inner: RemoteBitrateEstimator,
}

#[pyo3::pymethods]
impl BitrateEstimator {
    #[new]
    fn py_new() -> Self {
        Self {
            inner: RemoteBitrateEstimator::new(),
        }
    }

    /// Same arguments and result (the bitrate only) as aiortc's `RemoteBitrateEstimator.add`.
    fn add(&mut self, arrival_time_ms: i64, abs_send_time: u32, payload_size: i64) -> Option<i64> {
        self.inner.add(arrival_time_ms, abs_send_time, payload_size)
    }
}
