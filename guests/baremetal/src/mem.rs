//! `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`: this target's `compiler_builtins` does not
//! export them to a `-nostdlib` link (DESIGN.md §1).
//!
//! LLVM turns copy and fill loops into calls to these very functions, so copies and fills are
//! `rep movsb`/`rep stosb` in inline assembly; the compare loop is one LLVM has no idiom for.
//! `objdump -d` on any image shows no `call` inside them.

use core::arch::asm;

/// # Safety
/// The C contract: `dest` and `src` valid for `n` bytes and not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; the SysV ABI guarantees DF = 0 (forward) at calls.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// The C contract: `dest` and `src` valid for `n` bytes; they may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // `dest` is below `src` or past its end: a forward copy reads each byte before
        // overwriting it.
        // SAFETY: the caller's contract.
        return unsafe { memcpy(dest, src, n) };
    }
    // `dest` lies inside `[src, src + n)`: copy backwards, from the last byte down.
    // SAFETY: the caller's contract; DF is set only for this `rep movsb` and cleared again, as
    // the ABI requires.
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _, inout("rdi") dest.add(n - 1) => _,
             inout("rsi") src.add(n - 1) => _, options(nostack));
    }
    dest
}

/// # Safety
/// The C contract: `dest` valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; DF = 0 per the ABI.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// The C contract: `a` and `b` valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    // Eight bytes at a time while they are equal.
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, within the caller's buffers.
        let (x, y) = unsafe {
            (
                a.add(i).cast::<u64>().read_unaligned(),
                b.add(i).cast::<u64>().read_unaligned(),
            )
        };
        if x != y {
            // Big-endian order makes the first differing byte the most significant one.
            return if u64::from_be(x) < u64::from_be(y) {
                -1
            } else {
                1
            };
        }
        i += 8;
    }
    while i < n {
        // SAFETY: `i < n`.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
/// The C contract: `a` and `b` valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}
