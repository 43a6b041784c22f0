//! `backup --metrics-file`: Prometheus metrics in node_exporter's textfile-collector
//! format, written after every run, good or bad, so an alert can fire on a backup that
//! stopped happening (the timer not running) as well as on one that fails.
//!
//! A textfile is a snapshot, not a scrape target with memory, so what must outlive a
//! run is carried in the file itself: the previous file is read back, its counters are
//! continued and, after a failed run, the last success's gauges are kept as they were
//! (an alert on `time() - kubeboot_backup_last_success_timestamp_seconds` keeps its
//! meaning). The file is replaced atomically (temp, fsync, rename; the temp file's name
//! starts with a dot and does not end in `.prom`, so the collector never reads it).
//! Rendering and parsing are pure; only [`write`] touches the disk.

use std::path::Path;

use crate::fsutil::{self, FsError};

/// Names, help and type of every metric, in the order written.
const LAST_SUCCESS: &str = "kubeboot_backup_last_success_timestamp_seconds";
const LAST_SIZE: &str = "kubeboot_backup_last_size_bytes";
const LAST_REVISION: &str = "kubeboot_backup_last_revision";
const LAST_DURATION: &str = "kubeboot_backup_last_duration_seconds";
const LAST_RUN: &str = "kubeboot_backup_last_run_timestamp_seconds";
const LAST_RUN_OK: &str = "kubeboot_backup_last_run_success";
const RUNS: &str = "kubeboot_backup_runs_total";
const FAILURES: &str = "kubeboot_backup_failures_total";
const VERIFY_FAILURES: &str = "kubeboot_backup_verification_failures_total";
const LAST_UPLOAD: &str = "kubeboot_backup_last_upload_success_timestamp_seconds";
const UPLOAD_FAILURES: &str = "kubeboot_backup_upload_failures_total";

/// What the file says: the last success and the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    /// Unix seconds of the last successful run's end; 0 before the first.
    pub last_success: f64,
    /// Bytes the last successful backup keeps on disk (snapshot or archive, and PKI).
    pub last_size: u64,
    pub last_revision: i64,
    pub last_duration: f64,
    /// Unix seconds of the last run's end, whatever its outcome.
    pub last_run: f64,
    pub last_run_ok: bool,
    pub runs: u64,
    /// Runs that kept no backup, for any reason.
    pub failures: u64,
    /// Runs whose snapshot was taken but was not restorable.
    pub verification_failures: u64,
    /// Unix seconds of the last run whose backup reached the object store; 0 before.
    pub last_upload: f64,
    /// Runs that kept a backup but could not copy it to the object store.
    pub upload_failures: u64,
}

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Run {
    Success {
        size: u64,
        revision: i64,
        duration: f64,
        /// With `--remote`: whether the upload succeeded.
        uploaded: Option<bool>,
    },
    /// No backup kept; `verification` when the snapshot was not restorable.
    Failure { verification: bool },
}

impl Metrics {
    /// The metrics after `run`, ended at `now` (Unix seconds), following `self`.
    pub fn after(self, run: Run, now: f64) -> Metrics {
        let mut m = self;
        m.runs += 1;
        m.last_run = now;
        match run {
            Run::Success {
                size,
                revision,
                duration,
                uploaded,
            } => {
                match uploaded {
                    Some(true) => m.last_upload = now,
                    Some(false) => m.upload_failures += 1,
                    None => {}
                }
                m.last_run_ok = true;
                m.last_success = now;
                m.last_size = size;
                m.last_revision = revision;
                m.last_duration = duration;
            }
            Run::Failure { verification } => {
                m.last_run_ok = false;
                m.failures += 1;
                m.verification_failures += u64::from(verification);
            }
        }
        m
    }
}

/// Reads the previous file's values. Unknown lines, comments and values that do not
/// parse are skipped: a hand-edited or foreign file restarts those counters at 0
/// (Prometheus' `increase()` treats that as a counter reset) rather than failing the
/// backup.
pub fn parse(text: &str) -> Metrics {
    let mut m = Metrics::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        if name.starts_with('#') {
            continue;
        }
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        if !v.is_finite() || v < 0.0 {
            continue;
        }
        // Counters and sizes are whole numbers written by [`render`]; `as` saturates.
        match name {
            LAST_SUCCESS => m.last_success = v,
            LAST_SIZE => m.last_size = v as u64,
            LAST_REVISION => m.last_revision = v as i64,
            LAST_DURATION => m.last_duration = v,
            LAST_RUN => m.last_run = v,
            LAST_RUN_OK => m.last_run_ok = v >= 1.0,
            RUNS => m.runs = v as u64,
            FAILURES => m.failures = v as u64,
            VERIFY_FAILURES => m.verification_failures = v as u64,
            LAST_UPLOAD => m.last_upload = v,
            UPLOAD_FAILURES => m.upload_failures = v as u64,
            _ => {}
        }
    }
    m
}

/// The textfile: `# HELP`, `# TYPE` and one sample per metric.
pub fn render(m: &Metrics) -> String {
    let rows: [(&str, &str, &str, String); 11] = [
        (
            LAST_SUCCESS,
            "gauge",
            "Unix time the last verified backup was kept (0: never).",
            format!("{}", m.last_success),
        ),
        (
            LAST_SIZE,
            "gauge",
            "Bytes the last kept backup holds on disk.",
            m.last_size.to_string(),
        ),
        (
            LAST_REVISION,
            "gauge",
            "etcd revision of the last kept backup.",
            m.last_revision.to_string(),
        ),
        (
            LAST_DURATION,
            "gauge",
            "Seconds the last successful backup run took.",
            format!("{:.3}", m.last_duration),
        ),
        (
            LAST_RUN,
            "gauge",
            "Unix time the last backup run ended, whatever its outcome.",
            format!("{}", m.last_run),
        ),
        (
            LAST_RUN_OK,
            "gauge",
            "1 if the last backup run kept a backup, else 0.",
            u8::from(m.last_run_ok).to_string(),
        ),
        (
            RUNS,
            "counter",
            "Backup runs that wrote this file.",
            m.runs.to_string(),
        ),
        (
            FAILURES,
            "counter",
            "Backup runs that kept no backup.",
            m.failures.to_string(),
        ),
        (
            VERIFY_FAILURES,
            "counter",
            "Backup runs whose snapshot was taken but was not restorable.",
            m.verification_failures.to_string(),
        ),
        (
            LAST_UPLOAD,
            "gauge",
            "Unix time a kept backup last reached the object store (0: never).",
            format!("{}", m.last_upload),
        ),
        (
            UPLOAD_FAILURES,
            "counter",
            "Backup runs that kept a backup but could not copy it to the object store.",
            m.upload_failures.to_string(),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    out
}

/// Reads the previous `path` (absent: all zero), applies `run` and replaces the file
/// atomically, mode 0644 (node_exporter runs as another user; nothing in it is secret).
pub fn write(path: &Path, run: Run, now: f64) -> Result<Metrics, FsError> {
    let previous = match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Metrics::default(),
        Err(e) => return Err(FsError::io("read", path)(e)),
    };
    let next = previous.after(run, now);
    fsutil::write_atomic(path, render(&next).as_bytes(), 0o644)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_survive_and_a_failure_keeps_the_last_success() {
        let ok = Run::Success {
            size: 4096,
            revision: 77,
            duration: 1.5,
            uploaded: Some(true),
        };
        let m = Metrics::default().after(ok, 1000.0);
        let m = parse(&render(&m));
        assert_eq!(m.runs, 1);
        assert!(m.last_run_ok);
        let m = parse(&render(
            &m.after(Run::Failure { verification: true }, 2000.0),
        ));
        assert_eq!(
            m,
            Metrics {
                last_success: 1000.0,
                last_size: 4096,
                last_revision: 77,
                last_duration: 1.5,
                last_run: 2000.0,
                last_run_ok: false,
                runs: 2,
                failures: 1,
                verification_failures: 1,
                last_upload: 1000.0,
                upload_failures: 0,
            }
        );
        let m = m.after(
            Run::Failure {
                verification: false,
            },
            3000.0,
        );
        assert_eq!((m.failures, m.verification_failures), (2, 1));
        // A backup kept but not uploaded: a success, and an upload failure.
        let failed_upload = Run::Success {
            size: 1,
            revision: 78,
            duration: 1.0,
            uploaded: Some(false),
        };
        let m = parse(&render(&m.after(failed_upload, 4000.0)));
        assert_eq!(
            (m.last_success, m.last_upload, m.upload_failures),
            (4000.0, 1000.0, 1)
        );
    }

    #[test]
    fn every_metric_has_help_and_type_before_its_sample() {
        let text = render(&Metrics::default());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 33);
        for chunk in lines.chunks(3) {
            let name = chunk[2].split(' ').next().unwrap();
            assert!(
                chunk[0].starts_with(&format!("# HELP {name} ")),
                "{chunk:?}"
            );
            assert!(
                chunk[1].starts_with(&format!("# TYPE {name} ")),
                "{chunk:?}"
            );
            let kind = chunk[1].rsplit(' ').next().unwrap();
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
        }
    }

    #[test]
    fn a_foreign_file_restarts_what_it_cannot_read() {
        let m = parse(
            "garbage\nkubeboot_backup_runs_total NaN\nkubeboot_backup_failures_total 3\n# x 1\nkubeboot_backup_last_revision -5\n",
        );
        assert_eq!(m.failures, 3);
        assert_eq!(m.runs, 0);
        assert_eq!(m.last_revision, 0);
    }

    #[test]
    fn write_replaces_the_file_and_leaves_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("kubeboot_backup.prom");
        write(
            &path,
            Run::Failure {
                verification: false,
            },
            10.0,
        )
        .unwrap();
        let m = write(&path, Run::Failure { verification: true }, 20.0).unwrap();
        assert_eq!((m.runs, m.failures, m.verification_failures), (2, 2, 1));
        let names: Vec<String> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["kubeboot_backup.prom"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }
}
