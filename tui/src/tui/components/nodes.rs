//! One box per NUMA node: read and write bandwidth at its memory controller, split by origin
//! (local socket, remote sockets; DMA apart), as numbers over the last 100 µs and as stacked
//! graphs over simulated time against the controller's peak, and the controller's queue.

use super::spark::Stacked;
use super::{Component, DIM, DMA, LOCAL, REMOTE, gbs};
use crate::tui::app::App;
use crate::tui::sim::epoch_ns;
use emulator::stats::{NodeSample, Sample};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Sparkline};

/// Narrowest node box.
const MIN_BOX: u16 = 36;

pub struct Nodes<'a> {
    pub app: &'a App,
}

impl Nodes<'_> {
    fn count(&self) -> usize {
        self.app.topo.node_bandwidth.len().max(1)
    }

    fn per_row(&self, width: u16) -> usize {
        self.count().min((width / MIN_BOX).max(1) as usize)
    }

    /// Graph rows each way: more on a tall screen when the nodes fit in one row of boxes.
    fn graph_rows(&self, width: u16, height: u16) -> u16 {
        if self.count().div_ceil(self.per_row(width)) > 1 {
            return 1;
        }
        match height {
            48.. => 4,
            40.. => 3,
            32.. => 2,
            _ => 1,
        }
    }

    pub fn height(&self, width: u16, height: u16) -> u16 {
        let rows = self.count().div_ceil(self.per_row(width)) as u16;
        rows * (5 + 2 * self.graph_rows(width, height))
    }
}

fn node(s: &Sample, n: usize) -> NodeSample {
    s.nodes.get(n).cloned().unwrap_or_default()
}

impl Component for Nodes<'_> {
    fn draw(&self, frame: &mut Frame, area: Rect) {
        let app = self.app;
        let per_row = self.per_row(area.width);
        let rows = self.count().div_ceil(per_row);
        let g = self.graph_rows(area.width, frame.area().height);
        let row_areas = Layout::vertical(vec![Constraint::Ratio(1, rows as u32); rows]).split(area);
        for n in 0..app.topo.node_bandwidth.len() {
            let boxes = Layout::horizontal(vec![Constraint::Ratio(1, per_row as u32); per_row])
                .split(row_areas[n / per_row]);
            let outer = boxes[n % per_row];
            let peak = app.topo.node_bandwidth[n];
            // Narrow boxes get short labels.
            let narrow = outer.width < 52;
            let label = if narrow { "" } else { "· memory controller " };
            let title = Line::from(vec![
                Span::styled(
                    format!(" node {n} "),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::styled(format!("{label}· peak {} GB/s ", gbs(peak)), DIM),
            ]);
            let block = Block::bordered().title(title);
            let inner = block.inner(outer);
            frame.render_widget(block, outer);
            let [read_l, read_g, write_l, write_g, _, queue_l] = Layout::vertical([
                Constraint::Length(1),
                Constraint::Length(g),
                Constraint::Length(1),
                Constraint::Length(g),
                Constraint::Fill(1),
                Constraint::Length(1),
            ])
            .areas(inner);
            let rate = |f: fn(&NodeSample) -> u64| app.rate(|s| f(&node(s, n)));
            let line = |what: &str, local: f64, remote: f64| {
                let total = local + remote;
                let share = if narrow {
                    " ".into()
                } else {
                    format!(" {:>3.0}% ", total / peak * 100.0)
                };
                let (l, r) = if narrow {
                    ("loc", "rem")
                } else {
                    ("local", "remote")
                };
                Line::from(vec![
                    Span::styled(
                        format!("{what:<5} {:>5} GB/s", gbs(total)),
                        Style::new().add_modifier(Modifier::BOLD),
                    ),
                    Span::styled(share, DIM),
                    Span::styled("■", Style::new().fg(LOCAL)),
                    Span::raw(format!(" {l} {:<5} ", gbs(local))),
                    Span::styled("■", Style::new().fg(REMOTE)),
                    Span::raw(format!(" {r} {}", gbs(remote))),
                ])
            };
            frame.render_widget(
                line(
                    "read",
                    rate(|s| s.local_read_bytes),
                    rate(|s| s.remote_read_bytes),
                ),
                read_l,
            );
            frame.render_widget(
                line(
                    "write",
                    rate(|s| s.local_write_bytes),
                    rate(|s| s.remote_write_bytes),
                ),
                write_l,
            );
            // The ceiling: the bytes the controller moves in one full epoch at its peak.
            let ceiling = |s: &Sample| (peak * epoch_ns(s) as f64) as u64;
            let cols = |f: fn(&NodeSample) -> [u64; 2]| -> Vec<[u64; 2]> {
                // Scale partial epochs up to a full one so that the bar heights compare.
                app.history
                    .iter()
                    .map(|s| {
                        let full = (peak * emulator::stats::EPOCH_NS as f64) as u64;
                        f(&node(s, n)).map(|b| b * full / ceiling(s).max(1))
                    })
                    .collect()
            };
            let ceil = (peak * emulator::stats::EPOCH_NS as f64) as u64;
            let reads = cols(|x| [x.local_read_bytes, x.remote_read_bytes]);
            let writes = cols(|x| [x.local_write_bytes, x.remote_write_bytes]);
            frame.render_widget(
                Stacked {
                    columns: &reads,
                    ceiling: ceil,
                    colours: [LOCAL, REMOTE],
                },
                read_g,
            );
            frame.render_widget(
                Stacked {
                    columns: &writes,
                    ceiling: ceil,
                    colours: [LOCAL, REMOTE],
                },
                write_g,
            );
            // Queue depth at the end of each epoch, and DMA (both directions).
            let depth = app.history.back().map_or(0, |s| node(s, n).queue_depth);
            let depths: Vec<u64> = app
                .history
                .iter()
                .rev()
                .take(queue_l.width as usize / 2)
                .map(|s| node(s, n).queue_depth as u64)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let peak_depth = depths.iter().copied().max().unwrap_or(0).max(8);
            let [q_text, q_graph, dma_text] = Layout::horizontal([
                Constraint::Length(10),
                Constraint::Fill(1),
                Constraint::Length(17),
            ])
            .areas(queue_l);
            frame.render_widget(
                Line::from(vec![
                    Span::styled("queue ", Style::new().add_modifier(Modifier::BOLD)),
                    Span::raw(format!("{depth:>3}")),
                ]),
                q_text,
            );
            frame.render_widget(
                Sparkline::default()
                    .data(&depths)
                    .max(peak_depth)
                    .style(Style::new().fg(ratatui::style::Color::Cyan)),
                q_graph,
            );
            frame.render_widget(
                Line::from(vec![
                    Span::styled(" ■", Style::new().fg(DMA)),
                    Span::raw(format!(" DMA {:>5} GB/s", gbs(rate(|s| s.dma_bytes)))),
                ]),
                dma_text,
            );
        }
    }
}
