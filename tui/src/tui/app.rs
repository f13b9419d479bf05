//! The UI state and its event loop, generic over the terminal [`Backend`] so tests drive it
//! with a `TestBackend` and injected [`Event`]s. Keys become [`Action`]s; actions change the
//! state and may send a [`Control`] to the simulation thread.

use super::components;
use super::lesson::{self, Lesson};
use super::sim::{Control, SimEvent, Topology, epoch_ns};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use emulator::RunEnd;
use emulator::stats::{Report, Sample};
use ratatui::backend::Backend;
use ratatui::{Frame, Terminal};
use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

/// Epochs kept for the graphs (wider than any terminal).
pub const HISTORY: usize = 1024;
/// Event-log and console lines kept.
pub const LOG_LINES: usize = 500;
/// Epochs the numbers average over (100 µs of simulated time).
pub const AVERAGE: usize = 10;

/// Simulation speeds `+`/`-` step through, in epochs per host second; `None` = as fast as the
/// host can.
pub const SPEEDS: [Option<u32>; 11] = [
    Some(1),
    Some(2),
    Some(5),
    Some(10),
    Some(20),
    Some(50),
    Some(100),
    Some(200),
    Some(500),
    Some(1000),
    None,
];

/// Everything the UI loop reacts to.
#[derive(Clone, Debug)]
pub enum Event {
    Key(KeyEvent),
    /// The terminal changed size (the next draw adapts).
    Resize,
    Sim(SimEvent),
}

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    TogglePause,
    Step,
    Faster,
    Slower,
    Checkpoint,
    ToggleHelp,
    Quit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    Paused,
    Running,
    /// The run is over: how it ended, e.g. "exit 0".
    Ended(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    Info,
    Phase,
    Guest,
    Warning,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// Simulated time, ns.
    pub at_ns: u64,
    pub kind: LogKind,
    pub text: String,
}

pub struct App {
    pub topo: Topology,
    /// The last [`HISTORY`] epochs, oldest first.
    pub history: VecDeque<Sample>,
    pub instructions: u64,
    /// The domain each core runs, by core index. The machine will learn it through the
    /// annotation port (DESIGN.md §2.5), which does not exist yet: `None` ("—") until then.
    pub domains: Vec<Option<String>>,
    pub state: RunState,
    /// Index into [`SPEEDS`].
    pub speed: usize,
    /// Measured emulation speed (host-dependent; tests inject a fixed value).
    pub mips: Option<f64>,
    pub log: VecDeque<LogLine>,
    /// The guest's console lines (what the left panel shows when there is no lesson).
    pub console: VecDeque<String>,
    pub lesson: Option<&'static Lesson>,
    /// The phase the lesson announced last (0: introduction).
    pub phase: usize,
    pub help: bool,
    pub quit: bool,
    /// Quit as soon as the run ends (tests and scripted runs; the CLI waits for `q`).
    pub exit_when_ended: bool,
    /// The final report and state hash, once the run ended.
    pub result: Option<(RunEnd, Box<Report>, u64)>,
}

impl App {
    pub fn new(
        topo: Topology,
        lesson: Option<&'static Lesson>,
        running: bool,
        speed: usize,
    ) -> App {
        let ncores = topo.sockets.iter().map(Vec::len).sum();
        let mut app = App {
            domains: vec![None; ncores],
            topo,
            history: VecDeque::with_capacity(HISTORY),
            instructions: 0,
            state: if running {
                RunState::Running
            } else {
                RunState::Paused
            },
            speed: speed.min(SPEEDS.len() - 1),
            mips: None,
            log: VecDeque::new(),
            console: VecDeque::new(),
            lesson,
            phase: 0,
            help: false,
            quit: false,
            exit_when_ended: false,
            result: None,
        };
        let what = match lesson {
            Some(l) => format!(
                "lesson {} ({}) on {}",
                l.name, app.topo.image, app.topo.machine
            ),
            None => format!("{} on {}", app.topo.image, app.topo.machine),
        };
        app.push_log(LogKind::Info, format!("loaded {what}"));
        if !running {
            app.push_log(LogKind::Info, "paused: press space to run".into());
        }
        app
    }

    /// Simulated time at the end of the last epoch seen, ns.
    pub fn now_ns(&self) -> u64 {
        self.history.back().map_or(0, |s| s.end_ns)
    }

    /// The last `n` epochs, newest first.
    pub fn recent(&self, n: usize) -> impl Iterator<Item = &Sample> {
        self.history.iter().rev().take(n)
    }

    /// Bytes per ns (= GB/s) of `bytes(sample)` over the last [`AVERAGE`] epochs.
    pub fn rate(&self, bytes: impl Fn(&Sample) -> u64) -> f64 {
        let (b, ns) = self
            .recent(AVERAGE)
            .fold((0u64, 0u64), |(b, ns), s| (b + bytes(s), ns + epoch_ns(s)));
        if ns == 0 { 0.0 } else { b as f64 / ns as f64 }
    }

    pub fn push_log(&mut self, kind: LogKind, text: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        let at_ns = self.now_ns();
        self.log.push_back(LogLine { at_ns, kind, text });
    }

    /// The key map (also what `?` shows).
    pub fn key_action(&self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') if ctrl => Some(Action::Quit),
            KeyCode::Char(' ') => Some(Action::TogglePause),
            KeyCode::Char('s') => Some(Action::Step),
            KeyCode::Char('+' | '=') => Some(Action::Faster),
            KeyCode::Char('-' | '_') => Some(Action::Slower),
            KeyCode::Char('c') => Some(Action::Checkpoint),
            KeyCode::Char('?' | 'h') => Some(Action::ToggleHelp),
            KeyCode::Esc if self.help => Some(Action::ToggleHelp),
            KeyCode::Char('q') => Some(Action::Quit),
            _ => None,
        }
    }

    /// Applies an action; returns what the simulation must be told, if anything.
    pub fn update(&mut self, action: Action) -> Option<Control> {
        let ended = matches!(self.state, RunState::Ended(_));
        match action {
            Action::TogglePause if ended => {
                self.push_log(LogKind::Info, "the run has ended: q quits".into());
                None
            }
            Action::TogglePause if self.state == RunState::Running => {
                self.state = RunState::Paused;
                self.push_log(LogKind::Info, "paused".into());
                Some(Control::Pause)
            }
            Action::TogglePause => {
                self.state = RunState::Running;
                self.push_log(LogKind::Info, "running".into());
                Some(Control::Run)
            }
            Action::Step if ended => None,
            Action::Step => {
                self.state = RunState::Paused;
                Some(Control::Step)
            }
            Action::Faster | Action::Slower => {
                let next = if action == Action::Faster {
                    (self.speed + 1).min(SPEEDS.len() - 1)
                } else {
                    self.speed.saturating_sub(1)
                };
                if next == self.speed {
                    return None;
                }
                self.speed = next;
                self.push_log(
                    LogKind::Info,
                    format!("speed: {}", speed_label(SPEEDS[next])),
                );
                Some(Control::Speed(SPEEDS[next]))
            }
            Action::Checkpoint => Some(Control::Checkpoint),
            Action::ToggleHelp => {
                self.help = !self.help;
                None
            }
            Action::Quit => {
                self.quit = true;
                Some(Control::Quit)
            }
        }
    }

    /// Takes in what the simulation reports.
    pub fn on_sim(&mut self, event: SimEvent) {
        match event {
            SimEvent::Epochs {
                samples,
                console,
                instructions,
            } => {
                self.instructions = instructions;
                for s in samples {
                    self.domains.clone_from(&s.core_domains);
                    if self.history.len() == HISTORY {
                        self.history.pop_front();
                    }
                    self.history.push_back(s);
                }
                for line in console {
                    self.console_line(line);
                }
            }
            SimEvent::Rate { mips } => self.mips = Some(mips),
            SimEvent::Log(text) => self.push_log(LogKind::Warning, text),
            SimEvent::Note(text) => self.push_log(LogKind::Info, text),
            SimEvent::Ended {
                end,
                report,
                state_hash,
            } => {
                let how = match &end {
                    RunEnd::Exit(v) => format!("exit {v}"),
                    RunEnd::AllHalted => "every core halted".into(),
                    RunEnd::InstructionLimit => "instruction limit".into(),
                    RunEnd::Fault { vector, rip, .. } => {
                        format!("fault: vector {vector} at {rip:#x}")
                    }
                };
                let kind = match end {
                    RunEnd::Exit(0) | RunEnd::AllHalted => LogKind::Info,
                    _ => LogKind::Warning,
                };
                self.push_log(
                    kind,
                    format!(
                        "run ended ({how}) after {} instructions",
                        report.instructions
                    ),
                );
                if let RunEnd::Fault { report, .. } = &end {
                    for line in report.lines() {
                        self.push_log(LogKind::Warning, line.to_string());
                    }
                }
                self.state = RunState::Ended(how);
                self.result = Some((end, report, state_hash));
                self.quit |= self.exit_when_ended;
            }
        }
    }

    fn console_line(&mut self, line: String) {
        if let Some(l) = self.lesson
            && let Some((n, title)) = lesson::parse_phase(&line)
        {
            self.phase = n;
            let total = l.phases.len();
            let title = l.narration(n).map_or(title, |t| t.title);
            self.push_log(LogKind::Phase, format!("phase {n}/{total}: {title}"));
            return;
        }
        if self.console.len() == LOG_LINES {
            self.console.pop_front();
        }
        self.console.push_back(line.clone());
        self.push_log(LogKind::Guest, line);
    }

    pub fn draw(&self, frame: &mut Frame) {
        components::draw(self, frame);
    }

    /// Handles one event; true when the app should stop.
    pub fn handle(&mut self, event: Event, control: &Sender<Control>) -> bool {
        match event {
            Event::Key(key) => {
                if let Some(action) = self.key_action(key)
                    && let Some(c) = self.update(action)
                {
                    // A simulation that has gone away has nothing left to obey.
                    let _ = control.send(c);
                }
            }
            Event::Resize => {}
            Event::Sim(e) => self.on_sim(e),
        }
        self.quit
    }

    /// The UI loop: waits for an event, takes in every event already queued, draws, and
    /// again, until `q` or until every sender is gone. It never blocks the simulation: the
    /// simulation's channel is unbounded and the UI only reads from it.
    pub fn run<B: Backend>(
        &mut self,
        terminal: &mut Terminal<B>,
        events: &Receiver<Event>,
        control: &Sender<Control>,
    ) -> Result<(), B::Error> {
        terminal.draw(|f| self.draw(f))?;
        while let Ok(first) = events.recv() {
            let mut stop = self.handle(first, control);
            while !stop {
                match events.try_recv() {
                    Ok(e) => stop = self.handle(e, control),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if stop {
                break;
            }
            terminal.draw(|f| self.draw(f))?;
        }
        Ok(())
    }
}

pub fn speed_label(speed: Option<u32>) -> String {
    match speed {
        Some(1) => "1 epoch/s".into(),
        Some(n) => format!("{n} epochs/s"),
        None => "max".into(),
    }
}
