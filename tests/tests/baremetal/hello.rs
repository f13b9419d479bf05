//! `hello` prints what it finds in BootInfo: the loader's view of the machine, as an image
//! sees it.

use emulator::RunConfig;

#[test]
fn hello_sees_two_sockets_of_four_cores() {
    let cfg = RunConfig {
        machine: "2s".into(),
        cmdline: "greet \"all\"".into(),
        ..RunConfig::default()
    };
    let out = crate::run("hello", &cfg);
    crate::assert_exit_0("hello", &out);
    let console = String::from_utf8_lossy(&out.console);
    let lines: Vec<&str> = console.lines().collect();
    assert_eq!(lines[0], "hello from pvmlab bare metal (core 0)");
    assert!(lines.contains(&"cores: 8, nodes: 2"), "{console}");
    for core in 0..8 {
        let prefix = format!("  core {core}: apic ");
        let line = lines
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no core {core}:\n{console}"));
        let node = core / 4;
        assert!(
            line.ends_with(&format!("socket {node} node {node}")),
            "{line}"
        );
    }
    // Two distance rows, local distance 10 on the diagonal.
    let at = lines
        .iter()
        .position(|l| *l == "distances:")
        .expect("distances");
    let rows: Vec<Vec<u32>> = lines[at + 1..at + 3]
        .iter()
        .map(|l| l.split_whitespace().map(|d| d.parse().unwrap()).collect())
        .collect();
    assert_eq!((rows[0][0], rows[1][1]), (10, 10), "{console}");
    assert!(rows[0][1] > 10 && rows[0][1] == rows[1][0], "{console}");
    assert!(
        console.contains(" node 0 usable ("),
        "no usable RAM on node 0:\n{console}"
    );
    assert!(
        console.contains(" node 1 usable ("),
        "no usable RAM on node 1:\n{console}"
    );
    assert_eq!(*lines.last().unwrap(), r#"cmdline: "greet \"all\"""#);
}

#[test]
fn hello_runs_with_the_bootstrap_core_alone() {
    let cfg = RunConfig {
        bsp_only: true,
        ..RunConfig::default()
    };
    let out = crate::run("hello", &cfg);
    crate::assert_exit_0("hello", &out);
    assert!(
        out.console
            .starts_with(b"hello from pvmlab bare metal (core 0)\n")
    );
}
