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
//!
//! # Configuration
//! [`UdpGenConfig`] is plain serde data: a RON file (`workloads/scenarios/udpgen.ron` is one)
//! or the inline form of `pvmlab exec --udp-gen`. Only `seed`, `load` and `requests` must be
//! given; a target whose `mac` is left at [`UNSET_MAC`] is the NIC the generator is attached
//! to (the runner fills it in with [`UdpGenConfig::fill_in_target_macs`]).
//!
//! # Checkpoints
//! [`Endpoint::save`] gives a tag ([`STATE_TAG`]) followed by the configuration and the
//! state, so that a restored machine's generator can be rebuilt from the checkpoint alone
//! ([`UdpGenerator::from_saved`], `crate::endpoints`). [`Endpoint::restore`] refuses a state
//! saved with another configuration, and every saved state is checked for consistency
//! before it is taken (a forged one gets an error, never a panic).

use abi::udp_rr::{ECHO_PORT, HEADER_SIZE, KIND_BYE, KIND_REQUEST, MAGIC};
use emulator::desc::MacAddr;
use emulator::wire::{Endpoint, EndpointIo};
use etherparse::{LinkSlice, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rand_pcg::Pcg64Mcg;
use rand_pcg::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::BTreeMap;

/// The MAC of a target that is "the NIC the generator is attached to" (the default).
pub const UNSET_MAC: MacAddr = MacAddr([0; 6]);

/// The first bytes of every state [`UdpGenerator`] saves (kind and version of the format).
pub const STATE_TAG: &[u8; 8] = b"UDPGEN01";

/// A responder the generator sends requests to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// [`UNSET_MAC`] (the default): the NIC the generator is attached to.
    #[serde(default = "unset_mac")]
    pub mac: MacAddr,
    /// 10.0.0.1 by default (`udp-echo` answers whatever its address).
    #[serde(default = "default_target_ip")]
    pub ip: [u8; 4],
    #[serde(default = "echo_port")]
    pub port: u16,
}

impl Target {
    /// The NIC the generator is attached to, at 10.0.0.1, echo port.
    pub fn nic() -> Self {
        Target {
            mac: UNSET_MAC,
            ip: default_target_ip(),
            port: ECHO_PORT,
        }
    }
}

fn unset_mac() -> MacAddr {
    UNSET_MAC
}
fn default_target_ip() -> [u8; 4] {
    [10, 0, 0, 1]
}
fn echo_port() -> u16 {
    ECHO_PORT
}
fn default_name() -> String {
    "udpgen".into()
}
fn default_mac() -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, 0xFE])
}
fn default_ip() -> [u8; 4] {
    [10, 0, 0, 254]
}
fn default_targets() -> Vec<Target> {
    vec![Target::nic()]
}
fn default_payload() -> u32 {
    64
}
fn default_start_ns() -> f64 {
    100_000.0
}
fn default_timeout_ns() -> f64 {
    1_000_000.0
}
fn yes() -> bool {
    true
}

/// A configuration that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read UDP generator file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// The longest `start_ns` and `timeout_ns` (a million seconds of simulated time).
pub const MAX_NS: f64 = 1e15;

/// How requests are paced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Load {
    /// Poisson arrivals at `rate` requests per simulated second, whatever the responses.
    OpenLoop { rate: f64 },
    /// `outstanding` requests in flight at all times (a new one as soon as one is settled).
    ClosedLoop { outstanding: u32 },
}

/// A generator's configuration. In a RON file only `seed`, `load` and `requests` are
/// required; the other fields default to what [`closed_loop`](Self::closed_loop) sets, with
/// one target: the NIC the generator is attached to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpGenConfig {
    /// Its name in reports (`udpgen`).
    #[serde(default = "default_name")]
    pub name: String,
    pub seed: u64,
    /// The generator's own addresses (02:00:00:00:00:fe, 10.0.0.254).
    #[serde(default = "default_mac")]
    pub mac: MacAddr,
    #[serde(default = "default_ip")]
    pub ip: [u8; 4],
    /// Requests go to these, each to one drawn uniformly.
    #[serde(default = "default_targets")]
    pub targets: Vec<Target>,
    pub load: Load,
    /// Requests to send in all.
    pub requests: u64,
    /// UDP payload sizes are drawn uniformly from `payload_min..=payload_max` (at least the
    /// 24-byte header; at most 1472, one 1500-byte IP packet); 64 by default.
    #[serde(default = "default_payload")]
    pub payload_min: u32,
    #[serde(default = "default_payload")]
    pub payload_max: u32,
    /// When the first request leaves (time for the image to set its NIC up; 100 µs).
    #[serde(default = "default_start_ns")]
    pub start_ns: f64,
    /// A request unanswered this long is lost (1 ms).
    #[serde(default = "default_timeout_ns")]
    pub timeout_ns: f64,
    /// Once done, send one `KIND_BYE` datagram to every target (true).
    #[serde(default = "yes")]
    pub bye: bool,
}

impl UdpGenConfig {
    /// A closed-loop generator of `requests` 64-byte requests, `outstanding` at a time, to one
    /// responder; starts after 100 µs, times out after 1 ms, says bye.
    pub fn closed_loop(target: Target, requests: u64, outstanding: u32, seed: u64) -> Self {
        UdpGenConfig {
            name: "udpgen".into(),
            seed,
            mac: default_mac(),
            ip: default_ip(),
            targets: vec![target],
            load: Load::ClosedLoop { outstanding },
            requests,
            payload_min: default_payload(),
            payload_max: default_payload(),
            start_ns: default_start_ns(),
            timeout_ns: default_timeout_ns(),
            bye: true,
        }
    }

    /// A configuration from a RON file (a spec that names an existing file or ends in
    /// `.ron`), or from the inline form ([`parse_inline`](Self::parse_inline)). Target MACs
    /// left unset stay so: [`validate`](Self::validate) after filling them in.
    pub fn load(spec: &str) -> Result<Self, ConfigError> {
        let path = std::path::Path::new(spec);
        if spec.ends_with(".ron") || path.is_file() {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: spec.to_string(),
                source,
            })?;
            return Self::parse_ron(&text, spec);
        }
        Self::parse_inline(spec)
    }

    /// Parses RON text; `origin` names it in errors, which give its line and column.
    pub fn parse_ron(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: UdpGenConfig = ron::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            line: e.span.start.line,
            column: e.span.start.col,
            message: e.code.to_string(),
        })?;
        cfg.check_unresolved()
            .map_err(|message| ConfigError::Invalid {
                origin: origin.to_string(),
                message,
            })?;
        Ok(cfg)
    }

    /// The inline form, for trying the NIC without writing a file: comma-separated items,
    /// the load as `closed:OUTSTANDING` or `open:RATE` (requests per second; `k` and `M`
    /// multiply by 10^3 and 10^6), and `FIELD=VALUE` for the fields of the RON form —
    /// `requests` and `seed` required; `name`, `mac`, `ip`, `payload` (`N` or `MIN-MAX`),
    /// `start_ns`, `timeout_ns`, `bye` optional; `target=MAC` and `port=N` for a single
    /// target (the NIC's MAC, 10.0.0.1, port 7 by default). Example:
    /// `closed:4,requests=1000,seed=7`.
    pub fn parse_inline(spec: &str) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: format!("`{spec}`"),
            message,
        };
        let (mut load, mut requests, mut seed) = (None, None, None);
        let mut cfg = UdpGenConfig::closed_loop(Target::nic(), 0, 1, 0);
        for item in spec.split(',').map(str::trim) {
            if let Some((kind, n)) = item.split_once(':').filter(|_| !item.contains('=')) {
                if load.is_some() {
                    return Err(invalid(format!("`{item}`: a second load")));
                }
                load = Some(match kind {
                    "closed" => Load::ClosedLoop {
                        outstanding: number(n).map_err(|e| invalid(format!("`{item}`: {e}")))?,
                    },
                    "open" => Load::OpenLoop {
                        rate: rate(n).map_err(|e| invalid(format!("`{item}`: {e}")))?,
                    },
                    _ => {
                        return Err(invalid(format!(
                            "`{item}`: the load is `closed:OUTSTANDING` or `open:RATE`"
                        )));
                    }
                });
                continue;
            }
            let Some((key, value)) = item.split_once('=') else {
                return Err(invalid(format!(
                    "`{item}` is neither a load (`closed:4`, `open:200k`) nor FIELD=VALUE; \
                     a RON file must end in .ron"
                )));
            };
            let bad = |e: String| invalid(format!("{key}: {e}"));
            match key {
                "requests" => requests = Some(number(value).map_err(bad)?),
                "seed" => seed = Some(number(value).map_err(bad)?),
                "name" => cfg.name = value.to_string(),
                "mac" => cfg.mac = value.parse().map_err(bad)?,
                "ip" => cfg.ip = ipv4(value).map_err(bad)?,
                "target" => cfg.targets[0].mac = value.parse().map_err(bad)?,
                "target_ip" => cfg.targets[0].ip = ipv4(value).map_err(bad)?,
                "port" => cfg.targets[0].port = number(value).map_err(bad)?,
                "payload" => {
                    let (lo, hi) = value.split_once('-').unwrap_or((value, value));
                    cfg.payload_min = number(lo).map_err(bad)?;
                    cfg.payload_max = number(hi).map_err(bad)?;
                }
                "start_ns" => cfg.start_ns = real(value).map_err(bad)?,
                "timeout_ns" => cfg.timeout_ns = real(value).map_err(bad)?,
                "bye" => {
                    cfg.bye = value
                        .parse()
                        .map_err(|_| bad(format!("`{value}` is not true or false")))?
                }
                _ => {
                    return Err(invalid(format!(
                        "unknown field `{key}` (fields: requests, seed, name, mac, ip, target, \
                         target_ip, port, payload, start_ns, timeout_ns, bye)"
                    )));
                }
            }
        }
        let missing = [
            (load.is_none(), "a load (`closed:N` or `open:RATE`)"),
            (requests.is_none(), "requests=N"),
            (seed.is_none(), "seed=N"),
        ]
        .into_iter()
        .filter(|(m, _)| *m)
        .map(|(_, what)| what)
        .collect::<Vec<_>>();
        if !missing.is_empty() {
            return Err(invalid(format!("missing {}", missing.join(", "))));
        }
        (cfg.load, cfg.requests, cfg.seed) = (load.unwrap(), requests.unwrap(), seed.unwrap());
        cfg.check_unresolved().map_err(invalid)?;
        Ok(cfg)
    }

    /// [`validate`](Self::validate) with unset target MACs taken as the NIC's.
    fn check_unresolved(&self) -> Result<(), String> {
        let mut c = self.clone();
        // Any unicast MAC other than the generator's stands for the NIC's here.
        let stand_in = if c.mac.0 == [2, 0, 0, 0, 0, 1] {
            [2, 0, 0, 0, 0, 2]
        } else {
            [2, 0, 0, 0, 0, 1]
        };
        c.fill_in_target_macs(stand_in);
        c.validate()
    }

    /// Gives every target whose MAC is [`UNSET_MAC`] the MAC `nic` (of the NIC the generator
    /// is attached to).
    pub fn fill_in_target_macs(&mut self, nic: [u8; 6]) {
        for t in &mut self.targets {
            if t.mac == UNSET_MAC {
                t.mac = MacAddr(nic);
            }
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("a UDP generator needs a name".into());
        }
        if self.targets.is_empty() {
            return Err("a UDP generator needs at least one target".into());
        }
        if self.mac == UNSET_MAC || self.mac.0[0] & 1 != 0 {
            return Err(format!(
                "the generator's own MAC {} must be a unicast address (first byte even), not 0",
                self.mac
            ));
        }
        for (i, t) in self.targets.iter().enumerate() {
            if t.mac == UNSET_MAC {
                return Err(format!(
                    "target {i} has no MAC: give one, or attach the generator with \
                     `pvmlab exec --udp-gen`, which gives it the NIC's"
                ));
            }
            if t.mac == self.mac {
                return Err(format!(
                    "target {i} has the generator's own MAC {}",
                    self.mac
                ));
            }
        }
        let bounded = |ns: f64| (0.0..=MAX_NS).contains(&ns);
        if !bounded(self.start_ns) || !bounded(self.timeout_ns) || self.timeout_ns <= 0.0 {
            return Err(format!(
                "start_ns ({}) must be in 0..={MAX_NS:e} and timeout_ns ({}) in (0, {MAX_NS:e}]",
                self.start_ns, self.timeout_ns
            ));
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
            _ => Ok(()),
        }
    }
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number in range"))
}

fn real(s: &str) -> Result<f64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))
}

/// A rate: a number, optionally followed by `k` (×10^3) or `M` (×10^6).
fn rate(s: &str) -> Result<f64, String> {
    let (n, scale) = match s.trim() {
        t if t.ends_with('k') => (&t[..t.len() - 1], 1e3),
        t if t.ends_with('M') => (&t[..t.len() - 1], 1e6),
        t => (t, 1.0),
    };
    real(n)
        .map(|r| r * scale)
        .map_err(|_| format!("`{s}` is not a rate like 200000, 200k or 1.5M"))
}

fn ipv4(s: &str) -> Result<[u8; 4], String> {
    s.parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .map_err(|_| format!("`{s}` is not an IPv4 address like 10.0.0.1"))
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
    /// Answered requests per target (index into `targets`).
    answered_per_target: Vec<u64>,
    timed_out: u64,
    /// Frames that were not a valid response to an outstanding request.
    invalid: u64,
    first_sent: Option<u64>,
    last_answer: Option<u64>,
    /// Open loop: when the next request leaves.
    next_send: u64,
    bye_sent: bool,
}

impl State {
    /// Everything the generator relies on (indices, sizes, counts that add up), so that a
    /// forged state gets an error rather than a panic or a runaway allocation.
    fn check(&self, cfg: &UdpGenConfig) -> Result<(), String> {
        if self.answered_per_target.len() != cfg.targets.len() {
            return Err(format!(
                "answers counted for {} targets, the configuration has {}",
                self.answered_per_target.len(),
                cfg.targets.len()
            ));
        }
        if self.sent > cfg.requests {
            return Err(format!("{} requests sent of {}", self.sent, cfg.requests));
        }
        for (&id, p) in &self.outstanding {
            if id >= self.sent
                || p.target as usize >= cfg.targets.len()
                || !(cfg.payload_min..=cfg.payload_max).contains(&p.len)
            {
                return Err(format!("outstanding request {id}: {p:?}"));
            }
        }
        let answered = self.latencies.len() as u64;
        let per_target = self
            .answered_per_target
            .iter()
            .try_fold(0u64, |a, &b| a.checked_add(b));
        let settled = answered
            .checked_add(self.timed_out)
            .and_then(|n| n.checked_add(self.outstanding.len() as u64));
        if per_target != Some(answered) || settled != Some(self.sent) {
            return Err(format!(
                "{} sent, {answered} answered ({:?} per target), {} timed out, {} outstanding",
                self.sent,
                self.answered_per_target,
                self.timed_out,
                self.outstanding.len()
            ));
        }
        if self.started && self.hz == 0 {
            return Err("started without a clock".into());
        }
        Ok(())
    }
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
    /// Answered requests per target, in the order of the configuration's `targets`.
    pub answered_per_target: Vec<u64>,
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
            answered_per_target: vec![0; cfg.targets.len()],
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

    /// Whether `state` is what [`Endpoint::save`] of a generator gives (by its tag).
    pub fn is_saved_state(state: &[u8]) -> bool {
        state.starts_with(STATE_TAG)
    }

    /// The generator whose [`Endpoint::save`] gave `state`: its configuration and state
    /// both come from it (what a runner uses to continue a checkpoint on its own).
    pub fn from_saved(state: &[u8]) -> Result<Self, String> {
        let (cfg, st) = Self::parse_saved(state)?;
        Ok(UdpGenerator { cfg, st })
    }

    /// The configuration and state in saved bytes, both checked.
    fn parse_saved(state: &[u8]) -> Result<(UdpGenConfig, State), String> {
        let body = state
            .strip_prefix(STATE_TAG.as_slice())
            .ok_or("not the saved state of a UDP generator (or of an older format)")?;
        let ((cfg, st), rest): ((UdpGenConfig, State), _) =
            postcard::take_from_bytes(body).map_err(|e| format!("its saved state: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after its saved state", rest.len()));
        }
        cfg.validate()
            .map_err(|e| format!("its saved configuration: {e}"))?;
        st.check(&cfg)
            .map_err(|e| format!("its saved state is inconsistent: {e}"))?;
        Ok((cfg, st))
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
            answered_per_target: self.st.answered_per_target.clone(),
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
                // In u128: a sum of u64 latencies cannot overflow it.
                let sum: u128 = l.iter().map(|&c| c as u128).sum();
                sum as f64 * 1e9 / self.st.hz.max(1) as f64 / l.len() as f64
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
            if p.sent.saturating_add(timeout) > now {
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
                        self.st.next_send = self
                            .st
                            .next_send
                            .saturating_add(self.exponential(mean).max(1));
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
            at(p.sent.saturating_add(timeout));
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
        self.st.next_send = io.now().saturating_add(io.cycles(self.cfg.start_ns));
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
                self.st.latencies.push(io.now().saturating_sub(p.sent));
                self.st.answered_per_target[p.target as usize] += 1;
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
        let mut out = STATE_TAG.to_vec();
        postcard::to_io(&(&self.cfg, &self.st), &mut out).expect("generator state serialises");
        out
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let (cfg, st) = Self::parse_saved(state)
            .map_err(|e| format!("UDP generator `{}`: {e}", self.cfg.name))?;
        if cfg != self.cfg {
            return Err(format!(
                "UDP generator `{}`: the saved state is of a generator configured otherwise \
                 ({cfg:?})",
                self.cfg.name
            ));
        }
        self.st = st;
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
        assert!(saved.starts_with(STATE_TAG) && UdpGenerator::is_saved_state(&saved));
        let mut h = UdpGenerator::new(cfg.clone()).unwrap();
        h.restore(&saved).unwrap();
        assert_eq!(h.save(), saved);
        assert!(h.restore(&saved[..3]).is_err());
        assert!(h.restore(&saved[..saved.len() - 1]).is_err());
        // The configuration travels with the state: the generator comes back from the bytes.
        let r = UdpGenerator::from_saved(&saved).unwrap();
        assert_eq!(r.config(), &cfg);
        assert_eq!(r.save(), saved);
        // A generator configured otherwise does not take it.
        let mut other = cfg;
        other.requests = 11;
        let e = UdpGenerator::new(other)
            .unwrap()
            .restore(&saved)
            .unwrap_err();
        assert!(e.contains("configured otherwise"), "{e}");
    }

    /// The saved state of `g` with its state edited by `f`, re-encoded.
    fn forge(g: &UdpGenerator, f: impl FnOnce(&mut UdpGenConfig, &mut State)) -> Vec<u8> {
        let (mut cfg, mut st) = (g.cfg.clone(), g.st.clone());
        f(&mut cfg, &mut st);
        let mut out = STATE_TAG.to_vec();
        postcard::to_io(&(&cfg, &st), &mut out).unwrap();
        out
    }

    #[test]
    fn forged_states_are_refused_not_panicked_on() {
        let (g, _) = run(UdpGenConfig::closed_loop(target(), 10, 2, 9), 1000, |n| {
            n != 4
        });
        let r = g.report();
        assert_eq!((r.answered, r.timed_out), (9, 1));
        assert_eq!(r.answered_per_target, [9]);
        assert!(UdpGenerator::from_saved(&forge(&g, |_, _| {})).is_ok());
        let pending = Pending {
            sent: 5,
            target: 0,
            src_port: 50000,
            len: 64,
        };
        type Edit = Box<dyn FnOnce(&mut UdpGenConfig, &mut State)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("per target", Box::new(|_, s| s.answered_per_target.push(0))),
            ("sent", Box::new(|_, s| s.sent = 11)),
            ("timed out", Box::new(|_, s| s.timed_out = 0)),
            (
                "target",
                Box::new(move |_, s| {
                    s.timed_out -= 1;
                    s.outstanding.insert(
                        3,
                        Pending {
                            target: 1,
                            ..pending
                        },
                    );
                }),
            ),
            (
                "length",
                Box::new(move |_, s| {
                    s.timed_out -= 1;
                    s.outstanding.insert(
                        3,
                        Pending {
                            len: u32::MAX,
                            ..pending
                        },
                    );
                }),
            ),
            (
                "id",
                Box::new(move |_, s| {
                    s.timed_out -= 1;
                    s.outstanding.insert(10, pending);
                }),
            ),
            ("clock", Box::new(|_, s| s.hz = 0)),
            ("config", Box::new(|c, _| c.payload_min = 2)),
            ("own MAC", Box::new(|c, _| c.mac = UNSET_MAC)),
            (
                "answers",
                Box::new(|_, s| s.answered_per_target[0] = u64::MAX),
            ),
        ];
        for (what, edit) in cases {
            let e = UdpGenerator::from_saved(&forge(&g, edit)).err();
            assert!(e.is_some(), "{what}: accepted");
        }
        let e = UdpGenerator::from_saved(b"UDPGEN00...").unwrap_err();
        assert!(e.contains("not the saved state"), "{e}");
        // Latencies near the top of u64 (only a forged state has them) do not overflow the mean.
        let huge = forge(&g, |_, s| s.latencies = vec![u64::MAX; 9]);
        assert!(UdpGenerator::from_saved(&huge).unwrap().report().mean_ns > 0.0);
    }

    #[test]
    fn ron_configs_need_only_seed_load_and_requests() {
        let text = "(seed: 7, load: ClosedLoop(outstanding: 4), requests: 100)";
        let mut cfg: UdpGenConfig = ron::from_str(text).unwrap();
        let mut expect = UdpGenConfig::closed_loop(Target::nic(), 100, 4, 7);
        assert_eq!(cfg, expect);
        // The target's MAC is the NIC's, once the runner says which.
        let e = cfg.validate().unwrap_err();
        assert!(e.contains("target 0 has no MAC"), "{e}");
        cfg.fill_in_target_macs([2, 0, 0, 0, 0, 1]);
        expect.targets[0].mac = MacAddr([2, 0, 0, 0, 0, 1]);
        assert_eq!(cfg, expect);
        cfg.validate().unwrap();
        // A MAC given stays.
        let text = "(seed: 1, load: OpenLoop(rate: 1e5), requests: 5, \
                    targets: [(mac: \"02:00:00:00:00:07\", ip: (10, 0, 0, 7))])";
        let mut cfg: UdpGenConfig = ron::from_str(text).unwrap();
        cfg.fill_in_target_macs([2, 0, 0, 0, 0, 1]);
        assert_eq!(cfg.targets[0].mac, MacAddr([2, 0, 0, 0, 0, 7]));
        assert_eq!(cfg.targets[0].port, ECHO_PORT);
        // Unknown fields, in the config, its targets and its load, are errors.
        for bad in [
            "(seed: 1, load: ClosedLoop(outstanding: 1), requests: 5, rate: 3)",
            "(seed: 1, load: ClosedLoop(outstanding: 1, rate: 3), requests: 5)",
            "(seed: 1, load: ClosedLoop(outstanding: 1), requests: 5, targets: [(mca: \"02:00:00:00:00:07\")])",
            "(load: ClosedLoop(outstanding: 1), requests: 5)",
        ] {
            assert!(ron::from_str::<UdpGenConfig>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_inline_form_is_the_ron_form_in_short() {
        let cfg = UdpGenConfig::parse_inline("closed:4,requests=1000,seed=7").unwrap();
        assert_eq!(cfg, UdpGenConfig::closed_loop(Target::nic(), 1000, 4, 7));
        let cfg = UdpGenConfig::parse_inline(
            "open:200k, requests=1_000, seed=3, payload=24-1472, name=g2, mac=02:00:00:00:00:aa, \
             ip=10.0.0.9, target=02:00:00:00:00:07, target_ip=10.0.0.7, port=9, \
             start_ns=5e3, timeout_ns=2e6, bye=false",
        )
        .unwrap();
        let expect = UdpGenConfig {
            name: "g2".into(),
            seed: 3,
            mac: MacAddr([2, 0, 0, 0, 0, 0xAA]),
            ip: [10, 0, 0, 9],
            targets: vec![Target {
                mac: MacAddr([2, 0, 0, 0, 0, 7]),
                ip: [10, 0, 0, 7],
                port: 9,
            }],
            load: Load::OpenLoop { rate: 200_000.0 },
            requests: 1000,
            payload_min: 24,
            payload_max: 1472,
            start_ns: 5000.0,
            timeout_ns: 2e6,
            bye: false,
        };
        assert_eq!(cfg, expect);
        assert_eq!(
            UdpGenConfig::parse_inline("open:1.5M,requests=1,seed=1")
                .unwrap()
                .load,
            Load::OpenLoop { rate: 1.5e6 }
        );
        for (bad, says) in [
            ("closed:4,requests=10", "missing seed=N"),
            ("requests=10,seed=1", "missing a load"),
            ("closed:4,open:5,requests=1,seed=1", "a second load"),
            ("closed:x,requests=1,seed=1", "`x` is not a whole number"),
            (
                "closed:0,requests=1,seed=1",
                "at least 1 request outstanding",
            ),
            ("open:fast,requests=1,seed=1", "not a rate"),
            (
                "half:3,requests=1,seed=1",
                "`closed:OUTSTANDING` or `open:RATE`",
            ),
            (
                "closed:1,requests=1,seed=1,speed=3",
                "unknown field `speed`",
            ),
            ("closed:1,requests=-1,seed=1", "requests: `-1`"),
            ("closed:1,requests=1,seed=1,mac=zz", "not a MAC address"),
            (
                "closed:1,requests=1,seed=1,ip=10.0.0",
                "not an IPv4 address",
            ),
            (
                "closed:1,requests=1,seed=1,payload=10",
                "payload sizes 10..=10",
            ),
            ("closed:1,requests=1,seed=1,bye=maybe", "not true or false"),
            ("gen.txt", "neither a load"),
        ] {
            let e = UdpGenConfig::parse_inline(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("`{bad}`: ")) && e.contains(says),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn ron_errors_name_the_file_line_and_column() {
        let text = "(\n    seed: 7,\n    load: ClosedLoop(outstanding: 4),\n    requests: 100,\n    \
                    sped: 3,\n)";
        let e = UdpGenConfig::parse_ron(text, "gen.ron")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("gen.ron:5:"), "{e}");
        assert!(e.contains("sped"), "{e}");
        let e = UdpGenConfig::parse_ron(
            "(seed: 7, load: ClosedLoop(outstanding: 4), requests: 1, payload_min: 2)",
            "gen.ron",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("gen.ron: payload sizes"), "{e}");
        let e = UdpGenConfig::load("/nonexistent/gen.ron").unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    }

    #[test]
    fn bad_configs_are_refused() {
        let ok = UdpGenConfig::closed_loop(target(), 10, 2, 9);
        ok.validate().unwrap();
        type Edit = Box<dyn Fn(&mut UdpGenConfig)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("no targets", Box::new(|c| c.targets.clear())),
            ("no name", Box::new(|c| c.name.clear())),
            (
                "group MAC",
                Box::new(|c| c.mac = MacAddr([3, 0, 0, 0, 0, 1])),
            ),
            ("own MAC", Box::new(|c| c.targets[0].mac = c.mac)),
            ("payload", Box::new(|c| c.payload_max = 1473)),
            ("payload order", Box::new(|c| c.payload_min = 100)),
            ("rate", Box::new(|c| c.load = Load::OpenLoop { rate: 0.0 })),
            (
                "NaN rate",
                Box::new(|c| c.load = Load::OpenLoop { rate: f64::NAN }),
            ),
            (
                "outstanding",
                Box::new(|c| c.load = Load::ClosedLoop { outstanding: 0 }),
            ),
            ("start", Box::new(|c| c.start_ns = -1.0)),
            ("infinite start", Box::new(|c| c.start_ns = f64::INFINITY)),
            ("timeout", Box::new(|c| c.timeout_ns = 0.0)),
            ("long timeout", Box::new(|c| c.timeout_ns = 1e300)),
        ];
        for (what, edit) in cases {
            let mut c = ok.clone();
            edit(&mut c);
            assert!(c.validate().is_err(), "{what}");
            assert!(UdpGenerator::new(c).is_err(), "{what}");
        }
    }

    #[test]
    fn answers_are_counted_per_target() {
        let mut cfg = UdpGenConfig::closed_loop(target(), 300, 3, 4);
        cfg.targets.push(Target {
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            ip: [10, 0, 0, 2],
            port: ECHO_PORT,
        });
        let (g, log) = run(cfg, 1000, |_| true);
        let r = g.report();
        assert_eq!(r.answered, 300);
        assert_eq!(r.answered_per_target.iter().sum::<u64>(), 300);
        // The counts are those of the requests' destinations (drawn uniformly).
        let to_second = log
            .iter()
            .filter(|(_, f)| f[..6] == [2, 0, 0, 0, 0, 2] && f.len() > 64)
            .count() as u64;
        assert_eq!(r.answered_per_target[1], to_second - 1, "one bye each");
        assert!((100..200).contains(&to_second), "{r:?}");
    }
}
