//! The TUI under test: key handling, whole frames as named insta snapshots (`snapshots/tui/`)
//! through a fixed-size `TestBackend`, and the same run with and without the UI.
//!
//! Frames are deterministic: the simulation is stepped synchronously, epoch by epoch, and the
//! host-dependent MIPS figure is injected.

use super::app::{Action, App, Event, LogKind, RunState, SPEEDS};
use super::lesson;
use super::sim::{self, Control, LinkInfo, Sim, SimConfig, SimEvent, Topology};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use emulator::stats::{NodeSample, Sample};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use std::sync::mpsc;

/// Lesson phases of 200 µs: the whole lesson is about 110 epochs.
const SHORT: &str = "phase_us=200";

fn lesson_config() -> SimConfig {
    let l = lesson::find("numa").unwrap();
    SimConfig {
        machine: "2s".into(),
        image_name: l.image.into(),
        image: workloads::images::get(l.image).unwrap().to_vec(),
        cmdline: SHORT.into(),
        timing: true,
        max_instructions: None,
    }
}

fn lesson_app() -> (Sim, App) {
    let sim = Sim::new(&lesson_config()).unwrap();
    let app = App::new(sim.topology(), lesson::find("numa"), false, 3);
    (sim, app)
}

/// Runs `epochs` more epochs (or to the end) and hands the app what the simulation said.
fn advance(sim: &mut Sim, app: &mut App, epochs: usize) {
    for _ in 0..epochs {
        for e in sim.step(0.0) {
            app.on_sim(e);
        }
    }
}

fn frame(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| app.draw(f)).unwrap();
    t
}

macro_rules! assert_frame {
    ($name:expr, $terminal:expr) => {
        insta::with_settings!({
            snapshot_path => "../../../snapshots/tui",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!($name, $terminal.backend());
        })
    };
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

#[test]
fn keys_map_to_actions() {
    let (_, mut app) = lesson_app();
    let cases = [
        (' ', Action::TogglePause),
        ('s', Action::Step),
        ('+', Action::Faster),
        ('=', Action::Faster),
        ('-', Action::Slower),
        ('c', Action::Checkpoint),
        ('?', Action::ToggleHelp),
        ('q', Action::Quit),
    ];
    for (c, action) in cases {
        assert_eq!(app.key_action(key(c)), Some(action), "{c:?}");
    }
    assert_eq!(app.key_action(key('x')), None);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.key_action(ctrl_c), Some(Action::Quit));
    let mut release = key('q');
    release.kind = KeyEventKind::Release;
    assert_eq!(app.key_action(release), None);
    let esc = KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE);
    assert_eq!(app.key_action(esc), None, "Esc only closes the help");
    app.help = true;
    assert_eq!(app.key_action(esc), Some(Action::ToggleHelp));
}

#[test]
fn actions_change_the_state_and_tell_the_simulation() {
    let (_, mut app) = lesson_app();
    assert_eq!(app.state, RunState::Paused, "lessons start paused");
    assert_eq!(app.update(Action::TogglePause), Some(Control::Run));
    assert_eq!(app.state, RunState::Running);
    assert_eq!(app.update(Action::TogglePause), Some(Control::Pause));
    assert_eq!(app.update(Action::TogglePause), Some(Control::Run));
    assert_eq!(app.update(Action::Step), Some(Control::Step));
    assert_eq!(app.state, RunState::Paused, "a step pauses");
    assert_eq!(app.update(Action::Faster), Some(Control::Speed(Some(20))));
    assert_eq!(app.update(Action::Slower), Some(Control::Speed(Some(10))));
    app.speed = SPEEDS.len() - 1;
    assert_eq!(app.update(Action::Faster), None, "already at the top speed");
    assert_eq!(app.update(Action::Slower), Some(Control::Speed(Some(1000))));
    app.speed = 0;
    assert_eq!(app.update(Action::Slower), None);
    assert_eq!(app.update(Action::Checkpoint), Some(Control::Checkpoint));
    assert_eq!(app.update(Action::ToggleHelp), None);
    assert!(app.help);
    assert_eq!(app.update(Action::Quit), Some(Control::Quit));
    assert!(app.quit);
}

#[test]
fn checkpoint_key_writes_a_checkpoint_that_restores_to_the_same_run() {
    let (mut sim, mut app) = lesson_app();
    advance(&mut sim, &mut app, 3);
    let dir = std::env::temp_dir().join(format!("pvmlab-tui-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    sim.checkpoint_dir = dir.clone();
    app.on_sim(sim.checkpoint());
    let last = app.log.back().unwrap();
    assert_eq!(last.kind, LogKind::Info, "{}", last.text);
    let path = last.text.split_whitespace().nth(2).unwrap().to_string();
    let mut restored = emulator::Machine::restore_file(std::path::Path::new(&path)).unwrap();
    let end = restored.run_for(u64::MAX, None);
    let mut last = None;
    while !sim.ended() {
        for e in sim.step(0.0) {
            if let SimEvent::Ended {
                end, state_hash, ..
            } = e
            {
                last = Some((end, state_hash));
            }
        }
    }
    let (uninterrupted_end, uninterrupted_hash) = last.expect("the run ends");
    assert_eq!(end, Some(uninterrupted_end));
    assert_eq!(restored.state_hash(), uninterrupted_hash);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn phase_lines_become_narration_and_other_lines_go_to_the_log() {
    let (mut sim, mut app) = lesson_app();
    advance(&mut sim, &mut app, 3);
    assert_eq!(app.phase, 1);
    assert!(
        app.log
            .iter()
            .any(|l| l.kind == LogKind::Phase && l.text == "phase 1/6: Local access")
    );
    assert!(
        app.log
            .iter()
            .any(|l| l.kind == LogKind::Guest && l.text.starts_with("numa-lesson: 8 cores"))
    );
    assert!(!app.console.iter().any(|l| l.starts_with("@phase")));
}

#[test]
fn frame_lesson_intro() {
    let (_, mut app) = lesson_app();
    app.mips = Some(25.0);
    assert_frame!("lesson_intro", frame(&app, 120, 40));
}

#[test]
fn frame_lesson_local_access_at_epoch_15() {
    let (mut sim, mut app) = lesson_app();
    app.update(Action::TogglePause);
    advance(&mut sim, &mut app, 15);
    app.mips = Some(25.0);
    assert_eq!(app.phase, 1);
    assert_frame!("lesson_local_epoch_15", frame(&app, 120, 40));
}

#[test]
fn frame_lesson_saturation_at_epoch_55() {
    let (mut sim, mut app) = lesson_app();
    app.update(Action::TogglePause);
    advance(&mut sim, &mut app, 55);
    app.mips = Some(25.0);
    assert_eq!(app.phase, 3);
    assert_frame!("lesson_saturation_epoch_55", frame(&app, 120, 40));
}

#[test]
fn frame_lesson_summary_at_the_end() {
    let (mut sim, mut app) = lesson_app();
    app.update(Action::TogglePause);
    while !sim.ended() {
        advance(&mut sim, &mut app, 1);
    }
    app.mips = Some(25.0);
    assert_eq!(app.phase, 6);
    assert!(matches!(app.state, RunState::Ended(ref how) if how == "exit 0"));
    assert_frame!("lesson_summary_end", frame(&app, 120, 40));
}

#[test]
fn frame_help_overlay() {
    let (mut sim, mut app) = lesson_app();
    advance(&mut sim, &mut app, 15);
    app.mips = Some(25.0);
    app.update(Action::ToggleHelp);
    assert_frame!("help_overlay", frame(&app, 120, 40));
}

#[test]
fn a_small_terminal_gets_a_message_and_resizing_redraws() {
    let (mut sim, mut app) = lesson_app();
    advance(&mut sim, &mut app, 15);
    app.mips = Some(25.0);
    let mut t = frame(&app, 70, 20);
    assert_frame!("too_small_70x20", t);
    // Grow to the minimum: the full screen comes back, laid out for the new size.
    t.backend_mut().resize(80, 24);
    t.draw(|f| app.draw(f)).unwrap();
    assert_frame!("minimum_80x24", t);
}

/// A hand-made epoch for widget tests: node 0 saturated by local and remote reads.
fn synthetic(epoch: u64, local: u64, remote: u64, queue: u32) -> Sample {
    Sample {
        epoch,
        end_ns: (epoch + 1) * emulator::stats::EPOCH_NS,
        instructions: 8000,
        nodes: vec![
            NodeSample {
                local_read_bytes: local,
                remote_read_bytes: remote,
                local_write_bytes: local / 4,
                queue_depth: queue,
                ..Default::default()
            },
            NodeSample::default(),
        ],
        link_bytes: vec![0, remote],
        core_instructions: vec![1000; 8],
        core_busy: vec![true, true, true, true, true, true, false, false],
        core_domains: vec![None; 8],
    }
}

#[test]
fn node_graphs_stack_local_under_remote_up_to_the_peak() {
    // A fixed topology, independent of the presets: 12.8 GB/s controllers (128 000 bytes per
    // 10 µs epoch), 6.4 GB/s links.
    let topo = Topology {
        machine: "test".into(),
        image: "synthetic".into(),
        timing: true,
        sockets: vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]],
        node_bandwidth: vec![12.8, 12.8],
        links: vec![
            LinkInfo {
                from: 0,
                to: 1,
                bandwidth: 6.4,
            },
            LinkInfo {
                from: 1,
                to: 0,
                bandwidth: 6.4,
            },
        ],
    };
    let mut app = App::new(topo, lesson::find("numa"), false, 3);
    // Ramp up to the peak over 40 epochs, half local, half remote, then stay there.
    let samples: Vec<Sample> = (0..60)
        .map(|e| {
            let half = e.min(40) * 1_600;
            synthetic(e, half, half, (e / 4) as u32)
        })
        .collect();
    app.on_sim(SimEvent::Epochs {
        samples,
        console: vec![],
        instructions: 480_000,
    });
    app.mips = Some(25.0);
    let t = frame(&app, 120, 40);
    assert_frame!("synthetic_saturation", t);
    let buf = t.backend().buffer();
    // Rightmost column of node 0's read graph (x = 57, rows 9 to 11), bottom to top: green
    // at the bottom, yellow on top, all three cells full (at the peak).
    let (x, rows) = (57, 9..=11);
    let colours: Vec<Color> = rows.clone().rev().map(|y| buf[(x, y)].fg).collect();
    assert_eq!(colours.first(), Some(&Color::Green), "{colours:?}");
    assert_eq!(colours.last(), Some(&Color::Yellow), "{colours:?}");
    assert!(rows.clone().all(|y| buf[(x, y)].symbol() == "█"));
    // The remote half (64 000 bytes per epoch = 6.4 GB/s) crosses the link 1→0: full.
    let text = format!("{}", t.backend());
    assert!(text.contains("read   12.8 GB/s 100%"), "{text}");
    assert!(
        text.contains("1→0 ██████████████████████████ 100%   6.4 GB/s"),
        "{text}"
    );
}

/// The simulation's results do not depend on the UI: the same image run headless and under
/// the TUI (own thread, paused, stepped, sped up, with keys arriving at arbitrary moments)
/// ends with the same report and state hash.
#[test]
fn results_are_identical_with_and_without_the_ui() {
    let cfg = lesson_config();
    let headless = emulator::run_image(
        &cfg.image,
        &emulator::RunConfig {
            machine: cfg.machine.clone(),
            cmdline: cfg.cmdline.clone(),
            timing: true,
            ..Default::default()
        },
    )
    .unwrap();

    let mut sim = Sim::new(&cfg).unwrap();
    // The `c` key below writes a checkpoint: keep it out of the source tree.
    let dir = std::env::temp_dir().join(format!("pvmlab-tui-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    sim.checkpoint_dir = dir;
    let mut app = App::new(
        sim.topology(),
        lesson::find("numa"),
        false,
        SPEEDS.len() - 1,
    );
    app.exit_when_ended = true;
    let (event_tx, events) = mpsc::channel();
    let (control, control_rx) = mpsc::channel();
    let sim_thread = sim::spawn(sim, false, None, control_rx, event_tx.clone(), Event::Sim);
    // Keys from another thread, interleaved with the simulation's epochs however they fall.
    let keys = std::thread::spawn(move || {
        for c in ['s', 's', '?', 'c', ' ', '-', ' ', 's', '+', ' ', '?'] {
            if event_tx.send(Event::Key(key(c))).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    app.run(&mut terminal, &events, &control).unwrap();
    control.send(Control::Quit).unwrap();
    sim_thread.join().unwrap();
    keys.join().unwrap();

    let (end, report, hash) = app.result.take().expect("the run ended under the UI");
    let mut report = *report;
    let mut expected = headless.report.clone();
    for r in [&mut report, &mut expected] {
        r.host_seconds = 0.0;
        r.mips = 0.0;
    }
    assert_eq!(end, headless.end);
    assert_eq!(hash, headless.state_hash);
    assert_eq!(report, expected);
    let console = String::from_utf8_lossy(&headless.console);
    let guest: Vec<&str> = console
        .lines()
        .filter(|l| !l.starts_with("@phase"))
        .collect();
    assert_eq!(
        app.console.iter().map(String::as_str).collect::<Vec<_>>(),
        guest
    );
}

#[test]
fn cores_show_their_domain_once_the_machine_knows_it() {
    let (mut sim, mut app) = lesson_app();
    advance(&mut sim, &mut app, 2);
    let text = format!("{}", frame(&app, 120, 40).backend());
    assert!(
        text.contains("core 1  ● busy") && text.contains("dom —"),
        "{text}"
    );
    // What the machine announces arrives with the epochs (from the annotation port).
    let mut s = synthetic(1000, 0, 0, 0);
    s.core_domains[1] = Some("pvm".into());
    app.on_sim(SimEvent::Epochs {
        samples: vec![s],
        console: vec![],
        instructions: 0,
    });
    let text = format!("{}", frame(&app, 120, 40).backend());
    let line = text.lines().find(|l| l.contains("core 1 ")).unwrap();
    assert!(line.contains("dom pvm"), "{line}");
}
