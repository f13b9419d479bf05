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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udpgen::{Target, UdpGenConfig};
    use emulator::MachineDesc;
    use emulator::wire::EndpointIo;
    use std::any::Any;

    /// An endpoint of a kind this crate does not know.
    #[derive(Clone)]
    struct Foreign;
    impl Endpoint for Foreign {
        fn name(&self) -> &str {
            "foreign"
        }
        fn mac(&self) -> [u8; 6] {
            [2, 0, 0, 0, 0, 0x42]
        }
        fn start(&mut self, _: &mut EndpointIo) {}
        fn receive(&mut self, _: &[u8], _: &mut EndpointIo) {}
        fn wake(&mut self, _: &mut EndpointIo) {}
        fn save(&self) -> Vec<u8> {
            b"foreign state".to_vec()
        }
        fn restore(&mut self, _: &[u8]) -> Result<(), String> {
            Ok(())
        }
        fn clone_box(&self) -> Box<dyn Endpoint> {
            Box::new(self.clone())
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    fn generator(name: &str, mac: u8) -> UdpGenerator {
        let mut cfg = UdpGenConfig::closed_loop(Target::nic(), 10, 1, 3);
        cfg.name = name.into();
        cfg.mac = MacAddr([2, 0, 0, 0, 0, mac]);
        cfg.fill_in_target_macs([2, 0, 0, 0, 0, 1]);
        UdpGenerator::new(cfg).unwrap()
    }

    /// A machine of preset `1s` with `eps` attached, through a checkpoint.
    fn restored(eps: Vec<Box<dyn Endpoint>>) -> Machine {
        let mut m = Machine::new(&MachineDesc::load("1s").unwrap()).unwrap();
        for ep in eps {
            m.attach_endpoint(0, ep);
        }
        Machine::restore(&m.checkpoint()).unwrap()
    }

    #[test]
    fn generators_come_back_from_a_checkpoint_alone() {
        let mut m = restored(vec![
            Box::new(generator("a", 0xA0)),
            Box::new(generator("b", 0xB0)),
        ]);
        assert_eq!(m.sys.bus.wires[0].detached(), [0, 1]);
        let before = summaries(&m);
        assert!(before[0].endpoints.iter().all(|e| e.detached));
        assert_eq!(reattach_all(&mut m), Ok(2));
        assert!(m.sys.bus.wires[0].detached().is_empty());
        assert_eq!(reattach_all(&mut m), Ok(0));
        let s = summaries(&m);
        assert_eq!(s.len(), 1);
        let names: Vec<_> = s[0].endpoints.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let b = &s[0].endpoints[1];
        assert_eq!(
            (b.mac.as_str(), b.kind, b.detached),
            ("02:00:00:00:00:b0", Some("udpgen"), false)
        );
        // Started (a wake-up pending for its first request), nothing sent yet.
        assert_eq!(b.report.as_ref().unwrap().sent, 0);
        let text = s[0].text();
        assert!(text.starts_with("wire of NIC 0: 0 frames"), "{text}");
        assert!(
            text.contains("  b (02:00:00:00:00:b0): sent 0, answered 0"),
            "{text}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json[0]["frames_out"], 0);
        assert_eq!(
            json[0]["endpoints"][1]["report"]["answered_per_target"][0],
            0
        );
    }

    #[test]
    fn endpoints_of_unknown_kinds_or_bad_state_get_a_clear_error() {
        let e = rebuild("foreign", b"foreign state").err().unwrap();
        assert_eq!(
            e,
            "endpoint `foreign` is of a kind pvmlab cannot rebuild from a checkpoint \
             (it knows: udpgen)"
        );
        let saved = generator("a", 0xA0).save();
        assert!(rebuild("a", &saved).is_ok());
        let e = rebuild("z", &saved).err().unwrap();
        assert_eq!(e, "endpoint `z`: its saved state is that of `a`");
        let e = rebuild("a", &saved[..saved.len() - 2]).err().unwrap();
        assert!(
            e.starts_with("endpoint `a` (udpgen): its saved state: "),
            "{e}"
        );

        let mut m = restored(vec![Box::new(generator("a", 0xA0)), Box::new(Foreign)]);
        let e = reattach_all(&mut m).unwrap_err();
        assert!(
            e.starts_with("NIC 0's wire, endpoint 1: endpoint `foreign` is of a kind"),
            "{e}"
        );
        // The one before it is back; the foreign one is left to its runner.
        assert_eq!(m.sys.bus.wires[0].detached(), [1]);
        let s = summaries(&m);
        assert!(
            s[0].text()
                .contains("  foreign (02:00:00:00:00:42): detached")
        );
        m.sys.bus.wires[0]
            .restore_endpoint(1, Box::new(Foreign))
            .unwrap();
        assert_eq!(summaries(&m)[0].endpoints[1].kind, None);
    }
}
