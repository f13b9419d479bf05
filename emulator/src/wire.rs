//! The wire (DESIGN.md §2.5): a full-duplex Ethernet link between a NIC and host-side
//! endpoints, with latency and bandwidth, in simulated time.
//!
//! # Link model
//! Each direction is a server of the link's bandwidth: a frame of `n` bytes occupies it for
//! the time of `max(n, 60) + 24` bytes (padding to the 64-byte minimum with FCS; preamble,
//! start delimiter and inter-frame gap), starting when the frame is handed over or when the
//! previous frame has left, whichever is later; it arrives `latency` after its last bit left
//! (store and forward). Times are core cycles of the machine; the link keeps fractions of a
//! cycle (2^-32) so that back-to-back frames run at exactly the configured rate, and an
//! arrival is rounded up to a whole cycle. Frames never get lost or reordered on the wire.
//!
//! # Endpoints
//! The far side of the wire is a switch port with endpoints behind it: load generators
//! ([`Endpoint`], written in `workloads/`). A frame from the NIC goes to the endpoint whose
//! MAC is its destination, or to every endpoint for a broadcast or multicast destination,
//! else it is counted as dropped. Endpoints act only inside callbacks — when started, when a
//! frame reaches them, and at the wake-up time they asked for — and send frames or ask for a
//! wake-up through [`EndpointIo`]. They see simulated time only, so they are deterministic
//! as long as their own randomness is seeded.
//!
//! # Checkpoints
//! An endpoint is an object of a type the emulator does not know, so a [`Wire`] serialises
//! each endpoint as its name, MAC, pending wake-up and the bytes of [`Endpoint::save`]. A
//! deserialised wire holds those bytes without an object: the runner builds the endpoint
//! again — from its scenario, or from the saved bytes themselves when the endpoint saves its
//! configuration too (`workloads::endpoints::reattach_all` does this for the endpoints of
//! `workloads`) — and hands it back with [`Wire::restore_endpoint`], which checks its name
//! and MAC and calls [`Endpoint::restore`] with the saved bytes. Until then the endpoint is
//! absent: frames to it count as [`WireStats::unclaimed`] and its wake-ups are ignored, so
//! the run no longer follows the uninterrupted one ([`Wire::detached`] lists such slots; a
//! runner should refuse to go on while any is left).
//!
//! A deserialised wire is checked against one built fresh from the machine description
//! ([`Wire::check_restored`]): its link parameters must be the description's, and its
//! times and endpoint slots must be usable (a forged checkpoint gets an error, not a panic).

use crate::events::MAX_TIME;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::any::Any;

/// Bytes a frame occupies on the link beyond its own: preamble and start delimiter (8), FCS
/// (4), inter-frame gap (12).
pub const OVERHEAD_BYTES: u64 = 24;
/// Frames shorter than this (without FCS) are padded to it.
pub const MIN_FRAME_BYTES: u64 = 60;

/// A host-side endpoint on the far side of a wire.
pub trait Endpoint: Send + Any {
    /// A short name for reports.
    fn name(&self) -> &str;
    /// Its MAC address: frames to it are delivered to it.
    fn mac(&self) -> [u8; 6];
    /// Called once, when attached to the wire.
    fn start(&mut self, io: &mut EndpointIo);
    /// A frame has fully arrived.
    fn receive(&mut self, frame: &[u8], io: &mut EndpointIo);
    /// The wake-up it asked for is due.
    fn wake(&mut self, io: &mut EndpointIo);
    /// It has nothing more to do (a generator that sent and settled all its requests).
    fn finished(&self) -> bool {
        false
    }
    /// Its state, for a checkpoint.
    fn save(&self) -> Vec<u8>;
    /// Takes back a state from [`save`](Self::save) of an endpoint built the same way.
    fn restore(&mut self, state: &[u8]) -> Result<(), String>;
    fn clone_box(&self) -> Box<dyn Endpoint>;
    /// For reading results: `wire.endpoint(0).as_any().downcast_ref::<Generator>()`.
    fn as_any(&self) -> &dyn Any;
}

/// What an endpoint sees and does during a callback.
#[derive(Debug)]
pub struct EndpointIo {
    now: u64,
    hz: u64,
    sent: Vec<Vec<u8>>,
    wake: Option<Option<u64>>,
}

impl EndpointIo {
    pub fn new(now: u64, hz: u64) -> Self {
        EndpointIo {
            now,
            hz,
            sent: Vec::new(),
            wake: None,
        }
    }

    /// Simulated time, in cycles of the machine's clock.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Cycles per simulated second.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// Nanoseconds to cycles, rounded to the nearest.
    pub fn cycles(&self, ns: f64) -> u64 {
        (ns * self.hz as f64 / 1e9).round() as u64
    }

    /// Sends a frame onto the wire now (it queues behind frames still being sent).
    pub fn send(&mut self, frame: Vec<u8>) {
        self.sent.push(frame);
    }

    /// Asks for a [`Endpoint::wake`] call at `time` (not before now), replacing any earlier
    /// request.
    pub fn wake_at(&mut self, time: u64) {
        self.wake = Some(Some(time.max(self.now)));
    }

    /// Cancels a pending wake-up.
    pub fn cancel_wake(&mut self) {
        self.wake = Some(None);
    }

    /// The frames sent and the new wake-up request (`None`: unchanged; `Some(None)`: none).
    pub fn into_parts(self) -> (Vec<Vec<u8>>, Option<Option<u64>>) {
        (self.sent, self.wake)
    }
}

/// One endpoint, or what a checkpoint kept of it.
pub struct EndpointSlot {
    name: String,
    mac: [u8; 6],
    /// Its pending wake-up.
    pub(crate) next_wake: Option<u64>,
    ep: Option<Box<dyn Endpoint>>,
    /// The state read from a checkpoint, until the endpoint is restored.
    saved: Option<Vec<u8>>,
}

impl Clone for EndpointSlot {
    fn clone(&self) -> Self {
        EndpointSlot {
            name: self.name.clone(),
            mac: self.mac,
            next_wake: self.next_wake,
            ep: self.ep.as_ref().map(|e| e.clone_box()),
            saved: self.saved.clone(),
        }
    }
}

impl std::fmt::Debug for EndpointSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointSlot")
            .field("name", &self.name)
            .field("mac", &self.mac)
            .field("next_wake", &self.next_wake)
            .field("attached", &self.ep.is_some())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct SlotState {
    name: String,
    mac: [u8; 6],
    next_wake: Option<u64>,
    state: Vec<u8>,
}

impl Serialize for EndpointSlot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let state = match (&self.ep, &self.saved) {
            (Some(ep), _) => ep.save(),
            (None, Some(saved)) => saved.clone(),
            (None, None) => Vec::new(),
        };
        SlotState {
            name: self.name.clone(),
            mac: self.mac,
            next_wake: self.next_wake,
            state,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for EndpointSlot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = SlotState::deserialize(d)?;
        Ok(EndpointSlot {
            name: s.name,
            mac: s.mac,
            next_wake: s.next_wake,
            ep: None,
            saved: Some(s.state),
        })
    }
}

impl EndpointSlot {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }
    /// The endpoint, unless a checkpoint left only its state.
    pub fn endpoint(&self) -> Option<&dyn Endpoint> {
        self.ep.as_deref()
    }
    /// The state a checkpoint left for it, until it is restored.
    pub fn saved_state(&self) -> Option<&[u8]> {
        self.saved.as_deref()
    }
    pub(crate) fn endpoint_mut(&mut self) -> Option<&mut (dyn Endpoint + 'static)> {
        self.ep.as_deref_mut()
    }
}

/// Counters of a wire.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireStats {
    /// Frames and bytes (without overhead) from the NIC to the far side.
    pub frames_out: u64,
    pub bytes_out: u64,
    /// Frames and bytes from the endpoints to the NIC.
    pub frames_in: u64,
    pub bytes_in: u64,
    /// Frames from the NIC that no endpoint took.
    pub unclaimed: u64,
}

/// One direction of the link.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Direction {
    /// When the last frame handed over has left: whole cycles and the fraction of the next
    /// in units of 2^-32 (exact: back-to-back frames do not accumulate rounding).
    free_at: u64,
    free_frac: u32,
}

/// A full-duplex link and the endpoints on its far side.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Wire {
    latency: u64,
    /// Cycles per byte on the link, in units of 2^-32.
    cycles_per_byte_q32: u64,
    out: Direction,
    inward: Direction,
    endpoints: Vec<EndpointSlot>,
    pub stats: WireStats,
}

impl Wire {
    /// A link of `latency_ns` one way and `gbps` × 10^9 bits/s per direction, on a machine
    /// clocked at `mhz`.
    pub fn new(latency_ns: f64, gbps: f64, mhz: u32) -> Self {
        let cycles_per_byte = 8.0 * mhz as f64 / (gbps * 1000.0);
        Wire {
            latency: (latency_ns * mhz as f64 / 1000.0).round() as u64,
            cycles_per_byte_q32: (cycles_per_byte * (1u64 << 32) as f64).round() as u64,
            out: Direction::default(),
            inward: Direction::default(),
            endpoints: Vec::new(),
            stats: WireStats::default(),
        }
    }

    /// One-way latency in cycles.
    pub fn latency(&self) -> u64 {
        self.latency
    }

    /// Cycles a frame of `len` bytes occupies a direction.
    pub fn serialization(&self, len: u64) -> u64 {
        let bytes = len.max(MIN_FRAME_BYTES) + OVERHEAD_BYTES;
        ((bytes as u128 * self.cycles_per_byte_q32 as u128).div_ceil(1 << 32)) as u64
    }

    /// Takes a frame of `len` bytes handed over at `now` through `dir` of a link of
    /// `cycles_per_byte_q32` and `latency`: when it has arrived.
    fn transmit(
        dir: &mut Direction,
        cycles_per_byte_q32: u64,
        latency: u64,
        now: u64,
        len: u64,
    ) -> u64 {
        let bytes = len.max(MIN_FRAME_BYTES) + OVERHEAD_BYTES;
        let free = ((dir.free_at as u128) << 32) | dir.free_frac as u128;
        let end = ((now as u128) << 32).max(free) + bytes as u128 * cycles_per_byte_q32 as u128;
        dir.free_at = (end >> 32) as u64;
        dir.free_frac = end as u32;
        end.div_ceil(1 << 32) as u64 + latency
    }

    /// A frame of `len` bytes handed to the wire by the NIC at `now`: when it arrives at the
    /// far side.
    pub fn send_out(&mut self, now: u64, len: u64) -> u64 {
        let t = Self::transmit(
            &mut self.out,
            self.cycles_per_byte_q32,
            self.latency,
            now,
            len,
        );
        self.stats.frames_out += 1;
        self.stats.bytes_out += len;
        t
    }

    /// A frame of `len` bytes sent by an endpoint at `now`: when it has arrived at the NIC.
    pub fn send_in(&mut self, now: u64, len: u64) -> u64 {
        let t = Self::transmit(
            &mut self.inward,
            self.cycles_per_byte_q32,
            self.latency,
            now,
            len,
        );
        self.stats.frames_in += 1;
        self.stats.bytes_in += len;
        t
    }

    /// Attaches an endpoint; returns its index.
    pub fn attach(&mut self, ep: Box<dyn Endpoint>) -> usize {
        self.endpoints.push(EndpointSlot {
            name: ep.name().to_string(),
            mac: ep.mac(),
            next_wake: None,
            ep: Some(ep),
            saved: None,
        });
        self.endpoints.len() - 1
    }

    pub fn endpoints(&self) -> &[EndpointSlot] {
        &self.endpoints
    }

    pub(crate) fn slot_mut(&mut self, i: usize) -> Option<&mut EndpointSlot> {
        self.endpoints.get_mut(i)
    }

    /// Endpoint `i`, if attached.
    pub fn endpoint(&self, i: usize) -> Option<&dyn Endpoint> {
        self.endpoints.get(i).and_then(|s| s.endpoint())
    }

    /// The endpoints a frame with destination `dst` goes to (attached ones only: a frame to
    /// a detached endpoint is unclaimed).
    pub fn receivers(&self, dst: [u8; 6]) -> Vec<usize> {
        let group = dst[0] & 1 != 0;
        (0..self.endpoints.len())
            .filter(|&i| {
                let e = &self.endpoints[i];
                e.ep.is_some() && (group || e.mac == dst)
            })
            .collect()
    }

    /// Hands endpoint `i` back after a checkpoint was restored: `ep` must be built as the
    /// original was (same type and configuration, so the same name and MAC); it takes the
    /// saved state. Refused, with the slot left as it was, for an endpoint of another name
    /// or MAC, a state it does not accept, or a slot whose endpoint is attached already.
    pub fn restore_endpoint(&mut self, i: usize, mut ep: Box<dyn Endpoint>) -> Result<(), String> {
        let n = self.endpoints.len();
        let slot = self
            .endpoints
            .get_mut(i)
            .ok_or_else(|| format!("the wire has no endpoint {i} ({n} endpoints)"))?;
        let mac = |m: [u8; 6]| crate::desc::MacAddr(m).to_string();
        if ep.name() != slot.name || ep.mac() != slot.mac {
            return Err(format!(
                "endpoint {i} was `{}` ({}), not `{}` ({})",
                slot.name,
                mac(slot.mac),
                ep.name(),
                mac(ep.mac())
            ));
        }
        let Some(state) = &slot.saved else {
            return Err(format!(
                "endpoint {i} (`{}`) is attached already",
                slot.name
            ));
        };
        ep.restore(state)
            .map_err(|e| format!("endpoint {i} (`{}`): {e}", slot.name))?;
        slot.saved = None;
        slot.ep = Some(ep);
        Ok(())
    }

    /// Checks a wire read from a checkpoint against `fresh`, the wire the machine
    /// description gives: the same link, times that leave room to run, endpoints with state.
    pub fn check_restored(&self, fresh: &Wire) -> Result<(), String> {
        if (self.latency, self.cycles_per_byte_q32) != (fresh.latency, fresh.cycles_per_byte_q32) {
            return Err(format!(
                "a link of {} cycles and {:#x}/2^32 cycles per byte, the description's has {} \
                 and {:#x}",
                self.latency, self.cycles_per_byte_q32, fresh.latency, fresh.cycles_per_byte_q32
            ));
        }
        for (what, d) in [("outgoing", &self.out), ("incoming", &self.inward)] {
            if d.free_at > MAX_TIME {
                return Err(format!(
                    "the {what} direction is busy until cycle {}",
                    d.free_at
                ));
            }
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            if let Some(t) = e.next_wake.filter(|&t| t > MAX_TIME) {
                return Err(format!("endpoint {i} (`{}`) wakes at cycle {t}", e.name));
            }
        }
        Ok(())
    }

    /// Indices of the endpoints that a restored checkpoint left without their object.
    pub fn detached(&self) -> Vec<usize> {
        (0..self.endpoints.len())
            .filter(|&i| self.endpoints[i].ep.is_none())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialization_follows_the_bandwidth() {
        // 10 Gb/s at 2.5 GHz: 2 cycles per byte.
        let w = Wire::new(1000.0, 10.0, 2500);
        assert_eq!(w.latency(), 2500);
        assert_eq!(w.serialization(1514), (1514 + 24) * 2);
        // Short frames are padded to 60 bytes (64 with FCS).
        assert_eq!(w.serialization(14), (60 + 24) * 2);
        // 1 Gb/s at 2.4 GHz: 19.2 cycles per byte, rounded up per frame.
        let w = Wire::new(0.0, 1.0, 2400);
        assert_eq!(w.serialization(100), (124.0f64 * 19.2).ceil() as u64);
    }

    #[test]
    fn frames_queue_behind_each_other_in_each_direction_only() {
        let mut w = Wire::new(1000.0, 10.0, 2500);
        let ser = w.serialization(1000);
        // Back to back: the second waits for the first to leave.
        assert_eq!(w.send_out(0, 1000), ser + 2500);
        assert_eq!(w.send_out(0, 1000), 2 * ser + 2500);
        // The other direction is independent (full duplex).
        assert_eq!(w.send_in(0, 1000), ser + 2500);
        // A frame after the link went idle starts at once.
        assert_eq!(w.send_out(100_000, 1000), 100_000 + ser + 2500);
        assert_eq!(w.stats.frames_out, 3);
        assert_eq!(w.stats.bytes_in, 1000);
    }

    #[test]
    fn line_rate_is_the_configured_bandwidth() {
        // 1000 full frames back to back at 10 Gb/s take 1000 × 1538 × 8 bits / 10^10 b/s.
        let mut w = Wire::new(500.0, 10.0, 2000);
        let mut last = 0;
        for _ in 0..1000 {
            last = w.send_out(0, 1514);
        }
        let ns = (last - w.latency()) as f64 / 2.0;
        let expect = 1000.0 * 1538.0 * 8.0 / 10.0;
        assert!((ns - expect).abs() < 1.0, "{ns} vs {expect}");
    }

    #[test]
    fn group_frames_go_to_every_endpoint() {
        #[derive(Clone)]
        struct Sink([u8; 6]);
        impl Endpoint for Sink {
            fn name(&self) -> &str {
                "sink"
            }
            fn mac(&self) -> [u8; 6] {
                self.0
            }
            fn start(&mut self, _: &mut EndpointIo) {}
            fn receive(&mut self, _: &[u8], _: &mut EndpointIo) {}
            fn wake(&mut self, _: &mut EndpointIo) {}
            fn save(&self) -> Vec<u8> {
                vec![1, 2, 3]
            }
            fn restore(&mut self, state: &[u8]) -> Result<(), String> {
                (state == [1, 2, 3]).then_some(()).ok_or("bad".into())
            }
            fn clone_box(&self) -> Box<dyn Endpoint> {
                Box::new(self.clone())
            }
            fn as_any(&self) -> &dyn Any {
                self
            }
        }
        let mut w = Wire::new(0.0, 10.0, 1000);
        w.attach(Box::new(Sink([2, 0, 0, 0, 0, 1])));
        w.attach(Box::new(Sink([2, 0, 0, 0, 0, 2])));
        assert_eq!(w.receivers([2, 0, 0, 0, 0, 2]), [1]);
        assert_eq!(w.receivers([0xFF; 6]), [0, 1]);
        assert!(w.receivers([2, 0, 0, 0, 0, 3]).is_empty());

        // Through a checkpoint: the state travels as bytes, the object comes back by hand.
        let text = ron::to_string(&w).unwrap();
        let mut r: Wire = ron::from_str(&text).unwrap();
        assert_eq!(r.detached(), [0, 1]);
        assert_eq!(r.endpoints()[1].saved_state(), Some(&[1u8, 2, 3][..]));
        r.check_restored(&Wire::new(0.0, 10.0, 1000)).unwrap();
        // Detached endpoints take no frames: they are unclaimed.
        assert!(r.receivers([2, 0, 0, 0, 0, 2]).is_empty());
        assert!(r.receivers([0xFF; 6]).is_empty());
        assert_eq!(
            r.restore_endpoint(0, Box::new(Sink([2, 0, 0, 0, 0, 9])))
                .unwrap_err(),
            "endpoint 0 was `sink` (02:00:00:00:00:01), not `sink` (02:00:00:00:00:09)"
        );
        assert_eq!(
            r.restore_endpoint(2, Box::new(Sink([2, 0, 0, 0, 0, 1])))
                .unwrap_err(),
            "the wire has no endpoint 2 (2 endpoints)"
        );
        r.restore_endpoint(0, Box::new(Sink([2, 0, 0, 0, 0, 1])))
            .unwrap();
        assert_eq!(r.detached(), [1]);
        assert_eq!(r.receivers([0xFF; 6]), [0]);
        assert_eq!(
            r.restore_endpoint(0, Box::new(Sink([2, 0, 0, 0, 0, 1])))
                .unwrap_err(),
            "endpoint 0 (`sink`) is attached already"
        );
        assert_eq!(ron::to_string(&r).unwrap(), text);
        // A state the endpoint refuses leaves the slot detached, its state kept.
        let mut bad: Wire = ron::from_str(&text.replace("state:[1,2,3]", "state:[1,2]")).unwrap();
        let e = bad
            .restore_endpoint(0, Box::new(Sink([2, 0, 0, 0, 0, 1])))
            .unwrap_err();
        assert_eq!(e, "endpoint 0 (`sink`): bad");
        assert_eq!(bad.detached(), [0, 1]);
        assert_eq!(bad.endpoints()[0].saved_state(), Some(&[1u8, 2][..]));
    }

    #[test]
    fn a_restored_wire_must_be_the_descriptions() {
        let mut w = Wire::new(1000.0, 10.0, 2500);
        w.send_out(5000, 100);
        let fresh = Wire::new(1000.0, 10.0, 2500);
        w.check_restored(&fresh).unwrap();
        let e = w.check_restored(&Wire::new(500.0, 10.0, 2500)).unwrap_err();
        assert!(e.starts_with("a link of 2500 cycles"), "{e}");
        assert!(w.check_restored(&Wire::new(1000.0, 1.0, 2500)).is_err());
        let mut late = w.clone();
        late.out.free_at = u64::MAX;
        let e = late.check_restored(&fresh).unwrap_err();
        assert!(e.contains("outgoing direction is busy until"), "{e}");
        let mut late = w.clone();
        late.inward.free_at = MAX_TIME + 1;
        assert!(late.check_restored(&fresh).is_err());
    }
}
