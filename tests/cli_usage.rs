//! Usage errors through the real binary (issue 15, finding 9): one line on stderr,
//! `kubeboot: error: …`, exit 2, naming what is wrong and where the help is; never
//! clap's usage block, and never the `--config <FILE>` that `KUBEBOOT_CONFIG` made
//! clap show, or the hidden commands clap listed. `--help` and `--version` keep clap's
//! own output.

mod common;

use common::{assert_fails, kubeboot, stderr, stdout};

#[test]
fn usage_errors_are_one_line_naming_the_help() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["inspect", "--nope", "x.db"],
            "unexpected argument '--nope' found",
        ),
        (
            &["recover"],
            "the following required arguments were not provided: --recovery-dir <DIR>",
        ),
        (
            &["backup", "list", "-o", "nope"],
            "invalid value 'nope' for '--output <OUTPUT>'",
        ),
        (
            &["no-such-command"],
            "unrecognized subcommand 'no-such-command'",
        ),
    ];
    for (args, needle) in cases {
        let out = kubeboot(args);
        assert_fails(&out, 2, needle);
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("--config"), "{args:?}: {err}");
        assert!(err.contains("--help')"), "{args:?}: {err}");
    }
    let out = kubeboot(&["inspect", "--nope", "x.db"]);
    assert!(stderr(&out).contains("(see 'kubeboot inspect --help')"));
}

#[test]
fn help_and_version_are_clap_s_own() {
    let out = kubeboot(&["--version"]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("kubeboot "), "{}", stdout(&out));
    let out = kubeboot(&["inspect", "--help"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("Usage: kubeboot inspect"),
        "{}",
        stdout(&out)
    );
    // A bare `kubeboot` is a usage error like the others, and names no hidden command.
    let out = kubeboot(&[]);
    assert_fails(&out, 2, "requires a subcommand");
    assert!(
        stderr(&out).contains("(see 'kubeboot --help')"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("generate"), "{}", stderr(&out));
}
