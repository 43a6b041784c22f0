//! Helpers shared by the snapshot tests: a deterministic RNG (no crate needed for
//! test data) and a hard timeout for tests that start processes.

use std::time::Duration;

/// xorshift64*: reproducible test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// How long a process-starting test may take before it fails.
pub fn deadline() -> Duration {
    Duration::from_secs(120)
}

/// Runs `f` on its own thread and fails the test if it errors, panics or outlives
/// `limit` (so a hung etcd fails the test instead of hanging it).
pub fn bounded<F>(limit: Duration, f: F)
where
    F: FnOnce() -> anyhow::Result<()> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let result = f();
        let _ = tx.send(());
        result
    });
    match rx.recv_timeout(limit) {
        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(result) => result.unwrap_or_else(|e| panic!("{e:#}")),
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("test did not finish within {limit:?}")
        }
    }
}
