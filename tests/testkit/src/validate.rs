//! The independent schema check every manifest kubeboot writes must pass (docs/design.md
//! §6): `kubernetes-validate --strict -k 1.35.0` from PyPI. A manifest that
//! k8s-openapi accepts but the Kubernetes schema rejects is a kubeboot bug.
//!
//! The validator's path comes from `KUBEBOOT_VALIDATE` (`eval "$(scripts/setup-tools)"`).
//! Without it the check is skipped loudly, except under `CI`, where a silently
//! skipped check would hide regressions, so it fails instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Kubernetes version manifests are checked against.
pub const KUBERNETES_VERSION: &str = "1.35.0";
const TIMEOUT: Duration = Duration::from_secs(120);

/// The validator to run, or `None` (after printing `SKIPPED`) when it is not set up.
///
/// # Panics
/// When it is not set up and `CI` is set.
pub fn validator() -> Option<String> {
    if let Some(v) = std::env::var("KUBEBOOT_VALIDATE")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return Some(v);
    }
    if std::env::var_os("CI").is_some() {
        panic!("KUBEBOOT_VALIDATE is not set under CI; run scripts/setup-tools");
    }
    // Straight to stderr, not eprintln!: the harness captures that and hides it.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: kubernetes-validate not found (run scripts/setup-tools)"
    );
    None
}

/// Runs `validator` on `file` within a timeout; returns (accepted, its output).
///
/// # Panics
/// When the validator cannot be started or does not finish in time.
pub fn run(validator: &str, file: &Path) -> (bool, String) {
    let log = tempfile::NamedTempFile::new().expect("temp file for the validator's output");
    let mut child = Command::new(validator)
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(log.reopen().expect("reopen log"))
        .stderr(log.reopen().expect("reopen log"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {validator}: {e}"));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the validator") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{validator} on {} did not finish within {TIMEOUT:?}",
                file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(log.path()).unwrap_or_default();
    (status.success(), output)
}

/// Checks every file; returns whether the check ran (false: skipped, see [`validator`]).
///
/// # Panics
/// Listing every rejected file with the validator's output.
pub fn assert_valid(files: &[PathBuf]) -> bool {
    let Some(validator) = validator() else {
        return false;
    };
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let (ok, output) = run(&validator, f);
            (!ok).then(|| format!("{}:\n{output}", f.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "kubernetes-validate rejected:\n{}",
        failures.join("\n")
    );
    true
}
