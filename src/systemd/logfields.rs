//! The structured fields of kubeboot's log lines, for `journalctl KUBEBOOT_DECISION=recover`
//! and the like (docs/runbook.md lists each field and its values).
//!
//! A line's fields are tracing fields named `step`, `component`, `pod`, `decision`,
//! `source` and `outcome`; the journal layer ([`super::journal`]) prefixes every field with `KUBEBOOT_`
//! and upper-cases it, so they arrive as `KUBEBOOT_STEP` and so on, beside `MESSAGE` (the
//! line's text) and `KUBEBOOT_COMMAND` (added to every entry). On stderr the text lines
//! leave these six out ([`TextFields`]), so a line reads as it always has; JSON lines
//! keep them.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The field names that only the journal and JSON lines carry.
pub const JOURNAL_ONLY: [&str; 6] = ["step", "component", "pod", "decision", "source", "outcome"];

/// The fields of one line; each is sent only when set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    /// Where `start` (or `ensure`'s recovery) stands: see [`Fields::step`].
    pub step: Option<&'a str>,
    /// The control-plane component a pivot is about (`kube-apiserver`, …).
    pub component: Option<&'a str>,
    /// The pod a checkpoint line is about (`namespace/name`).
    pub pod: Option<&'a str>,
    /// `ensure`'s decision (`healthy`, `wait`, `recover`, `unhealthy`, `refused`,
    /// `no-source`, `failed`, `misconfigured`).
    pub decision: Option<&'a str>,
    /// A recovery's source (`apiserver`, `etcd`, `backup`, `local`).
    pub source: Option<&'a str>,
    /// What a step came to: a backup `written`, `kept`, `pruned`; a checkpoint
    /// `activated`, `deactivated`, …; a recovery `recovered`.
    pub outcome: Option<&'a str>,
}

impl<'a> Fields<'a> {
    pub fn step(step: &'a str) -> Self {
        Fields {
            step: Some(step),
            ..Fields::default()
        }
    }

    pub fn decision(decision: &'a str) -> Self {
        Fields {
            decision: Some(decision),
            ..Fields::default()
        }
    }

    pub fn pod(pod: &'a str) -> Self {
        Fields {
            pod: Some(pod),
            ..Fields::default()
        }
    }

    pub fn outcome(outcome: &'a str) -> Self {
        Fields {
            outcome: Some(outcome),
            ..Fields::default()
        }
    }

    pub fn with_source(self, source: &'a str) -> Self {
        Fields {
            source: Some(source),
            ..self
        }
    }

    pub fn with_component(self, component: &'a str) -> Self {
        Fields {
            component: Some(component),
            ..self
        }
    }
}

/// One event at `level` with `fields` and the text `msg`. A macro because tracing's
/// level must be a constant at each call site.
macro_rules! event_with {
    ($level:expr, $f:expr, $msg:expr) => {
        tracing::event!(
            $level,
            step = $f.step,
            component = $f.component,
            pod = $f.pod,
            decision = $f.decision,
            source = $f.source,
            outcome = $f.outcome,
            "{}",
            $msg
        )
    };
}

pub fn info(f: Fields<'_>, msg: &str) {
    event_with!(tracing::Level::INFO, f, msg);
}

pub fn warn(f: Fields<'_>, msg: &str) {
    event_with!(tracing::Level::WARN, f, msg);
}

pub fn error(f: Fields<'_>, msg: &str) {
    event_with!(tracing::Level::ERROR, f, msg);
}

/// The one error line a failed command ends with, as a journal entry: its fields and
/// the exit code (`KUBEBOOT_EXIT`).
pub fn error_with_exit(f: Fields<'_>, exit: u8, msg: &str) {
    tracing::error!(decision = f.decision, exit, "{}", msg);
}

/// tracing-subscriber's text fields, less [`JOURNAL_ONLY`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TextFields;

impl<'w> FormatFields<'w> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = Skipping(DefaultVisitor::new(writer, true));
        fields.record(&mut v);
        v.0.finish()
    }
}

/// Passes every field but the journal-only ones to the default visitor, method by
/// method, so each keeps the default's own rendering.
struct Skipping<V>(V);

fn shown(field: &Field) -> bool {
    !JOURNAL_ONLY.contains(&field.name())
}

impl<V: Visit> Visit for Skipping<V> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if shown(field) {
            self.0.record_f64(field, value)
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if shown(field) {
            self.0.record_i64(field, value)
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if shown(field) {
            self.0.record_u64(field, value)
        }
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        if shown(field) {
            self.0.record_i128(field, value)
        }
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        if shown(field) {
            self.0.record_u128(field, value)
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if shown(field) {
            self.0.record_bool(field, value)
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if shown(field) {
            self.0.record_str(field, value)
        }
    }
    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        if shown(field) {
            self.0.record_bytes(field, value)
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if shown(field) {
            self.0.record_error(field, value)
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if shown(field) {
            self.0.record_debug(field, value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    fn text_of(log: impl FnOnce()) -> String {
        let buf = Buf::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_ansi(false)
            .with_target(false)
            .without_time()
            .fmt_fields(TextFields)
            .finish();
        tracing::subscriber::with_default(sub, log);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn text_lines_leave_the_journal_fields_out() {
        let all = Fields::decision("recover")
            .with_source("backup")
            .with_component("kube-apiserver");
        let all = Fields {
            step: Some("pivot"),
            pod: Some("kube-system/x"),
            outcome: Some("recovered"),
            ..all
        };
        let out = text_of(|| {
            info(all, "recovering: the api-server is down");
            warn(
                Fields::step("install"),
                "installed a; the different copy is b",
            );
        });
        assert_eq!(
            out,
            " INFO recovering: the api-server is down\n \
             WARN installed a; the different copy is b\n"
        );
    }

    #[test]
    fn other_fields_still_show_as_before() {
        let out = text_of(|| {
            tracing::info!(dir = %"/b/x", revision = 5, "backup written");
            tracing::info!(dir = %"/b/x", source = "written", "backup written");
        });
        assert_eq!(
            out,
            " INFO backup written dir=/b/x revision=5\n INFO backup written dir=/b/x\n"
        );
    }
}
