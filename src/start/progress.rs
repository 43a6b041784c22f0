//! Where `start`'s progress goes. An operator at a terminal sees one live line that
//! keeps saying what is being waited for; the journal always gets log lines (a step
//! each, and a waiting line at most every [`WAIT_LOG_EVERY`]); systemd gets
//! `STATUS=` so `systemctl status kubeboot` shows the same words.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often an unchanged wait is repeated in the log.
pub const WAIT_LOG_EVERY: Duration = Duration::from_secs(15);

pub struct Progress {
    tty: bool,
    started: Instant,
    live: bool,
    current: String,
    last_wait: Option<(String, Instant)>,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Self::starting("reading the asset dir")
    }

    /// Progress whose first step is `step` (what an interruption before any other
    /// step reports).
    pub fn starting(step: &str) -> Self {
        let tty = std::io::stderr().is_terminal()
            && std::env::var("TERM").is_ok_and(|t| !t.is_empty() && t != "dumb");
        Progress {
            tty,
            started: Instant::now(),
            live: false,
            current: step.into(),
            last_wait: None,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The last step begun and what it was last waiting for, for an interrupted run
    /// to say where it stood.
    pub fn current(&self) -> String {
        match &self.last_wait {
            Some((wait, _)) if *wait != self.current => format!("{}: {wait}", self.current),
            _ => self.current.clone(),
        }
    }

    /// A step begins or ends: always logged.
    pub fn step(&mut self, msg: &str) {
        self.clear_live();
        self.current = msg.to_string();
        tracing::info!("{msg}");
        crate::systemd::status(msg);
        self.last_wait = None;
    }

    /// A warning that does not stop `start`.
    pub fn warn(&mut self, msg: &str) {
        self.clear_live();
        tracing::warn!("{msg}");
    }

    /// Still waiting: the live line and `STATUS=` follow every call; the log gets the
    /// line when it changes or every [`WAIT_LOG_EVERY`].
    pub fn waiting(&mut self, msg: &str) {
        let line = format!("[{:5.1}s] {msg}", self.elapsed().as_secs_f64());
        let changed = self.last_wait.as_ref().is_none_or(|(last, _)| last != msg);
        if changed {
            crate::systemd::status(msg);
        }
        let due = changed
            || self
                .last_wait
                .as_ref()
                .is_some_and(|(_, at)| at.elapsed() >= WAIT_LOG_EVERY);
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{line}");
            let _ = err.flush();
            self.live = true;
        } else if due {
            tracing::info!("{msg}");
        }
        if due {
            self.last_wait = Some((msg.to_string(), Instant::now()));
        }
    }

    fn clear_live(&mut self) {
        if self.live {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.live = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear_live();
    }
}
