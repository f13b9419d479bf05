//! The x86-64 core every image runs on: what it implements, how, and where it departs from
//! the Intel SDM (DESIGN.md §2.2). Read this before porting a kernel or hypervisor to pvmlab.
//!
//! Semantics follow the Intel SDM (Vol. 2 for instructions, Vol. 3A for system programming,
//! Vol. 4 for MSRs) unless a table below says otherwise; each simplification is stated as
//! what silicon does and what pvmlab does. The implementation is `emulator/src/cpu/` (one file
//! per instruction family under `ops/`, each citing its SDM section); the tests that show a
//! behaviour are named next to it. The tests most worth reading are the `kernel` image
//! (`guests/baremetal/src/kernel/`), run by `tests/tests/platform/` — a GDT, TSS, IDT, its own
//! page tables, ring 3, `syscall`, faults on purpose, the x2APIC, INIT/SIPI — and the
//! differential oracle (`emulator/tests/oracle_*.rs`), which runs user-level instructions on
//! the host CPU and in pvmlab from the same random state and compares registers, flags and
//! memory bit for bit.
//!
//! # At a glance
//! | | pvmlab |
//! |---|---|
//! | modes | 64-bit long mode only, from power-on to the end of the run |
//! | privilege | CPL 0 and 3 (the RPL of CS); 1 and 2 are not refused, and not tested |
//! | paging | 4-level, 4 KiB / 2 MiB / 1 GiB pages, NX, MAXPHYADDR 48, CR4.PGE (global translations are flushed like the others); no PCID, no SMEP/SMAP, no protection keys |
//! | ISA | integer, SSE, SSE2, CMPXCHG8B, FXSAVE; no x87, MMX, SSE3+, AVX, BMI, POPCNT, CMPXCHG16B |
//! | interrupts | IDT with 64-bit gates, IST, x2APIC ([`crate::apic`]); no NMI, no SMI |
//! | absent | real/protected/virtual-8086/compatibility modes, SMM, task switching, VMX/SVM, LDT, far transfers, MTRR/PAT |
//! | memory order | sequentially consistent (one host thread runs every core in turn) |
//! | `rdtsc` | the core's own cycle counter, plus what a write of [`IA32_TSC`] added; `BootInfo::tsc_hz` ticks per simulated second |
//!
//! # Modes
//! | silicon | pvmlab |
//! |---|---|
//! | resets into real mode at `0xFFFF_FFF0`; firmware enters long mode | every core starts in 64-bit mode at the ELF entry (state below); there is no firmware and no real mode |
//! | clearing CR0.PG or CR0.PE, EFER.LME or CR4.PAE leaves long mode | each of these writes raises #GP(0) (`mov cr0`, `mov cr4`, `wrmsr`) |
//! | a code segment with L = 0 runs in compatibility mode | not modelled: far `jmp`/`call`/`ret` are not implemented (#UD, status 127), `sysret` without REX.W (to 32-bit code) is not implemented, CSTAR is stored but never used. `iretq` to a code segment with L = 0 raises the same "not implemented" #UD, at the `iretq`, reported as "not implemented by pvmlab: compatibility mode (a code segment with L = 0)" (status 127 without an IDT; with one, the image's #UD handler sees a #UD, counted as below) instead of running 32-bit code as 64-bit code. An IDT gate whose code segment is not 64-bit code raises #GP, as on silicon (*Exceptions and interrupts*) |
//! | SMM (SMI, `rsm`) | none: an SMI IPI is ignored, `rsm` is not implemented |
//! | hardware task switching | none: no task gates (an IDT task gate raises #GP), no call gates, no `jmp`/`call` to a TSS; `iretq` with RFLAGS.NT = 1 raises #GP(0), as in IA-32e mode. The TSS only supplies RSP0–2 and IST1–7 |
//! | VMX, SVM | none: CPUID reports neither; `vmxon`, `vmcall`, `vmrun`… are not implemented (#UD); setting CR4.VMXE raises #GP(0) |
//! | INIT puts a core in real mode; a SIPI starts it at `V << 12` in real mode | INIT resets the core to the boot state below; a SIPI starts it in 64-bit mode at `SIPI_BASE + (V << 12)` ([`crate::apic`], "Start-up") |
//!
//! To reload CS after `lgdt`, use `iretq` to the next instruction (as
//! `guests/baremetal/src/kernel/gdt.rs` does): there is no far jump.
//!
//! # State at entry
//! What the loader (`emulator/src/loader.rs`) gives every core at `e_entry`, and a start-up IPI
//! gives a core after INIT (DESIGN.md §3.1; test: `emulator/tests/boot.rs`,
//! `every_core_starts_at_the_entry_with_bootinfo_and_its_own_stack`).
//!
//! | register | value |
//! |---|---|
//! | RIP, RSP | `e_entry`; the top of the core's 64 KiB stack on its own node, minus 8 |
//! | RDI, RSI | physical address of [`crate::boot::BootInfo`]; core index |
//! | other GPRs, XMM0–15 | 0 |
//! | RFLAGS | `0x2` (IF = 0) |
//! | CS; SS, DS, ES, FS, GS | `0x08` (64-bit code, DPL 0); `0x10` (data) |
//! | GDTR | the loader's GDT: null, code `0x08`, data `0x10`, limit 23 (no ring-3 segments, no TSS) |
//! | IDTR | base 0, limit 0: **no IDT** (every exception ends the run with a report) |
//! | TR | 0: no TSS is loaded |
//! | CR0 | `0x8001_0033`: PE, MP, ET, NE, WP, PG |
//! | CR3 | the loader's PML4: every RAM range identity-mapped with 2 MiB pages (4 KiB below 2 MiB), MMIO windows with 4 KiB PCD/PWT pages ([`crate::mmio`]); supervisor-only, writable, executable, not global; nothing else mapped |
//! | CR4 | `0x620`: PAE, OSFXSR, OSXMMEXCPT |
//! | EFER | `0xD01`: SCE, LME, LMA, NXE |
//! | MXCSR | `0x1F80` |
//! | FS/GS/KERNEL_GS base, STAR, LSTAR, CSTAR, FMASK | 0 |
//! | TSC_AUX | the core index |
//! | TSC | 0 at power-on; INIT keeps it; a core started by SIPI keeps its clock (at least the sender's time) |
//! | local APIC | x2APIC mode, software-disabled ([`crate::apic`]) |
//!
//! # Control registers and EFER
//! `mov` to or from a control register needs CPL 0 (#GP(0) otherwise). A write that raises
//! #GP changes nothing.
//!
//! | register | what pvmlab does |
//! |---|---|
//! | CR0 | Bits 63:32 set, PE or PG clear (PE = 0 with PG = 1, or leaving long mode), or NW = 1 with CD = 0: #GP(0). Reserved bits of 31:0 are ignored (they read 0, as on silicon); ET always reads 1. WP: applies to every supervisor write, including through translations cached while it was clear (a change of WP drops the TLB's write translations). TS: SSE instructions and `fxsave`/`fxrstor` raise #NM; `clts` clears it. EM: SSE raises #UD, `fxsave`/`fxrstor` #NM. AM: alignment checks (see *Exceptions and interrupts*, #AC). MP, NE, CD and NW are stored and read back without effect (no x87, no cache control). No TLB flush otherwise. |
//! | CR2 | the linear address of the last #PF; writable. |
//! | CR3 | Bits 63:48 set (above MAXPHYADDR 48; without PCIDs bit 63 is reserved too): #GP(0). Kept: bits 47:12, PWT and PCD (read back, without effect on memory types); bits 2:0 and 11:5 ignored, as without PCIDs. A page-table address of 0 raises #GP(0) (pvmlab reserves CR3 = 0; RAM never starts at 0). Every write flushes the core's whole TLB, global pages included. |
//! | CR4 | Writable: TSD (`rdtsc`/`rdtscp` at CPL > 0 raise #GP(0)), DE (DR4/DR5 raise #UD, I/O breakpoints work; see *Single-step and debug registers*), PSE (ignored in IA-32e mode, as on silicon: the PS bit always selects 2 MiB and 1 GiB pages), PAE (must stay set, else #GP(0)), PGE (global translations may survive CR3 writes on silicon; pvmlab's TLB never keeps them, which the architecture allows), PCE (stored; `rdpmc` is not implemented), OSFXSR (clear: SSE raises #UD), OSXMMEXCPT (clear: an unmasked SIMD exception raises #UD instead of #XM). CPUID reports each of these features. **Every other bit raises #GP(0)**, as on silicon for a feature the processor does not report: VME, PVI, MCE, UMIP, LA57, VMXE, SMXE, FSGSBASE, PCIDE, OSXSAVE, KL, SMEP, SMAP, PKE, CET, PKS, the reserved bits and bits 63:32 (`CR4_SUPPORTED` in `emulator/src/cpu/ops/system.rs`). Every write flushes the TLB. |
//! | CR8 | `TPR[7:4]` of the local APIC (SDM Vol. 3A §11.8.6): reads give the TPR's priority class; a write sets `TPR[7:4] = CR8[3:0]` and `TPR[3:0] = 0`, and the APIC's priority logic sees it from the next instruction boundary (an interrupt it unblocks is taken there). Bits 63:4 set: #GP(0). The same register as the x2APIC TPR ([`crate::apic::TPR`]). |
//! | CR1, CR5–CR7, CR9–CR15 | invalid encodings: #UD. |
//! | EFER | SCE: honoured (`syscall`/`sysret` raise #UD when clear). NXE: honoured (bit 63 of page-table entries is XD, or reserved when clear). LME must stay set (#GP(0)); LMA reads 1, writes to it are ignored; any other bit raises #GP(0). |
//!
//! Tests: `emulator/tests/control_registers.rs` (CR0.WP set again, invalid and reserved CR0
//! bits, CR3's reserved bits, every CR4 bit, CR4.TSD, CR8 and interrupt priority); the
//! `kernel` image's "syscall with EFER.SCE clear: #UD" and "ring-0 write to a read-only page
//! (CR0.WP)" (`tests/tests/platform/main.rs`); `emulator/src/cpu/ops/sse_float.rs` (CR0.TS/EM,
//! CR4.OSXMMEXCPT).
//!
//! # MSRs
//! `rdmsr`/`wrmsr` need CPL 0 (#GP(0) otherwise); ECX selects the MSR, EDX:EAX the value.
//!
//! | MSR | name | behaviour |
//! |---|---|---|
//! | `0x10` | [`IA32_TSC`] | the TSC (= `rdtsc`); a write sets it (all 64 bits), and it counts on from there (see *Timing and the TSC*) |
//! | `0x1B` | [`crate::apic::IA32_APIC_BASE`] | x2APIC mode only; see [`crate::apic`] |
//! | `0x6E0` | [`crate::apic::IA32_TSC_DEADLINE`] | see [`crate::apic`] |
//! | `0x800`–`0xBFF` | x2APIC registers | the map in [`crate::apic`]; an MSR of the range outside it raises #GP(0) |
//! | `0xC000_0080` | [`IA32_EFER`] | see above |
//! | `0xC000_0081` | [`IA32_STAR`] | any value; `syscall` uses bits 47:32, `sysret` bits 63:48 |
//! | `0xC000_0082` | [`IA32_LSTAR`] | `syscall` target; a non-canonical value raises #GP(0) |
//! | `0xC000_0083` | [`IA32_CSTAR`] | stored (canonical, else #GP(0)), never used (no compatibility mode) |
//! | `0xC000_0084` | [`IA32_FMASK`] | bits 31:0 kept, 63:32 dropped |
//! | `0xC000_0100` | [`IA32_FS_BASE`] | FS base; non-canonical: #GP(0) |
//! | `0xC000_0101` | [`IA32_GS_BASE`] | GS base; non-canonical: #GP(0) |
//! | `0xC000_0102` | [`IA32_KERNEL_GS_BASE`] | swapped with GS base by `swapgs`; non-canonical: #GP(0) |
//! | `0xC000_0103` | [`IA32_TSC_AUX`] | `rdtscp` returns it in ECX; the core index at entry; bits 63:32 set: #GP(0) |
//!
//! **Any other MSR raises #GP(0) on read and on write**, as a nonexistent MSR does on
//! silicon. That includes MSRs a ported kernel commonly touches: `IA32_PAT` (0x277),
//! `IA32_MISC_ENABLE` (0x1A0), MTRRs, `IA32_DEBUGCTL`, `IA32_SYSENTER_*`, `IA32_SPEC_CTRL`,
//! `IA32_TSC_ADJUST`, machine-check and performance-monitoring MSRs.
//!
//! # CPUID
//! `emulator/src/cpu/ops/system.rs`, `cpuid_leaf` (tests in the same file:
//! `vendor_and_baseline_features`, `topology_leaves_report_socket_and_core`). `cpuid` works at
//! any CPL.
//!
//! | leaf | EAX | EBX | ECX | EDX |
//! |---|---|---|---|---|
//! | 0 | `0xB` (highest basic leaf) | vendor [`CPUID_VENDOR`] `"PvmLabx86-64"` in EBX, EDX, ECX | | |
//! | 1 | `0x0005_0654`: family 6, model 0x55, stepping 4 | 31:24 initial APIC id (low 8 bits of the x2APIC id), 23:16 cores per socket, 15:8 = 8 (`clflush` line 64 B) | bit 21 x2APIC, bit 24 TSC-deadline | bits 2 DE, 3 PSE, 4 TSC, 5 MSR, 6 PAE, 8 CX8, 9 APIC, 13 PGE, 15 CMOV, 19 CLFSH, 24 FXSR, 25 SSE, 26 SSE2, 28 HTT (if a socket has more than one core) |
//! | `0xB`, ECX = 0 | 0 | 1 | `0x100` (SMT level) | x2APIC id |
//! | `0xB`, ECX = 1 | bits of the x2APIC id that number cores in a socket | cores per socket | `0x201` (core level) | x2APIC id |
//! | `0xB`, ECX ≥ 2 | 0 | 0 | ECX (level type 0: no more levels) | x2APIC id |
//! | `0x8000_0000` | `0x8000_0008` | | | |
//! | `0x8000_0001` | | | bit 0 LAHF/SAHF | bits 11 SYSCALL, 20 NX, 26 1 GiB pages, 27 RDTSCP, 29 LM |
//! | `0x8000_0002`–`4` | brand string `"pvmlab emulated x86-64 core"`, NUL-padded | | | |
//! | `0x8000_0007` | | | | bit 8 invariant TSC |
//! | `0x8000_0008` | `0x3030`: 48 physical, 48 linear address bits | | | |
//! | any other | 0 | 0 | 0 | 0 |
//!
//! Every feature reported is implemented, and its CR4 bit, if it has one, is writable; PSE
//! and PGE are reported because what they enable works in IA-32e mode (2 MiB pages through
//! the PS bit; CR4.PGE, see *Control registers*). Not reported and not implemented: FPU, VME,
//! MCE, MCA, SEP (`sysenter`), MTRR, PAT, PSE-36, MMX, SSE3 and later, POPCNT, CX16, XSAVE,
//! PCID, leaf 7 (FSGSBASE, BMI1/2, SMEP, SMAP, UMIP, AVX2, …), the hypervisor bit. Silicon
//! answers a leaf above the maximum with the highest basic leaf; pvmlab answers zeros.
//!
//! # Segmentation, descriptor tables and the TSS
//! - Flat 64-bit segmentation: every segment base is 0 except FS and GS, whose bases come from
//!   [`IA32_FS_BASE`]/[`IA32_GS_BASE`]; limits are never checked. The CPL is the RPL of CS.
//! - Descriptors are read by interrupt delivery (the handler's code segment: type, L and D,
//!   DPL, present; see *Delivery*), `ltr`, `iretq` (below), and the loads of DS, ES, FS, GS
//!   and SS (SDM Vol. 2B MOV and POP, "64-Bit Mode Exceptions"; Vol. 3A §3.4.4, §5.5–5.8;
//!   `emulator/src/cpu/ops/privileged.rs`). There is no LDT (`lldt`, `sldt` are not
//!   implemented): a selector with TI = 1, like one whose index lies beyond the GDT limit,
//!   raises #GP(selector). Error codes of the selector form are the selector with its RPL
//!   bits cleared.
//! - `mov` to DS/ES/FS/GS and `pop fs`/`pop gs`: a null selector (0–3) loads without a
//!   descriptor. Any other must name a data or readable code segment (#GP(selector)), with
//!   DPL ≥ max(RPL, CPL) unless it is conforming code (#GP(selector)), present
//!   (#NP(selector)). FS and GS then take the descriptor's 32-bit base, zero-extended,
//!   replacing what [`IA32_FS_BASE`]/[`IA32_GS_BASE`] held; a null selector sets the base to
//!   0, as Intel processors do (AMD parts before Zen 2 keep it). Nothing changes when a
//!   check faults.
//! - `mov ss`: a null selector only below CPL 3 and with RPL = CPL (#GP(0)); any other needs
//!   RPL = CPL and a writable data segment with DPL = CPL (#GP(selector)), present
//!   (#SS(selector)). `pop ss` is invalid in 64-bit mode (#UD); `mov` to CS raises #UD.
//! - `push fs`/`push gs` push the selector zero-extended to 8 bytes (2 with a 0x66 prefix);
//!   `pop fs`/`pop gs` pop 8 (or 2) bytes and load the low 16 as `mov` does, leaving RSP
//!   unchanged if the load faults. `push` CS/DS/ES/SS and `pop` DS/ES/SS are invalid in
//!   64-bit mode (#UD).
//! - `lgdt`, `lidt` (CPL 0; a non-canonical base raises #GP(0)), `sgdt`, `sidt`, `str` (any
//!   CPL: no UMIP).
//! - `ltr` checks, in order: CPL 0 (#GP(0)), a non-null selector (#GP(0)), inside the GDT
//!   (#GP(selector)), an available 64-bit TSS, type 9 (#GP(selector): a busy TSS is refused),
//!   present (#NP(selector)); then marks the descriptor busy (type 0xB) and takes the 64-bit
//!   base from the 16-byte descriptor. The TSS limit is not checked. The TSS is read only for
//!   RSP0–2 and IST1–7 on interrupt delivery: no I/O permission bitmap, no task switch.
//!
//! Tests: the `kernel` image's "GDT loaded, segments reloaded" and "TSS loaded … (busy)";
//! `emulator/tests/segments.rs` (every check above, the FS/GS bases, `push`/`pop` FS/GS).
//!
//! # Paging
//! Always on: 4-level paging from CR3, as SDM Vol. 3A §4.5 (`emulator/src/cpu/paging.rs`).
//!
//! | entry bits | pvmlab |
//! |---|---|
//! | P | honoured; clear: #PF with P = 0 in the error code, no reserved-bit check of that entry |
//! | R/W | ANDed over the levels; a write to a read-only page faults at CPL 3, and at CPL 0 when CR0.WP = 1 |
//! | U/S | ANDed over the levels; a CPL-3 access to a supervisor page faults. Supervisor accesses to user pages are always allowed: no SMEP, no SMAP (CPUID reports neither; setting their CR4 bits raises #GP(0)) |
//! | PWT, PCD, PAT | ignored: the memory type comes from the address (RAM write-back, MMIO uncached; [`crate::mmio`]). No MTRRs |
//! | A | set in every entry a walk uses (walks happen on TLB misses) |
//! | D | set in the leaf by the first write through a translation |
//! | PS | 2 MiB page in a PDE, 1 GiB page in a PDPTE; set in a PML4E: reserved |
//! | G | with CR4.PGE a hint the TLB does not use: every CR3 write flushes global translations too (allowed: a TLB may drop any entry); without PGE ignored |
//! | XD (63) | with EFER.NXE, ORed over the levels: an instruction fetch faults; without NXE, reserved |
//! | 51:48 | reserved (MAXPHYADDR = 48) |
//! | 20:13 of a 2 MiB leaf, 29:13 of a 1 GiB leaf | reserved |
//! | 11:9, 62:52 (incl. protection keys) | ignored |
//!
//! - A set reserved bit in a present entry raises #PF with P and RSVD set.
//! - #PF error code: P, W/R, U/S (the access was made at CPL 3), RSVD, I/D (an instruction
//!   fetch, reported only when EFER.NXE = 1, as silicon does without SMEP). No PK, SS or SGX
//!   bits. CR2 receives the faulting linear address. Implicit accesses (descriptor tables,
//!   the TSS, page walks) are supervisor accesses; the frame pushed on interrupt delivery is
//!   written at the handler's privilege.
//! - Linear addresses are 48-bit canonical: a non-canonical access raises #GP(0), or #SS(0)
//!   when it goes through SS — the implicit stack accesses of `push`, `pop`, `call`, `ret`,
//!   `enter`, `leave`, `pushf`/`popf` and `iretq`, and the memory operand of any instruction
//!   when based on RSP or RBP or prefixed with SS (`mov rax, [rbp]`, `add [rsp], 1`, SSE
//!   operands, the SS-prefixed source of a string instruction, the operand a `bt*` register
//!   offset selects). An access is non-canonical if any of its bytes is. The frame pushed by
//!   an event delivery: see *Delivery*.
//! - A `jmp`, `jcc`, `call`, `ret`, `loop`, `jrcxz` or `iretq` to a non-canonical address
//!   raises #GP(0) at the branch, which does not complete (RIP, RSP and RCX as before it), as
//!   on silicon. Tests: `emulator/tests/segments.rs`.
//! - A page-table entry, or a leaf, pointing at a physical address with neither RAM nor a
//!   device behind it raises #MC (see *Exceptions*); so do walks and instruction fetches in
//!   the MMIO area.
//!
//! **TLB.** Each core has its own TLB (`emulator/src/cpu/tlb.rs`): 256 direct-mapped entries
//! of 4 KiB each (a 2 MiB or 1 GiB page fills one 4 KiB entry at a time), split into read and
//! write halves, tagged by privilege (a translation checked at CPL 0 is never used at CPL 3).
//! A miss walks all four levels from CR3 — there are no paging-structure caches — and in
//! timing mode the walk's reads (up to four) are timed memory accesses through the caches.
//!
//! | event | effect on this core's TLB |
//! |---|---|
//! | `mov cr3`, `mov cr4` | flush all, global pages included |
//! | `mov cr0` changing WP | drop the write translations: WP is checked when one is made, so they must be made again |
//! | `invlpg m` (CPL 0) | flush all (silicon: at least that page) |
//! | INIT, start-up IPI | flush all |
//! | any other `mov cr0`, `wrmsr` EFER, a store to a page-table entry | nothing |
//! | another core's `invlpg` / CR3 write | nothing: shoot-downs are the software's job, by IPI, as on silicon |
//!
//! As on silicon, a changed entry may be used in its old form until the software invalidates
//! it; with 256 entries, an old translation may also vanish at any time: never rely on one.
//! There is no PCID (setting CR4.PCIDE raises #GP(0); CR3 bits 11:0 other than PWT/PCD are
//! ignored) and no `invpcid`.
//!
//! Tests: the `kernel` image's "1 GiB page", "invlpg", "CR3 reload", "reserved bit 51",
//! "read-only page", "supervisor page", "NX page", "accessed/dirty bits" and "non-canonical
//! address" points (`tests/tests/platform/main.rs`).
//!
//! # Exceptions and interrupts
//! Guest exceptions are delivered through the image's IDT (`emulator/src/cpu/interrupt.rs`).
//! With no IDT (IDTR limit 0, the state at entry), any exception ends the run with a report
//! (vector, error code, `rip`, disassembly, registers) and the exit status of the README:
//! 126 for #UD from an invalid encoding or `ud2`, 127 for #UD from a valid instruction pvmlab
//! does not implement, 125 for anything else. **With an IDT, both kinds of #UD go to the
//! image's #UD handler** as a plain #UD, as on a CPU that lacks the instruction: status 127
//! then appears only if the handler lets the exception end the run. Such "not implemented"
//! #UDs are counted per core (`unimplemented_ud` in the run report, the `unimpl #UD` column
//! of `pvmlab exec --stats`), the first of each mnemonic (or mode) is recorded with its RIP,
//! and `pvmlab exec` prints one warning line on stderr for each, shortly after it happens
//! (test: `emulator/tests/control_registers.rs`).
//!
//! | vector | raised by pvmlab when | error code |
//! |---|---|---|
//! | 0 #DE | `div`/`idiv` by zero or with a quotient that does not fit | — |
//! | 1 #DB | RFLAGS.TF single-step trap; instruction, data and I/O breakpoints; `mov` DRn with DR7.GD set (see below) | — |
//! | 2 NMI | never (no NMI source; NMI IPIs are ignored) | |
//! | 3 #BP | `int3` (a trap, through the gate's DPL check like `int n`) | — |
//! | 4 #OF, 5 #BR | never (`into`, `bound` are invalid in 64-bit mode: #UD) | |
//! | 6 #UD | invalid encodings, `ud0`/`ud1`/`ud2`, a misplaced LOCK, `syscall`/`sysret` with EFER.SCE = 0, SSE with CR0.EM = 1 or CR4.OSFXSR = 0, `mov cs`, instructions pvmlab does not implement | — |
//! | 7 #NM | SSE with CR0.TS = 1; `fxsave`/`fxrstor` with CR0.TS or CR0.EM | — |
//! | 8 #DF | see below | 0 |
//! | 10 #TS | an interrupt needs a stack from the TSS (IST or a privilege change) and none is loaded | EXT |
//! | 11 #NP | gate not present; handler code segment not present; `ltr` of a non-present TSS; `mov`/`pop` to DS/ES/FS/GS of a non-present segment; `iretq` to a non-present CS or SS | IDT or selector form |
//! | 12 #SS | a non-canonical stack access or memory operand through SS (see *Paging*); a non-canonical stack for the frame of an event (see *Delivery*); `mov ss` of a non-present segment | 0 or EXT, or selector |
//! | 13 #GP | privileged instruction above CPL 0; IOPL rules (below); `rdtsc`/`rdtscp` above CPL 0 with CR4.TSD; reserved bits or invalid combinations in CR/MSR writes; unknown MSR; non-canonical address; a branch to a non-canonical address; misaligned 16-byte SSE operand; a bad gate, handler code segment, handler address or `iretq` frame; `iretq` with NT = 1; MMIO access of a size other than 1/2/4/8 or across registers | 0, EXT, selector, or IDT form |
//! | 14 #PF | paging (above) | P, W, U, RSVD, I |
//! | 16 #MF | never (no x87) | |
//! | 17 #AC | a data access of 2, 4 or 8 bytes not aligned to its size, at CPL 3 with CR0.AM = 1 and RFLAGS.AC = 1 (SDM Vol. 3A §6.15, interrupt 17), each access of an instruction checked at its own size (stack pushes and pops, string elements, `sgdt`'s limit and base apart, as Bochs does); an access straddling two pages is misaligned. Checked after the canonical check (#GP/#SS first) and before paging (#PF second). Not checked: 16-byte accesses (the aligned SSE forms raise #GP(0); #AC for `movups` and kin is implementation-specific), the processor's own accesses (descriptor tables, the TSS, page walks, interrupt frames) | 0 |
//! | 18 #MC | a physical access (data, fetch or walk) with no RAM or device behind it; delivered as an ordinary fault through vector 18, no error code, whatever CR4.MCE (silicon: a machine-check abort, or a read of all ones) | — |
//! | 19 #XM | an unmasked SSE floating-point exception, CR4.OSXMMEXCPT = 1 | — |
//! | 32–255 | the local APIC (timer, IPIs, devices; [`crate::apic`]) and `int n` | — |
//!
//! "IDT form" is the SDM's `vector * 8 + 2 + EXT`, "selector form" the selector with its RPL
//! bits cleared (+ EXT during a delivery); EXT (bit 0) is 1 while delivering an exception or
//! an external interrupt, 0 for `int n`/`int3`. Faults leave the architectural state as
//! before the instruction (a REP string instruction keeps the iterations it completed, as on
//! silicon) and save its RIP with RF = 1 in the saved RFLAGS (except an instruction-breakpoint #DB,
//! SDM Vol. 3B §18.3.1.1); traps (`int n`, `int3`, single-step, data breakpoints) save the
//! next instruction's.
//!
//! **Delivery** (SDM Vol. 2A INT n, "IA-32e-MODE" and "64-Bit Mode Exceptions"; Vol. 3A
//! §6.12, §6.14), in this order: the vector must lie inside the IDT limit and its gate at a
//! canonical address (#GP, IDT form); the gate must be a 64-bit interrupt (type 0xE) or trap
//! (0xF) gate — task, call and 16/32-bit gates raise #GP (IDT form); for `int n`/`int3` only,
//! the gate's DPL must be ≥ CPL (#GP, IDT form); the gate must be present (#NP, IDT form). Its
//! selector must not be null (#GP(EXT)), must lie inside the GDT at a canonical address and
//! name a code segment with DPL ≤ CPL (#GP(selector + EXT)) that is 64-bit, L = 1 and D = 0
//! (#GP(selector + EXT)), and present (#NP(selector + EXT)). A nonconforming segment runs the
//! handler at its DPL, a conforming one at the current CPL. The stack: IST slot `n` if the
//! gate names one, else RSPn of the TSS on a privilege change, else the current RSP; if it is
//! not canonical, or the frame below it would reach a non-canonical address, #SS(EXT); then
//! aligned down to 16 bytes. A non-canonical handler address raises #GP(EXT) before anything
//! is pushed (the fetch does not fault at it). On a privilege change SS becomes the null
//! selector with RPL = the new CPL. The frame is SS, RSP, RFLAGS, CS, RIP and the error code
//! if any; then TF, NT, RF and VM are cleared, and IF too for an interrupt gate. Table
//! addresses (IDTR base + 16 × vector, GDTR base + selector, TSS base + slot) wrap at 2^64.
//! If delivery faults (a not-present stack page, say), the core's state is restored and the
//! second exception is handled as below. The TSS limit is not checked. Tests:
//! `emulator/tests/delivery.rs`.
//!
//! **#DF and triple fault.** The classes of SDM Vol. 3A Table 6-5: a contributory exception
//! (#DE, #TS, #NP, #SS, #GP) while delivering a contributory one, or #PF or a contributory
//! exception while delivering a #PF, becomes #DF (error code 0); any other pair is handled
//! serially (the second is delivered). When #DF cannot be delivered either, silicon shuts
//! down (and the platform usually resets); pvmlab ends the run with the report "triple
//! fault: could not deliver #DF double fault" and exit status 125. Tests:
//! `tests/tests/platform/negative.rs` (`ring3_hlt_without_a_gp_gate_double_faults`,
//! `no_double_fault_gate_is_a_triple_fault`); the `kernel` image's "kernel stack overflow:
//! #DF on the IST1 stack".
//!
//! **Interrupt shadow.** `sti` executed with IF = 0 and a load of SS (`mov ss`; `pop ss` is
//! invalid in 64-bit mode) hold external interrupts off until after the next instruction.
//! Interrupts are recognised at instruction-block boundaries (at most 64 instructions apart,
//! and after any instruction that may change deliverability: `sti`, `popf`, `wrmsr`, …), so a
//! `mov ss` shadow may last a few instructions longer than on silicon; `sti; hlt` never loses
//! a wake-up.
//!
//! **Privilege rules** (no VME/PVI, no I/O permission bitmap):
//!
//! | instruction | at CPL > 0 |
//! |---|---|
//! | `cli`, `sti`, `in`, `out` | allowed if CPL ≤ IOPL, else #GP(0) (silicon: `in`/`out` then consult the TSS I/O bitmap; here there is none) |
//! | `popf`, `iretq` | IF changes only if CPL ≤ IOPL and IOPL only at CPL 0, silently (no fault), as the SDM says; VM, VIF, VIP never change |
//! | `hlt`, `lgdt`, `lidt`, `ltr`, `mov` CRn, `rdmsr`, `wrmsr`, `invlpg`, `swapgs`, `clts`, `wbinvd`, `invd`, `sysret` | #GP(0) |
//! | `rdtsc`, `rdtscp` | allowed while CR4.TSD = 0; #GP(0) while it is 1 |
//! | `sgdt`, `sidt`, `str`, `cpuid`, `syscall`, `int n` (gate DPL 3) | allowed (no UMIP: CR4.UMIP cannot be set) |
//!
//! `ins`/`outs` are not implemented. Tests: the `kernel` image's "ring-3 hlt/cli/wrmsr/mov
//! cr3/out/lgdt: #GP" points.
//!
//! **System calls and returns.**
//! - `syscall` (any CPL; #UD if EFER.SCE = 0): RCX ← RIP of the next instruction, R11 ←
//!   RFLAGS with RF clear, RFLAGS ← RFLAGS AND NOT FMASK, RF cleared; CS ← `STAR[47:32] AND
//!   0xFFFC`, SS ← CS + 8 (descriptors not read: flat 64-bit, as the SDM specifies; selector
//!   sums wrap at 16 bits, here and in `sysretq`); RIP ← LSTAR. RSP is unchanged.
//! - `sysretq` (#UD if SCE = 0; #GP(0) if CPL ≠ 0 or RCX is not canonical — raised in ring 0,
//!   as Intel parts do): RFLAGS ← `(R11 AND 0x3C_7FD7) OR 2`; CS ← `(STAR[63:48] + 16) OR 3`,
//!   SS ← `(STAR[63:48] + 8) OR 3`; RIP ← RCX. `sysret` to 32-bit code is not implemented.
//! - `swapgs` (CPL 0) exchanges the GS base with [`IA32_KERNEL_GS_BASE`].
//! - `iretq` (SDM Vol. 2A IRET, "IA-32e-MODE" and "64-Bit Mode Exceptions"), in this order:
//!   RFLAGS.NT = 1 raises #GP(0); it pops RIP, CS, RFLAGS, RSP and SS (always all five, as in
//!   64-bit mode; #SS(0) if the stack is not canonical). CS: RPL below the CPL #GP(CS), null
//!   #GP(0), outside the GDT #GP(CS), not code #GP(CS), nonconforming with DPL ≠ RPL or
//!   conforming with DPL > RPL #GP(CS), L = D = 1 #GP(CS), not present #NP(CS), L = 0 not
//!   implemented (compatibility mode, see *Modes*). SS, against the new CPL (CS.RPL), on
//!   every `iretq`: null only below ring 3 with RPL = the new CPL (#GP(0)); otherwise RPL =
//!   new CPL and a writable data segment with DPL = new CPL (#GP(SS)), present (#NP(SS)).
//!   RIP not canonical: #GP(0). RFLAGS as for `popf`, plus RF. On a return to an outer level
//!   DS, ES, FS and GS are nulled if they hold a data or nonconforming code segment with DPL
//!   below the new CPL (the selector only; FS/GS bases stay) — pvmlab keeps no descriptor
//!   caches and reads those descriptors from the GDT at the `iretq`, where silicon uses the
//!   ones cached when the registers were loaded. `iret` with a 16/32-bit operand size is not
//!   implemented.
//! - `int n`, `int3`: through the gate above, saving the next instruction's RIP. `int1`
//!   (ICEBP) is not implemented.
//!
//! Tests: the `kernel` image's syscall, swapgs, FMASK, iretq, "int 0x80 (DPL 3 gate)", "int
//! 0x81 (DPL 0 gate): #GP error 0x40a", "int3 … is a trap" points; `iretq`'s checks one by
//! one in `emulator/tests/segments.rs`.
//!
//! **Single-step and debug registers** (SDM Vol. 3B chapter 18; the model is documented in
//! `emulator/src/cpu/debug.rs`; tests: `emulator/tests/debug_registers.rs`,
//! `emulator/tests/single_step.rs`, the `kernel` image's "RFLAGS.TF in ring 3").
//! - RFLAGS.TF raises a #DB trap after each instruction, saving the next instruction's RIP;
//!   the first trap comes after the instruction that follows the `popf` that set TF.
//! - DR0–DR3, DR6, DR7: `mov` to or from them needs CPL 0 (#GP(0)); DR4/DR5 are DR6/DR7 while
//!   CR4.DE = 0 and raise #UD while it is 1; DR8–DR15 are invalid encodings (#UD); a 1 in bits
//!   63:32 of DR6/DR7 raises #GP(0). DR6 reads `0xFFFF_0FF0` and DR7 `0x400` at reset and keep
//!   only their defined bits (DR6: B0–B3, BD, BS, BT; DR7: L0–G3, LE, GE, GD, R/W and LEN).
//!   With DR7.GD set, a `mov` to or from a debug register is a #DB fault with DR6.BD set;
//!   entering the #DB handler clears GD.
//! - Breakpoints enabled by Ln or Gn: instruction (R/W 00, LEN ignored) — a fault before the
//!   instruction, RF = 0 in the saved RFLAGS, suppressed for one instruction by RF = 1 (set it
//!   in the frame before `iretq`); data writes (01) and reads or writes (11), 1, 2, 4 or 8
//!   bytes with the address's low bits masked by the length — a trap after the instruction,
//!   or after the iteration for a REP string instruction, which saves its own RIP and RF = 1
//!   unless it was the last; I/O (10) with CR4.DE = 1, for `in`/`out`.
//! - Every #DB clears DR6.B0–B3, then sets all of its causes at once (Bn, BS, BD). With no IDT
//!   the run ends with a #DB report.
//! - Deviations: accesses the processor makes on its own (page walks, descriptor tables, the
//!   TSS, interrupt frames) never hit data breakpoints; no one-instruction delay after `mov
//!   ss`; no BTF/LBR (no DEBUGCTL MSR), no `int1` (ICEBP); R/W = 10 with CR4.DE = 0 (undefined
//!   in the SDM) never hits.
//!
//! # Instruction set
//! What rustc emits for `x86_64-unknown-linux-gnu` at `target-cpu=x86-64`, plus the system
//! instructions above. Decoding is iced-x86's; every 64-bit-mode encoding iced calls invalid
//! (including a LOCK prefix where it is not allowed) raises #UD.
//!
//! | in | instructions |
//! |---|---|
//! | integer | `mov`, `movzx`, `movsx`, `movsxd`, `lea`, `cmovcc`, `setcc`, `xchg`, `bswap`, `xlatb`, `cbw`/`cwde`/`cdqe`, `cwd`/`cdq`/`cqo`; `add`, `adc`, `sub`, `sbb`, `and`, `or`, `xor`, `cmp`, `test`, `inc`, `dec`, `neg`, `not`; `mul`, `imul` (1, 2, 3 operands), `div`, `idiv`; shifts and rotates incl. `shld`/`shrd`; `bt`/`bts`/`btr`/`btc`, `bsf`, `bsr`; `clc`, `stc`, `cmc`, `cld`, `std`, `lahf`, `sahf`; `nop`, `endbr64`, `endbr32` — at 8/16/32/64 bits with 64- and 32-bit addressing |
//! | control, stack | near `jmp`, `jcc`, `call`, `ret` (with `imm16`), `loop`/`loope`/`loopne`, `jrcxz`/`jecxz`; `push`/`pop` (64- and 16-bit, FS/GS included), `pushfq`/`popfq`, `pushf`/`popf` (16-bit), `enter`, `leave` |
//! | strings | `movs`, `stos`, `lods`, `cmps`, `scas` at every width, with `rep`/`repe`/`repne`, both directions |
//! | atomics | `xchg` (memory: implicitly locked), `lock` forms of the read-modify-write instructions, `xadd`, `cmpxchg`, `cmpxchg8b` |
//! | SSE, SSE2 | scalar and packed single/double arithmetic, min/max, sqrt, compares, `comis`/`ucomis`, logic, shuffles and unpacks, conversions; 128-bit integer arithmetic, compares, logic, shifts, shuffles, packs, `pinsrw`/`pextrw`; moves incl. `movd`/`movq`, non-temporal stores, `maskmovdqu`, `movmsk`/`pmovmskb`; `ldmxcsr`/`stmxcsr`; `fxsave`/`fxrstor` (32- and 64-bit forms); `prefetch*`, `clflush` — lists in the headers of `emulator/src/cpu/ops/sse_*.rs` |
//! | fences | `lfence`, `mfence`, `sfence`, `pause` |
//! | encodings read through CPUID | `tzcnt` (F3 0F BC) runs as `bsf` and `lzcnt` (F3 0F BD) as `bsr`, since BMI1 and LZCNT are not reported (rustc's `rep bsf` relies on this) |
//!
//! **Not implemented** (#UD marked "not implemented by pvmlab", status 127 without an IDT):
//! x87 and MMX (and every SSE form with an MMX operand), SSE3, SSSE3, SSE4.x, AES, PCLMUL,
//! SHA, AVX and everything VEX/EVEX-encoded (BMI1/2, FMA, AVX-512…), `popcnt`, `movbe`,
//! `crc32`, `cmpxchg16b`, `rdrand`/`rdseed`, `rdpid`, `rdpmc`, `xsave` and `xgetbv`,
//! `rdfsbase` and its siblings, `monitor`/`mwait`, `invpcid`, `clac`/`stac`, `sysenter`/
//! `sysexit`, far `jmp`/`call`/`ret`, `iret`/`iretd`, `lldt`/`sldt`, `lar`/`lsl`/`verr`/`verw`,
//! `lmsw`/`smsw`, `ins`/`outs`, `int1`, `rsm`, VMX/SVM instructions, and `rcpss`/`rcpps`/
//! `rsqrtss`/`rsqrtps` (whose approximations differ between vendors, which would break
//! determinism). An instruction outside pvmlab's set is never executed with other semantics.
//!
//! **Results.** Integer results and defined flags are those of the SDM; undefined flags are
//! set as the oracle's AMD host sets them (headers of `alu.rs`, `shift.rs`, `muldiv.rs`,
//! `bits.rs`). SSE floating-point instructions run the same instruction on the host under
//! the guest's MXCSR, so NaNs, denormals, rounding and exception flags are the host silicon's
//! (pvmlab requires an x86-64 host); an unmasked exception raises #XM without writing the
//! destination. `fxsave` writes the x87 part as after `fninit` (pvmlab has no x87 state);
//! MXCSR_MASK is `0xFFFF` (DAZ supported), and a reserved MXCSR bit in `ldmxcsr`/`fxrstor`
//! raises #GP(0). Legacy-SSE 16-byte memory operands must be 16-byte aligned (#GP(0)) except
//! in the unaligned moves. `cpuid` is described above; `wbinvd`, `invd`, `clflush`, the
//! fences, `pause` and `prefetch*` have no architectural effect (`invd` discards nothing).
//!
//! **Self-modifying code** works without serializing instructions: a store to a page holding
//! decoded instructions (by any core, or by a device's DMA) drops them, and the storing core
//! runs the new bytes from its next instruction on (`self_modifying_code_is_seen` in
//! `emulator/tests/boot.rs`).
//!
//! # Memory ordering and atomics
//! One host thread runs every core (`emulator/src/machine.rs`): the running core with the
//! smallest clock runs for up to 1 000 instructions or 4 000 cycles (fewer if a device event
//! is due), then the schedule picks again; ties go to the lowest core index. Every load and
//! store takes effect in memory when the instruction executes, so all cores observe one
//! total order of memory operations: pvmlab is **sequentially consistent**, stronger than
//! x86-TSO. A litmus test that shows store-buffer reordering on silicon never shows it here,
//! so a missing `mfence` is never caught. Locked read-modify-writes and `xchg` are atomic
//! (nothing interleaves with an instruction), split across cache lines or pages or not; there
//! is no split-lock detection. Fences cost cycles and, in timing mode, wait for the core's
//! posted stores; they have no architectural effect. A spinning core sees another core's
//! store at the latest when its next quantum starts; `pause` costs 140 cycles, which ends a
//! spinning quantum sooner. MMIO accesses are uncached and strongly ordered
//! ([`crate::mmio`]).
//!
//! In simulated time the cores' clocks may differ by up to about a quantum (4 000 cycles plus
//! one instruction's stall): a core may read a value another core stored at a later simulated
//! time. The same image, machine and command line always give the same interleaving, bit for
//! bit.
//!
//! # `hlt` and the end of a run
//! `hlt` needs CPL 0. With IF = 1 the core waits for an interrupt (costing no host time: its
//! clock jumps to the interrupt's arrival); with IF = 0 it stops for good (only INIT and a
//! start-up IPI restart it). The run ends with status 0 when every core has stopped or waits
//! for an interrupt nothing can send; `out 0xF4, eax` ends it at once ([`crate::ports`]).
//!
//! # Timing and the TSC
//! Every instruction costs a base latency by class (1 cycle for most; e.g. `imul` 3, `div`
//! 26–40, `cpuid`, `rdmsr`, `wrmsr`, `in`, `out` 100, `rdtsc` 20, a locked read-modify-write
//! 18, `pause` 140; `emulator/src/cpu/ops/mod.rs`, `base_cost`). With `--timing on` every
//! memory access, page walk included, goes through the L1d/L2/LLC, the directory, the memory
//! controllers and the links and stalls the core accordingly; with `--timing off` RAM accesses
//! cost nothing beyond the base latency, and the architectural results are identical (README, "`pvmlab exec`";
//! DESIGN.md §2.3; `emulator/src/timing/mod.rs`). `rdtsc` (and `rdmsr` of [`IA32_TSC`]) returns
//! the core's own cycle counter — those costs and stalls, MMIO load round trips, and the
//! cycles its clock jumped over while halted — plus an offset, 0 until `wrmsr` of
//! [`IA32_TSC`] sets the TSC to the value written (SDM Vol. 3B §18.17; the TSC wraps as a
//! 64-bit counter; INIT keeps it). It counts at the core clock,
//! [`BootInfo::tsc_hz`](crate::boot::BootInfo::tsc_hz) ticks per simulated second, never
//! stops and never changes rate (invariant TSC), starts at 0, is not serializing, and is
//! readable at any CPL unless CR4.TSD is set. The TSC-deadline timer compares
//! [`crate::apic::IA32_TSC_DEADLINE`] against this TSC, written value included: a write of
//! the TSC moves an armed deadline's time, and a deadline the TSC has passed fires at once.
//! `rdtscp` adds ECX = [`IA32_TSC_AUX`]. The TSCs of two cores agree only to within the
//! schedule's skew (above), not exactly (and not at all once one is written).
//!
//! # Known deviations
//! Behaviours that contradict the SDM and can give a silently wrong result. They are bugs, not
//! promises: do not rely on them, and expect them to be fixed.
//! - Loading a segment register (or `iretq`) does not set the accessed bit of its descriptor;
//!   silicon writes it to the GDT (and faults if the GDT page is read-only).
//! - RFLAGS.TF over a `rep` string instruction traps once per chunk the interpreter runs it
//!   in (64 KiB or 16 K iterations), not after every iteration as silicon does; a data
//!   breakpoint still traps after the iteration that hit it.

/// `IA32_TIME_STAMP_COUNTER`: the TSC, the core's cycle count plus the offset a write sets.
pub const IA32_TSC: u32 = 0x10;
/// `IA32_EFER`: SCE (bit 0), LME (8), LMA (10), NXE (11).
pub const IA32_EFER: u32 = 0xC000_0080;
/// `IA32_STAR`: `syscall` CS in bits 47:32, `sysret` base selector in bits 63:48.
pub const IA32_STAR: u32 = 0xC000_0081;
/// `IA32_LSTAR`: the 64-bit `syscall` entry point.
pub const IA32_LSTAR: u32 = 0xC000_0082;
/// `IA32_CSTAR`: the compatibility-mode `syscall` entry point (stored, never used).
pub const IA32_CSTAR: u32 = 0xC000_0083;
/// `IA32_FMASK`: RFLAGS bits `syscall` clears.
pub const IA32_FMASK: u32 = 0xC000_0084;
/// `IA32_FS_BASE`.
pub const IA32_FS_BASE: u32 = 0xC000_0100;
/// `IA32_GS_BASE`.
pub const IA32_GS_BASE: u32 = 0xC000_0101;
/// `IA32_KERNEL_GS_BASE`: exchanged with the GS base by `swapgs`.
pub const IA32_KERNEL_GS_BASE: u32 = 0xC000_0102;
/// `IA32_TSC_AUX`: what `rdtscp` returns in ECX (the core index at entry).
pub const IA32_TSC_AUX: u32 = 0xC000_0103;

/// EFER.SCE: `syscall`/`sysret` enabled.
pub const EFER_SCE: u64 = 1 << 0;
/// EFER.LME: long mode enabled (must stay set).
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: long mode active (read-only, always set).
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE: bit 63 of page-table entries is execute-disable.
pub const EFER_NXE: u64 = 1 << 11;

/// CPUID leaf 0 vendor string, as EBX, EDX, ECX spell it.
pub const CPUID_VENDOR: [u8; 12] = *b"PvmLabx86-64";
