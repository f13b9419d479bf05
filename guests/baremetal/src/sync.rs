//! A spinlock and a barrier built on `core` atomics alone, so that program logic using them
//! also runs on the host, on threads (tests/ compiles this file natively).

use core::cell::UnsafeCell;
use core::hint::spin_loop;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// A test-and-test-and-set spinlock.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one holder at a time, so sharing the lock
// only moves `T` between threads, which `T: Send` allows.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    pub fn lock(&self) -> SpinGuard<'_, T> {
        loop {
            if let Some(guard) = self.try_lock() {
                return guard;
            }
            // Wait with plain loads so the line stays shared until the holder lets go.
            while self.locked.load(Ordering::Relaxed) {
                spin_loop();
            }
        }
    }

    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        // Build the guard only on success: a guard dropped after a failed attempt would
        // unlock the current holder's lock.
        let acquired =
            self.locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed);
        acquired.is_ok().then(|| SpinGuard { lock: self })
    }
}

/// Access to a [`SpinLock`]'s value; unlocks when dropped.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this holder owns the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` keeps the access unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// A reusable sense-reversing barrier. The number of parties is given to each
/// [`wait`](Self::wait) so that a barrier can be a `static` before the core count is known.
pub struct Barrier {
    arrived: AtomicU32,
    generation: AtomicU32,
}

impl Barrier {
    pub const fn new() -> Self {
        Barrier {
            arrived: AtomicU32::new(0),
            generation: AtomicU32::new(0),
        }
    }

    /// Waits until `parties` callers (the same number every time) have arrived. Returns `true`
    /// to exactly one of them, the last to arrive. Writes made before `wait` by any party are
    /// visible to all parties after it.
    pub fn wait(&self, parties: u32) -> bool {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == parties {
            // Reset before releasing: a party that leaves may re-enter at once.
            self.arrived.store(0, Ordering::Relaxed);
            self.generation
                .store(generation.wrapping_add(1), Ordering::Release);
            true
        } else {
            while self.generation.load(Ordering::Acquire) == generation {
                spin_loop();
            }
            false
        }
    }
}

impl Default for Barrier {
    fn default() -> Self {
        Self::new()
    }
}
