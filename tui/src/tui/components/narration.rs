//! The left panel: a lesson's narration for the current phase, or, without a lesson, the
//! guest's console.

use super::{Component, DIM};
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

pub struct Narration<'a> {
    pub app: &'a App,
}

impl Component for Narration<'_> {
    fn draw(&self, frame: &mut Frame, area: Rect) {
        let app = self.app;
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let Some(lesson) = app.lesson else {
            let block = Block::bordered().title(Span::styled(" console ", bold));
            let rows = block.inner(area).height as usize;
            let lines: Vec<Line> = app
                .console
                .iter()
                .rev()
                .take(rows)
                .rev()
                .map(|l| Line::raw(l.clone()))
                .collect();
            frame.render_widget(Paragraph::new(lines).block(block), area);
            return;
        };
        let total = lesson.phases.len();
        let title = match lesson.narration(app.phase) {
            Some(n) if app.phase > 0 => format!(
                " lesson {} · phase {}/{total}: {} ",
                lesson.name, app.phase, n.title
            ),
            Some(n) => format!(" lesson {} · {} ", lesson.name, n.title),
            None => format!(" lesson {} · phase {} ", lesson.name, app.phase),
        };
        let block = Block::bordered()
            .title(Span::styled(title, bold.fg(Color::Cyan)))
            .border_style(Style::new().fg(Color::Cyan));
        let mut lines = Vec::new();
        if let Some(n) = lesson.narration(app.phase) {
            lines.push(Line::styled(format!("▸ {}", n.look), bold));
            for para in n.text.split('\n') {
                lines.push(Line::raw(""));
                lines.push(Line::raw(para.to_string()));
            }
        } else {
            lines.push(Line::styled("(no narration for this phase)", DIM));
        }
        frame.render_widget(
            Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
            area,
        );
    }
}
