//! One exit code per condition across every command (issue 15, finding 6), as the
//! README's table gives them, checked as a table: the same condition in different
//! commands must not answer with different codes. Only conditions that need no server;
//! those that do are in each command's own tests (3 for an unreachable etcd or
//! api-server in cli_recover_apiserver.rs and cli_ensure.rs, 4-7 in cli_ensure.rs and
//! ensure_lock.rs, 8 in cli_backup_ops.rs).

mod common;

use common::{kubeboot, stderr};

#[test]
fn each_condition_has_one_exit_code_in_every_command() {
    let work = tempfile::tempdir().unwrap();
    let w = |p: &str| work.path().join(p).to_str().unwrap().to_string();
    let file = w("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let not_bbolt = w("not-bbolt.db");
    std::fs::write(&not_bbolt, vec![7u8; 4096 + 32]).unwrap();
    let missing = w("missing.db");
    let bad_toml = w("bad.toml");
    std::fs::write(&bad_toml, "[recover]\nno-such-key = 1\n").unwrap();
    let rec = w("rec");

    // (condition, args, code, a word the one error line must hold)
    // 2: usage or config error; first an unknown flag, to every command.
    let mut table: Vec<(&str, Vec<&str>, i32, &str)> =
        ["inspect", "recover", "backup", "ensure", "render"]
            .into_iter()
            .map(|cmd| {
                (
                    "unknown flag",
                    vec![cmd, "--no-such-flag"],
                    2,
                    "--no-such-flag",
                )
            })
            .collect();
    table.extend([
        (
            "no source",
            vec!["recover", "--recovery-dir", &rec],
            2,
            "--etcd-servers",
        ),
        (
            "a file as the target dir",
            vec![
                "recover",
                "--recovery-dir",
                &file,
                "--etcd-backup-file",
                &missing,
            ],
            2,
            "not a directory",
        ),
        (
            "a file as the target dir",
            vec!["render", "--asset-dir", &file],
            2,
            "not a directory",
        ),
        (
            "an unknown key in the command's table",
            vec!["--config", &bad_toml, "recover", "--recovery-dir", &rec],
            2,
            "no-such-key",
        ),
        // 3: the input could not be read.
        (
            "missing input file",
            vec!["inspect", &missing],
            3,
            "missing.db",
        ),
        (
            "missing input file",
            vec!["decode", &missing],
            3,
            "missing.db",
        ),
        (
            "missing input file",
            vec![
                "recover",
                "--recovery-dir",
                &rec,
                "--etcd-backup-file",
                &missing,
            ],
            3,
            "missing.db",
        ),
        (
            "not a snapshot",
            vec!["inspect", &not_bbolt],
            3,
            "not-bbolt.db",
        ),
        (
            "not a snapshot",
            vec![
                "recover",
                "--recovery-dir",
                &rec,
                "--etcd-backup-file",
                &not_bbolt,
            ],
            3,
            "not-bbolt.db",
        ),
    ]);
    let mut wrong = Vec::new();
    for (condition, args, code, word) in &table {
        let out = kubeboot(args);
        let err = stderr(&out);
        // Log lines (` INFO …`) may come first; the error is one line of its own.
        let said: Vec<&str> = err.lines().filter(|l| !l.starts_with(' ')).collect();
        let one_line = said.len() == 1 && said[0].starts_with("kubeboot: error: ");
        if out.status.code() != Some(*code) || !err.contains(word) || !one_line {
            wrong.push(format!(
                "{condition}: kubeboot {}: exit {:?} (want {code}), stderr {err:?}",
                args.join(" "),
                out.status.code()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Nothing half-written by any of them.
    assert!(!work.path().join("rec").exists());
}
