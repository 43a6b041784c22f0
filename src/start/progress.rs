//! Where `start`'s progress goes. An operator at a terminal sees one live line that
//! keeps saying what is being waited for; the journal always gets log lines (a step
//! each, and a waiting line at most every [`WAIT_LOG_EVERY`]); systemd gets
//! `STATUS=` so `systemctl status kubeboot` shows the same words.
//!
//! Every log line carries the step it belongs to (`KUBEBOOT_STEP`, set by
//! [`Progress::phase`]) and, during a pivot, the component (`KUBEBOOT_COMPONENT`): the
//! waits inside a step are tagged too, without each caller naming it.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::systemd::logfields::{self, Fields};

/// How often an unchanged wait is repeated in the log.
pub const WAIT_LOG_EVERY: Duration = Duration::from_secs(15);

pub struct Progress {
    tty: bool,
    started: Instant,
    live: bool,
    current: String,
    last_wait: Option<(String, Instant)>,
    /// The journal's `KUBEBOOT_STEP` of every line until the next [`Progress::phase`].
    phase: Option<&'static str>,
    /// The journal's `KUBEBOOT_COMPONENT`, while one component is worked on.
    component: Option<String>,
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
        let tty = crate::progress::stderr_is_terminal();
        Progress {
            tty,
            started: Instant::now(),
            live: false,
            current: step.into(),
            last_wait: None,
            phase: None,
            component: None,
        }
    }

    /// The lines that follow belong to `step` (a word: `install`, `pivot`, …), and to no
    /// component until [`Progress::component`] names one.
    pub fn phase(&mut self, step: &'static str) {
        self.phase = Some(step);
        self.component = None;
    }

    /// The lines that follow are about `component` (or no longer about one).
    pub fn component(&mut self, component: Option<&str>) {
        self.component = component.map(str::to_string);
    }

    /// `extra` with the current step and component where it names none.
    fn fields<'a>(&'a self, extra: Fields<'a>) -> Fields<'a> {
        Fields {
            step: extra.step.or(self.phase),
            component: extra.component.or(self.component.as_deref()),
            ..extra
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
        self.step_with(Fields::default(), msg);
    }

    /// [`Progress::step`], with more journal fields (a decision, a source, an outcome).
    pub fn step_with(&mut self, extra: Fields<'_>, msg: &str) {
        self.clear_live();
        self.current = msg.to_string();
        logfields::info(self.fields(extra), msg);
        crate::systemd::status(msg);
        self.last_wait = None;
    }

    /// A warning that does not stop `start`.
    pub fn warn(&mut self, msg: &str) {
        self.clear_live();
        logfields::warn(self.fields(Fields::default()), msg);
    }

    /// A line for the log only (no `STATUS=`, not the current step).
    pub fn note(&self, msg: &str) {
        logfields::info(self.fields(Fields::default()), msg);
    }

    /// Still waiting: the live line and `STATUS=` follow every call; the log gets the
    /// line when it changes or every [`WAIT_LOG_EVERY`].
    pub fn waiting(&mut self, msg: &str) {
        self.waiting_with(Fields::default(), msg);
    }

    /// [`Progress::waiting`], with more journal fields.
    pub fn waiting_with(&mut self, extra: Fields<'_>, msg: &str) {
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
            logfields::info(self.fields(extra), msg);
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
