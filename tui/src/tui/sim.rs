//! The simulation side of `pvmlab tui`: a [`Sim`] owns the [`Machine`] and advances it one epoch
//! of simulated time at a time; [`spawn`] runs it on its own thread, paced by [`Control`]
//! messages, and hands every epoch's [`Sample`]s to the UI as [`SimEvent`]s.
//!
//! The UI never reaches into the machine: everything it shows comes from `Machine::samples`
//! and `Machine::report` (the same stats API as `pvmlab exec --stats`), and the machine never
//! waits for the UI (the channel to it is unbounded). Pacing uses host time only to decide
//! *when* to run the next epoch, never *what* runs: [`Machine::run_epoch`] never shortens a
//! scheduling quantum, so the run is the same as a headless one.

use emulator::stats::{EPOCH_NS, Report, Sample};
use emulator::{Machine, MachineDesc, RunEnd};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Machine preset or RON file.
    pub machine: String,
    /// The image's name for the header.
    pub image_name: String,
    pub image: Vec<u8>,
    pub cmdline: String,
    pub timing: bool,
    pub max_instructions: Option<u64>,
}

/// The fixed facts about the machine the UI draws.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub machine: String,
    pub image: String,
    pub timing: bool,
    /// Core indices of each socket.
    pub sockets: Vec<Vec<u32>>,
    /// Peak bandwidth of each node's memory controller, GB/s (= bytes per ns).
    pub node_bandwidth: Vec<f64>,
    pub links: Vec<LinkInfo>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LinkInfo {
    pub from: u32,
    pub to: u32,
    /// Peak bandwidth in this direction, GB/s.
    pub bandwidth: f64,
}

/// What the simulation tells the UI.
#[derive(Clone, Debug, PartialEq)]
pub enum SimEvent {
    /// Epochs that ended since the last message, oldest first.
    Epochs {
        samples: Vec<Sample>,
        /// Complete console lines the guest wrote meanwhile.
        console: Vec<String>,
        /// Instructions retired so far, all cores.
        instructions: u64,
    },
    /// Emulated instructions per host second, measured over the last stretch of running.
    Rate { mips: f64 },
    /// A warning for the event log.
    Log(String),
    /// Information for the event log.
    Note(String),
    /// The run is over; the simulation thread waits for [`Control::Quit`].
    Ended {
        end: RunEnd,
        /// `host_seconds` and `mips` as measured; everything else deterministic.
        report: Box<Report>,
        state_hash: u64,
    },
}

/// What the UI asks of the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Run,
    Pause,
    /// Pause (if running), then run exactly one epoch.
    Step,
    /// Epochs per host second; `None`: as fast as the host allows.
    Speed(Option<u32>),
    Checkpoint,
    Quit,
}

/// A machine with an image loaded, advanced epoch by epoch.
pub struct Sim {
    m: Machine,
    image_name: String,
    limit: Option<u64>,
    /// A console line still being written.
    partial: Vec<u8>,
    ended: bool,
    /// Where `c` writes checkpoints.
    pub checkpoint_dir: std::path::PathBuf,
}

impl Sim {
    pub fn new(cfg: &SimConfig) -> Result<Sim, String> {
        let desc = MachineDesc::load(&cfg.machine).map_err(|e| chain(&e))?;
        let mut m = Machine::new(&desc).map_err(|e| chain(&e))?;
        if cfg.timing {
            m.enable_timing();
        }
        m.load_elf(&cfg.image, false, &cfg.cmdline)
            .map_err(|e| format!("{}: {}", cfg.image_name, chain(&e)))?;
        Ok(Sim {
            m,
            image_name: cfg.image_name.clone(),
            limit: cfg.max_instructions,
            partial: Vec::new(),
            ended: false,
            checkpoint_dir: std::path::PathBuf::from("."),
        })
    }

    pub fn topology(&self) -> Topology {
        let desc = &self.m.desc;
        let mut sockets = vec![Vec::new(); desc.sockets.len()];
        for c in &self.m.cores {
            sockets[c.socket as usize].push(c.index);
        }
        let link_bw = |from: u32, to: u32| {
            desc.links
                .iter()
                .find(|l| (l.a, l.b) == (from, to) || (l.b, l.a) == (from, to))
                .map_or(0.0, |l| l.bandwidth_gbs)
        };
        // The link list (and its order) is the stats API's: `Sample::link_bytes` follows it.
        let links = self
            .m
            .report(0.0)
            .links
            .iter()
            .map(|l| LinkInfo {
                from: l.from,
                to: l.to,
                bandwidth: link_bw(l.from, l.to),
            })
            .collect();
        Topology {
            machine: desc.name.clone(),
            image: self.image_name.clone(),
            timing: self.m.timing_enabled(),
            sockets,
            node_bandwidth: desc
                .sockets
                .iter()
                .map(|s| s.memory.bandwidth_gbs)
                .collect(),
            links,
        }
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    pub fn instructions(&self) -> u64 {
        self.m.instructions
    }

    /// Runs one more epoch (or to the end of the run) and says what happened. `host_seconds`
    /// only goes into the final report's MIPS.
    pub fn step(&mut self, host_seconds: f64) -> Vec<SimEvent> {
        if self.ended {
            return Vec::new();
        }
        let next = self.m.samples.next_epoch;
        let end = self.m.run_epoch(self.limit);
        let samples: Vec<Sample> = self
            .m
            .samples
            .samples
            .iter()
            .filter(|s| s.epoch >= next)
            .cloned()
            .collect();
        let console = self.console_lines(end.is_some());
        let mut events = vec![SimEvent::Epochs {
            samples,
            console,
            instructions: self.m.instructions,
        }];
        if let Some(end) = end {
            self.ended = true;
            events.push(SimEvent::Ended {
                end,
                report: Box::new(self.m.report(host_seconds)),
                state_hash: self.m.state_hash(),
            });
        }
        events
    }

    /// `c`: checkpoints the whole machine to a file named after the image and the simulated
    /// time. The simulation stands between two quanta here, so `pvmlab exec --restore FILE`
    /// continues exactly as this run does.
    pub fn checkpoint(&mut self) -> SimEvent {
        let us = self.m.report(0.0).simulated_ns / 1000;
        let stem: String = self
            .image_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.checkpoint_dir.join(format!("{stem}-{us}us.pvmck"));
        match self.m.save_checkpoint(&path) {
            Ok(()) => SimEvent::Note(format!(
                "checkpoint written: {} (resume: pvmlab exec --restore {})",
                path.display(),
                path.display()
            )),
            Err(e) => SimEvent::Log(format!("checkpoint failed: {}", chain(&e))),
        }
    }

    fn console_lines(&mut self, flush: bool) -> Vec<String> {
        self.partial.append(&mut self.m.sys.io.console);
        let mut lines = Vec::new();
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            lines.push(String::from_utf8_lossy(&line[..nl]).into_owned());
        }
        if flush && !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned());
        }
        lines
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s += &format!(": {c}");
        cause = c.source();
    }
    s
}

/// Runs `sim` on its own thread. It starts paused or running as `running` says, at `speed`
/// epochs per second, sends [`SimEvent`]s through `send` (wrapped by `wrap`), and stops on
/// [`Control::Quit`] or when the receiving side is gone.
pub fn spawn<E: Send + 'static>(
    mut sim: Sim,
    mut running: bool,
    mut speed: Option<u32>,
    control: Receiver<Control>,
    send: Sender<E>,
    wrap: fn(SimEvent) -> E,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("pvmlab-sim".into())
        .spawn(move || {
            let mut busy = Duration::ZERO;
            // MIPS over windows of about half a second of host time.
            let (mut window_start, mut window_instr) = (Instant::now(), sim.instructions());
            let mut steps = 0u32;
            let mut next_due = Instant::now();
            loop {
                // Controls first: block while paused (or ended), else just look.
                let msg = if (running || steps > 0) && !sim.ended() {
                    let wait = next_due.saturating_duration_since(Instant::now());
                    if wait.is_zero() {
                        match control.try_recv() {
                            Ok(m) => Some(m),
                            Err(TryRecvError::Empty) => None,
                            Err(TryRecvError::Disconnected) => return,
                        }
                    } else {
                        match control.recv_timeout(wait) {
                            Ok(m) => Some(m),
                            Err(RecvTimeoutError::Timeout) => None,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                } else {
                    match control.recv() {
                        Ok(m) => Some(m),
                        Err(_) => return,
                    }
                };
                if let Some(m) = msg {
                    match m {
                        Control::Run => {
                            running = true;
                            steps = 0;
                            next_due = Instant::now();
                            (window_start, window_instr) = (Instant::now(), sim.instructions());
                        }
                        Control::Pause => running = false,
                        Control::Step => {
                            running = false;
                            steps += 1;
                            next_due = Instant::now();
                        }
                        Control::Speed(s) => {
                            speed = s;
                            next_due = Instant::now();
                        }
                        Control::Checkpoint => {
                            if send.send(wrap(sim.checkpoint())).is_err() {
                                return;
                            }
                        }
                        Control::Quit => return,
                    }
                    continue;
                }
                if Instant::now() < next_due {
                    continue;
                }
                let t0 = Instant::now();
                let events = sim.step(busy.as_secs_f64());
                busy += t0.elapsed();
                steps = steps.saturating_sub(1);
                for e in events {
                    if send.send(wrap(e)).is_err() {
                        return;
                    }
                }
                if let Some(s) = speed {
                    next_due = next_due.max(t0) + Duration::from_secs(1) / s.max(1);
                } else {
                    next_due = Instant::now();
                }
                if window_start.elapsed() >= Duration::from_millis(500) {
                    let secs = window_start.elapsed().as_secs_f64();
                    let mips = (sim.instructions() - window_instr) as f64 / secs / 1e6;
                    if send.send(wrap(SimEvent::Rate { mips })).is_err() {
                        return;
                    }
                    (window_start, window_instr) = (Instant::now(), sim.instructions());
                }
            }
        })
        .expect("the simulation thread starts")
}

/// Simulated nanoseconds an epoch covers (the last one of a run may be shorter).
pub fn epoch_ns(s: &Sample) -> u64 {
    s.end_ns
        .saturating_sub(s.epoch * EPOCH_NS)
        .clamp(1, EPOCH_NS)
}
