//! `pvmlab tui`: watch a run live (DESIGN.md §8) — sockets and cores, per-node memory traffic
//! split local/remote/DMA, link utilisation, controller queues, an event log, and lessons
//! that narrate what the screen shows.
//!
//! Three threads: the simulation ([`sim::spawn`]) runs the machine and sends each epoch's
//! stats; an input thread forwards terminal events; the UI thread ([`app::App::run`]) takes
//! both from one channel and draws. The simulation never waits for the UI.

pub mod app;
pub mod components;
pub mod lesson;
pub mod sim;
#[cfg(test)]
mod tests;

use app::{App, Event, SPEEDS};
use emulator::machine::status;
use sim::{Control, Sim, SimConfig, SimEvent};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc;

#[derive(clap::Args, Debug)]
pub struct TuiArgs {
    /// Machine preset (1s, 2s, 4s, 8s) or a machine description file (.ron); default 1s, or
    /// the machine the lesson is written for.
    #[arg(long, value_name = "PRESET|FILE")]
    pub machine: Option<String>,
    /// Start a lesson: an image whose phases the screen narrates (`numa`).
    #[arg(long, value_name = "NAME", conflicts_with = "image")]
    pub lesson: Option<String>,
    /// `on`: caches, memory controllers and interconnect are modelled (the traffic you see);
    /// `off`: fixed latencies, no traffic.
    #[arg(long, value_enum, default_value = "on")]
    pub timing: crate::exec::Timing,
    /// End the run after this many instructions, all cores together.
    #[arg(long, value_name = "N")]
    pub max_instructions: Option<u64>,
    /// The command line handed to the image in BootInfo.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Start paused (lessons always start paused, on their introduction).
    #[arg(long)]
    pub paused: bool,
    /// The static x86-64 ELF image to run, or the name of a built-in image (`smp`).
    #[arg(value_name = "IMAGE.elf", required_unless_present = "lesson")]
    pub image: Option<PathBuf>,
}

/// Default speed index: 10 epochs/s for lessons (time to read), 100 for images.
const LESSON_SPEED: usize = 3;
const IMAGE_SPEED: usize = 6;

/// What `args` asks to run: the simulation's configuration, the lesson, whether to start
/// running, and the speed index.
pub fn resolve(
    args: &TuiArgs,
) -> Result<(SimConfig, Option<&'static lesson::Lesson>, bool, usize), String> {
    let timing = args.timing == crate::exec::Timing::On;
    if let Some(name) = &args.lesson {
        let l = lesson::find(name).ok_or_else(|| {
            let names: Vec<_> = lesson::names().collect();
            format!("no lesson `{name}` (have: {})", names.join(", "))
        })?;
        let image = workloads::images::get(l.image)
            .ok_or_else(|| format!("the lesson's image `{}` is not built", l.image))?;
        let cfg = SimConfig {
            machine: args.machine.clone().unwrap_or_else(|| l.machine.into()),
            image_name: l.image.into(),
            image: image.to_vec(),
            cmdline: args.cmdline.clone(),
            timing,
            max_instructions: args.max_instructions,
        };
        return Ok((cfg, Some(l), false, LESSON_SPEED));
    }
    let path = args.image.as_ref().ok_or("no image given")?;
    let (name, image) = match std::fs::read(path) {
        Ok(bytes) => (path.display().to_string(), bytes),
        Err(e) => match path.to_str().and_then(workloads::images::get) {
            Some(bytes) if !path.exists() => (path.display().to_string(), bytes.to_vec()),
            _ => return Err(format!("cannot read {}: {e}", path.display())),
        },
    };
    let name = std::path::Path::new(&name)
        .file_name()
        .map_or(name.clone(), |f| f.to_string_lossy().into_owned());
    let cfg = SimConfig {
        machine: args.machine.clone().unwrap_or_else(|| "1s".into()),
        image_name: name,
        image,
        cmdline: args.cmdline.clone(),
        timing,
        max_instructions: args.max_instructions,
    };
    Ok((cfg, None, !args.paused, IMAGE_SPEED))
}

pub fn run(args: &TuiArgs) -> i32 {
    let (cfg, lesson, running, speed) = match resolve(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pvmlab: error: {e}");
            return status::BAD_INPUT;
        }
    };
    if !std::io::stdout().is_terminal() {
        eprintln!(
            "pvmlab: error: pvmlab tui needs a terminal; for a headless run use `pvmlab exec --stats`"
        );
        return status::BAD_INPUT;
    }
    let sim = match Sim::new(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pvmlab: error: {e}");
            return status::BAD_INPUT;
        }
    };
    let mut app = App::new(sim.topology(), lesson, running, speed);
    let (event_tx, events) = mpsc::channel();
    let (control, control_rx) = mpsc::channel();
    let sim_thread = sim::spawn(
        sim,
        running,
        SPEEDS[speed],
        control_rx,
        event_tx.clone(),
        Event::Sim,
    );
    std::thread::Builder::new()
        .name("pvmlab-input".into())
        .spawn(move || forward_input(event_tx))
        .expect("the input thread starts");

    // Raw mode, alternate screen, and a panic hook that restores the terminal.
    let mut terminal = ratatui::init();
    let result = app.run(&mut terminal, &events, &control);
    ratatui::restore();
    let _ = control.send(Control::Quit);
    let _ = sim_thread.join();
    if let Err(e) = result {
        eprintln!("pvmlab: error: terminal: {e}");
        return status::BAD_INPUT;
    }
    // Events the UI had not taken in yet may hold the end of the run.
    while let Ok(e) = events.try_recv() {
        if let Event::Sim(e @ SimEvent::Ended { .. }) = e {
            app.on_sim(e);
        }
    }
    match &app.result {
        Some((end, report, hash)) => {
            eprint!("{}", report.table());
            eprintln!("state hash {hash:016x}");
            end.exit_status()
        }
        None => {
            eprintln!(
                "pvmlab: quit at {} simulated, after {} instructions",
                components::sim_time(app.now_ns()),
                app.instructions
            );
            0
        }
    }
}

/// Terminal events to the UI channel, until the UI is gone.
fn forward_input(tx: mpsc::Sender<Event>) {
    use crossterm::event::{self, Event as Term, KeyEventKind};
    while let Ok(e) = event::read() {
        let ev = match e {
            Term::Key(k) if k.kind != KeyEventKind::Release => Event::Key(k),
            Term::Resize(..) => Event::Resize,
            _ => continue,
        };
        if tx.send(ev).is_err() {
            return;
        }
    }
}
