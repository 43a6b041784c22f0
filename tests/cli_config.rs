//! The config file through the real binary: its [COMMAND] table supplies flags, the
//! command line wins, mistakes are exit 2 naming the file and the key.

mod common;

use std::fs;
use std::process::Command;

use common::{assert_fails, kubeboot, stdout};

#[test]
fn a_table_supplies_flags_and_the_command_line_wins() {
    let t = tempfile::tempdir().unwrap();
    let from_config = t.path().join("from-config");
    let from_flag = t.path().join("from-flag");
    let config = t.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[backup]\nbackup-dir = {:?}\n",
            from_config.to_str().unwrap()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();

    // --list on an empty dir fails naming the dir it looked in.
    let out = kubeboot(&["--config", c, "backup", "--list"]);
    assert_fails(
        &out,
        1,
        &format!("{}: no whole backup", from_config.display()),
    );
    let out = kubeboot(&[
        "backup",
        "--config",
        c,
        "--list",
        "--backup-dir",
        from_flag.to_str().unwrap(),
    ]);
    assert_fails(
        &out,
        1,
        &format!("{}: no whole backup", from_flag.display()),
    );

    // The environment names the file too.
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(["backup", "--list"])
        .env("KUBEBOOT_CONFIG", &config)
        .output()
        .unwrap();
    assert_fails(
        &out,
        1,
        &format!("{}: no whole backup", from_config.display()),
    );

    let out = kubeboot(&["--config", c, "config", "check"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), format!("{c}: ok ([backup])\n"));
}

#[test]
fn mistakes_are_exit_2_naming_the_file_and_key() {
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("config.toml");
    let c = config.to_str().unwrap();
    fs::write(&config, "[ensure]\nboot-grace = \"soon\"\n").unwrap();
    for args in [
        vec!["--config", c, "config", "check"],
        vec!["--config", c, "ensure", "--dry-run"],
    ] {
        let out = kubeboot(&args);
        assert_fails(&out, 2, &format!("{c}: [ensure] boot-grace = \"soon\""));
    }
    fs::write(&config, "[ensure]\nboot-graze = \"5m\"\n").unwrap();
    let out = kubeboot(&["--config", c, "config", "check"]);
    assert_fails(
        &out,
        2,
        "[ensure] boot-graze: `kubeboot ensure` has no --boot-graze",
    );
    fs::write(&config, "[ensure\n").unwrap();
    let out = kubeboot(&["--config", c, "config", "check"]);
    assert_fails(&out, 2, c);

    let missing = t.path().join("absent.toml");
    let out = kubeboot(&["--config", missing.to_str().unwrap(), "config", "check"]);
    assert_fails(&out, 2, "absent.toml");
}

/// Issue 15, finding 1: a typo in one table locked the operator out of every command,
/// `--help` and `--version` included. Now only the command that owns the table (and
/// `config check`) refuses it.
#[test]
fn a_mistake_in_one_table_never_locks_out_help_or_other_commands() {
    let t = tempfile::tempdir().unwrap();
    let bad = t.path().join("bad.toml");
    fs::write(&bad, "[ensure]\nboot-graze = \"5m\"\n").unwrap();
    let broken = t.path().join("broken.toml");
    fs::write(&broken, "[ensure\n").unwrap();
    let run = |config: &std::path::Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kubeboot"))
            .args(args)
            .env("KUBEBOOT_CONFIG", config)
            .output()
            .unwrap()
    };
    for config in [&bad, &broken] {
        for args in [
            &["--help"][..],
            &["--version"],
            &["ensure", "--help"],
            &["generate", "completions", "bash"],
        ] {
            let out = run(config, args);
            assert!(out.status.success(), "{args:?}: {}", common::stderr(&out));
        }
        // A read-only command with no table of its own runs (and fails on its own terms).
        let out = run(config, &["inspect", "/nonexistent/snapshot.db"]);
        let err = common::stderr(&out);
        assert!(err.contains("/nonexistent/snapshot.db"), "{err}");
        assert!(!err.contains("ensure"), "{err}");
    }
    let out = run(&bad, &["ensure", "--dry-run"]);
    assert_fails(
        &out,
        2,
        "[ensure] boot-graze: `kubeboot ensure` has no --boot-graze",
    );
    let out = run(&bad, &["config", "check"]);
    assert_fails(&out, 2, "boot-graze");
}
