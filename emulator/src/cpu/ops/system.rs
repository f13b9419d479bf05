//! System instructions: CPUID, RDTSC/RDTSCP, RDMSR/WRMSR, MOV to/from CRn and DRn (the debug
//! registers themselves are `crate::cpu::debug`), LGDT/LIDT/SGDT/
//! SIDT, IN/OUT, HLT, CLI/STI, fences, PAUSE, INVLPG, SWAPGS, UD2, INT3, CLTS, WBINVD
//! (SDM Vol. 2; MSRs from Vol. 4). Privileged ones raise #GP(0) outside ring 0.

use crate::cpu::debug::CR4_DE;
use crate::cpu::flags::*;
use crate::cpu::operand::gpr_index;
use crate::cpu::{Core, Fault, GP, Handler, RAX, RCX, RDX, Result, RunState, Stop, Sys, UD};
use crate::devices::OutEffect;
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

pub(super) fn resolve(ins: &Instruction) -> Option<Handler> {
    Some(match ins.mnemonic() {
        Mnemonic::Cpuid => cpuid,
        Mnemonic::Rdtsc => rdtsc,
        Mnemonic::Rdtscp => rdtscp,
        Mnemonic::Rdmsr => rdmsr,
        Mnemonic::Wrmsr => wrmsr,
        Mnemonic::Mov => match ins.code() {
            Code::Mov_r64_cr => mov_from_cr,
            Code::Mov_cr_r64 => mov_to_cr,
            Code::Mov_r64_dr => mov_from_dr,
            Code::Mov_dr_r64 => mov_to_dr,
            _ => return None,
        },
        Mnemonic::Lgdt | Mnemonic::Lidt
            if matches!(ins.code(), Code::Lgdt_m1664 | Code::Lidt_m1664) =>
        {
            load_table
        }
        Mnemonic::Sgdt | Mnemonic::Sidt
            if matches!(ins.code(), Code::Sgdt_m1664 | Code::Sidt_m1664) =>
        {
            store_table
        }
        Mnemonic::Out => out,
        Mnemonic::In => inp,
        Mnemonic::Hlt => hlt,
        Mnemonic::Cli => cli,
        Mnemonic::Sti => sti,
        Mnemonic::Lfence | Mnemonic::Mfence | Mnemonic::Sfence | Mnemonic::Pause => nop,
        Mnemonic::Wbinvd | Mnemonic::Invd => privileged_nop,
        Mnemonic::Invlpg => invlpg,
        Mnemonic::Swapgs => swapgs,
        Mnemonic::Clts => clts,
        Mnemonic::Ud2 | Mnemonic::Ud0 | Mnemonic::Ud1 => ud,
        _ => return None,
    })
}

fn require_cpl0(c: &Core) -> Result<()> {
    if c.cpl() != 0 {
        Err(Stop::Fault(Fault::with_code(GP, 0)))
    } else {
        Ok(())
    }
}

fn gp0() -> Stop {
    Stop::Fault(Fault::with_code(GP, 0))
}

fn nop(_: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    Ok(())
}

fn privileged_nop(c: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    require_cpl0(c)
}

fn ud(_: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    Err(Stop::Fault(Fault::new(UD)))
}

/// The vendor string: this is not an Intel or AMD part, and says so.
const VENDOR: &[u8; 12] = b"PvmLabx86-64";
const BRAND: &[u8; 48] = b"pvmlab emulated x86-64 core\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// CPUID (SDM Vol. 2A CPUID, Tables 3-8 ff.): the x86-64 baseline the interpreter implements,
/// and the machine's topology in leaves 0x1 and 0xB.
pub fn cpuid_leaf(c: &Core, info: &crate::cpu::CpuidInfo, leaf: u32, sub: u32) -> [u32; 4] {
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let per_socket = info.cores_per_socket.max(1);
    // Bits of the x2APIC id that number cores within a socket.
    let core_bits = 32 - (per_socket - 1).leading_zeros();
    match leaf {
        0 => [
            0xB,
            word(&VENDOR[0..4]),
            word(&VENDOR[8..12]),
            word(&VENDOR[4..8]),
        ],
        1 => {
            // Family 6, model 0x55, stepping 4 (a Skylake-SP signature shape).
            let eax = (0x5 << 16) | (6 << 8) | (5 << 4) | 4;
            let ebx = ((c.apic_id & 0xFF) << 24) | (per_socket.min(255) << 16) | (8 << 8);
            // x2APIC and the TSC-deadline timer (crate::apic); no SSE3+, no CX16, no
            // hypervisor bit.
            let ecx = (1 << 21) | (1 << 24);
            // Every bit reported here is implemented, and its CR4 bit (if any) is writable
            // (`CR4_SUPPORTED`); nothing unreported is.
            let edx = (1 << 2) // DE: CR4.DE (crate::cpu::debug)
                | (1 << 3) // PSE: CR4.PSE, without effect in IA-32e mode (PS bits always work)
                | (1 << 4) // TSC: rdtsc, IA32_TSC, CR4.TSD
                | (1 << 5) // MSR
                | (1 << 6) // PAE
                | (1 << 8) // CX8
                | (1 << 9) // APIC: the local APIC (crate::apic), enabled in IA32_APIC_BASE
                | (1 << 13) // PGE: CR4.PGE; global translations are flushed with the rest
                | (1 << 15) // CMOV
                | (1 << 19) // CLFSH
                | (1 << 24) // FXSR
                | (1 << 25) // SSE
                | (1 << 26) // SSE2
                | (((per_socket > 1) as u32) << 28); // HTT: more than one logical CPU per package
            [eax, ebx, ecx, edx]
        }
        0xB => match sub {
            0 => [0, 1, 1 << 8, c.apic_id],
            1 => [core_bits, per_socket, (2 << 8) | 1, c.apic_id],
            _ => [0, 0, sub & 0xFF, c.apic_id],
        },
        0x8000_0000 => [0x8000_0008, 0, 0, 0],
        0x8000_0001 => [
            0,
            0,
            1, // LAHF/SAHF in 64-bit mode
            (1 << 11) // SYSCALL/SYSRET in 64-bit mode
                | (1 << 20) // NX (EFER.NXE)
                | (1 << 26) // 1 GiB pages
                | (1 << 27) // RDTSCP, IA32_TSC_AUX
                | (1 << 29), // Intel 64 (long mode)
        ],
        0x8000_0002..=0x8000_0004 => {
            let o = ((leaf - 0x8000_0002) * 16) as usize;
            let b = &BRAND[o..o + 16];
            [
                word(&b[0..4]),
                word(&b[4..8]),
                word(&b[8..12]),
                word(&b[12..16]),
            ]
        }
        0x8000_0007 => [0, 0, 0, 1 << 8], // invariant TSC
        0x8000_0008 => [0x3030, 0, 0, 0], // 48 physical and 48 linear address bits
        _ => [0; 4],
    }
}

fn cpuid(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    let r = cpuid_leaf(c, &s.cpuid, c.gpr[RAX] as u32, c.gpr[RCX] as u32);
    c.gpr[RAX] = r[0] as u64;
    c.gpr[crate::cpu::RBX] = r[1] as u64;
    c.gpr[RCX] = r[2] as u64;
    c.gpr[RDX] = r[3] as u64;
    Ok(())
}

/// RDTSC: the TSC ([`Core::tsc`]) in EDX:EAX. With CR4.TSD set, only CPL 0 may read it
/// (#GP(0) otherwise; SDM RDTSC, RDTSCP).
fn rdtsc(c: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    if c.cr4 & CR4_TSD != 0 && c.cpl() != 0 {
        return Err(gp0());
    }
    let tsc = c.tsc();
    c.gpr[RAX] = tsc as u32 as u64;
    c.gpr[RDX] = tsc >> 32;
    Ok(())
}

fn rdtscp(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    rdtsc(c, s, ins)?;
    c.gpr[RCX] = c.tsc_aux as u32 as u64;
    Ok(())
}

pub const MSR_TSC: u32 = 0x10;
pub const MSR_EFER: u32 = 0xC000_0080;
pub const MSR_STAR: u32 = 0xC000_0081;
pub const MSR_LSTAR: u32 = 0xC000_0082;
pub const MSR_CSTAR: u32 = 0xC000_0083;
pub const MSR_FMASK: u32 = 0xC000_0084;
pub const MSR_FS_BASE: u32 = 0xC000_0100;
pub const MSR_GS_BASE: u32 = 0xC000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;
pub const MSR_TSC_AUX: u32 = 0xC000_0103;

fn canonical(v: u64) -> bool {
    (((v as i64) << 16) >> 16) as u64 == v
}

fn rdmsr(c: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    require_cpl0(c)?;
    let v = match c.gpr[RCX] as u32 {
        MSR_TSC => c.tsc(),
        MSR_EFER => c.efer,
        MSR_STAR => c.star,
        MSR_LSTAR => c.lstar,
        MSR_CSTAR => c.cstar,
        MSR_FMASK => c.fmask,
        MSR_FS_BASE => c.fs_base,
        MSR_GS_BASE => c.gs_base,
        MSR_KERNEL_GS_BASE => c.kernel_gs_base,
        MSR_TSC_AUX => c.tsc_aux,
        msr if crate::apic::owns(msr) => crate::apic::rdmsr(c, msr).map_err(Stop::Fault)?,
        _ => return Err(gp0()),
    };
    c.gpr[RAX] = v as u32 as u64;
    c.gpr[RDX] = v >> 32;
    Ok(())
}

fn wrmsr(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    require_cpl0(c)?;
    let v = (c.gpr[RDX] << 32) | (c.gpr[RAX] as u32 as u64);
    match c.gpr[RCX] as u32 {
        MSR_TSC => {
            // The TSC takes the value and counts on from it (SDM Vol. 3B §18.17): an offset
            // on the cycle count, which the TSC-deadline timer compares against too.
            c.tsc_offset = v.wrapping_sub(c.cycles);
            crate::apic::tsc_written(c);
        }
        MSR_EFER => {
            // Only SCE and NXE may change; LME/LMA stay set in long mode.
            if v & !(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE) != 0 || v & EFER_LME == 0 {
                return Err(gp0());
            }
            c.efer = (v & (EFER_SCE | EFER_NXE)) | EFER_LME | EFER_LMA;
        }
        MSR_STAR => c.star = v,
        MSR_LSTAR | MSR_CSTAR | MSR_FS_BASE | MSR_GS_BASE | MSR_KERNEL_GS_BASE if !canonical(v) => {
            return Err(gp0());
        }
        MSR_LSTAR => c.lstar = v,
        MSR_CSTAR => c.cstar = v,
        MSR_FMASK => c.fmask = v & 0xFFFF_FFFF,
        MSR_FS_BASE => c.fs_base = v,
        MSR_GS_BASE => c.gs_base = v,
        MSR_KERNEL_GS_BASE => c.kernel_gs_base = v,
        MSR_TSC_AUX if v >> 32 == 0 => c.tsc_aux = v,
        msr if crate::apic::owns(msr) => crate::apic::wrmsr(c, s, msr, v).map_err(Stop::Fault)?,
        _ => return Err(gp0()),
    }
    Ok(())
}

/// CR0 bits that exist (SDM Vol. 3A §2.5, Figure 2-7): PE, MP, EM, TS, ET, NE, WP, AM, NW,
/// CD, PG. Writes of the other bits of 31:0 are ignored; they read 0.
const CR0_DEFINED: u64 = 0xE005_003F;
const CR0_NW: u64 = 1 << 29;
const CR0_CD: u64 = 1 << 30;

/// CR4 bits a write may set: those of the features pvmlab implements, each of which CPUID
/// reports (SDM Vol. 3A §2.5, Figure 2-8, and §2.6: setting the bit of a feature the
/// processor lacks raises #GP(0)). TSD (CPUID TSC): `rdtsc`/`rdtscp` at CPL > 0 raise #GP.
/// DE: debug extensions (`crate::cpu::debug`). PSE: ignored in IA-32e mode, as on silicon
/// (the PS bit of PDEs and PDPTEs always selects 2 MiB and 1 GiB pages). PAE: must stay set.
/// PGE: stored; the soft TLB never keeps translations across CR3 writes, global or not,
/// which the architecture allows (a TLB may always drop entries). PCE: stored; `rdpmc` is not
/// implemented at any CPL. OSFXSR, OSXMMEXCPT: SSE (`ops/sse_*`). Every other bit — VME, PVI,
/// MCE, UMIP, LA57, VMXE, SMXE, FSGSBASE, PCIDE, OSXSAVE, KL, SMEP, SMAP, PKE, CET, PKS, …
/// and the reserved ones — raises #GP(0).
pub const CR4_SUPPORTED: u64 =
    CR4_TSD | CR4_DE | CR4_PSE | CR4_PAE | CR4_PGE | CR4_PCE | CR4_OSFXSR | CR4_OSXMMEXCPT;
const CR4_TSD: u64 = 1 << 2;
const CR4_PSE: u64 = 1 << 4;
const CR4_PCE: u64 = 1 << 8;

/// Bits of CR3 kept: the PML4 address (MAXPHYADDR 48), PWT and PCD. Bits 2:0 and 11:5 are
/// ignored without PCIDs; bits 63:48 are reserved (#GP(0)).
const CR3_KEPT: u64 = 0x0000_FFFF_FFFF_F018;
const CR3_RESERVED: u64 = 0xFFFF_0000_0000_0000;

/// MOV r64, CRn (SDM Vol. 2B "MOV—Move to/from Control Registers"). CR8 reads TPR[7:4] of the
/// local APIC (SDM Vol. 3A §11.8.6).
fn mov_from_cr(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    require_cpl0(c)?;
    let v = match ins.op1_register() {
        Register::CR0 => c.cr0,
        Register::CR2 => c.cr2,
        Register::CR3 => c.cr3,
        Register::CR4 => c.cr4,
        Register::CR8 => (c.apic.tpr >> 4) as u64,
        _ => return Err(Stop::Fault(Fault::new(UD))),
    };
    c.gpr[gpr_index(ins.op0_register())] = v;
    Ok(())
}

/// MOV CRn, r64 (SDM Vol. 2B, "64-Bit Mode Exceptions"). A write that faults changes nothing.
/// Ends its block (`ops::ends_block`).
fn mov_to_cr(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    require_cpl0(c)?;
    let v = c.gpr[gpr_index(ins.op1_register())];
    match ins.op0_register() {
        Register::CR0 => {
            // Bits 63:32 are reserved; long mode needs PE and PG (clearing PG in 64-bit mode,
            // or PG = 1 with PE = 0, is #GP); NW = 1 with CD = 0 is an invalid combination.
            if v >> 32 != 0
                || v & (CR0_PE | CR0_PG) != (CR0_PE | CR0_PG)
                || v & (CR0_NW | CR0_CD) == CR0_NW
            {
                return Err(gp0());
            }
            let new = (v & CR0_DEFINED) | CR0_ET;
            let changed = new ^ c.cr0;
            c.cr0 = new;
            if changed & CR0_WP != 0 {
                // CR0.WP applies to every access, not to the walk that filled the TLB: the
                // soft TLB's write entries were checked under the old WP (a supervisor write
                // entry for a read-only page exists only while WP = 0).
                c.tlb.flush_write();
            }
            if changed & CR0_AM != 0 {
                c.sync_tlb_mode();
            }
        }
        Register::CR2 => c.cr2 = v,
        Register::CR3 => {
            // Page tables at physical 0 would be outside RAM on every machine; pvmlab keeps
            // CR3 = 0 to mean a bare core without tables (paging.rs), so refuse it.
            if v & CR3_RESERVED != 0 || v & CR3_KEPT & !0x18 == 0 {
                return Err(gp0());
            }
            c.cr3 = v & CR3_KEPT;
            c.tlb.flush();
        }
        Register::CR4 => {
            if v & CR4_PAE == 0 || v & !CR4_SUPPORTED != 0 {
                return Err(gp0());
            }
            c.cr4 = v;
            c.tlb.flush();
        }
        Register::CR8 => {
            // TPR[7:4] = CR8[3:0], TPR[3:0] = 0; bits 63:4 are reserved. The APIC looks at
            // its priorities again at the block boundary.
            if v >> 4 != 0 {
                return Err(gp0());
            }
            c.apic.tpr = (v << 4) as u8;
            c.apic.next_event = 0;
        }
        _ => return Err(gp0()),
    }
    Ok(())
}

/// MOV r64, DRn (SDM Vol. 2B "MOV—Move to/from Debug Registers").
fn mov_from_dr(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    require_cpl0(c)?;
    let v = c.read_dr(ins.op1_register()).map_err(Stop::Fault)?;
    c.gpr[gpr_index(ins.op0_register())] = v;
    Ok(())
}

/// MOV DRn, r64. Ends its block (`ops::ends_block`): what is enabled decides how the next
/// blocks run.
fn mov_to_dr(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    require_cpl0(c)?;
    let v = c.gpr[gpr_index(ins.op1_register())];
    c.write_dr(ins.op0_register(), v).map_err(Stop::Fault)
}

/// LGDT/LIDT m16&64.
fn load_table(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    require_cpl0(c)?;
    let a = c.ea(ins);
    let limit = c.load::<u16>(s, a)?;
    let base = c.load::<u64>(s, a.wrapping_add(2))?;
    if !canonical(base) {
        return Err(gp0());
    }
    let t = crate::cpu::TableReg { base, limit };
    if ins.mnemonic() == Mnemonic::Lgdt {
        c.gdtr = t
    } else {
        c.idtr = t
    }
    Ok(())
}

fn store_table(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    let a = c.ea(ins);
    let t = if ins.mnemonic() == Mnemonic::Sgdt {
        c.gdtr
    } else {
        c.idtr
    };
    c.probe_write(s, a, 10)?;
    c.store::<u16>(s, a, t.limit)?;
    c.store::<u64>(s, a.wrapping_add(2), t.base)
}

fn io_allowed(c: &Core) -> Result<()> {
    // Without a TSS I/O bitmap, ports are reachable only when CPL <= IOPL.
    if c.cpl() as u64 > (c.rflags & IOPL) >> 12 {
        Err(gp0())
    } else {
        Ok(())
    }
}

fn port_of(c: &Core, ins: &Instruction, n: u32) -> u16 {
    if ins.op_kind(n) == OpKind::Register {
        c.gpr[RDX] as u16
    } else {
        ins.immediate8() as u16
    }
}

fn out(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    io_allowed(c)?;
    let port = port_of(c, ins, 0);
    let size = ins.op1_register().size() as u32;
    let v = (c.gpr[RAX] & mask(size * 8)) as u32;
    if port == abi::ports::ANNOTATE {
        annotate(c, s, v);
    } else if let OutEffect::Exit(code) = s.io.out(port, v, size) {
        return Err(Stop::Exit(code));
    }
    io_breakpoints(c, port, size);
    Ok(())
}

/// I/O breakpoints (DR7 R/W = 10, only with CR4.DE): a trap after the instruction.
#[inline]
fn io_breakpoints(c: &mut Core, port: u16, size: u32) {
    if c.dbg.armed.active && c.cr4 & CR4_DE != 0 {
        c.dbg.io_access(port, size as u64);
    }
}

/// The annotation port (`abi::annotate`): no architectural effect, bad arguments ignored.
fn annotate(c: &mut Core, s: &mut Sys, cmd: u32) {
    use abi::annotate::{MAX_NAME, NAME_DOMAIN, RUN};
    match cmd {
        NAME_DOMAIN if c.gpr[RDX] <= MAX_NAME => {
            let mut name = vec![0u8; c.gpr[RDX] as usize];
            let read = c.peek(s, c.gpr[crate::cpu::RSI], &mut name);
            match String::from_utf8(name) {
                Ok(name) if read => {
                    s.domains.names.insert(c.gpr[crate::cpu::RDI] as u32, name);
                }
                _ => s.domains.ignored += 1,
            }
        }
        RUN => {
            let now = c.domain_counters(s);
            let (domain, vcpu) = (c.gpr[crate::cpu::RDI] as u32, c.gpr[crate::cpu::RSI] as u32);
            s.domains.switch(c.index as usize, domain, vcpu, now);
        }
        _ => s.domains.ignored += 1,
    }
}

fn inp(c: &mut Core, s: &mut Sys, ins: &Instruction) -> Result<()> {
    io_allowed(c)?;
    let port = port_of(c, ins, 1);
    let r = ins.op0_register();
    let v = s.io.inp(port, r.size() as u32) as u64;
    match r.size() {
        1 => c.set_reg::<8>(r, v),
        2 => c.set_reg::<16>(r, v),
        _ => c.set_reg::<32>(r, v),
    }
    io_breakpoints(c, port, r.size() as u32);
    Ok(())
}

fn hlt(c: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    require_cpl0(c)?;
    c.state = if c.rflags & IF != 0 {
        RunState::Waiting
    } else {
        RunState::Stopped
    };
    Err(Stop::Halt)
}

fn cli(c: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    io_allowed(c)?;
    c.rflags &= !IF;
    Ok(())
}

fn sti(c: &mut Core, s: &mut Sys, _: &Instruction) -> Result<()> {
    io_allowed(c)?;
    // Interrupts are recognised only after the next instruction (SDM STI): end the block and
    // have the APIC look at the boundary, where it sees the shadow (crate::apic::service).
    if c.rflags & IF == 0 {
        c.shadow = true;
        c.apic.next_event = 0;
        s.end_block = true;
    }
    c.rflags |= IF;
    Ok(())
}

fn invlpg(c: &mut Core, _: &mut Sys, ins: &Instruction) -> Result<()> {
    require_cpl0(c)?;
    let _ = c.ea(ins);
    c.tlb.flush();
    Ok(())
}

fn swapgs(c: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    require_cpl0(c)?;
    std::mem::swap(&mut c.gs_base, &mut c.kernel_gs_base);
    Ok(())
}

fn clts(c: &mut Core, _: &mut Sys, _: &Instruction) -> Result<()> {
    require_cpl0(c)?;
    c.cr0 &= !CR0_TS;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuidInfo;

    fn core_on(socket: u32, k: u32) -> Core {
        // 4 cores per socket: two bits of core id in the x2APIC id.
        Core::new(socket * 4 + k, (socket << 2) | k, socket, socket)
    }

    const INFO: CpuidInfo = CpuidInfo {
        ncores: 8,
        cores_per_socket: 4,
        tsc_hz: 2_400_000_000,
    };

    #[test]
    fn vendor_and_baseline_features() {
        let c = core_on(0, 0);
        let r = cpuid_leaf(&c, &INFO, 0, 0);
        let mut v = Vec::new();
        for w in [r[1], r[3], r[2]] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(&v, VENDOR);
        let r = cpuid_leaf(&c, &INFO, 1, 0);
        // Exactly: DE, PSE, TSC, MSR, PAE, CX8, APIC, PGE, CMOV, CLFSH, FXSR, SSE, SSE2, HTT.
        // Not FPU, VME, MCE, SEP, MTRR, MCA, PAT, PSE-36, MMX, SS, …: pvmlab lacks them.
        let bits = [2, 3, 4, 5, 6, 8, 9, 13, 15, 19, 24, 25, 26, 28];
        assert_eq!(
            r[3],
            bits.iter().map(|b| 1 << b).sum::<u32>(),
            "{:#x}",
            r[3]
        );
        assert_eq!(
            r[2],
            (1 << 21) | (1 << 24),
            "x2APIC, TSC-deadline; no SSE3+, CX16, POPCNT"
        );
        // The CR4 bit of every reported feature is writable, and only those (with PCE,
        // which has no CPUID bit, and OSFXSR/OSXMMEXCPT of FXSR/SSE).
        let cr4_of = [(2, 4), (3, 3), (4, 3), (5, 6), (7, 13)]; // (CR4 bit, EDX bit)
        for (cr4, edx) in cr4_of {
            assert_ne!(CR4_SUPPORTED & (1 << cr4), 0, "CR4 bit {cr4}");
            assert_ne!(r[3] & (1 << edx), 0, "EDX bit {edx}");
        }
        assert_eq!(CR4_SUPPORTED, 0x7BC);
        let r = cpuid_leaf(&c, &INFO, 0x8000_0001, 0);
        // SYSCALL, NX, 1 GiB pages, RDTSCP, long mode.
        let bits = [11, 20, 26, 27, 29];
        assert_eq!(
            r[3],
            bits.iter().map(|b| 1 << b).sum::<u32>(),
            "{:#x}",
            r[3]
        );
        assert_eq!(r[2], 1, "LAHF/SAHF");
        assert_eq!(
            cpuid_leaf(&c, &INFO, 7, 0),
            [0; 4],
            "no BMI1/BMI2/AVX2 (leaf 7)"
        );
    }

    #[test]
    fn topology_leaves_report_socket_and_core() {
        let c = core_on(1, 3);
        let r1 = cpuid_leaf(&c, &INFO, 1, 0);
        assert_eq!(r1[1] >> 24, 0b111, "initial APIC id = socket 1, core 3");
        assert_eq!((r1[1] >> 16) & 0xFF, 4, "logical processors per package");
        let smt = cpuid_leaf(&c, &INFO, 0xB, 0);
        assert_eq!((smt[1], (smt[2] >> 8) & 0xFF, smt[3]), (1, 1, 0b111));
        let core = cpuid_leaf(&c, &INFO, 0xB, 1);
        assert_eq!(core[0], 2, "shift right by 2 bits gives the socket");
        assert_eq!(core[3] >> core[0], 1, "socket 1");
        assert_eq!(core[1], 4);
        assert_eq!((core[2] >> 8) & 0xFF, 2, "level type: core");
        let end = cpuid_leaf(&c, &INFO, 0xB, 2);
        assert_eq!((end[2] >> 8) & 0xFF, 0, "no third level");
    }
}

#[cfg(test)]
mod debug_register_tests {
    use super::super::alu::testing::{exec, machine, run_code};
    use crate::cpu::debug::*;
    use crate::cpu::{DB, Fault, GP, RAX, RBX, Stop, UD};

    // mov dr0, rax; mov rbx, dr0; mov dr6, rax; mov rax, dr6; mov dr7, rax; mov rax, dr7;
    // mov dr4, rax; mov rbx, dr5; mov dr8, rax
    const TO_DR0: &[u8] = &[0x0f, 0x23, 0xc0];
    const FROM_DR0: &[u8] = &[0x0f, 0x21, 0xc3];
    const TO_DR6: &[u8] = &[0x0f, 0x23, 0xf0];
    const FROM_DR6: &[u8] = &[0x0f, 0x21, 0xf0];
    const TO_DR7: &[u8] = &[0x0f, 0x23, 0xf8];
    const FROM_DR7: &[u8] = &[0x0f, 0x21, 0xf8];
    const TO_DR4: &[u8] = &[0x0f, 0x23, 0xe0];
    const FROM_DR5: &[u8] = &[0x0f, 0x21, 0xeb];
    const TO_DR8: &[u8] = &[0x44, 0x0f, 0x23, 0xc0];

    fn fault(r: Result<(), Stop>) -> Fault {
        match r {
            Err(Stop::Fault(f)) => f,
            other => panic!("expected a fault, got {other:?}"),
        }
    }

    #[test]
    fn reset_values_and_reserved_bits() {
        let (mut c, mut s) = machine();
        exec(&mut c, &mut s, FROM_DR6).unwrap();
        assert_eq!(c.gpr[RAX], 0xFFFF_0FF0);
        exec(&mut c, &mut s, FROM_DR7).unwrap();
        assert_eq!(c.gpr[RAX], 0x400);
        // All ones in the low half: DR6 keeps B0-B3, BD, BS, BT; DR7 drops bits 11, 12, 14, 15.
        c.gpr[RAX] = 0xFFFF_FFFF;
        exec(&mut c, &mut s, TO_DR6).unwrap();
        exec(&mut c, &mut s, FROM_DR6).unwrap();
        assert_eq!(c.gpr[RAX], 0xFFFF_EFFF);
        c.gpr[RAX] = 0;
        exec(&mut c, &mut s, TO_DR6).unwrap();
        exec(&mut c, &mut s, FROM_DR6).unwrap();
        assert_eq!(c.gpr[RAX], 0xFFFF_0FF0);
        c.gpr[RAX] = 0xFFFF_FFFF & !DR7_GD;
        exec(&mut c, &mut s, TO_DR7).unwrap();
        exec(&mut c, &mut s, FROM_DR7).unwrap();
        assert_eq!(c.gpr[RAX], 0xFFFF_07FF);
        // DR0-DR3 keep all 64 bits.
        c.gpr[RAX] = 0xFFFF_8000_1234_5678;
        exec(&mut c, &mut s, TO_DR0).unwrap();
        exec(&mut c, &mut s, FROM_DR0).unwrap();
        assert_eq!(c.gpr[RBX], 0xFFFF_8000_1234_5678);
    }

    #[test]
    fn upper_half_of_dr6_dr7_is_gp() {
        let (mut c, mut s) = machine();
        for bytes in [TO_DR6, TO_DR7] {
            c.gpr[RAX] = 1 << 32;
            let f = fault(exec(&mut c, &mut s, bytes));
            assert_eq!((f.vector, f.error_code), (GP, Some(0)), "{bytes:x?}");
        }
        assert_eq!(
            (c.dbg.dr6, c.dbg.dr7),
            (DR6_INIT, DR7_INIT),
            "nothing written"
        );
    }

    #[test]
    fn dr4_dr5_alias_dr6_dr7_unless_cr4_de() {
        let (mut c, mut s) = machine();
        c.gpr[RAX] = 1 << 14;
        exec(&mut c, &mut s, TO_DR4).unwrap();
        assert_eq!(c.dbg.dr6, DR6_INIT | DR6_BS);
        c.dbg.dr7 = DR7_INIT | 1;
        exec(&mut c, &mut s, FROM_DR5).unwrap();
        assert_eq!(c.gpr[RBX], 0x401);
        c.cr4 |= CR4_DE;
        for bytes in [TO_DR4, FROM_DR5] {
            let f = fault(exec(&mut c, &mut s, bytes));
            assert_eq!((f.vector, f.unimplemented), (UD, false), "{bytes:x?}");
        }
        c.cr4 &= !CR4_DE;
        // DR8-DR15 (REX.R) are invalid encodings: #UD at decode, whatever CR4.DE or the CPL.
        c.set_segments(0x33, 0x2b);
        let e = run_code(&mut c, &mut s, TO_DR8, 1);
        assert!(
            matches!(e, Some(Stop::Fault(f)) if f.vector == UD && !f.unimplemented),
            "{e:?}"
        );
    }

    #[test]
    fn cpl3_is_gp_before_anything_else() {
        let (mut c, mut s) = machine();
        c.set_segments(0x33, 0x2b);
        c.dbg.dr7 |= DR7_GD;
        c.cr4 |= CR4_DE;
        for bytes in [TO_DR0, FROM_DR0, TO_DR6, FROM_DR7, TO_DR4] {
            let f = fault(exec(&mut c, &mut s, bytes));
            assert_eq!((f.vector, f.error_code), (GP, Some(0)), "{bytes:x?}");
        }
        assert_eq!(c.dbg.dr6, DR6_INIT, "no general detect at CPL 3");
    }

    #[test]
    fn general_detect_faults_with_bd_and_keeps_the_registers() {
        let (mut c, mut s) = machine();
        c.dbg.dr6 = DR6_INIT | 0b0101;
        c.dbg.dr7 = DR7_INIT | DR7_GD;
        c.gpr[RAX] = 0x1234;
        for bytes in [TO_DR0, FROM_DR6] {
            let f = fault(exec(&mut c, &mut s, bytes));
            assert_eq!(f.vector, DB);
            // B0-B3 cleared, BD set.
            assert_eq!(c.dbg.dr6, DR6_INIT | DR6_BD);
            assert_eq!(c.dbg.dr[0], 0);
        }
        // #UD (DR4 with CR4.DE) comes before general detect.
        c.cr4 |= CR4_DE;
        c.dbg.dr6 = DR6_INIT;
        assert_eq!(fault(exec(&mut c, &mut s, TO_DR4)).vector, UD);
        assert_eq!(c.dbg.dr6, DR6_INIT);
    }
}
