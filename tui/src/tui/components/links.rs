//! The interconnect: one line per direction of each link, bandwidth over the last 100 µs as a
//! share of the link's peak.

use super::{Component, DIM, gbs};
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

pub struct Links<'a> {
    pub app: &'a App,
}

impl Links<'_> {
    pub fn height(&self) -> u16 {
        self.app.topo.links.len().max(1) as u16 + 2
    }
}

impl Component for Links<'_> {
    fn draw(&self, frame: &mut Frame, area: Rect) {
        let app = self.app;
        let block = Block::bordered().title(Line::from(vec![
            Span::styled(" links ", Style::new().add_modifier(Modifier::BOLD)),
            Span::styled("· share of peak ", DIM),
        ]));
        let inner = block.inner(area);
        let mut lines = Vec::new();
        if !app.topo.timing {
            lines.push(Line::styled("timing off: no traffic is modelled", DIM));
        } else if app.topo.links.is_empty() {
            lines.push(Line::styled("one socket: no interconnect", DIM));
        }
        let bar_w = inner.width.saturating_sub(26).clamp(4, 30) as usize;
        for (i, l) in app.topo.links.iter().enumerate() {
            let bw = app.rate(|s| s.link_bytes.get(i).copied().unwrap_or(0));
            let util = if l.bandwidth > 0.0 {
                (bw / l.bandwidth).min(1.0)
            } else {
                0.0
            };
            let filled = (util * bar_w as f64).round() as usize;
            let colour = if util > 0.8 {
                Color::Red
            } else if util > 0.5 {
                Color::Yellow
            } else {
                Color::Cyan
            };
            lines.push(Line::from(vec![
                Span::raw(format!("{}→{} ", l.from, l.to)),
                Span::styled("█".repeat(filled), Style::new().fg(colour)),
                Span::styled("░".repeat(bar_w - filled), DIM),
                Span::raw(format!(" {:>3.0}% {:>5} GB/s", util * 100.0, gbs(bw))),
            ]));
        }
        frame.render_widget(Paragraph::new(lines).block(block), area);
    }
}
