//! A file mapped read-only, for the snapshot reads where copying it was most of the
//! cost, with a guard that turns the one way a mapping fails — SIGBUS — into a
//! one-line error and an exit code instead of a crash with no word.
//!
//! Why map: reading a 290 MB snapshot into a fresh buffer cost ~180 ms (a zero-filled
//! page fault per 4 KiB, then the copy), against ~30 ms to map the same file from the
//! page cache (`docs/benchmarks.md`); etcd's own tools map the file too (bbolt mmaps its
//! db, `etcdutl snapshot status` included).
//!
//! Why the guard: a page of a mapping that cannot be read — the file was truncated by
//! another process, or the disk answered an I/O error — arrives as SIGBUS, which kills
//! the process without a message. So each live [`Mapped`] registers its address range
//! and a ready-made message in a fixed table; one SIGBUS handler, installed once, looks
//! the faulting address up there and, when it is inside one, writes that message and
//! `_exit`s with the code its caller chose (both async-signal-safe). Any other SIGBUS goes to the handler that was
//! there before (Rust's own, or the default action). Callers that must survive a bad
//! file (`ensure`, which passes over a damaged backup for an older one) do not map; they
//! read (`snapshot::read`). Written here: no crate offers a scoped SIGBUS guard
//! (signal-hook refuses to register SIGBUS, by design).
//!
//! Why pages are given back ([`Mapped::read_through`]): a process's RSS counts every page
//! of a mapping it has touched, and a mapped page of the page cache is one the kernel
//! reclaims last. Reading a 3.5 GB snapshot through a mapping held 3.5 GB against the
//! master's memory (1.02× the file, at its worst 1.28× for a small one: the file plus the
//! program) where `openssl dgst`, which reads, holds a buffer. So the readers say how
//! much they have read, and every [`WINDOW`] bytes the mapping's pages are unmapped
//! (`MADV_DONTNEED`): they stay in the page cache as a read's would, and come back
//! from it, unchanged, if they are touched again.
//!
//! What a guarded exit leaves behind: what any kill would — temp files, which the next
//! run removes by their dead PID (`fsutil::retention`); never a renamed half-file.

use std::fs::File;
use std::sync::Once;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

/// Bytes read through a mapping between two times its pages are given back: what the
/// mapping may add to the process's memory (plus the kernel's fault-around, 64 KiB per
/// fault), small beside any snapshot worth reading this way, large enough that giving
/// back (a few hundred microseconds) is rare.
pub const WINDOW: usize = 8 << 20;

/// Mappings alive at once that can be guarded; a program maps one or two.
const SLOTS: usize = 8;
/// A slot being filled in or emptied: not yet (or no longer) looked at.
const BUSY: usize = usize::MAX;

struct Slot {
    /// Start of the mapping; 0 free, [`BUSY`] in flux.
    start: AtomicUsize,
    end: AtomicUsize,
    msg: AtomicPtr<u8>,
    msg_len: AtomicUsize,
    code: AtomicI32,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    msg: AtomicPtr::new(std::ptr::null_mut()),
    msg_len: AtomicUsize::new(0),
    code: AtomicI32::new(1),
};
static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
static INSTALL: Once = Once::new();
/// The SIGBUS action before ours, to pass foreign faults on to.
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());

/// A read-only mapping of a whole file, guarded while it lives.
pub struct Mapped {
    map: memmap2::Mmap,
    slot: usize,
    /// Owned here, pointed to by the slot until it is emptied.
    _msg: Box<[u8]>,
    /// Bytes read through the mapping so far, by every thread ([`Mapped::read_through`]).
    read: AtomicUsize,
}

impl Mapped {
    /// Maps `file` (named `name` in the message a failed page prints, before the
    /// process exits with `exit_code`). `Ok(None)`: not guarded (an empty file, no free
    /// slot, no handler), so the caller reads instead.
    pub fn map(file: &File, name: &str, exit_code: i32) -> std::io::Result<Option<Mapped>> {
        if file.metadata()?.len() == 0 || !install() {
            return Ok(None);
        }
        let Some(slot) = claim() else {
            return Ok(None);
        };
        // SAFETY: the mapping is read-only and private; what another process does to
        // the file is what the guard is for.
        let map = match unsafe { memmap2::MmapOptions::new().map(file) } {
            Ok(m) => m,
            Err(e) => {
                release(slot);
                return Err(e);
            }
        };
        // Asks the kernel to read the file in ahead of the hash and the parse.
        let _ = map.advise(memmap2::Advice::WillNeed);
        let msg: Box<[u8]> = format!(
            "kubeboot: error: {name}: the file was truncated, or could not be read (an I/O error), while it was mapped; nothing was written\n"
        )
        .into_bytes()
        .into_boxed_slice();
        let start = map.as_ptr() as usize;
        let s = &TABLE[slot];
        s.end
            .store(start.saturating_add(map.len()), Ordering::Relaxed);
        s.msg.store(msg.as_ptr().cast_mut(), Ordering::Relaxed);
        s.msg_len.store(msg.len(), Ordering::Relaxed);
        s.code.store(exit_code, Ordering::Relaxed);
        s.start.store(start, Ordering::Release);
        Ok(Some(Mapped {
            map,
            slot,
            _msg: msg,
            read: AtomicUsize::new(0),
        }))
    }

    /// Counts `n` more bytes read through the mapping; each time the count passes a
    /// multiple of [`WINDOW`], the pages are given back ([`Mapped::give_back`]).
    pub fn read_through(&self, n: usize) {
        let before = self.read.fetch_add(n, Ordering::Relaxed);
        if before / WINDOW != before.wrapping_add(n) / WINDOW {
            self.give_back();
        }
    }

    /// Unmaps every page of the mapping from this process; they stay in the page cache
    /// and are mapped again from it when next read. Other threads may be reading: they
    /// fault the page back in.
    pub fn give_back(&self) {
        // SAFETY: the mapping is private, read-only and never written, so a page given
        // back is read again from the file: the bytes the mapping showed before, as long
        // as no other process changes the file — which a mapping shows anyway, given
        // back or not (the hazard `map` already accepts, and `snapshot::index::Index::get`
        // checks for). A failure (no such advice) leaves the pages where they were.
        let _ = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // Emptied before the map and the message go (fields drop after this).
        release(self.slot);
    }
}

fn claim() -> Option<usize> {
    TABLE.iter().position(|s| {
        s.start
            .compare_exchange(0, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    })
}

fn release(slot: usize) {
    if let Some(s) = TABLE.get(slot) {
        s.start.store(BUSY, Ordering::Release);
        s.msg.store(std::ptr::null_mut(), Ordering::Relaxed);
        s.start.store(0, Ordering::Release);
    }
}

/// Installs the handler once; whether it is in place.
fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; `on_sigbus` has the SA_SIGINFO signature
        // and only does async-signal-safe things.
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            let old = Box::into_raw(Box::new(std::mem::zeroed::<libc::sigaction>()));
            if libc::sigaction(libc::SIGBUS, &new, old) == 0 {
                PREVIOUS.store(old, Ordering::Release);
            } else {
                drop(Box::from_raw(old));
            }
        }
    });
    !PREVIOUS.load(Ordering::Acquire).is_null()
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { info.as_ref() }.map_or(0, |i| unsafe { i.si_addr() } as usize);
    for s in &TABLE {
        let start = s.start.load(Ordering::Acquire);
        if start == 0 || start == BUSY || addr < start || addr >= s.end.load(Ordering::Relaxed) {
            continue;
        }
        let msg = s.msg.load(Ordering::Relaxed);
        if !msg.is_null() {
            // SAFETY: the message lives as long as the slot points to it.
            unsafe {
                libc::write(2, msg.cast(), s.msg_len.load(Ordering::Relaxed));
            }
        }
        // SAFETY: async-signal-safe.
        unsafe { libc::_exit(s.code.load(Ordering::Relaxed)) };
    }
    pass_on(sig, info, ctx);
}

/// A SIGBUS outside every mapping: the previous handler's, or the default action
/// (restored, so the fault repeats under it when this returns).
fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: PREVIOUS was filled by sigaction before this handler could run.
    let Some(old) = (unsafe { PREVIOUS.load(Ordering::Acquire).as_ref() }) else {
        return;
    };
    let h = old.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // SAFETY: restoring the previous action is async-signal-safe.
        unsafe { libc::sigaction(libc::SIGBUS, old, std::ptr::null_mut()) };
    } else if old.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a plain handler takes the signal number only.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

#[cfg(test)]
#[path = "mapped_tests.rs"]
mod tests;
