//! The shipped systemd units are checked by systemd's own parser
//! (`systemd-analyze verify`, which loads them without running systemd), with the
//! binary path pointed at the built `kubeboot`: an unknown key, a bad value or a
//! missing binary fails the test. What they do at boot is for the nspawn tests.

use std::fs;
use std::path::Path;
use std::process::Command;

#[test]
fn units_pass_systemd_analyze_verify() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("units");
    let work = tempfile::tempdir().unwrap();
    let env_file = work.path().join("env");
    fs::write(
        &env_file,
        "KUBEBOOT_BACKUP_ARGS=--etcd-servers http://127.0.0.1:2379\n",
    )
    .unwrap();
    let mut names = Vec::new();
    for entry in fs::read_dir(&units).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".service") || name.ends_with(".timer")) {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("/usr/bin/kubeboot") || name.ends_with(".timer"),
            "{name}"
        );
        let text = text.replace("/usr/bin/kubeboot", env!("CARGO_BIN_EXE_kubeboot"));
        let text = text
            .lines()
            .map(|l| match l.strip_prefix("EnvironmentFile=") {
                Some(_) => format!("EnvironmentFile={}", env_file.display()),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        fs::write(work.path().join(&name), text).unwrap();
        names.push(work.path().join(&name));
    }
    assert!(names.len() >= 2, "units/ has the backup service and timer");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&names)
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/setup-tools installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze complained: {stderr}"
    );
}

/// `ensure` judges components by their node's Lease renewals against the local clock,
/// and backups are named by it: both units wait for time-sync.target (ordered after
/// it only, since it is a passive target).
#[test]
fn boot_and_backup_units_order_after_time_sync() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("units");
    for name in ["kubeboot.service", "kubeboot-backup.service"] {
        let text = fs::read_to_string(units.join(name)).unwrap();
        let after: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("After="))
            .flat_map(str::split_whitespace)
            .collect();
        assert!(after.contains(&"time-sync.target"), "{name}: {after:?}");
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("Wants=") && l.contains("time-sync.target")),
            "{name} must not pull in the passive time-sync.target"
        );
    }
}
