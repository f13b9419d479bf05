//! Differential oracle: bit test and scan (SDM Vol. 2: BT, BTS, BTR, BTC with register and
//! immediate offsets, incl. memory bit strings addressed beyond the operand; BSF, BSR incl.
//! zero sources), and `rep bsf` (F3 0F BC), which iced decodes as TZCNT: the emulated CPU has
//! no BMI1, so it must run as BSF — the host has BMI1, so it is compared with native BSF.

// The oracle runs instructions natively: x86-64 Linux hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod oracle;

use iced_x86::{Code, Mnemonic as M, OpKind};
use oracle::check::op0_bits;
use oracle::make::{self, GenOpts};
use oracle::{DATA, DATA_END, Family, run_family};

#[test]
fn bits() {
    let codes = make::codes_of(&[M::Bt, M::Bts, M::Btr, M::Btc, M::Bsf, M::Bsr]);
    assert!(codes.len() >= 30, "{} codes", codes.len());
    run_family(
        Family {
            test: "oracle_bits",
            name: "bits",
            cases: 4000,
            strict: true,
        },
        |rng| {
            let code = rng.pick(&codes);
            let mut c = make::generic(rng, code, GenOpts::default())?;
            match c.ins.mnemonic() {
                M::Bsf | M::Bsr if rng.pct(20) && !c.set_op_value(1, 0) => return None,
                M::Bt | M::Bts | M::Btr | M::Btc
                    if c.ins.op0_kind() == OpKind::Memory
                        && c.ins.op1_kind() == OpKind::Register =>
                {
                    // The register offset is signed and unmasked: it may address bytes far from
                    // the operand. Keep them in the data area.
                    let a = c.ea().unwrap() as i64;
                    let lo = (DATA as i64 - a + 16) * 8;
                    let hi = (DATA_END as i64 - a - 16) * 8;
                    let off = rng.range(lo.max(-(1 << 15) + 16), hi.min((1 << 15) - 16));
                    if !c.set_op_value(1, off as u64) {
                        return None;
                    }
                }
                _ => {}
            }
            Some(c)
        },
    );
}

#[test]
fn rep_bsf() {
    let pairs = [
        (Code::Tzcnt_r16_rm16, Code::Bsf_r16_rm16),
        (Code::Tzcnt_r32_rm32, Code::Bsf_r32_rm32),
        (Code::Tzcnt_r64_rm64, Code::Bsf_r64_rm64),
    ];
    run_family(
        Family {
            test: "oracle_bits",
            name: "rep_bsf",
            cases: 1500,
            strict: true,
        },
        |rng| {
            let (tz, bsf) = rng.pick(&pairs);
            let mut c = make::generic(rng, tz, GenOpts::default())?;
            if rng.pct(20) && !c.set_op_value(1, 0) {
                return None;
            }
            let mut n = c.ins;
            n.set_code(bsf);
            c.native_bytes = Some(make::encode(&n)?);
            c.note = format!(
                "rep bsf: the emulator must run it as BSF ({}-bit)",
                op0_bits(&c.ins)
            );
            Some(c)
        },
    );
}
