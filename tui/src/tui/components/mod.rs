//! The screen, one component per region, each drawn with `draw(&mut Frame, Rect)`:
//!
//! ```text
//!  header: image, machine, simulated time, MIPS, run state, speed
//!  sockets: one box per socket, its cores busy/halted and their domain
//!  nodes: one box per node, read/write bandwidth local/remote (+DMA), graphs, queue
//!  lesson narration (or the guest console) | links with utilisation
//!                                          | event log
//!  footer: the keys
//! ```

mod header;
mod help;
mod links;
mod log;
mod narration;
mod nodes;
mod sockets;
pub mod spark;

use super::app::App;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

/// The smallest terminal the screen is laid out for.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

pub const LOCAL: Color = Color::Green;
pub const REMOTE: Color = Color::Yellow;
pub const DMA: Color = Color::Magenta;
pub const DIM: Style = Style::new().fg(Color::DarkGray);

/// A region of the screen.
pub trait Component {
    fn draw(&self, frame: &mut Frame, area: Rect);
}

pub fn draw(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area);
        return;
    }
    let sockets = sockets::Sockets { app };
    let nodes = nodes::Nodes { app };
    let [header, sockets_area, nodes_area, bottom, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(sockets.height(area.width, area.height)),
        Constraint::Length(nodes.height(area.width, area.height)),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(area);
    header::Header { app }.draw(frame, header);
    sockets.draw(frame, sockets_area);
    nodes.draw(frame, nodes_area);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(bottom);
    narration::Narration { app }.draw(frame, left);
    let links = links::Links { app };
    let links_h = links.height().min(right.height / 2).max(3);
    let [links_area, log_area] =
        Layout::vertical([Constraint::Length(links_h), Constraint::Min(3)]).areas(right);
    links.draw(frame, links_area);
    log::Log { app }.draw(frame, log_area);
    footer_keys(frame, footer);
    if app.help {
        help::Help { app }.draw(frame, area);
    }
}

fn footer_keys(frame: &mut Frame, area: Rect) {
    let key = Style::new().add_modifier(Modifier::BOLD);
    let mut spans = Vec::new();
    for (k, what) in [
        ("space", "run/pause"),
        ("s", "step"),
        ("+/-", "speed"),
        ("c", "checkpoint"),
        ("?", "help"),
        ("q", "quit"),
    ] {
        spans.push(Span::styled(format!(" {k} "), key));
        spans.push(Span::styled(format!("{what} "), DIM));
    }
    frame.render_widget(Line::from(spans), area);
}

fn too_small(frame: &mut Frame, area: Rect) {
    let text = vec![
        Line::styled(
            "Terminal too small",
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Line::from(format!(
            "{}×{} here; pvmlab tui needs at least {MIN_WIDTH}×{MIN_HEIGHT}.",
            area.width, area.height
        )),
        Line::from("Enlarge the window (the run goes on), or press q to quit."),
    ];
    let top = area.height.saturating_sub(3) / 2;
    let [_, middle] = Layout::vertical([Constraint::Length(top), Constraint::Min(1)]).areas(area);
    frame.render_widget(
        Paragraph::new(text).centered().wrap(Wrap { trim: true }),
        middle,
    );
}

/// `1.2345` → "1.2", `12.3` → "12.3", `123.4` → "123": about three significant digits.
pub fn gbs(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Simulated time for humans: "850 µs", "12.340 ms", "1.500 s".
pub fn sim_time(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{:.0} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.3} ms", ns as f64 / 1e6)
    } else {
        format!("{:.3} s", ns as f64 / 1e9)
    }
}
