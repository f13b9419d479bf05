//! The ring-3 program, and the fixup table that lets the kernel's handlers resume after the
//! faults it provokes on purpose (Linux's exception tables: fault address → resume address).
//!
//! The program is assembly in its own page-aligned section, so that its pages — and only
//! they — can be mapped user-accessible: compiled Rust would call into kernel pages
//! (`memcpy`, panics) and read kernel `.rodata`. It reports what it observes through the
//! `report` system call; the kernel's checks compare those reports and the handlers' events
//! with what the architecture promises.

use core::arch::global_asm;

use super::log::id;
use super::paging::{TICKS_WORD, USER_DATA, USER_LAZY, USER_NX, USER_RO};
use super::syscall::{SYS_ARM_DOUBLE_FAULT, SYS_EXIT, SYS_GETPID, SYS_REPORT, SYS_WRITE, key};

/// What the program writes to the page the #PF handler maps for it.
pub const LAZY_VALUE: u64 = 0x1234_5678_9ABC_DEF0;

/// A supervisor-only word the program tries to read.
static KERNEL_SECRET: u64 = 0x5EC2_E7ED;

/// One fixup: a fault at `fault` resumes at `resume`; the event is recorded under `id`.
#[repr(C)]
pub struct Fixup {
    pub fault: u64,
    pub resume: u64,
    pub id: u64,
}

unsafe extern "C" {
    static kernel_extable: Fixup;
    static kernel_extable_end: Fixup;
    fn kernel_user_main();
    fn kernel_user_hlt();
    fn kernel_user_spin();
    fn kernel_user_step();
    static kernel_user_step_1: u8;
    static kernel_user_step_2: u8;
    static kernel_user_step_end: u8;
    fn kernel_probe_write(addr: u64, value: u64) -> u64;
    fn kernel_probe_read(addr: u64) -> u64;
    fn kernel_probe_syscall() -> u64;
}

/// The fixup for a fault at `rip`, if the kernel expects one there.
pub fn find_fixup(rip: u64) -> Option<&'static Fixup> {
    let start = &raw const kernel_extable;
    let end = &raw const kernel_extable_end;
    // SAFETY: the assembly below lays the entries out contiguously between the two labels.
    let table = unsafe { core::slice::from_raw_parts(start, end.offset_from(start) as usize) };
    table.iter().find(|f| f.fault == rip)
}

/// The program's entry point.
pub fn main_entry() -> u64 {
    kernel_user_main as *const () as u64
}

/// A one-instruction program: `hlt` (a #GP in ring 3).
pub fn hlt_entry() -> u64 {
    kernel_user_hlt as *const () as u64
}

/// A program that spins until the timer handler has counted [`SPIN_TICKS`] ticks in its data
/// page, then exits with the count.
pub fn spin_entry() -> u64 {
    kernel_user_spin as *const () as u64
}

/// A program that sets RFLAGS.TF with `popfq` and runs on through three instructions.
pub fn step_entry() -> u64 {
    kernel_user_step as *const () as u64
}

/// Where the single-step traps of [`step_entry`]'s program must leave the saved RIP, in
/// order: after the instruction following `popfq`, then after each instruction; the last is
/// where the handler clears TF.
pub fn step_points() -> [u64; 3] {
    [
        (&raw const kernel_user_step_1) as u64,
        (&raw const kernel_user_step_2) as u64,
        (&raw const kernel_user_step_end) as u64,
    ]
}

/// Timer ticks the spinning program waits for.
pub const SPIN_TICKS: u64 = 10;

/// Writes `value` at `addr` in ring 0; false if the write faulted (the #PF handler resumed
/// the probe through its fixup).
pub fn probe_write(addr: u64, value: u64) -> bool {
    // SAFETY: the probe is a leaf that writes one word; a fault there is fixed up.
    unsafe { kernel_probe_write(addr, value) == 0 }
}

/// Reads at `addr` in ring 0; false if the read faulted.
pub fn probe_read(addr: u64) -> bool {
    // SAFETY: the probe is a leaf that reads one word; a fault there is fixed up.
    unsafe { kernel_probe_read(addr) == 0 }
}

/// Runs `syscall` in ring 0; true if it raised #UD (fixed up), as it must with EFER.SCE clear.
/// With SCE set it would enter the kernel's own entry from ring 0: only call it with SCE clear.
pub fn probe_syscall_faults() -> bool {
    // SAFETY: with EFER.SCE clear `syscall` raises #UD, which the fixup turns into a return.
    unsafe { kernel_probe_syscall() == 1 }
}

global_asm!(
    ".macro KREPORT key",
    "    mov edi, \\key",
    "    mov eax, {sys_report}",
    "    syscall",
    ".endm",
    "",
    ".pushsection .text.kernel_user, \"ax\", @progbits",
    ".p2align 12",
    ".globl kernel_user_start",
    "kernel_user_start:",
    ".globl kernel_user_main",
    "kernel_user_main:",
    // Where am I? (CPL is CS's low bits.)
    "    mov esi, cs",
    "    KREPORT {k_cs}",
    "    mov esi, ss",
    "    KREPORT {k_ss}",
    // RFLAGS after sysret: what r11 held at the syscall (IF set).
    "    pushfq",
    "    pop rsi",
    "    KREPORT {k_rflags}",
    // write(msg, len)
    "    lea rdi, [rip + .Lmsg]",
    "    lea rsi, [rip + .Lmsg_end]",
    "    sub rsi, rdi",
    "    mov eax, {sys_write}",
    "    syscall",
    "    mov rsi, rax",
    "    KREPORT {k_write}",
    // getpid(); every register but rax, rcx and r11 must come back unchanged.
    "    mov rbx, 0x1111111111111111",
    "    mov rbp, 0x2222222222222222",
    "    mov rdx, 0x3333333333333333",
    "    mov rsi, 0x4444444444444444",
    "    mov rdi, 0x5555555555555555",
    "    mov r8, 0x6666666666666666",
    "    mov r9, 0x7777777777777777",
    "    mov r10, 0x8888888888888888",
    "    mov r12, 0x9999999999999999",
    "    mov r13, 0xaaaaaaaaaaaaaaaa",
    "    mov r14, 0xbbbbbbbbbbbbbbbb",
    "    mov r15, 0xcccccccccccccccc",
    "    mov eax, {sys_getpid}",
    "    syscall",
    "    push rax",
    "    mov rax, 0x1111111111111111",
    "    xor rax, rbx",
    "    mov rcx, 0x2222222222222222",
    "    xor rcx, rbp",
    "    or rax, rcx",
    "    mov rcx, 0x3333333333333333",
    "    xor rcx, rdx",
    "    or rax, rcx",
    "    mov rcx, 0x4444444444444444",
    "    xor rcx, rsi",
    "    or rax, rcx",
    "    mov rcx, 0x5555555555555555",
    "    xor rcx, rdi",
    "    or rax, rcx",
    "    mov rcx, 0x6666666666666666",
    "    xor rcx, r8",
    "    or rax, rcx",
    "    mov rcx, 0x7777777777777777",
    "    xor rcx, r9",
    "    or rax, rcx",
    "    mov rcx, 0x8888888888888888",
    "    xor rcx, r10",
    "    or rax, rcx",
    "    mov rcx, 0x9999999999999999",
    "    xor rcx, r12",
    "    or rax, rcx",
    "    mov rcx, 0xaaaaaaaaaaaaaaaa",
    "    xor rcx, r13",
    "    or rax, rcx",
    "    mov rcx, 0xbbbbbbbbbbbbbbbb",
    "    xor rcx, r14",
    "    or rax, rcx",
    "    mov rcx, 0xcccccccccccccccc",
    "    xor rcx, r15",
    "    or rax, rcx",
    "    mov rsi, rax",
    "    KREPORT {k_clobbered}",
    "    pop rsi",
    "    KREPORT {k_pid}",
    // swapgs: in ring 3, GS is the user's (its data page).
    "    mov rsi, gs:[0]",
    "    KREPORT {k_gs}",
    // Demand paging: the write faults (not present, write, user), the handler maps the page,
    // the write runs again.
    "    mov rax, {lazy}",
    "    mov rbx, {lazy_value}",
    "    mov qword ptr [rax + 24], rbx",
    "    mov rsi, qword ptr [rax + 24]",
    "    KREPORT {k_lazy}",
    // Privileged instructions: #GP(0) each, skipped through the fixup table.
    ".Lf_hlt: hlt",
    ".Lr_hlt:",
    ".Lf_cli: cli",
    ".Lr_cli:",
    "    mov ecx, 0xC0000082",
    "    xor eax, eax",
    "    xor edx, edx",
    ".Lf_wrmsr: wrmsr",
    ".Lr_wrmsr:",
    ".Lf_cr3: mov cr3, rax",
    ".Lr_cr3:",
    "    mov al, 0x21",
    ".Lf_out: out 0xE9, al",
    ".Lr_out:",
    ".Lf_lgdt: lgdt [rsp]",
    ".Lr_lgdt:",
    // The read-only page: reading works, writing faults (present, write, user).
    "    mov rax, {ro}",
    "    mov rsi, qword ptr [rax]",
    "    KREPORT {k_ro}",
    "    mov rax, {ro}",
    ".Lf_ro: mov qword ptr [rax], rsi",
    ".Lr_ro:",
    // A supervisor page: reading faults (present, user).
    ".Lf_kread: mov rax, qword ptr [rip + {secret}]",
    ".Lr_kread:",
    // The NX page: the fetch of its first byte faults (present, user, instruction fetch).
    "    mov rax, {nx}",
    "    jmp rax",
    ".Lr_nx:",
    // int 0x80 (DPL 3): allowed; the handler multiplies rax by 6.
    "    mov eax, 7",
    "    int 0x80",
    "    mov rsi, rax",
    "    KREPORT {k_int_user}",
    // int 0x81 (DPL 0): #GP with the gate in the error code.
    ".Lf_int81: int 0x81",
    ".Lr_int81:",
    // int3: #BP is a trap; the handler returns after it.
    "    int3",
    // Divide by zero.
    "    xor ecx, ecx",
    "    mov eax, 1",
    "    xor edx, edx",
    ".Lf_div: div ecx",
    ".Lr_div:",
    ".Lf_ud2: ud2",
    ".Lr_ud2:",
    // movaps from an address that is not 16-byte aligned: #GP(0).
    "    mov rax, {misaligned}",
    ".Lf_movaps: movaps xmm0, xmmword ptr [rax]",
    ".Lr_movaps:",
    // A non-canonical address: #GP(0), not #PF.
    "    mov rax, 0x800000000000",
    ".Lf_noncanon: mov rax, qword ptr [rax]",
    ".Lr_noncanon:",
    // The kernel points TSS.RSP0 at a guard page: the next interrupt double-faults, and the
    // #DF handler (on its IST stack) ends this program.
    "    mov eax, {sys_arm}",
    "    syscall",
    "    int 0x80",
    "    mov edi, 1",
    "    mov eax, {sys_exit}",
    "    syscall",
    "    ud2",
    "",
    ".globl kernel_user_hlt",
    "kernel_user_hlt:",
    "    hlt",
    "    mov edi, 2",
    "    mov eax, {sys_exit}",
    "    syscall",
    "    ud2",
    "",
    ".globl kernel_user_spin",
    "kernel_user_spin:",
    "    mov rax, {ticks}",
    ".Lspin:",
    "    mov rsi, qword ptr [rax]",
    "    cmp rsi, {spin_ticks}",
    "    jb .Lspin",
    "    mov rdi, rsi",
    "    mov eax, {sys_exit}",
    "    syscall",
    "    ud2",
    "",
    // Single-steps three instructions: RFLAGS.TF set by popfq traps after the instruction
    // that follows popfq, then after each one; the #DB handler clears TF at the end label.
    ".globl kernel_user_step",
    "kernel_user_step:",
    "    pushfq",
    "    or qword ptr [rsp], 0x100",
    "    popfq",
    "    nop",
    ".globl kernel_user_step_1",
    "kernel_user_step_1:",
    "    add eax, 1",
    ".globl kernel_user_step_2",
    "kernel_user_step_2:",
    "    nop",
    ".globl kernel_user_step_end",
    "kernel_user_step_end:",
    "    xor edi, edi",
    "    mov eax, {sys_exit}",
    "    syscall",
    "    ud2",
    "",
    ".Lmsg: .ascii \"hello from ring 3\\n\"",
    ".Lmsg_end:",
    ".p2align 12",
    ".globl kernel_user_end",
    "kernel_user_end:",
    ".popsection",
    "",
    // Ring 0: writes rsi to [rdi]; returns 0, or 1 if the write faulted.
    ".pushsection .text.kernel_probe, \"ax\", @progbits",
    ".globl kernel_probe_write",
    "kernel_probe_write:",
    "    xor eax, eax",
    ".Lf_kwp: mov qword ptr [rdi], rsi",
    "    ret",
    ".Lr_kwp:",
    "    mov eax, 1",
    "    ret",
    // Ring 0: reads [rdi]; returns 0, or 1 if the read faulted.
    ".globl kernel_probe_read",
    "kernel_probe_read:",
    "    xor eax, eax",
    ".Lf_kr: mov rdx, qword ptr [rdi]",
    "    ret",
    ".Lr_kr:",
    "    mov eax, 1",
    "    ret",
    // Ring 0: `syscall` with EFER.SCE clear; returns 1 after the #UD's fixup.
    ".globl kernel_probe_syscall",
    "kernel_probe_syscall:",
    "    xor eax, eax",
    ".Lf_ksc: syscall",
    "    ret",
    ".Lr_ksc:",
    "    mov eax, 1",
    "    ret",
    ".popsection",
    "",
    ".pushsection .rodata.kernel_extable, \"a\", @progbits",
    ".p2align 3",
    ".globl kernel_extable",
    "kernel_extable:",
    "    .quad .Lf_hlt, .Lr_hlt, {id_hlt}",
    "    .quad .Lf_cli, .Lr_cli, {id_cli}",
    "    .quad .Lf_wrmsr, .Lr_wrmsr, {id_wrmsr}",
    "    .quad .Lf_cr3, .Lr_cr3, {id_cr3}",
    "    .quad .Lf_out, .Lr_out, {id_out}",
    "    .quad .Lf_lgdt, .Lr_lgdt, {id_lgdt}",
    "    .quad .Lf_ro, .Lr_ro, {id_ro}",
    "    .quad .Lf_kread, .Lr_kread, {id_kread}",
    "    .quad {nx}, .Lr_nx, {id_nx}",
    "    .quad .Lf_int81, .Lr_int81, {id_int81}",
    "    .quad .Lf_div, .Lr_div, {id_div}",
    "    .quad .Lf_ud2, .Lr_ud2, {id_ud2}",
    "    .quad .Lf_movaps, .Lr_movaps, {id_movaps}",
    "    .quad .Lf_kwp, .Lr_kwp, {id_kwp}",
    "    .quad .Lf_kr, .Lr_kr, {id_kr}",
    "    .quad .Lf_ksc, .Lr_ksc, {id_ksc}",
    "    .quad .Lf_noncanon, .Lr_noncanon, {id_noncanon}",
    ".globl kernel_extable_end",
    "kernel_extable_end:",
    ".popsection",
    sys_report = const SYS_REPORT,
    sys_write = const SYS_WRITE,
    sys_getpid = const SYS_GETPID,
    sys_exit = const SYS_EXIT,
    sys_arm = const SYS_ARM_DOUBLE_FAULT,
    k_cs = const key::CS,
    k_ss = const key::SS,
    k_write = const key::WRITE,
    k_clobbered = const key::CLOBBERED,
    k_pid = const key::PID,
    k_gs = const key::GS,
    k_lazy = const key::LAZY,
    k_ro = const key::RO,
    k_int_user = const key::INT_USER,
    k_rflags = const key::RFLAGS,
    lazy = const USER_LAZY,
    lazy_value = const LAZY_VALUE,
    ro = const USER_RO,
    nx = const USER_NX,
    misaligned = const USER_DATA + 8,
    ticks = const USER_DATA + 8 * TICKS_WORD as u64,
    spin_ticks = const SPIN_TICKS,
    secret = sym KERNEL_SECRET,
    id_hlt = const id::HLT,
    id_cli = const id::CLI,
    id_wrmsr = const id::WRMSR,
    id_cr3 = const id::MOV_CR3,
    id_out = const id::OUT,
    id_lgdt = const id::LGDT,
    id_ro = const id::RO_WRITE,
    id_kread = const id::KERNEL_READ,
    id_nx = const id::NX,
    id_int81 = const id::INT_KERNEL,
    id_div = const id::DIVIDE,
    id_ud2 = const id::UD2,
    id_movaps = const id::MOVAPS,
    id_kwp = const id::KERNEL_WP,
    id_kr = const id::RESERVED_BIT,
    id_ksc = const id::SYSCALL_DISABLED,
    id_noncanon = const id::NON_CANONICAL,
);
