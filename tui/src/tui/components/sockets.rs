//! One box per socket with its cores: busy or halted, instructions in the last epoch, and the
//! domain each runs (from the annotation port, once it exists; "—" until then).

use super::{Component, DIM};
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

/// Narrowest socket box.
const MIN_BOX: u16 = 26;

pub struct Sockets<'a> {
    pub app: &'a App,
}

impl Sockets<'_> {
    fn per_row(&self, width: u16) -> usize {
        let n = self.app.topo.sockets.len().max(1);
        n.min((width / MIN_BOX).max(1) as usize)
    }

    /// Below this terminal height a socket's cores share one line.
    const COMPACT_BELOW: u16 = 32;

    /// Rows of boxes, each as tall as the largest socket's core count plus borders (one line
    /// of cores on a short terminal).
    pub fn height(&self, width: u16, height: u16) -> u16 {
        let n = self.app.topo.sockets.len().max(1);
        let rows = n.div_ceil(self.per_row(width)) as u16;
        let cores = self
            .app
            .topo
            .sockets
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(1) as u16;
        let lines = if height < Self::COMPACT_BELOW {
            1
        } else {
            cores
        };
        rows * (lines + 2)
    }
}

impl Component for Sockets<'_> {
    fn draw(&self, frame: &mut Frame, area: Rect) {
        let app = self.app;
        let per_row = self.per_row(area.width);
        let rows = app.topo.sockets.len().div_ceil(per_row).max(1);
        let row_areas = Layout::vertical(vec![Constraint::Ratio(1, rows as u32); rows]).split(area);
        let last = app.history.back();
        let compact = frame.area().height < Self::COMPACT_BELOW;
        for (r, chunk) in app.topo.sockets.chunks(per_row).enumerate() {
            let boxes = Layout::horizontal(vec![Constraint::Ratio(1, per_row as u32); per_row])
                .split(row_areas[r]);
            for (k, cores) in chunk.iter().enumerate() {
                let socket = r * per_row + k;
                let state = |c: u32| last.and_then(|s| s.core_busy.get(c as usize)).copied();
                let lines: Vec<Line> = if compact {
                    let mut spans = Vec::new();
                    for &c in cores {
                        let (dot, colour) = match state(c) {
                            Some(true) => ("●", Color::Green),
                            Some(false) => ("○", Color::DarkGray),
                            None => ("·", Color::Gray),
                        };
                        spans.push(Span::raw(format!("{c}")));
                        spans.push(Span::styled(format!("{dot} "), Style::new().fg(colour)));
                    }
                    spans.push(Span::styled(" ● busy ○ halted", DIM));
                    vec![Line::from(spans)]
                } else {
                    cores
                        .iter()
                        .map(|&c| {
                            let busy = state(c);
                            let instr = last
                                .and_then(|s| s.core_instructions.get(c as usize))
                                .copied();
                            let (dot, state, colour) = match busy {
                                Some(true) => ("●", "busy  ", Color::Green),
                                Some(false) => ("○", "halted", Color::DarkGray),
                                None => ("·", "ready ", Color::Gray),
                            };
                            let domain = app.domains.get(c as usize).cloned().flatten();
                            let domain = domain.unwrap_or_else(|| "—".into());
                            Line::from(vec![
                                Span::raw(format!("core {c:<2} ")),
                                Span::styled(format!("{dot} {state}"), Style::new().fg(colour)),
                                Span::raw(format!(" {:>7}", instr.map_or(String::new(), kilo))),
                                Span::styled(" ins/ep", DIM),
                                Span::styled("  dom ", DIM),
                                Span::raw(domain),
                            ])
                        })
                        .collect()
                };
                let title = Line::from(vec![
                    Span::styled(
                        format!(" socket {socket} "),
                        Style::new().add_modifier(Modifier::BOLD),
                    ),
                    Span::styled(format!("· node {socket} "), DIM),
                ]);
                frame.render_widget(
                    Paragraph::new(lines).block(Block::bordered().title(title)),
                    boxes[k],
                );
            }
        }
    }
}

/// 950 → "950", 12_345 → "12.3k", 4_500_000 → "4.5M".
pub fn kilo(n: u64) -> String {
    if n < 1000 {
        n.to_string()
    } else if n < 1_000_000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        format!("{:.1}M", n as f64 / 1e6)
    }
}
