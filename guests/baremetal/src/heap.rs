//! The global allocator: power-of-two size classes with free lists, carved from the largest
//! usable RAM range of node 0, behind one spinlock so that every core may allocate.
//!
//! Simple on purpose: blocks go back only to their own class, so memory use can reach about
//! twice what is live, which test programs can afford.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, null_mut};
use core::sync::atomic::Ordering;

use abi::{BootInfo, MemRange};

use crate::rt::BOOT_INFO;
use crate::sync::SpinLock;

const MIN_SHIFT: u32 = 4;
const CLASSES: usize = 48;
const PAGE: usize = 4096;

struct Heap {
    initialised: bool,
    next: usize,
    end: usize,
    /// Free-list heads per class; a free block holds the address of the next one.
    free: [usize; CLASSES],
}

impl Heap {
    fn init(&mut self) {
        self.initialised = true;
        let info = BOOT_INFO.load(Ordering::Acquire) as *const BootInfo;
        // SAFETY: `rt::start` stores a checked BootInfo address before any program code runs,
        // and the loader keeps its tables in place.
        let ranges = unsafe {
            core::slice::from_raw_parts((*info).ranges as *const MemRange, (*info).nranges as usize)
        };
        let best = ranges
            .iter()
            .filter(|r| r.kind == abi::boot::MEM_USABLE && r.node == 0)
            .max_by_key(|r| r.len);
        if let Some(r) = best {
            self.next = r.base as usize;
            self.end = (r.base + r.len) as usize;
        }
    }

    /// Size class: the block is the next power of two of size and alignment, at least 16.
    fn class(layout: &Layout) -> usize {
        let size = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
        (size.next_power_of_two().trailing_zeros() - MIN_SHIFT) as usize
    }

    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        if !self.initialised {
            self.init();
        }
        let class = Self::class(&layout);
        if class >= CLASSES {
            return null_mut();
        }
        let head = self.free[class];
        if head != 0 && layout.align() <= PAGE {
            // SAFETY: `head` is a free block of this class, which holds the next link.
            self.free[class] = unsafe { (head as *const usize).read() };
            return head as *mut u8;
        }
        // Blocks of up to a page are aligned to their size, larger ones to a page (or to an
        // alignment beyond that, which then never reaches a free list).
        let block = 1usize << (class as u32 + MIN_SHIFT);
        let align = layout.align().max(block.min(PAGE));
        let Some(start) = self.next.checked_next_multiple_of(align) else {
            return null_mut();
        };
        match start.checked_add(block) {
            Some(end) if end <= self.end => {
                self.next = end;
                start as *mut u8
            }
            _ => null_mut(),
        }
    }

    fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        if layout.align() > PAGE {
            return;
        }
        let class = Self::class(&layout);
        // SAFETY: `ptr` is a block of this class we handed out, at least 16 bytes, now unused.
        unsafe { (ptr as *mut usize).write(self.free[class]) };
        self.free[class] = ptr as usize;
    }
}

struct Allocator(SpinLock<Heap>);

// SAFETY: blocks never overlap (bump allocation, and a block returns only to its own class's
// list), each satisfies its layout's size and alignment, and the lock serialises all cores.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.lock().alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.0.lock().dealloc(ptr, layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid layout for `new_size`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if layout.align() <= PAGE && Heap::class(&layout) == Heap::class(&new_layout) {
            return ptr;
        }
        // SAFETY: `new_layout` has a non-zero size, as `realloc`'s contract says.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least the smaller size and are distinct.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Allocator = Allocator(SpinLock::new(Heap {
    initialised: false,
    next: 0,
    end: 0,
    free: [0; CLASSES],
}));
