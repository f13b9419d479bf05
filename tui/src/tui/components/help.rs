//! `?`: the keys, in a box over the screen.

use super::Component;
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

pub struct Help<'a> {
    pub app: &'a App,
}

pub const KEYS: [(&str, &str); 6] = [
    ("space", "run / pause the simulation"),
    ("s", "run one epoch (10 µs simulated), then pause"),
    ("+ / -", "faster / slower (epochs per second)"),
    ("c", "checkpoint the machine"),
    ("?", "show / hide this help"),
    ("q", "quit (also Ctrl-C)"),
];

impl Component for Help<'_> {
    fn draw(&self, frame: &mut Frame, area: Rect) {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let mut lines: Vec<Line> = KEYS
            .iter()
            .map(|(k, what)| {
                Line::from(vec![
                    Span::styled(format!("{k:>7}  "), bold),
                    Span::raw(*what),
                ])
            })
            .collect();
        lines.push(Line::raw(""));
        lines.push(Line::raw(
            " Graphs: one column per epoch, newest at the right;",
        ));
        lines.push(Line::raw(" the top of a graph is the controller's peak."));
        let colours = [
            ("■", Color::Green, "local"),
            ("■", Color::Yellow, "remote"),
            ("■", Color::Magenta, "DMA"),
        ];
        let mut legend = vec![Span::raw(" ")];
        for (sym, c, what) in colours {
            legend.push(Span::styled(sym, Style::new().fg(c)));
            legend.push(Span::raw(format!(" {what}   ")));
        }
        lines.push(Line::from(legend));
        let speed = crate::tui::app::speed_label(crate::tui::app::SPEEDS[self.app.speed]);
        lines.push(Line::raw(format!(" Speed now: {speed}.")));
        let w = 58.min(area.width);
        let h = (lines.len() as u16 + 2).min(area.height);
        let [_, v, _] = Layout::vertical([
            Constraint::Fill(1),
            Constraint::Length(h),
            Constraint::Fill(1),
        ])
        .areas(area);
        let [_, popup, _] = Layout::horizontal([
            Constraint::Fill(1),
            Constraint::Length(w),
            Constraint::Fill(1),
        ])
        .areas(v);
        frame.render_widget(Clear, popup);
        frame.render_widget(
            Paragraph::new(lines).block(
                Block::bordered()
                    .title(Span::styled(" keys ", bold))
                    .border_style(Style::new().fg(Color::Cyan)),
            ),
            popup,
        );
    }
}
