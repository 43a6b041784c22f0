//! `secret-scan --secrets PATH... [--literal VALUE...] --logs PATH...`: fails (exit 1)
//! when a log under the `--logs` paths holds a secret planted under the `--secrets`
//! paths (see `kubeboot_testkit::secretscan`). Prints each leak as FILE:LINE and where
//! the secret came from, never the secret; exit 2 on bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use kubeboot_testkit::secretscan;

fn main() -> ExitCode {
    let (mut roots, mut literals, mut logs) = (Vec::new(), Vec::new(), Vec::new());
    let mut into = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--secrets" | "--literal" | "--logs" => into = Some(arg),
            _ => match into.as_deref() {
                Some("--secrets") => roots.push(PathBuf::from(arg)),
                Some("--literal") => literals.push(arg),
                Some("--logs") => logs.push(PathBuf::from(arg)),
                _ => {
                    eprintln!(
                        "usage: secret-scan --secrets PATH... [--literal VALUE...] --logs PATH..."
                    );
                    return ExitCode::from(2);
                }
            },
        }
    }
    if logs.is_empty() || (roots.is_empty() && literals.is_empty()) {
        eprintln!("usage: secret-scan --secrets PATH... [--literal VALUE...] --logs PATH...");
        return ExitCode::from(2);
    }
    let secrets = secretscan::collect(&roots, &literals);
    let (leaks, files) = secretscan::scan(&secrets, &logs);
    for leak in &leaks {
        eprintln!("secret-scan: LEAK {leak}");
    }
    eprintln!(
        "secret-scan: {} secrets, {files} log files, {} leaks",
        secrets.len(),
        leaks.len()
    );
    if leaks.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
