//! The differential oracle (DESIGN.md §9): the same instruction runs natively on the host CPU
//! and in the emulator from the same random register, flag, XMM, MXCSR and memory state, and
//! everything architecturally defined must come out identical: all 16 GPRs, RIP, RFLAGS
//! (status flags and DF, with the flags the SDM leaves undefined for that instruction masked,
//! see `check.rs`), XMM0-15, MXCSR, and every byte of the scratch memory.
//!
//! Layout (identical on both sides; the emulated RAM spans 1 MiB..64 MiB, identity mapped):
//! code at `CODE_BASE` (the instruction at `TEST_RIP`), scratch data at `SCRATCH_BASE`
//! (memory operands and the stack land in `DATA..DATA_END`).
//!
//! Each family test draws `ORACLE_CASES` cases (default per family) from seeds
//! `ORACLE_SEED + i * φ` (default seed: a hash of the family name); a case is fully determined
//! by its seed, and a failure prints the command that reruns just that case.
//!
//! A case the emulator reports as *unimplemented* (#UD from `ops::unimplemented`) is skipped
//! and listed; in a family marked strict it fails the test.

#![allow(dead_code)]

pub mod check;
pub mod emu;
pub mod make;
pub mod native;

use check::*;
use emu::EmuOut;
use iced_x86::{FastFormatter, Instruction, OpKind, Register};
use make::Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const CODE_BASE: u64 = 0x0100_0000;
pub const TEST_RIP: u64 = CODE_BASE + 0x3800;
pub const SCRATCH_BASE: u64 = 0x0200_0000;
pub const SCRATCH_LEN: usize = 0x1_0000;
/// Where memory operands point: four pages with 32 KiB of scratch below (the signal-frame
/// margin for the native stack, which lives here too) and 16 KiB above.
pub const DATA: u64 = SCRATCH_BASE + 0x8000;
pub const DATA_END: u64 = SCRATCH_BASE + 0xC000;
pub const STACK_LO: u64 = DATA + 0x1000;
pub const STACK_HI: u64 = DATA + 0x3000;

/// Architectural state the oracle controls and compares. `repr(C)`: the native stub addresses
/// its fields by offset.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub gpr: [u64; 16],
    pub rflags: u64,
    pub rip: u64,
    pub mxcsr: u32,
    pub _pad: [u32; 3],
    pub xmm: [u128; 16],
}

/// One test case: instruction bytes, input state, and what may legitimately differ.
#[derive(Clone)]
pub struct Case {
    pub seed: u64,
    /// What the emulator runs.
    pub bytes: Vec<u8>,
    /// What the host runs, when different (`rep bsf` runs as TZCNT on a BMI1 host).
    pub native_bytes: Option<Vec<u8>>,
    /// `bytes` decoded at `TEST_RIP`.
    pub ins: Instruction,
    pub regs: Regs,
    /// The whole scratch area, `SCRATCH_LEN` bytes from `SCRATCH_BASE`.
    pub mem: Vec<u8>,
    /// Flags undefined beyond `check::undefined_flags`.
    pub undef: u64,
    /// GPR slots whose results are undefined.
    pub ignore_gpr: u16,
    /// Whether to compare the RFLAGS bits outside status+DF (off for popf).
    pub check_other_flags: bool,
    /// How many times the emulator may run the instruction while RIP stays on it (a `rep`
    /// string instruction may retire one iteration at a time).
    pub max_steps: u32,
    pub note: String,
}

impl Case {
    pub fn new(regs: Regs, mem: Vec<u8>) -> Case {
        Case {
            seed: 0,
            bytes: Vec::new(),
            native_bytes: None,
            ins: Instruction::default(),
            regs,
            mem,
            undef: 0,
            ignore_gpr: 0,
            check_other_flags: true,
            max_steps: 1,
            note: String::new(),
        }
    }

    pub fn set_bytes(&mut self, bytes: Vec<u8>) {
        self.ins = make::decode(&bytes);
        assert_eq!(
            self.ins.len(),
            bytes.len(),
            "oracle harness: {:02x?} decodes short",
            bytes
        );
        self.bytes = bytes;
    }

    pub fn text(&self) -> String {
        disasm(&self.ins)
    }

    /// Value of a general register of any width.
    pub fn reg(&self, r: Register) -> u64 {
        let (slot, high) = make::gpr_slot(r);
        let v = self.regs.gpr[slot];
        if high {
            return (v >> 8) & 0xFF;
        }
        match r.size() {
            1 => v & 0xFF,
            2 => v & 0xFFFF,
            4 => v & 0xFFFF_FFFF,
            _ => v,
        }
    }

    /// Sets the low `r.size()` bytes of a general register (the rest stays random).
    pub fn set_reg(&mut self, r: Register, v: u64) {
        let (slot, high) = make::gpr_slot(r);
        let g = &mut self.regs.gpr[slot];
        if high {
            *g = (*g & !0xFF00) | ((v & 0xFF) << 8);
            return;
        }
        let m = match r.size() {
            1 => 0xFF,
            2 => 0xFFFF,
            4 => 0xFFFF_FFFF,
            _ => u64::MAX,
        };
        *g = (*g & !m) | (v & m);
    }

    /// Whether GPR slot `s` is a base or index register of the memory operand.
    pub fn is_addr_slot(&self, s: usize) -> bool {
        [self.ins.memory_base(), self.ins.memory_index()]
            .iter()
            .any(|&r| r != Register::None && r.is_gpr() && make::gpr_slot(r).0 == s)
    }

    /// Effective address of the memory operand, if any.
    pub fn ea(&self) -> Option<u64> {
        let n = (0..self.ins.op_count()).find(|&n| self.ins.op_kind(n) == OpKind::Memory)?;
        self.ins.virtual_address(n, 0, |r, _, _| {
            Some(if r.is_gpr() { self.reg(r) } else { 0 })
        })
    }

    fn off(&self, a: u64, n: usize) -> usize {
        assert!(
            a >= SCRATCH_BASE && a + n as u64 <= SCRATCH_BASE + SCRATCH_LEN as u64,
            "oracle harness: {a:#x}+{n} outside scratch"
        );
        (a - SCRATCH_BASE) as usize
    }

    pub fn read_mem(&self, a: u64, n: usize) -> u64 {
        let o = self.off(a, n);
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&self.mem[o..o + n]);
        u64::from_le_bytes(b)
    }

    pub fn write_mem(&mut self, a: u64, bytes: &[u8]) {
        let o = self.off(a, bytes.len());
        self.mem[o..o + bytes.len()].copy_from_slice(bytes);
    }

    pub fn write_u64(&mut self, a: u64, v: u64, n: usize) {
        self.write_mem(a, &v.to_le_bytes()[..n]);
    }

    /// Value of operand `n` (register or memory, at its own size; immediates as encoded).
    pub fn op_value(&self, n: u32) -> u64 {
        match self.ins.op_kind(n) {
            OpKind::Register => self.reg(self.ins.op_register(n)),
            OpKind::Memory => {
                self.read_mem(self.ea().unwrap(), self.ins.memory_size().size().min(8))
            }
            _ => self.ins.immediate(n),
        }
    }

    /// Sets operand `n`; false if that would move the memory operand (an address register).
    pub fn set_op_value(&mut self, n: u32, v: u64) -> bool {
        match self.ins.op_kind(n) {
            OpKind::Register => {
                let r = self.ins.op_register(n);
                if self.is_addr_slot(make::gpr_slot(r).0) {
                    return false;
                }
                self.set_reg(r, v);
                true
            }
            OpKind::Memory => {
                let a = self.ea().unwrap();
                let size = self.ins.memory_size().size().min(8);
                self.write_u64(a, v, size);
                true
            }
            _ => false,
        }
    }
}

pub fn disasm(ins: &Instruction) -> String {
    let mut f = FastFormatter::new();
    f.options_mut().set_use_hex_prefix(true);
    f.options_mut().set_uppercase_hex(false);
    f.options_mut().set_space_after_operand_separator(true);
    f.options_mut().set_rip_relative_addresses(true);
    let mut s = String::new();
    f.format(ins, &mut s);
    s
}

/// Compares native and emulated results; returns one line per difference.
pub fn compare(case: &Case, n: &Regs, nmem: &[u8], e: &Regs, emem: &[u8]) -> Vec<String> {
    let mut d = Vec::new();
    #[allow(clippy::needless_range_loop)]
    for i in 0..16 {
        if case.ignore_gpr & (1 << i) == 0 && n.gpr[i] != e.gpr[i] {
            d.push(format!(
                "{:>6}: native {:#018x}  emulator {:#018x}  (input {:#018x})",
                GPR_NAMES[i], n.gpr[i], e.gpr[i], case.regs.gpr[i]
            ));
        }
    }
    if n.rip != e.rip {
        d.push(format!(
            "   rip: native {:#x}  emulator {:#x}",
            n.rip, e.rip
        ));
    }
    let undef = undefined_flags(&case.ins, &case.regs) | case.undef;
    let m = COMPARED & !undef;
    if n.rflags & m != e.rflags & m {
        d.push(format!(
            "rflags: native {}  emulator {}  (compared {}, differing {})",
            flag_names(n.rflags & COMPARED),
            flag_names(e.rflags & COMPARED),
            flag_names(m),
            flag_names((n.rflags ^ e.rflags) & m)
        ));
    }
    if case.check_other_flags {
        // The emulator must leave the system flags alone (the native side cannot change them).
        let other = !COMPARED & 0x3F_FFFF;
        if e.rflags & other != case.regs.rflags & other {
            d.push(format!(
                "rflags: emulator changed non-status bits: input {}  emulator {}",
                flag_names(case.regs.rflags),
                flag_names(e.rflags)
            ));
        }
    }
    for i in 0..16 {
        if n.xmm[i] != e.xmm[i] {
            d.push(format!(
                "{:>6}: native {}  emulator {}  (input {})",
                format!("xmm{i}"),
                xmm_hex(n.xmm[i]),
                xmm_hex(e.xmm[i]),
                xmm_hex(case.regs.xmm[i])
            ));
        }
    }
    if n.mxcsr != e.mxcsr {
        d.push(format!(
            " mxcsr: native {}  emulator {}  (input {})",
            mxcsr_names(n.mxcsr),
            mxcsr_names(e.mxcsr),
            mxcsr_names(case.regs.mxcsr)
        ));
    }
    // Memory: report differing runs.
    let mut i = 0;
    while i < nmem.len() {
        if nmem[i] != emem[i] {
            let start = i;
            while i < nmem.len() && i - start < 32 && nmem[i] != emem[i] {
                i += 1;
            }
            d.push(format!(
                "   mem {:#x}..{:#x}: native {:02x?}  emulator {:02x?}  (input {:02x?})",
                SCRATCH_BASE + start as u64,
                SCRATCH_BASE + i as u64,
                &nmem[start..i],
                &emem[start..i],
                &case.mem[start..i]
            ));
            if d.len() > 40 {
                d.push("   ...".into());
                break;
            }
        } else {
            i += 1;
        }
    }
    d
}

/// The input state, for a report.
pub fn describe_input(case: &Case) -> String {
    let mut s = String::new();
    for row in 0..4 {
        s.push_str("   ");
        #[allow(clippy::needless_range_loop)]
        for i in row * 4..row * 4 + 4 {
            let _ = write!(s, " {:>3}={:#018x}", GPR_NAMES[i], case.regs.gpr[i]);
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "    rflags={}  mxcsr={}",
        flag_names(case.regs.rflags),
        mxcsr_names(case.regs.mxcsr)
    );
    let mut xmms: Vec<usize> = Vec::new();
    for n in 0..case.ins.op_count() {
        if case.ins.op_kind(n) == OpKind::Register && case.ins.op_register(n).is_xmm() {
            xmms.push(make::xmm_slot(case.ins.op_register(n)));
        }
    }
    for x in xmms {
        let _ = writeln!(s, "    xmm{x}={}", xmm_hex(case.regs.xmm[x]));
    }
    if let Some(a) = case.ea() {
        let size = case.ins.memory_size().size().max(1);
        let o = (a.wrapping_sub(SCRATCH_BASE)) as usize;
        if o + size <= case.mem.len() {
            let _ = writeln!(
                s,
                "    memory operand at {a:#x} ({size} bytes): {:02x?}",
                &case.mem[o..o + size]
            );
        } else {
            let _ = writeln!(s, "    memory operand at {a:#x} (outside scratch)");
        }
    }
    s
}

fn bytes_hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The result of one case.
pub enum Verdict {
    Pass,
    Unimplemented,
    Mismatch(String),
}

/// Runs one case on both sides and compares.
pub fn run_case(case: &Case) -> Verdict {
    let nb = case.native_bytes.as_deref().unwrap_or(&case.bytes);
    let (mut nregs, nmem) = native::run(nb, &case.regs, &case.mem);
    if nregs.rip == TEST_RIP + nb.len() as u64 {
        // Fell through; the stand-in native instruction may be shorter.
        nregs.rip = TEST_RIP + case.bytes.len() as u64;
    }
    let head = |what: &str| {
        let mut s = format!(
            "  {}    [{}]{}\n",
            case.text(),
            bytes_hex(&case.bytes),
            if case.note.is_empty() {
                String::new()
            } else {
                format!("  ({})", case.note)
            }
        );
        if let Some(b) = &case.native_bytes {
            let _ = writeln!(
                s,
                "  native runs: {}    [{}]",
                disasm(&make::decode(b)),
                bytes_hex(b)
            );
        }
        let _ = write!(s, "  input:\n{}  {what}:\n", describe_input(case));
        s
    };
    match emu::run(&case.bytes, &case.regs, &case.mem, case.max_steps) {
        EmuOut::Unimplemented => Verdict::Unimplemented,
        EmuOut::Done(eregs, emem) => {
            let d = compare(case, &nregs, &nmem, &eregs, &emem);
            if d.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Mismatch(head("differs") + &d.join("\n"))
            }
        }
        EmuOut::Fault(f, ..) => Verdict::Mismatch(
            head("differs")
                + &format!(
                    "   emulator raised {} (error code {:?}); natively it retired (rip -> {:#x})",
                    f.name(),
                    f.error_code,
                    nregs.rip
                ),
        ),
        EmuOut::Panic(m) => {
            Verdict::Mismatch(head("differs") + &format!("   emulator panicked: {m}"))
        }
        EmuOut::Other(s) => {
            Verdict::Mismatch(head("differs") + &format!("   emulator stopped: {s:?}"))
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    if let Some(h) = v.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else {
        v.parse().ok()
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// A family run: `test` is the integration-test target (`oracle_alu`), `name` the test
/// function; `draw` draws one case from the RNG (or `None` to redraw).
pub struct Family<'a> {
    pub test: &'a str,
    pub name: &'a str,
    pub cases: usize,
    /// Unimplemented instructions fail the test.
    pub strict: bool,
}

pub fn run_family(f: Family, mut draw: impl FnMut(&mut Rng) -> Option<Case>) {
    let cases = env_u64("ORACLE_CASES").map_or(f.cases, |n| n as usize);
    let base = env_u64("ORACLE_SEED").unwrap_or_else(|| fnv(f.name));
    let strict = f.strict || std::env::var("ORACLE_STRICT").is_ok_and(|v| v == "1");
    // ORACLE_TRACE=1 prints every case before it runs (to find one that kills the process).
    let trace = std::env::var("ORACLE_TRACE").is_ok_and(|v| v == "1");
    let mut passed = 0usize;
    let mut unimpl: BTreeMap<String, usize> = BTreeMap::new();
    let mut mism_by_code: BTreeMap<String, usize> = BTreeMap::new();
    let mut reports = Vec::new();
    let mut mismatched = 0usize;
    let mut codes = std::collections::BTreeSet::new();
    for i in 0..cases {
        let seed = base.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut rng = Rng::new(seed);
        let mut case = None;
        for _ in 0..1000 {
            if let Some(c) = draw(&mut rng) {
                case = Some(c);
                break;
            }
        }
        let mut case =
            case.unwrap_or_else(|| panic!("oracle {}: seed {seed:#x} generates no case", f.name));
        case.seed = seed;
        codes.insert(case.ins.code());
        if trace {
            eprintln!("oracle {} case {i} seed {seed:#x}: {}", f.name, case.text());
        }
        match run_case(&case) {
            Verdict::Pass => passed += 1,
            Verdict::Unimplemented => {
                *unimpl.entry(format!("{:?}", case.ins.code())).or_default() += 1
            }
            Verdict::Mismatch(r) => {
                mismatched += 1;
                *mism_by_code
                    .entry(format!("{:?}", case.ins.code()))
                    .or_default() += 1;
                if reports.len() < 6 {
                    reports.push(format!(
                        "MISMATCH seed {seed:#x} — rerun: ORACLE_SEED={seed:#x} ORACLE_CASES=1 cargo test -p pvmlab-emulator --test {} -- {} --exact --nocapture\n{r}",
                        f.test, f.name
                    ));
                }
            }
        }
    }
    let unimpl_total: usize = unimpl.values().sum();
    let mut summary = format!(
        "oracle {}: {} cases over {} encodings, {} matched, {} mismatched, {} not implemented yet",
        f.name,
        cases,
        codes.len(),
        passed,
        mismatched,
        unimpl_total
    );
    if !unimpl.is_empty() {
        let _ = write!(
            summary,
            " [{}]",
            unimpl.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if !mism_by_code.is_empty() {
        let _ = write!(
            summary,
            "\n  mismatches by code: {}",
            mism_by_code
                .iter()
                .map(|(k, v)| format!("{k}×{v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("{summary}");
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("oracle-{}.txt", f.name)),
        format!("{summary}\n"),
    );
    for r in &reports {
        println!("{r}\n");
    }
    if mismatched > 0 {
        panic!(
            "oracle {}: {} of {} cases mismatched (reports above)\n{summary}",
            f.name, mismatched, cases
        );
    }
    if strict && unimpl_total > 0 {
        panic!(
            "oracle {}: {} cases hit unimplemented instructions in a strict family\n{summary}",
            f.name, unimpl_total
        );
    }
}

/// Runs `case` in the emulator only and expects fault `vector` with nothing changed.
pub fn expect_fault(case: &Case, vector: u8) -> Result<(), String> {
    match emu::run(&case.bytes, &case.regs, &case.mem, case.max_steps) {
        EmuOut::Fault(f, regs, mem) => {
            let mut errs = Vec::new();
            if f.vector != vector {
                errs.push(format!("raised {} instead of vector {vector}", f.name()));
            }
            let mut expect = case.regs;
            expect.rip = TEST_RIP;
            if regs != expect {
                errs.push(format!("state changed: {:x?} vs {:x?}", regs, expect));
            }
            if mem != case.mem {
                errs.push("memory changed".into());
            }
            if errs.is_empty() {
                Ok(())
            } else {
                Err(format!("{}: {}", case.text(), errs.join("; ")))
            }
        }
        EmuOut::Unimplemented => Err(format!("{}: not implemented", case.text())),
        EmuOut::Done(..) => Err(format!(
            "{}: retired, expected vector {vector}",
            case.text()
        )),
        EmuOut::Panic(m) => Err(format!("{}: panicked: {m}", case.text())),
        EmuOut::Other(s) => Err(format!("{}: stopped {s:?}", case.text())),
    }
}
