//! Debug exceptions (#DB, SDM Vol. 3B §18.3): RFLAGS.TF single-stepping a ring-3 program.
//! The handler records where each trap left the program and clears TF at the last point.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::idt::TrapFrame;
use super::paging::USER_STACK_TOP;
use super::{Checks, syscall, user};

/// RFLAGS.TF.
const TF: u64 = 1 << 8;
/// Traps recorded at most.
const MAX_STEPS: usize = 8;

static STEPS: [AtomicU64; MAX_STEPS] = [const { AtomicU64::new(0) }; MAX_STEPS];
static NSTEPS: AtomicUsize = AtomicUsize::new(0);
/// The RFLAGS the first trap saw (TF set in the interrupted program's image).
static FIRST_RFLAGS: AtomicU64 = AtomicU64::new(0);

/// #DB from ring 3: a single-step trap of the stepping program. Returns false for a #DB the
/// kernel did not expect.
pub fn trap(f: &mut TrapFrame) -> bool {
    let n = NSTEPS.fetch_add(1, Relaxed);
    if f.cs & 3 != 3 || n >= MAX_STEPS {
        return false;
    }
    STEPS[n].store(f.rip, Relaxed);
    if n == 0 {
        FIRST_RFLAGS.store(f.rflags, Relaxed);
    }
    let end = user::step_points()[2];
    if f.rip == end {
        f.rflags &= !TF;
    }
    true
}

pub fn check(c: &mut Checks) {
    NSTEPS.store(0, Relaxed);
    let status = syscall::enter_user(user::step_entry(), USER_STACK_TOP);
    let n = NSTEPS.load(Relaxed);
    let seen: [u64; 3] = core::array::from_fn(|i| STEPS[i].load(Relaxed));
    let want = user::step_points();
    check!(
        c,
        status == 0 && n == 3 && seen == want && FIRST_RFLAGS.load(Relaxed) & TF != 0,
        "RFLAGS.TF in ring 3: {n} #DB traps, each after one instruction (the first after the \
         one following popfq), saved rip exact"
    );
    if seen != want {
        baremetal::println!("kernel: single-step traps at {seen:#x?}, expected {want:#x?}");
    }
}
