//! Progress of long reads (a snapshot of hundreds of megabytes takes seconds to read and
//! check): one live line on a terminal, `STATUS=` for systemd (what `systemctl status`
//! shows while `ensure` reads a backup), and nothing at all otherwise, so a pipe or the
//! journal never gets control characters. `start` draws its waits the same way
//! (`src/start/progress.rs`, which uses [`stderr_is_terminal`]).
//!
//! Written here rather than with `indicatif`: the line is one `\r` + erase + text, the
//! systemd half has to be ours anyway ([`crate::systemd::status`]), and the same
//! throttle serves both.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Least time between two updates of the same step.
const EVERY: Duration = Duration::from_millis(200);

/// Whether a person is watching stderr: a terminal that understands `\x1b[K`.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var("TERM").is_ok_and(|t| !t.is_empty() && t != "dumb")
}

/// A step, with how much of `total` bytes is done; drawn while it lives.
pub struct Progress {
    tty: bool,
    notify: bool,
    step: String,
    total: u64,
    done: u64,
    shown: Option<Instant>,
    drawn: bool,
}

impl Progress {
    /// Begins `step` (e.g. `reading FILE`) over `total` bytes (0: not counted).
    pub fn new(step: impl Into<String>, total: u64) -> Progress {
        let mut p = Progress {
            tty: stderr_is_terminal(),
            notify: std::env::var_os("NOTIFY_SOCKET").is_some(),
            step: step.into(),
            total,
            done: 0,
            shown: None,
            drawn: false,
        };
        p.show(true);
        p
    }

    /// Bytes done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// `n` more bytes done.
    pub fn advance(&mut self, n: u64) {
        self.done = self.done.saturating_add(n);
        self.show(false);
    }

    /// The next step, not counted in bytes (`checking FILE`).
    pub fn step(&mut self, step: impl Into<String>) {
        self.step = step.into();
        self.total = 0;
        self.done = 0;
        self.show(true);
    }

    fn show(&mut self, now: bool) {
        if !(self.tty || self.notify) {
            return;
        }
        if !now && self.shown.is_some_and(|at| at.elapsed() < EVERY) {
            return;
        }
        self.shown = Some(Instant::now());
        let line = line(&self.step, self.done, self.total);
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{line}");
            let _ = err.flush();
            self.drawn = true;
        }
        if self.notify {
            crate::systemd::status(&line);
        }
    }
}

impl Drop for Progress {
    /// The live line goes away: what follows (the report, an error) starts clean.
    fn drop(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

/// The words shown: `reading FILE: 120 of 272 MiB (44%)`, or the step alone.
pub fn line(step: &str, done: u64, total: u64) -> String {
    if total == 0 {
        return step.to_string();
    }
    const MIB: f64 = 1024.0 * 1024.0;
    let pct = done.min(total).saturating_mul(100) / total;
    format!(
        "{step}: {:.0} of {:.0} MiB ({pct}%)",
        done as f64 / MIB,
        total as f64 / MIB
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_how_far_in_mib_and_percent() {
        assert_eq!(line("checking f.db", 5, 0), "checking f.db");
        assert_eq!(
            line("reading f.db", 120 << 20, 272 << 20),
            "reading f.db: 120 of 272 MiB (44%)"
        );
        // Never past 100 %, whatever a growing file reports.
        assert_eq!(line("r", 3 << 20, 2 << 20), "r: 3 of 2 MiB (100%)");
    }
}
