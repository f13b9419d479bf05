//! Machine descriptions (DESIGN.md §2.1): presets shipped in `emulator/machines/` and RON
//! files written by users. Every RON error names the file's line and column.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Granularity of node RAM: the loader identity-maps RAM with 2 MiB pages.
pub const NODE_ALIGN: u64 = 2 << 20;
/// Node 0's RAM starts here; below is a hole so that null-pointer accesses fault.
pub const RAM_START: u64 = 1 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineDesc {
    /// A short name, shown in reports.
    pub name: String,
    /// Core clock; also the `rdtsc` rate.
    pub frequency_mhz: u32,
    /// One NUMA node per socket, in socket order.
    pub sockets: Vec<SocketDesc>,
    /// Interconnect links between sockets (both directions).
    #[serde(default)]
    pub links: Vec<LinkDesc>,
    /// Devices, each attached to a socket; device `i` owns MMIO window `i`
    /// (`abi::mmio::window`).
    #[serde(default)]
    pub devices: Vec<DeviceDesc>,
}

/// A device of the machine (DESIGN.md §2.5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DeviceDesc {
    Nic(NicDesc),
}

impl DeviceDesc {
    /// The socket the device is attached to.
    pub fn socket(&self) -> u32 {
        match self {
            DeviceDesc::Nic(n) => n.socket,
        }
    }
}

/// A NIC (`abi::nic`) and the wire on its far side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicDesc {
    pub socket: u32,
    /// Queues, 1 to `abi::nic::MAX_QUEUES`.
    pub queues: u32,
    /// The NIC's own MAC address, `"02:00:00:00:00:01"` (unicast).
    pub mac: MacAddr,
    /// One-way latency of a PCIe transaction between the NIC and its socket's root complex:
    /// a DMA write or an MMIO store pays it once, a DMA read or an MMIO load twice.
    #[serde(default = "NicDesc::default_pcie_latency_ns")]
    pub pcie_latency_ns: f64,
    /// The link to the host-side endpoints.
    #[serde(default)]
    pub wire: WireDesc,
}

impl NicDesc {
    /// Half a microsecond for an MMIO load round trip: the order of what PCIe devices show
    /// (uncached reads of device registers cost 0.5-1 µs on Xeon servers).
    fn default_pcie_latency_ns() -> f64 {
        250.0
    }
}

/// The wire: a full-duplex Ethernet link between a NIC and its endpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WireDesc {
    /// One-way latency (cable, switch), from the last bit sent to the last bit received.
    pub latency_ns: f64,
    /// Bandwidth of each direction, 10^9 bits/s.
    pub bandwidth_gbps: f64,
}

impl Default for WireDesc {
    /// 10 Gb/s Ethernet through one switch: about 1 µs each way.
    fn default() -> Self {
        WireDesc {
            latency_ns: 1000.0,
            bandwidth_gbps: 10.0,
        }
    }
}

/// A MAC address, written `"02:00:00:00:00:01"` in RON files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next().filter(|p| p.len() == 2);
            *b = p
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("`{s}` is not a MAC address like 02:00:00:00:00:01"))?;
        }
        if parts.next().is_some() {
            return Err(format!("`{s}` is not a MAC address like 02:00:00:00:00:01"));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketDesc {
    pub cores: u32,
    pub l1d: CacheDesc,
    pub l2: CacheDesc,
    pub llc: CacheDesc,
    pub memory: MemoryDesc,
    /// Memory-level parallelism of each core of this socket (fill buffers, prefetcher).
    /// Optional in RON files; the defaults follow a Skylake-SP core.
    #[serde(default)]
    pub mlp: MlpDesc,
}

/// What lets one core keep several misses in flight (DESIGN.md §2.3): the timing model's
/// outstanding-miss bound, shared by demand misses, posted stores and prefetches, and its
/// stride prefetcher.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlpDesc {
    /// Misses a core can have in flight beyond its L1 (fill buffers / L2 superqueue entries).
    pub outstanding_misses: u32,
    /// Streams the stride prefetcher tracks per core; 0 turns it off.
    pub prefetch_streams: u32,
    /// How many strides ahead of the demand stream the prefetcher runs.
    pub prefetch_distance: u32,
}

impl Default for MlpDesc {
    /// 16 outstanding misses (the L2 superqueue of Intel cores since Nehalem) and an L2
    /// streamer tracking 16 streams up to 16 lines ahead (Intel 64 and IA-32 Architectures
    /// Optimization Reference Manual, "Data Prefetching": the streamer detects forward and
    /// backward streams and stays up to 20 lines ahead).
    fn default() -> Self {
        MlpDesc {
            outstanding_misses: 16,
            prefetch_streams: 16,
            prefetch_distance: 16,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheDesc {
    pub size_kib: u32,
    pub ways: u32,
    /// Load-to-use latency of a hit at this level, in core cycles (a hit in L2 costs the L2
    /// latency in all, not L1 + L2).
    pub latency: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryDesc {
    /// RAM of this socket's node, a multiple of 2 MiB.
    pub size_mib: u64,
    pub channels: u32,
    /// Peak bandwidth of the node's controllers, all channels together (10^9 bytes/s);
    /// the timing model splits it evenly over the channels, lines interleaved across them.
    pub bandwidth_gbs: f64,
    /// Unloaded latency from the request reaching the controller to the data leaving it
    /// (controller + DRAM). A local miss costs the LLC latency plus this; queueing comes on top.
    pub latency_ns: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkDesc {
    pub a: u32,
    pub b: u32,
    /// One-way latency of a message crossing the link (one hop).
    pub latency_ns: f64,
    /// Bandwidth of each direction (10^9 bytes/s). Several links between the same two
    /// sockets share the traffic, interleaved by cache line.
    pub bandwidth_gbs: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum DescError {
    #[error("unknown machine preset `{0}` (presets: 1s, 2s, 4s, 8s; or give a .ron file)")]
    UnknownPreset(String),
    #[error("cannot read machine file {path}")]
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
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Accepted bandwidths and latencies: wide, but bounded so that the timing model's integer
/// conversions (cycles, service times) cannot overflow. NaN falls outside both.
const BANDWIDTH_GBS: std::ops::RangeInclusive<f64> = 0.001..=10_000.0;
const LATENCY_NS: std::ops::RangeInclusive<f64> = 0.0..=100_000.0;

const PRESETS: [(&str, &str); 4] = [
    ("1s", include_str!("../machines/1s.ron")),
    ("2s", include_str!("../machines/2s.ron")),
    ("4s", include_str!("../machines/4s.ron")),
    ("8s", include_str!("../machines/8s.ron")),
];

impl MachineDesc {
    /// Names of the shipped presets.
    pub fn preset_names() -> impl Iterator<Item = &'static str> {
        PRESETS.iter().map(|(n, _)| *n)
    }

    /// A preset by name, or a RON file by path (anything that names an existing file or ends
    /// in `.ron`).
    pub fn load(spec: &str) -> Result<Self, DescError> {
        if let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == spec) {
            return Self::parse(text, &format!("preset {spec}"));
        }
        let path = Path::new(spec);
        if spec.ends_with(".ron") || path.exists() {
            let text = std::fs::read_to_string(path).map_err(|source| DescError::Read {
                path: spec.to_string(),
                source,
            })?;
            return Self::parse(&text, spec);
        }
        Err(DescError::UnknownPreset(spec.to_string()))
    }

    /// Parses and validates RON text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, DescError> {
        let desc: MachineDesc = ron::from_str(text).map_err(|e| DescError::Parse {
            path: origin.to_string(),
            line: e.span.start.line,
            column: e.span.start.col,
            message: e.code.to_string(),
        })?;
        desc.validate().map_err(|message| DescError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(desc)
    }

    fn validate(&self) -> Result<(), String> {
        if self.sockets.is_empty() || self.sockets.len() > 64 {
            return Err(format!(
                "{} sockets; 1 to 64 are supported",
                self.sockets.len()
            ));
        }
        if self.frequency_mhz == 0 || self.frequency_mhz > 100_000 {
            return Err(format!(
                "frequency_mhz {} is out of range",
                self.frequency_mhz
            ));
        }
        let n = self.sockets.len() as u32;
        for (i, s) in self.sockets.iter().enumerate() {
            if s.cores == 0 || s.cores > 256 {
                return Err(format!(
                    "socket {i}: {} cores; 1 to 256 are supported",
                    s.cores
                ));
            }
            let bytes = s.memory.size_mib << 20;
            if bytes % NODE_ALIGN != 0 || s.memory.size_mib == 0 {
                return Err(format!(
                    "socket {i}: memory size_mib must be a non-zero multiple of 2"
                ));
            }
            if i == 0 && s.memory.size_mib < 64 {
                return Err("socket 0: node 0 needs at least 64 MiB of RAM".into());
            }
            if s.memory.size_mib > 1 << 20 {
                return Err(format!("socket {i}: more than 1 TiB of memory"));
            }
            if !(BANDWIDTH_GBS.contains(&s.memory.bandwidth_gbs)
                && LATENCY_NS.contains(&s.memory.latency_ns))
                || s.memory.channels == 0
                || s.memory.channels > 64
            {
                return Err(format!(
                    "socket {i}: memory needs 1 to 64 channels, bandwidth_gbs in 0.001..=10000 \
                     and latency_ns in 0..=100000"
                ));
            }
            let m = &s.mlp;
            if m.outstanding_misses == 0 || m.outstanding_misses > 256 {
                return Err(format!(
                    "socket {i}: mlp outstanding_misses {} is out of range (1 to 256)",
                    m.outstanding_misses
                ));
            }
            if m.prefetch_streams > 64 || m.prefetch_distance > 64 {
                return Err(format!(
                    "socket {i}: mlp prefetch_streams and prefetch_distance must be at most 64"
                ));
            }
            if !(s.l1d.latency <= s.l2.latency && s.l2.latency <= s.llc.latency) {
                return Err(format!(
                    "socket {i}: cache latencies must not decrease from l1d to l2 to llc"
                ));
            }
            for (what, c) in [("l1d", &s.l1d), ("l2", &s.l2), ("llc", &s.llc)] {
                if c.ways == 0
                    || c.size_kib == 0
                    || !(c.size_kib as u64 * 1024 / 64).is_multiple_of(c.ways as u64)
                {
                    return Err(format!(
                        "socket {i}: {what} size must be a whole number of 64-byte lines per way"
                    ));
                }
                if c.ways > 64 || c.size_kib > 1 << 18 || c.latency > 10_000 {
                    return Err(format!(
                        "socket {i}: {what} is out of range (at most 64 ways, 256 MiB, \
                         10000 cycles)"
                    ));
                }
            }
        }
        for l in &self.links {
            if l.a >= n || l.b >= n || l.a == l.b {
                return Err(format!(
                    "link {}-{}: sockets must be distinct and below {n}",
                    l.a, l.b
                ));
            }
            if !(BANDWIDTH_GBS.contains(&l.bandwidth_gbs) && LATENCY_NS.contains(&l.latency_ns)) {
                return Err(format!(
                    "link {}-{}: bandwidth_gbs must be in 0.001..=10000 and latency_ns in \
                     0..=100000",
                    l.a, l.b
                ));
            }
        }
        if self.hops().iter().any(|row| row.contains(&u32::MAX)) {
            return Err("the links leave some sockets unreachable from others".into());
        }
        if self.devices.len() as u64 > abi::mmio::MAX_DEVICES {
            return Err(format!(
                "{} devices; at most {} are supported",
                self.devices.len(),
                abi::mmio::MAX_DEVICES
            ));
        }
        for (i, d) in self.devices.iter().enumerate() {
            if d.socket() >= n {
                return Err(format!(
                    "device {i}: socket {} does not exist (the machine has {n})",
                    d.socket()
                ));
            }
            let DeviceDesc::Nic(nic) = d;
            if nic.queues == 0 || nic.queues as u64 > abi::nic::MAX_QUEUES {
                return Err(format!(
                    "device {i}: {} queues; 1 to {} are supported",
                    nic.queues,
                    abi::nic::MAX_QUEUES
                ));
            }
            if nic.mac.0[0] & 1 != 0 {
                return Err(format!(
                    "device {i}: MAC {} is a multicast address; a NIC needs a unicast one",
                    nic.mac
                ));
            }
            if !(LATENCY_NS.contains(&nic.pcie_latency_ns)
                && LATENCY_NS.contains(&nic.wire.latency_ns)
                && (0.001..=10_000.0).contains(&nic.wire.bandwidth_gbps))
            {
                return Err(format!(
                    "device {i}: pcie_latency_ns and wire latency_ns must be in 0..=100000, \
                     wire bandwidth_gbps in 0.001..=10000"
                ));
            }
        }
        Ok(())
    }

    pub fn nnodes(&self) -> u32 {
        self.sockets.len() as u32
    }

    pub fn ncores(&self) -> u32 {
        self.sockets.iter().map(|s| s.cores).sum()
    }

    /// Socket of each core, in core-index order (sockets' cores are numbered consecutively).
    pub fn core_sockets(&self) -> Vec<u32> {
        self.sockets
            .iter()
            .enumerate()
            .flat_map(|(i, s)| std::iter::repeat_n(i as u32, s.cores as usize))
            .collect()
    }

    /// RAM ranges per node: node 0 starts at 1 MiB, later nodes follow; each ends on a 2 MiB
    /// follow, each 2 MiB-aligned.
    pub fn ram_layout(&self) -> Vec<crate::memory::RamRange> {
        // Node n occupies [sum of the sizes before it, + its size); node 0 gives up its first
        // MiB to the hole, as a PC does, so every node ends on a 2 MiB boundary and can be
        // identity-mapped with large pages.
        let mut base = 0;
        let mut out = Vec::new();
        for (i, s) in self.sockets.iter().enumerate() {
            let len = s.memory.size_mib << 20;
            let start = base.max(RAM_START);
            out.push(crate::memory::RamRange {
                base: start,
                len: base + len - start,
                node: i as u32,
            });
            base = (base + len).next_multiple_of(NODE_ALIGN);
        }
        out
    }

    /// Hop counts between sockets over the links (breadth-first; `u32::MAX` if unreachable).
    pub fn hops(&self) -> Vec<Vec<u32>> {
        let n = self.sockets.len();
        let mut d = vec![vec![u32::MAX; n]; n];
        for (s, row) in d.iter_mut().enumerate() {
            row[s] = 0;
            let mut frontier = vec![s];
            let mut h = 0;
            while !frontier.is_empty() {
                h += 1;
                let mut next = Vec::new();
                for &u in &frontier {
                    for l in &self.links {
                        let (a, b) = (l.a as usize, l.b as usize);
                        for (x, y) in [(a, b), (b, a)] {
                            if x == u && row[y] == u32::MAX {
                                row[y] = h;
                                next.push(y);
                            }
                        }
                    }
                }
                frontier = next;
            }
        }
        d
    }

    /// SLIT-style distances: 10 local, +11 per hop (ACPI convention: 21 for one hop).
    pub fn distances(&self) -> Vec<u8> {
        self.hops()
            .iter()
            .flat_map(|row| row.iter().map(|&h| (10 + 11 * h).min(254) as u8))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_meet_the_platform_minimums() {
        for name in MachineDesc::preset_names() {
            let d = MachineDesc::load(name).unwrap();
            assert!(
                d.sockets
                    .iter()
                    .all(|s| s.cores >= 4 && s.memory.size_mib >= 256),
                "{name}"
            );
            assert_eq!(d.ram_layout()[0].base, RAM_START);
            assert!(d.ram_layout()[0].end() >= 64 << 20);
        }
        assert_eq!(MachineDesc::load("2s").unwrap().ncores(), 8);
        assert_eq!(MachineDesc::load("8s").unwrap().nnodes(), 8);
    }

    #[test]
    fn eight_socket_ladder_has_two_hop_pairs() {
        let d = MachineDesc::load("8s").unwrap();
        let h = d.hops();
        assert!(h.iter().flatten().any(|&x| x >= 2));
        assert_eq!(d.distances()[0], 10);
    }

    #[test]
    fn ron_errors_name_line_and_column() {
        let text = "MachineDesc(\n  name: \"x\",\n  frequency_mhz: \"fast\",\n)";
        let e = MachineDesc::parse(text, "m.ron").unwrap_err().to_string();
        assert!(e.starts_with("m.ron:3:"), "{e}");
        let e = MachineDesc::parse("MachineDesc(name: \"x\", bogus: 1)", "m.ron").unwrap_err();
        assert!(e.to_string().contains("m.ron:1:"), "{e}");
    }

    #[test]
    fn unknown_presets_and_missing_files_are_errors() {
        assert!(matches!(
            MachineDesc::load("3s"),
            Err(DescError::UnknownPreset(_))
        ));
        assert!(matches!(
            MachineDesc::load("/nonexistent/m.ron"),
            Err(DescError::Read { .. })
        ));
    }

    #[test]
    fn mlp_is_optional_and_validated() {
        let d = MachineDesc::load("2s").unwrap();
        let text = ron::to_string(&d).unwrap();
        // A description written before `mlp` existed still parses, with the defaults.
        let old = text.replace(&ron::to_string(&d.sockets[0].mlp).unwrap(), "MlpDesc()");
        assert_ne!(old, text);
        let parsed = MachineDesc::parse(&old, "old").unwrap();
        assert_eq!(parsed.sockets[0].mlp, MlpDesc::default());
        let older = old.replace(",mlp:MlpDesc()", "");
        assert!(!older.contains("mlp"), "{older}");
        let no_field = MachineDesc::parse(&older, "older").unwrap();
        assert_eq!(no_field.sockets[1].mlp, MlpDesc::default());
        let mut bad = d.clone();
        bad.sockets[1].mlp.outstanding_misses = 0;
        let e = MachineDesc::parse(&ron::to_string(&bad).unwrap(), "t").unwrap_err();
        assert!(e.to_string().contains("outstanding_misses"), "{e}");
        let mut bad = d.clone();
        bad.sockets[0].memory.bandwidth_gbs = f64::NAN;
        assert!(MachineDesc::parse(&ron::to_string(&bad).unwrap(), "t").is_err());
        let mut bad = d;
        bad.sockets[0].l2.latency = 2;
        assert!(MachineDesc::parse(&ron::to_string(&bad).unwrap(), "t").is_err());
    }

    #[test]
    fn devices_are_optional_and_validated() {
        let d = MachineDesc::load("2s").unwrap();
        let DeviceDesc::Nic(nic) = &d.devices[0];
        assert_eq!(
            (nic.socket, nic.queues, nic.mac.to_string().as_str()),
            (0, 4, "02:00:00:00:00:01")
        );
        let text = ron::to_string(&d).unwrap();
        assert_eq!(MachineDesc::parse(&text, "t").unwrap(), d);
        // Without the list, no devices; without the optional fields, their defaults.
        let mut none = d.clone();
        none.devices.clear();
        let bare = ron::to_string(&none).unwrap().replace(",devices:[]", "");
        assert!(!bare.contains("devices"), "{bare}");
        assert!(MachineDesc::parse(&bare, "t").unwrap().devices.is_empty());
        let short = text.replace(
            &format!(
                ",pcie_latency_ns:250.0,wire:{}",
                ron::to_string(&nic.wire).unwrap()
            ),
            "",
        );
        assert_ne!(short, text);
        let DeviceDesc::Nic(n) = &MachineDesc::parse(&short, "t").unwrap().devices[0];
        assert_eq!((n.pcie_latency_ns, &n.wire), (250.0, &WireDesc::default()));
        let bad = |edit: &dyn Fn(&mut NicDesc)| {
            let mut b = d.clone();
            let DeviceDesc::Nic(n) = &mut b.devices[0];
            edit(n);
            MachineDesc::parse(&ron::to_string(&b).unwrap(), "t").unwrap_err()
        };
        assert!(bad(&|n| n.socket = 2).to_string().contains("socket 2"));
        assert!(bad(&|n| n.queues = 33).to_string().contains("33 queues"));
        assert!(
            bad(&|n| n.mac = MacAddr([1, 0, 0, 0, 0, 1]))
                .to_string()
                .contains("multicast")
        );
        assert!(
            bad(&|n| n.wire.bandwidth_gbps = 0.0)
                .to_string()
                .contains("bandwidth")
        );
        let e = MachineDesc::parse(&text.replace("02:00:00:00:00:01", "02:00:00"), "m.ron");
        assert!(e.unwrap_err().to_string().contains("not a MAC address"));
    }

    #[test]
    fn invalid_topologies_are_refused() {
        let mut d = MachineDesc::load("2s").unwrap();
        d.links.clear();
        let text = ron::to_string(&d).unwrap();
        assert!(matches!(
            MachineDesc::parse(&text, "t"),
            Err(DescError::Invalid { .. })
        ));
    }
}
