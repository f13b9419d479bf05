//! One line: what runs where, simulated time, emulation speed, run state.

use super::{Component, DIM, sim_time};
use crate::tui::app::{App, RunState, SPEEDS, speed_label};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

pub struct Header<'a> {
    pub app: &'a App,
}

impl Component for Header<'_> {
    fn draw(&self, frame: &mut Frame, area: Rect) {
        let app = self.app;
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let (state, colour) = match &app.state {
            RunState::Running => ("▶ running".to_string(), Color::Green),
            RunState::Paused => ("⏸ paused".to_string(), Color::Yellow),
            RunState::Ended(how) => (format!("■ ended: {how}"), Color::Cyan),
        };
        let mode = if app.topo.timing {
            "timing"
        } else {
            "functional"
        };
        let epoch = app.history.back().map_or(0, |s| s.epoch + 1);
        let mips = app
            .mips
            .map_or("– MIPS".to_string(), |m| format!("{m:.1} MIPS"));
        let sep = || Span::styled(" │ ", DIM);
        // Most important first: a narrow terminal cuts the end.
        let line = Line::from(vec![
            Span::styled(" pvmlab ", bold.fg(Color::Black).bg(Color::Cyan)),
            Span::raw(" "),
            Span::styled(state, bold.fg(colour)),
            Span::styled(format!(" · {}", speed_label(SPEEDS[app.speed])), DIM),
            sep(),
            Span::raw("t = "),
            Span::styled(sim_time(app.now_ns()), bold),
            Span::styled(format!(" · epoch {epoch}"), DIM),
            sep(),
            Span::raw(mips),
            sep(),
            Span::styled(app.topo.image.clone(), bold),
            Span::raw(format!(" on {} ({mode})", app.topo.machine)),
        ]);
        frame.render_widget(line, area);
    }
}
