//! The event log: phases, the guest's console lines, run state changes, warnings; the newest
//! at the bottom, each stamped with simulated time. Long entries wrap under their text.

use super::{Component, DIM, sim_time};
use crate::tui::app::{App, LogKind};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

/// Width of the time column.
const STAMP: usize = 11;

pub struct Log<'a> {
    pub app: &'a App,
}

impl Component for Log<'_> {
    fn draw(&self, frame: &mut Frame, area: Rect) {
        let block = Block::bordered().title(Span::styled(
            " event log ",
            Style::new().add_modifier(Modifier::BOLD),
        ));
        let inner = block.inner(area);
        let rows = inner.height as usize;
        let text_w = (inner.width as usize).saturating_sub(STAMP).max(8);
        // Newest first, until the panel is full; then put back in order.
        let mut lines: Vec<Line> = Vec::new();
        for l in self.app.log.iter().rev() {
            if lines.len() >= rows {
                break;
            }
            let style = match l.kind {
                LogKind::Info => Style::new(),
                LogKind::Phase => Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
                LogKind::Guest => Style::new().fg(Color::Gray),
                LogKind::Warning => Style::new().fg(Color::Red),
            };
            let parts = wrap(&l.text, text_w);
            for (i, part) in parts.into_iter().enumerate().rev() {
                let stamp = if i == 0 {
                    Span::styled(format!("{:>w$} ", sim_time(l.at_ns), w = STAMP - 1), DIM)
                } else {
                    Span::raw(" ".repeat(STAMP))
                };
                lines.push(Line::from(vec![stamp, Span::styled(part, style)]));
            }
        }
        lines.truncate(rows);
        lines.reverse();
        frame.render_widget(Paragraph::new(lines).block(block), area);
    }
}

/// Splits `text` into lines of at most `width` characters, at spaces where it can.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    if text.chars().count() <= width {
        return vec![text.to_string()];
    }
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let fits = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if fits > width && !line.is_empty() {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.chars().count() > width {
            let head: String = line.chars().take(width).collect();
            line = line.chars().skip(width).collect();
            out.push(head);
        }
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("one two three", 7), ["one two", "three"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), [""]);
        assert_eq!(wrap("  indented", 20), ["  indented"]);
    }
}
