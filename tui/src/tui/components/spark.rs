//! A stacked sparkline: one column per epoch, newest at the right edge, each column's bar
//! split into coloured parts (local, remote, DMA) stacked from the bottom, against a fixed
//! ceiling (the controller's or link's peak), so a full-height bar means saturation.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::widgets::Widget;

/// Eighth blocks, from one eighth to a full cell.
const BARS: [&str; 8] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];

pub struct Stacked<'a, const N: usize> {
    /// Oldest first; only the last `area.width` are drawn.
    pub columns: &'a [[u64; N]],
    /// The value a full-height bar stands for.
    pub ceiling: u64,
    pub colours: [Color; N],
}

impl<const N: usize> Widget for Stacked<'_, N> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() || self.ceiling == 0 {
            return;
        }
        let width = area.width as usize;
        let cells = area.height as u64 * 8;
        let shown = &self.columns[self.columns.len().saturating_sub(width)..];
        let x0 = area.right() - shown.len() as u16;
        for (i, parts) in shown.iter().enumerate() {
            // Cumulative heights in eighths; anything non-zero shows at least one eighth.
            let mut bounds = [0u64; N];
            let mut sum = 0u64;
            for (k, &p) in parts.iter().enumerate() {
                sum += p;
                bounds[k] = (sum.saturating_mul(cells) / self.ceiling).min(cells);
            }
            if bounds[N - 1] == 0 && sum > 0 {
                // Too little to show at scale: one eighth, in the colour of its first part.
                let first = parts.iter().position(|&p| p > 0).unwrap_or(0);
                bounds[first..].fill(1);
            }
            let total = bounds[N - 1];
            for row in 0..area.height as u64 {
                let lo = row * 8;
                if total <= lo {
                    break;
                }
                let fill = (total - lo).min(8);
                // The part that covers most of this cell gives it its colour.
                let mut best = (0, 0);
                let mut below = 0;
                for (k, &b) in bounds.iter().enumerate() {
                    let covered = b.clamp(lo, lo + fill) - below.clamp(lo, lo + fill);
                    if covered > best.1 {
                        best = (k, covered);
                    }
                    below = b;
                }
                let y = area.bottom() - 1 - row as u16;
                buf[(x0 + i as u16, y)]
                    .set_symbol(BARS[fill as usize - 1])
                    .set_style(Style::new().fg(self.colours[best.0]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(columns: &[[u64; 2]], ceiling: u64, w: u16, h: u16) -> Buffer {
        let mut buf = Buffer::empty(Rect::new(0, 0, w, h));
        Stacked {
            columns,
            ceiling,
            colours: [Color::Green, Color::Yellow],
        }
        .render(buf.area, &mut buf);
        buf
    }

    #[test]
    fn columns_grow_from_the_bottom_newest_at_the_right() {
        let buf = render(&[[8, 0], [4, 0], [16, 0]], 16, 4, 2);
        // 8/16 of two rows = one full bottom cell; 4/16 = half a cell; 16/16 = full column.
        let expected = Buffer::with_lines(["   █", " █▄█"]);
        for x in 0..4 {
            for y in 0..2 {
                assert_eq!(
                    buf[(x, y)].symbol(),
                    expected[(x, y)].symbol(),
                    "cell {x},{y}"
                );
            }
        }
        assert_eq!(buf[(1, 1)].fg, Color::Green);
    }

    #[test]
    fn parts_stack_with_their_colours() {
        // Local fills the bottom cell, remote the top one.
        let buf = render(&[[8, 8]], 16, 1, 2);
        assert_eq!((buf[(0, 1)].symbol(), buf[(0, 1)].fg), ("█", Color::Green));
        assert_eq!((buf[(0, 0)].symbol(), buf[(0, 0)].fg), ("█", Color::Yellow));
    }

    #[test]
    fn tiny_traffic_still_shows_and_overflow_is_clipped() {
        let buf = render(&[[1, 0], [0, 1000]], 1_000_000, 2, 1);
        assert_eq!(buf[(0, 0)].symbol(), "▁");
        assert_eq!((buf[(1, 0)].symbol(), buf[(1, 0)].fg), ("▁", Color::Yellow));
        let buf = render(&[[50, 50]], 10, 1, 3);
        for y in 0..3 {
            assert_eq!(buf[(0, y)].symbol(), "█");
        }
    }

    #[test]
    fn only_the_last_width_columns_are_drawn() {
        let cols: Vec<[u64; 2]> = (0..10).map(|i| [if i < 8 { 0 } else { 8 }, 0]).collect();
        let buf = render(&cols, 8, 2, 1);
        assert_eq!((buf[(0, 0)].symbol(), buf[(1, 0)].symbol()), ("█", "█"));
    }
}
