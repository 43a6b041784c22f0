//! Running the real `kubectl` against a [`Harness`]: the doubles are checked with a real
//! client (docs/design.md §6), and every such test runs it the same way.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use super::harness::Harness;

/// Where the machine image (or Debian's kubernetes-client) puts kubectl.
pub const KUBECTL: &str = "/usr/bin/kubectl";
/// One kubectl command may take this long.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

/// Whether kubectl is installed; tests print `SKIPPED:` and return when it is not.
pub fn available() -> bool {
    Path::new(KUBECTL).exists()
}

/// `kubectl --kubeconfig <harness> ARGS`: stdout, or an error with stderr and stdout.
pub async fn run(h: &Harness, args: &[&str]) -> Result<String> {
    let out = tokio::time::timeout(
        COMMAND_DEADLINE,
        Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&h.kubeconfig)
            .arg("--cache-dir")
            .arg(h.dir.path().join("kubectl-cache"))
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .with_context(|| format!("kubectl {args:?} timed out"))??;
    if !out.status.success() {
        bail!(
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
