//! Differential oracle: SSE2 integer instructions on XMM registers (SDM Vol. 2: PADD*/PSUB*
//! incl. saturating, PMULLW/PMULHW/PMULHUW/PMULUDQ/PMADDWD, PAVGB/W, PMIN/PMAX UB/SW, PSADBW,
//! PAND/PANDN/POR/PXOR, PCMPEQ/PCMPGT B/W/D, shifts by XMM, by imm8 and PSLLDQ/PSRLDQ, PACK*,
//! PUNPCK*, PSHUFD/PSHUFHW/PSHUFLW, PEXTRW/PINSRW, PMOVMSKB). MMX forms are not implemented
//! by the emulated CPU and not tested.

// The oracle runs instructions natively: x86-64 Linux hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod oracle;

use iced_x86::Mnemonic as M;
use oracle::make::{self, GenOpts};
use oracle::{Family, run_family};

const MNEMONICS: &[M] = &[
    M::Paddb,
    M::Paddw,
    M::Paddd,
    M::Paddq,
    M::Paddsb,
    M::Paddsw,
    M::Paddusb,
    M::Paddusw,
    M::Psubb,
    M::Psubw,
    M::Psubd,
    M::Psubq,
    M::Psubsb,
    M::Psubsw,
    M::Psubusb,
    M::Psubusw,
    M::Pmullw,
    M::Pmulhw,
    M::Pmulhuw,
    M::Pmuludq,
    M::Pmaddwd,
    M::Pavgb,
    M::Pavgw,
    M::Pminub,
    M::Pmaxub,
    M::Pminsw,
    M::Pmaxsw,
    M::Psadbw,
    M::Pand,
    M::Pandn,
    M::Por,
    M::Pxor,
    M::Pcmpeqb,
    M::Pcmpeqw,
    M::Pcmpeqd,
    M::Pcmpgtb,
    M::Pcmpgtw,
    M::Pcmpgtd,
    M::Psllw,
    M::Pslld,
    M::Psllq,
    M::Psrlw,
    M::Psrld,
    M::Psrlq,
    M::Psraw,
    M::Psrad,
    M::Pslldq,
    M::Psrldq,
    M::Packsswb,
    M::Packssdw,
    M::Packuswb,
    M::Punpcklbw,
    M::Punpcklwd,
    M::Punpckldq,
    M::Punpcklqdq,
    M::Punpckhbw,
    M::Punpckhwd,
    M::Punpckhdq,
    M::Punpckhqdq,
    M::Pshufd,
    M::Pshufhw,
    M::Pshuflw,
    M::Pextrw,
    M::Pinsrw,
    M::Pmovmskb,
];

#[test]
fn sse_int() {
    let codes = make::codes_of(MNEMONICS);
    assert!(codes.len() >= MNEMONICS.len(), "{} codes", codes.len());
    run_family(
        Family {
            test: "oracle_sse_int",
            name: "sse_int",
            cases: 5000,
            strict: true,
        },
        |rng| {
            let code = rng.pick(&codes);
            let mut c = make::generic(rng, code, GenOpts::default())?;
            // Shift counts from an XMM register or memory: mostly small, so shifts do something.
            if matches!(
                c.ins.mnemonic(),
                M::Psllw
                    | M::Pslld
                    | M::Psllq
                    | M::Psrlw
                    | M::Psrld
                    | M::Psrlq
                    | M::Psraw
                    | M::Psrad
            ) && c.ins.op1_kind() != iced_x86::OpKind::Immediate8
                && rng.pct(70)
            {
                let cnt =
                    make::shift_count(rng, 64) | if rng.pct(10) { rng.next() << 32 } else { 0 };
                match c.ins.op1_kind() {
                    iced_x86::OpKind::Register => {
                        let x = make::xmm_slot(c.ins.op1_register());
                        c.regs.xmm[x] = (c.regs.xmm[x] & !(u64::MAX as u128)) | cnt as u128;
                    }
                    _ => {
                        let a = c.ea().unwrap();
                        c.write_u64(a, cnt, 8);
                    }
                }
            }
            Some(c)
        },
    );
}
