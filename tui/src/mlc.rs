//! `pvmlab mlc`: our memory latency checker. Runs the `mlc` bare-metal image (built from
//! `guests/baremetal/src/bin/mlc.rs`) with the timing model on and prints, like Intel's Memory
//! Latency Checker, the idle-latency matrix (ns) and the read-bandwidth matrix (GB/s): rows
//! are the socket whose cores run the test, columns the node whose memory they use.

use emulator::{RunConfig, RunEnd};
use std::fmt::Write;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct MlcArgs {
    /// Machine preset (1s, 2s, 4s, 8s) or a machine description file (.ron).
    #[arg(long, default_value = "2s", value_name = "PRESET|FILE")]
    pub machine: String,
    /// Timed dependent loads per idle-latency test; 0 skips the latency matrix.
    #[arg(long, default_value_t = 50_000, value_name = "N")]
    pub loads: u64,
    /// KiB each core reads per bandwidth test; 0 skips the bandwidth matrix.
    #[arg(long, default_value_t = 1024, value_name = "KIB")]
    pub bw_kib: u64,
    /// How many cores of a socket stream in the bandwidth tests (default: all).
    #[arg(long, value_name = "N")]
    pub cores: Option<u32>,
    /// Only these (socket, node) pairs, e.g. `0:0,0:1` or `0:*` (default: all).
    #[arg(long, value_name = "S:N,...")]
    pub pairs: Option<String>,
}

/// What the image measured; `None` where a pair was not tested.
#[derive(Clone, Debug, PartialEq)]
pub struct MlcResult {
    pub sockets: usize,
    pub nodes: usize,
    /// `[socket][node]`, nanoseconds per dependent load.
    pub latency_ns: Vec<Vec<Option<f64>>>,
    /// `[socket][node]`, 10^9 bytes per second.
    pub bandwidth_gbs: Vec<Vec<Option<f64>>>,
    pub lat_loads: u64,
    pub bw_bytes_per_core: u64,
    pub bw_cores: u64,
}

/// The image's command line for these options.
fn cmdline(args: &MlcArgs) -> String {
    let mut s = format!("lat={} bw={}", args.loads, args.bw_kib);
    if let Some(c) = args.cores {
        s += &format!(" cores={c}");
    }
    if let Some(p) = &args.pairs {
        s += &format!(" pairs={p}");
    }
    s
}

/// Parses the image's console output (the format is documented in the image's source).
pub fn parse(console: &str) -> Result<MlcResult, String> {
    if let Some(line) = console.lines().find(|l| l.starts_with("mlc: error: ")) {
        return Err(format!("the mlc image refused to run: {}", &line[12..]));
    }
    let header = console
        .lines()
        .find(|l| l.starts_with("mlc sockets "))
        .ok_or("the mlc image printed no header line")?;
    let field = |key: &str| -> Result<u64, String> {
        let words: Vec<&str> = header.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("the mlc header has no `{key}`: {header}"))
    };
    let (sockets, nodes) = (field("sockets")? as usize, field("nodes")? as usize);
    let mut r = MlcResult {
        sockets,
        nodes,
        latency_ns: vec![vec![None; nodes]; sockets],
        bandwidth_gbs: vec![vec![None; nodes]; sockets],
        lat_loads: field("lat_loads")?,
        bw_bytes_per_core: field("bw_bytes_per_core")?,
        bw_cores: field("bw_cores")?,
    };
    for line in console.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let matrix = match w.first() {
            Some(&"latency_ns") => &mut r.latency_ns,
            Some(&"bandwidth_gbs") => &mut r.bandwidth_gbs,
            _ => continue,
        };
        let bad = || format!("malformed mlc line: {line}");
        let s: usize = w.get(1).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let n: usize = w.get(2).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let v: f64 = w.get(3).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        *matrix
            .get_mut(s)
            .and_then(|row| row.get_mut(n))
            .ok_or_else(bad)? = Some(v);
    }
    if !console.lines().any(|l| l == "mlc done") {
        return Err("the mlc image stopped before printing all its results".into());
    }
    Ok(r)
}

/// A node × node matrix in Intel MLC's layout; `-` for pairs not measured.
pub fn matrix(m: &[Vec<Option<f64>>], decimals: usize) -> String {
    let mut s = String::new();
    let nodes = m.first().map_or(0, Vec::len);
    let _ = writeln!(s, "{:>9}{:>9}", "", "Numa node");
    let _ = write!(s, "{:>9}", "Numa node");
    for n in 0..nodes {
        let _ = write!(s, "{n:>9}");
    }
    s.push('\n');
    for (row, cells) in m.iter().enumerate() {
        let _ = write!(s, "{row:>9}");
        for c in cells {
            match c {
                Some(v) => {
                    let _ = write!(s, "{v:>9.decimals$}");
                }
                None => {
                    let _ = write!(s, "{:>9}", "-");
                }
            }
        }
        s.push('\n');
    }
    s
}

pub fn run(args: &MlcArgs) -> i32 {
    let Some(image) = workloads::images::get("mlc") else {
        eprintln!("pvmlab: error: the mlc image was not built");
        return emulator::machine::status::BAD_INPUT;
    };
    let cfg = RunConfig {
        machine: args.machine.clone(),
        cmdline: cmdline(args),
        timing: true,
        ..RunConfig::default()
    };
    let start = Instant::now();
    let outcome = match emulator::run_image(image, &cfg) {
        Ok(o) => o,
        Err(e) => {
            crate::report_error(&e);
            return emulator::machine::status::BAD_INPUT;
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let console = String::from_utf8_lossy(&outcome.console);
    let failed = match &outcome.end {
        RunEnd::Exit(0) => None,
        RunEnd::Exit(v) => Some(format!("the mlc image exited with status {v}")),
        RunEnd::AllHalted => Some("every core of the mlc image stopped before it finished".into()),
        RunEnd::InstructionLimit => Some("the mlc image hit the instruction limit".into()),
        RunEnd::Fault { report, .. } => Some(format!("the mlc image faulted: {report}")),
    };
    let result = match (failed, parse(&console)) {
        (None, Ok(r)) => r,
        (f, p) => {
            // The image's own message, when it printed one, says more than its exit status.
            let why = match p {
                Err(e) if e.starts_with("the mlc image refused") => e,
                Err(e) => f.unwrap_or(e),
                Ok(_) => f.unwrap_or_default(),
            };
            eprintln!("pvmlab: error: {}", why.trim_end());
            let status = outcome.end.exit_status();
            return if status == 0 { 1 } else { status };
        }
    };
    let report = &outcome.report;
    println!(
        "pvmlab mlc: machine {}, {} sockets, {} nodes, timing model on",
        report.machine, result.sockets, result.nodes
    );
    if result.lat_loads > 0 {
        println!(
            "\nIdle latency (ns per dependent load, {} loads per pair)",
            result.lat_loads
        );
        print!("{}", matrix(&result.latency_ns, 1));
    }
    if result.bw_bytes_per_core > 0 {
        println!(
            "\nRead bandwidth (GB/s = 10^9 B/s; {} cores per socket, {} KiB each)",
            result.bw_cores,
            result.bw_bytes_per_core >> 10
        );
        print!("{}", matrix(&result.bandwidth_gbs, 1));
    }
    println!(
        "\n{:.3} ms simulated, {} instructions, {:.1} s on the host ({:.1} MIPS)",
        report.simulated_ns as f64 / 1e6,
        outcome.instructions,
        secs,
        outcome.instructions as f64 / secs.max(1e-9) / 1e6
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "mlc sockets 2 nodes 2 tsc_hz 2400000000 lat_loads 800 warmup 16 \
                          bw_bytes_per_core 65536 bw_cores 4\n\
                          latency_ns 0 0 85.12 ticks 1 loads 800\n\
                          latency_ns 1 0 135.50 ticks 1 loads 800\n\
                          bandwidth_gbs 0 1 40.00 ticks 1 bytes 262144\n\
                          mlc done\n";

    #[test]
    fn parses_the_console_block() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(
            (r.sockets, r.nodes, r.lat_loads, r.bw_cores),
            (2, 2, 800, 4)
        );
        assert_eq!(r.latency_ns[0][0], Some(85.12));
        assert_eq!(r.latency_ns[1][0], Some(135.5));
        assert_eq!(r.latency_ns[0][1], None);
        assert_eq!(r.bandwidth_gbs[0][1], Some(40.0));
        let text = matrix(&r.latency_ns, 1);
        assert!(text.contains("     85.1        -"), "{text}");
    }

    #[test]
    fn incomplete_or_refused_output_is_an_error() {
        let cut = SAMPLE.replace("mlc done\n", "");
        assert!(parse(&cut).unwrap_err().contains("stopped before"));
        let e = parse("mlc: error: unknown key\n").unwrap_err();
        assert!(e.contains("unknown key"), "{e}");
        assert!(parse("latency_ns 0 0 1\n").is_err());
    }

    #[test]
    fn options_become_the_image_command_line() {
        let args = MlcArgs {
            machine: "2s".into(),
            loads: 1000,
            bw_kib: 0,
            cores: Some(2),
            pairs: Some("0:*".into()),
        };
        assert_eq!(cmdline(&args), "lat=1000 bw=0 cores=2 pairs=0:*");
    }
}
