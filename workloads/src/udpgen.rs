//! A seeded UDP request/response load generator on the wire (DESIGN.md §2.5): netperf
//! `UDP_RR`-style requests to one or more responders (MAC, IPv4 address, UDP port), open loop
//! at a rate or closed loop with a number of requests outstanding; it matches each response to
//! its request by the id in the payload (`abi::udp_rr`) and measures round-trip latency and
//! throughput in simulated time.
//!
//! Everything random — which responder, payload size, UDP source port, open-loop gaps — comes
//! from a PCG generator seeded by the configuration, and the generator sees simulated time
//! only, so a run is bit-for-bit repeatable. Open-loop gaps are exponential (a Poisson
//! process); the logarithm they need is computed with IEEE-754 basic operations only
//! ([`ln`]), because `f64::ln` comes from the host's math library and may differ in the last
//! bit between hosts.
//!
//! A request is a complete Ethernet II + IPv4 + UDP frame built with `etherparse` (headers,
//! lengths and both checksums); a response must be a well-formed frame to the generator's MAC,
//! IP and the request's source port, with valid checksums and the request's payload, or it
//! counts as invalid. A request not answered within `timeout_ns` counts as lost (in closed
//! loop its slot goes to a new request).

use abi::udp_rr::{ECHO_PORT, HEADER_SIZE, KIND_BYE, KIND_REQUEST, MAGIC};
use emulator::desc::MacAddr;
use emulator::wire::{Endpoint, EndpointIo};
use etherparse::{LinkSlice, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rand_pcg::Pcg64Mcg;
use rand_pcg::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::BTreeMap;

/// A responder the generator sends requests to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub mac: MacAddr,
    pub ip: [u8; 4],
    #[serde(default = "echo_port")]
    pub port: u16,
}

fn echo_port() -> u16 {
    ECHO_PORT
}

/// How requests are paced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Load {
    /// Poisson arrivals at `rate` requests per simulated second, whatever the responses.
    OpenLoop { rate: f64 },
    /// `outstanding` requests in flight at all times (a new one as soon as one is settled).
    ClosedLoop { outstanding: u32 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpGenConfig {
    pub name: String,
    pub seed: u64,
    /// The generator's own addresses.
    pub mac: MacAddr,
    pub ip: [u8; 4],
    /// Requests go to these, each to one drawn uniformly.
    pub targets: Vec<Target>,
    pub load: Load,
    /// Requests to send in all.
    pub requests: u64,
    /// UDP payload sizes are drawn uniformly from `payload_min..=payload_max` (at least the
    /// 24-byte header; at most 1472, one 1500-byte IP packet).
    pub payload_min: u32,
    pub payload_max: u32,
    /// When the first request leaves (time for the image to set its NIC up).
    pub start_ns: f64,
    /// A request unanswered this long is lost.
    pub timeout_ns: f64,
    /// Once done, send one `KIND_BYE` datagram to every target.
    pub bye: bool,
}

impl UdpGenConfig {
    /// A closed-loop generator of `requests` 64-byte requests, `outstanding` at a time, to one
    /// responder; starts after 100 µs, times out after 1 ms, says bye.
    pub fn closed_loop(target: Target, requests: u64, outstanding: u32, seed: u64) -> Self {
        UdpGenConfig {
            name: "udpgen".into(),
            seed,
            mac: MacAddr([2, 0, 0, 0, 0, 0xFE]),
            ip: [10, 0, 0, 254],
            targets: vec![target],
            load: Load::ClosedLoop { outstanding },
            requests,
            payload_min: 64,
            payload_max: 64,
            start_ns: 100_000.0,
            timeout_ns: 1_000_000.0,
            bye: true,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.targets.is_empty() {
            return Err("a UDP generator needs at least one target".into());
        }
        if !(HEADER_SIZE as u32..=1472).contains(&self.payload_min)
            || self.payload_max < self.payload_min
            || self.payload_max > 1472
        {
            return Err(format!(
                "payload sizes {}..={} must lie in {HEADER_SIZE}..=1472",
                self.payload_min, self.payload_max
            ));
        }
        match self.load {
            Load::OpenLoop { rate } if !(rate > 0.0 && rate <= 1e9) => Err(format!(
                "open-loop rate {rate} must be in (0, 1e9] per second"
            )),
            Load::ClosedLoop { outstanding: 0 } => {
                Err("closed loop needs at least 1 request outstanding".into())
            }
            _ if !(self.start_ns >= 0.0 && self.timeout_ns > 0.0) => {
                Err("start_ns must be >= 0 and timeout_ns > 0".into())
            }
            _ => Ok(()),
        }
    }
}

/// A request in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    sent: u64,
    target: u32,
    src_port: u16,
    len: u32,
}

/// Everything that changes during a run (what a checkpoint saves).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct State {
    rng: Pcg64Mcg,
    hz: u64,
    started: bool,
    /// Requests sent so far (= the next id).
    sent: u64,
    outstanding: BTreeMap<u64, Pending>,
    /// Round-trip latencies of answered requests, cycles, in the order answered.
    latencies: Vec<u64>,
    timed_out: u64,
    /// Frames that were not a valid response to an outstanding request.
    invalid: u64,
    first_sent: Option<u64>,
    last_answer: Option<u64>,
    /// Open loop: when the next request leaves.
    next_send: u64,
    bye_sent: bool,
}

/// The generator (an [`Endpoint`]).
#[derive(Clone, Debug)]
pub struct UdpGenerator {
    cfg: UdpGenConfig,
    st: State,
}

/// What a run measured. Latencies are round trips on the wire side: from the request's last
/// byte handed to the wire to the response's last byte received.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UdpGenReport {
    pub sent: u64,
    pub answered: u64,
    pub timed_out: u64,
    pub invalid: u64,
    pub min_ns: f64,
    pub p50_ns: f64,
    pub p90_ns: f64,
    pub p99_ns: f64,
    pub max_ns: f64,
    pub mean_ns: f64,
    /// Answered requests per simulated second, from the first request to the last answer.
    pub throughput_rps: f64,
}

impl UdpGenerator {
    pub fn new(cfg: UdpGenConfig) -> Result<Self, String> {
        cfg.validate()?;
        let st = State {
            rng: Pcg64Mcg::seed_from_u64(cfg.seed),
            hz: 0,
            started: false,
            sent: 0,
            outstanding: BTreeMap::new(),
            latencies: Vec::new(),
            timed_out: 0,
            invalid: 0,
            first_sent: None,
            last_answer: None,
            next_send: 0,
            bye_sent: false,
        };
        Ok(UdpGenerator { cfg, st })
    }

    pub fn config(&self) -> &UdpGenConfig {
        &self.cfg
    }

    /// Round-trip latencies so far, in nanoseconds, in the order answered.
    pub fn latencies_ns(&self) -> Vec<f64> {
        self.st.latencies.iter().map(|&c| self.ns(c)).collect()
    }

    fn ns(&self, cycles: u64) -> f64 {
        cycles as f64 * 1e9 / self.st.hz.max(1) as f64
    }

    pub fn report(&self) -> UdpGenReport {
        let mut l = self.st.latencies.clone();
        l.sort_unstable();
        // Nearest rank: the smallest value with at least p% of the samples at or below it.
        let pct = |p: f64| {
            if l.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0 * l.len() as f64).ceil() as usize).clamp(1, l.len());
            self.ns(l[rank - 1])
        };
        let answered = l.len() as u64;
        let span = match (self.st.first_sent, self.st.last_answer) {
            (Some(a), Some(b)) if b > a => self.ns(b - a) / 1e9,
            _ => 0.0,
        };
        UdpGenReport {
            sent: self.st.sent,
            answered,
            timed_out: self.st.timed_out,
            invalid: self.st.invalid,
            min_ns: l.first().map_or(0.0, |&c| self.ns(c)),
            p50_ns: pct(50.0),
            p90_ns: pct(90.0),
            p99_ns: pct(99.0),
            max_ns: l.last().map_or(0.0, |&c| self.ns(c)),
            mean_ns: if l.is_empty() {
                0.0
            } else {
                self.ns(l.iter().sum::<u64>()) / l.len() as f64
            },
            throughput_rps: if span > 0.0 {
                answered as f64 / span
            } else {
                0.0
            },
        }
    }

    /// A value uniform in `lo..=hi`.
    fn uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let span = hi - lo + 1;
        // Multiply-shift: unbiased enough for load generation, and deterministic.
        lo + ((self.st.rng.next_u64() as u128 * span as u128) >> 64) as u64
    }

    /// An exponential gap of mean `mean` cycles.
    fn exponential(&mut self, mean: f64) -> u64 {
        // u in (0, 1]: never ln(0).
        let u = ((self.st.rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        (-ln(u) * mean).round() as u64
    }

    /// The payload of request `id` sent at `sent`: header, then bytes derived from the id.
    fn payload(id: u64, sent: u64, kind: u32, len: u32) -> Vec<u8> {
        let mut p = Vec::with_capacity(len as usize);
        p.extend_from_slice(&MAGIC.to_le_bytes());
        p.extend_from_slice(&kind.to_le_bytes());
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&sent.to_le_bytes());
        p.extend(
            (HEADER_SIZE as u32..len).map(|i| (id as u32).wrapping_mul(31).wrapping_add(i) as u8),
        );
        p
    }

    fn frame(&self, target: &Target, src_port: u16, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(self.cfg.mac.0, target.mac.0)
            .ipv4(self.cfg.ip, target.ip, 64)
            .udp(src_port, target.port);
        let mut f = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut f, payload)
            .expect("a UDP payload of at most 1472 bytes fits an IPv4 packet");
        f
    }

    fn send_request(&mut self, io: &mut EndpointIo) {
        let now = io.now();
        let id = self.st.sent;
        let target = self.uniform(0, self.cfg.targets.len() as u64 - 1) as u32;
        let len = self.uniform(self.cfg.payload_min as u64, self.cfg.payload_max as u64) as u32;
        let src_port = self.uniform(49152, 65535) as u16;
        let payload = Self::payload(id, now, KIND_REQUEST, len);
        let f = self.frame(&self.cfg.targets[target as usize], src_port, &payload);
        io.send(f);
        self.st.sent += 1;
        self.st.first_sent.get_or_insert(now);
        self.st.outstanding.insert(
            id,
            Pending {
                sent: now,
                target,
                src_port,
                len,
            },
        );
    }

    /// Expires timed-out requests, sends what the load allows, says bye when done, and asks
    /// for the next wake-up.
    fn pump(&mut self, io: &mut EndpointIo) {
        let now = io.now();
        let timeout = io.cycles(self.cfg.timeout_ns).max(1);
        while let Some((&id, p)) = self.st.outstanding.first_key_value() {
            if p.sent + timeout > now {
                break;
            }
            self.st.outstanding.remove(&id);
            self.st.timed_out += 1;
        }
        if self.st.started {
            match self.cfg.load {
                Load::OpenLoop { rate } => {
                    let mean = self.st.hz as f64 / rate;
                    while self.st.sent < self.cfg.requests && self.st.next_send <= now {
                        self.send_request(io);
                        self.st.next_send += self.exponential(mean).max(1);
                    }
                }
                Load::ClosedLoop { outstanding } => {
                    while self.st.sent < self.cfg.requests
                        && self.st.outstanding.len() < outstanding as usize
                    {
                        self.send_request(io);
                    }
                }
            }
        }
        if self.st.sent == self.cfg.requests
            && self.st.outstanding.is_empty()
            && self.cfg.bye
            && !self.st.bye_sent
        {
            self.st.bye_sent = true;
            for t in self.cfg.targets.clone() {
                let p = Self::payload(self.st.sent, now, KIND_BYE, HEADER_SIZE as u32);
                io.send(self.frame(&t, 49152, &p));
            }
        }
        let mut wake: Option<u64> = None;
        let mut at = |t: u64| wake = Some(wake.map_or(t, |w| w.min(t)));
        let open = matches!(self.cfg.load, Load::OpenLoop { .. });
        if !self.st.started || (open && self.st.sent < self.cfg.requests) {
            at(self.st.next_send);
        }
        if let Some(p) = self.st.outstanding.values().next() {
            at(p.sent + timeout);
        }
        match wake {
            Some(t) => io.wake_at(t),
            None => io.cancel_wake(),
        }
    }

    /// The response to an outstanding request in `frame`, if it is one: its id.
    fn parse_response(&self, frame: &[u8]) -> Option<u64> {
        let p = SlicedPacket::from_ethernet(frame).ok()?;
        let Some(LinkSlice::Ethernet2(eth)) = &p.link else {
            return None;
        };
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            return None;
        };
        let Some(TransportSlice::Udp(udp)) = &p.transport else {
            return None;
        };
        let iph = ip.header().to_header();
        if eth.destination() != self.cfg.mac.0
            || iph.destination != self.cfg.ip
            || iph.header_checksum != iph.calc_header_checksum()
        {
            return None;
        }
        let payload = udp.payload();
        let udph = udp.to_header();
        if udph.checksum != udph.calc_checksum_ipv4(&iph, payload).ok()? {
            return None;
        }
        let h = payload.get(..HEADER_SIZE)?;
        let word = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap());
        let (magic, kind) = (word(0) as u32, (word(0) >> 32) as u32);
        let (id, sent) = (word(8), word(16));
        let pending = self.st.outstanding.get(&id)?;
        let target = &self.cfg.targets[pending.target as usize];
        let ok = magic == MAGIC
            && kind == KIND_REQUEST
            && udph.destination_port == pending.src_port
            && udph.source_port == target.port
            && iph.source == target.ip
            && eth.source() == target.mac.0
            && payload == Self::payload(id, sent, KIND_REQUEST, pending.len).as_slice()
            && sent == pending.sent;
        ok.then_some(id)
    }
}

/// Natural logarithm of a positive, normal `x` from IEEE-754 basic operations only (+ − × ÷
/// are correctly rounded everywhere, libm's `log` is not), so that every host draws the same
/// gaps: `x = m · 2^e` with `m` in [1, 2), `ln m = 2 atanh z` with `z = (m − 1)/(m + 1) < 1/3`,
/// summed as its series until the terms vanish.
pub fn ln(x: f64) -> f64 {
    debug_assert!(x.is_normal() && x > 0.0);
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7FF) as i64 - 1023;
    let m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let (mut term, mut sum) = (z, 0.0);
    for k in 0..40 {
        sum += term / (2 * k + 1) as f64;
        term *= z2;
    }
    2.0 * sum + e as f64 * std::f64::consts::LN_2
}

impl Endpoint for UdpGenerator {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn mac(&self) -> [u8; 6] {
        self.cfg.mac.0
    }

    fn start(&mut self, io: &mut EndpointIo) {
        self.st.hz = io.hz();
        self.st.next_send = io.now() + io.cycles(self.cfg.start_ns);
        self.pump(io);
    }

    fn receive(&mut self, frame: &[u8], io: &mut EndpointIo) {
        match self.parse_response(frame) {
            Some(id) => {
                let p = self
                    .st
                    .outstanding
                    .remove(&id)
                    .expect("parsed as outstanding");
                self.st.latencies.push(io.now() - p.sent);
                self.st.last_answer = Some(io.now());
            }
            None => self.st.invalid += 1,
        }
        self.pump(io);
    }

    fn wake(&mut self, io: &mut EndpointIo) {
        if !self.st.started && io.now() >= self.st.next_send {
            self.st.started = true;
        }
        self.pump(io);
    }

    fn finished(&self) -> bool {
        self.st.sent == self.cfg.requests
            && self.st.outstanding.is_empty()
            && (self.st.bye_sent || !self.cfg.bye)
    }

    fn save(&self) -> Vec<u8> {
        postcard::to_allocvec(&self.st).expect("generator state serialises")
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        self.st = postcard::from_bytes(state)
            .map_err(|e| format!("UDP generator `{}`: {e}", self.cfg.name))?;
        Ok(())
    }

    fn clone_box(&self) -> Box<dyn Endpoint> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 2_000_000_000;

    fn target() -> Target {
        Target {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            ip: [10, 0, 0, 1],
            port: ECHO_PORT,
        }
    }

    /// What a responder does: swap addresses and ports (checksums stay valid).
    fn echo(req: &[u8]) -> Vec<u8> {
        use abi::udp_rr::frame::*;
        let mut r = req.to_vec();
        for (a, b, n) in [
            (ETH_DST, ETH_SRC, 6),
            (IP_SRC, IP_DST, 4),
            (UDP_SRC, UDP_DST, 2),
        ] {
            for i in 0..n {
                r.swap(a + i, b + i);
            }
        }
        r
    }

    /// Runs a generator against an ideal responder that answers after `rtt` cycles; returns
    /// the generator and every (time, frame) it sent.
    fn run(
        cfg: UdpGenConfig,
        rtt: u64,
        answer: impl Fn(u64) -> bool,
    ) -> (UdpGenerator, Vec<(u64, Vec<u8>)>) {
        let mut g = UdpGenerator::new(cfg).unwrap();
        let mut log = Vec::new();
        // (time, frame to deliver to the generator) and the wake-up: a tiny event loop.
        let mut inbox: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
        let mut seq = 0;
        let mut wake: Option<u64> = None;
        let mut handle = |io: EndpointIo,
                          wake: &mut Option<u64>,
                          inbox: &mut BTreeMap<(u64, u64), Vec<u8>>,
                          log: &mut Vec<(u64, Vec<u8>)>| {
            let now = io.now();
            let (frames, w) = io.into_parts();
            if let Some(w) = w {
                *wake = w;
            }
            for f in frames {
                let n = log.len() as u64;
                log.push((now, f.clone()));
                let p = abi::udp_rr::frame::PAYLOAD;
                let kind = u32::from_le_bytes(f[p + 4..p + 8].try_into().unwrap());
                if kind == KIND_REQUEST && answer(n) {
                    seq += 1;
                    inbox.insert((now + rtt, seq), echo(&f));
                }
            }
        };
        let mut io = EndpointIo::new(0, HZ);
        g.start(&mut io);
        handle(io, &mut wake, &mut inbox, &mut log);
        for _ in 0..1_000_000 {
            let next_rx = inbox.keys().next().map(|k| k.0);
            match (next_rx, wake) {
                (Some(t), w) if w.is_none_or(|w| t <= w) => {
                    let (_, f) = inbox.pop_first().unwrap();
                    let mut io = EndpointIo::new(t, HZ);
                    g.receive(&f, &mut io);
                    handle(io, &mut wake, &mut inbox, &mut log);
                }
                (_, Some(w)) => {
                    wake = None;
                    let mut io = EndpointIo::new(w, HZ);
                    g.wake(&mut io);
                    handle(io, &mut wake, &mut inbox, &mut log);
                }
                (None, None) => break,
                _ => unreachable!(),
            }
        }
        (g, log)
    }

    #[test]
    fn ln_matches_the_math_library() {
        for x in [
            1.0,
            0.5,
            1e-9,
            0.999_999,
            0.3,
            1.0 / 3.0,
            2f64.powi(-53),
            0.75,
        ] {
            let (a, b) = (ln(x), x.ln());
            assert!(
                (a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(1.0),
                "{x}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn requests_are_well_formed_frames() {
        let cfg = UdpGenConfig::closed_loop(target(), 1, 1, 7);
        let (_, log) = run(cfg, 1000, |_| false);
        let f = &log[0].1;
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!()
        };
        let iph = ip.header().to_header();
        assert_eq!(iph.header_checksum, iph.calc_header_checksum());
        assert_eq!(
            (iph.source, iph.destination),
            ([10, 0, 0, 254], [10, 0, 0, 1])
        );
        let Some(TransportSlice::Udp(udp)) = &p.transport else {
            panic!()
        };
        let h = udp.to_header();
        assert_eq!(h.destination_port, ECHO_PORT);
        assert_eq!(
            h.checksum,
            h.calc_checksum_ipv4(&iph, udp.payload()).unwrap()
        );
        assert_eq!(udp.payload().len(), 64);
        assert_eq!(&udp.payload()[..4], b"PVRR");
        assert_eq!(f.len(), 14 + 20 + 8 + 64);
    }

    #[test]
    fn closed_loop_keeps_n_outstanding_and_measures_the_round_trip() {
        let cfg = UdpGenConfig::closed_loop(target(), 100, 4, 1);
        let (g, log) = run(cfg, 5000, |_| true);
        let r = g.report();
        assert_eq!(
            (r.sent, r.answered, r.timed_out, r.invalid),
            (100, 100, 0, 0)
        );
        // 2 GHz: 5000 cycles = 2.5 µs, exactly.
        assert_eq!(
            (r.p50_ns, r.p99_ns, r.min_ns, r.max_ns),
            (2500.0, 2500.0, 2500.0, 2500.0)
        );
        // Four at a time every 2.5 µs: 1.6 M requests/s.
        let expect = 100.0 / (25.0 * 2500e-9);
        assert!(
            (r.throughput_rps - expect).abs() / expect < 0.01,
            "{}",
            r.throughput_rps
        );
        // The first four leave together at the start time (100 µs), then one per answer.
        assert!(log[..4].iter().all(|(t, _)| *t == 200_000));
        assert_eq!(log[4].0, 205_000);
        // And a bye at the end.
        assert_eq!(log.len(), 101);
        assert!(g.finished());
    }

    #[test]
    fn lost_requests_time_out_and_free_their_slot() {
        let cfg = UdpGenConfig::closed_loop(target(), 20, 2, 3);
        // Every third request is never answered.
        let (g, _) = run(cfg, 1000, |n| n % 3 != 2);
        let r = g.report();
        assert_eq!(r.sent, 20);
        assert_eq!(r.answered + r.timed_out, 20);
        assert!(r.timed_out >= 6, "{r:?}");
        assert!(g.finished());
    }

    #[test]
    fn open_loop_sends_at_the_rate_whatever_the_answers() {
        let mut cfg = UdpGenConfig::closed_loop(target(), 2000, 1, 11);
        cfg.load = Load::OpenLoop { rate: 1e6 };
        cfg.payload_min = 24;
        cfg.payload_max = 1472;
        let (g, log) = run(cfg.clone(), 100_000, |_| true);
        let r = g.report();
        assert_eq!((r.sent, r.answered), (2000, 2000));
        // 2000 requests at 1 M/s: about 2 ms (Poisson, so within a few percent).
        let span = (log[1999].0 - log[0].0) as f64 / HZ as f64;
        assert!((span - 2e-3).abs() < 2e-4, "{span}");
        // Several requests overlap: open loop does not wait for answers.
        assert!(r.p50_ns == 50_000.0);
        // Sizes spread over the range.
        let sizes: Vec<usize> = log.iter().map(|(_, f)| f.len()).collect();
        assert!(sizes.iter().min().unwrap() < &200 && sizes.iter().max().unwrap() > &1300);
        // Same seed, same run; another seed, another run.
        let (_, again) = run(cfg.clone(), 100_000, |_| true);
        assert_eq!(again, log);
        cfg.seed = 12;
        let (_, other) = run(cfg, 100_000, |_| true);
        assert_ne!(other, log);
    }

    #[test]
    fn bad_responses_are_counted_not_matched() {
        let mut g = UdpGenerator::new(UdpGenConfig::closed_loop(target(), 1, 1, 5)).unwrap();
        let mut io = EndpointIo::new(0, HZ);
        g.start(&mut io);
        let mut io = EndpointIo::new(200_000, HZ);
        g.wake(&mut io);
        let (frames, _) = io.into_parts();
        let mut reply = echo(&frames[0]);
        let last = reply.len() - 1;
        reply[last] ^= 1; // payload corrupted: the UDP checksum no longer matches
        g.receive(&reply, &mut EndpointIo::new(201_000, HZ));
        g.receive(&frames[0], &mut EndpointIo::new(201_000, HZ)); // not to us
        assert_eq!(g.report().invalid, 2);
        g.receive(&echo(&frames[0]), &mut EndpointIo::new(202_000, HZ));
        assert_eq!(g.report().answered, 1);
    }

    #[test]
    fn state_survives_save_and_restore() {
        let cfg = UdpGenConfig::closed_loop(target(), 10, 2, 9);
        let mut g = UdpGenerator::new(cfg.clone()).unwrap();
        let mut io = EndpointIo::new(0, HZ);
        g.start(&mut io);
        g.wake(&mut EndpointIo::new(200_000, HZ));
        let saved = g.save();
        let mut h = UdpGenerator::new(cfg).unwrap();
        h.restore(&saved).unwrap();
        assert_eq!(h.save(), saved);
        assert!(h.restore(&saved[..3]).is_err());
    }
}
