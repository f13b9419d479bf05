//! The endpoints `workloads` provides, as a runner sees them (DESIGN.md §2.4, §2.5): rebuilt
//! from a checkpoint without their configuration being given again, and summarised for
//! reports.
//!
//! A restored machine's wires hold each endpoint as its name, MAC and saved bytes only
//! (`emulator::wire`). Every endpoint kind here saves its configuration along with its state,
//! behind a tag that says its kind, so [`rebuild`] can make the object again from the bytes
//! alone and [`reattach_all`] can hand every detached endpoint of a machine back to its wire.
//! An endpoint whose bytes are of no kind listed here (one a program attached through the
//! library with a type of its own) gets a clear error; its runner must re-attach it itself
//! with `Wire::restore_endpoint`.

use crate::udpgen::{UdpGenReport, UdpGenerator};
use emulator::Machine;
use emulator::desc::MacAddr;
use emulator::wire::{Endpoint, WireStats};
use serde::Serialize;

/// Makes an endpoint again from what its `save` gave.
type Rebuild = fn(&[u8]) -> Result<Box<dyn Endpoint>, String>;

/// An endpoint kind: its name, whether saved bytes are its, and how to rebuild it from them.
struct Kind {
    name: &'static str,
    recognises: fn(&[u8]) -> bool,
    rebuild: Rebuild,
}

const KINDS: &[Kind] = &[Kind {
    name: "udpgen",
    recognises: UdpGenerator::is_saved_state,
    rebuild: |state| Ok(Box::new(UdpGenerator::from_saved(state)?)),
}];

/// The kinds [`rebuild`] knows.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|k| k.name)
}

/// The kind of an endpoint object, if it is one of this crate's.
pub fn kind_of(ep: &dyn Endpoint) -> Option<&'static str> {
    ep.as_any().is::<UdpGenerator>().then_some("udpgen")
}

/// Rebuilds endpoint `name` from `state`, what its [`Endpoint::save`] gave at a checkpoint.
pub fn rebuild(name: &str, state: &[u8]) -> Result<Box<dyn Endpoint>, String> {
    let kind = KINDS.iter().find(|k| (k.recognises)(state)).ok_or_else(|| {
        format!(
            "endpoint `{name}` is of a kind pvmlab cannot rebuild from a checkpoint (it knows: {})",
            kinds().collect::<Vec<_>>().join(", ")
        )
    })?;
    let ep =
        (kind.rebuild)(state).map_err(|e| format!("endpoint `{name}` ({}): {e}", kind.name))?;
    if ep.name() != name {
        return Err(format!(
            "endpoint `{name}`: its saved state is that of `{}`",
            ep.name()
        ));
    }
    Ok(ep)
}

/// Rebuilds and re-attaches every endpoint that a restored checkpoint left detached, on
/// every wire of `m`; returns how many. Stops at the first that cannot be, naming it.
pub fn reattach_all(m: &mut Machine) -> Result<usize, String> {
    let mut n = 0;
    for (nic, wire) in m.sys.bus.wires.iter_mut().enumerate() {
        for i in wire.detached() {
            let slot = &wire.endpoints()[i];
            let what = format!("NIC {nic}'s wire, endpoint {i}");
            let state = slot.saved_state().unwrap_or_default();
            let ep = rebuild(slot.name(), state).map_err(|e| format!("{what}: {e}"))?;
            wire.restore_endpoint(i, ep)
                .map_err(|e| format!("{what}: {e}"))?;
            n += 1;
        }
    }
    Ok(n)
}

/// What one endpoint did, for reports (`pvmlab exec`, `--stats-json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointSummary {
    pub name: String,
    pub mac: String,
    /// `udpgen`, or `null` for a kind this crate does not know, or a detached endpoint.
    pub kind: Option<&'static str>,
    /// Whether a checkpoint left it without its object (nothing more is known of it).
    pub detached: bool,
    pub finished: bool,
    /// The generator's measurements (kind `udpgen`).
    pub report: Option<UdpGenReport>,
}

/// One wire: its counters and endpoints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WireSummary {
    /// The NIC whose far side it is.
    pub nic: usize,
    #[serde(flatten)]
    pub stats: WireStats,
    pub endpoints: Vec<EndpointSummary>,
}

/// Every wire of `m`, in NIC order.
pub fn summaries(m: &Machine) -> Vec<WireSummary> {
    m.sys
        .bus
        .wires
        .iter()
        .enumerate()
        .map(|(nic, w)| WireSummary {
            nic,
            stats: w.stats.clone(),
            endpoints: w
                .endpoints()
                .iter()
                .map(|slot| {
                    let ep = slot.endpoint();
                    EndpointSummary {
                        name: slot.name().to_string(),
                        mac: MacAddr(slot.mac()).to_string(),
                        kind: ep.and_then(kind_of),
                        detached: ep.is_none(),
                        finished: ep.is_some_and(|e| e.finished()),
                        report: ep
                            .and_then(|e| e.as_any().downcast_ref::<UdpGenerator>())
                            .map(UdpGenerator::report),
                    }
                })
                .collect(),
        })
        .collect()
}

impl WireSummary {
    /// Lines for a terminal: the wire's counters, then each endpoint's report.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let s = &self.stats;
        let mut t = format!(
            "wire of NIC {}: {} frames ({} B) to the endpoints, {} frames ({} B) from them, \
             {} unclaimed\n",
            self.nic, s.frames_out, s.bytes_out, s.frames_in, s.bytes_in, s.unclaimed
        );
        for e in &self.endpoints {
            let Some(r) = &e.report else {
                let state = if e.detached {
                    "detached (not restored)"
                } else {
                    "no report"
                };
                let _ = writeln!(t, "  {} ({}): {state}", e.name, e.mac);
                continue;
            };
            let _ = writeln!(
                t,
                "  {} ({}): sent {}, answered {} (per target {:?}), timed out {}, invalid {}",
                e.name, e.mac, r.sent, r.answered, r.answered_per_target, r.timed_out, r.invalid
            );
            let us = |ns: f64| ns / 1000.0;
            let _ = writeln!(
                t,
                "  {} latency us: min {:.3}, p50 {:.3}, p90 {:.3}, p99 {:.3}, max {:.3}, mean {:.3}; \
                 throughput {:.0} requests/s",
                e.name,
                us(r.min_ns),
                us(r.p50_ns),
                us(r.p90_ns),
                us(r.p99_ns),
                us(r.max_ns),
                us(r.mean_ns),
                r.throughput_rps
            );
        }
        t
    }
}
