use super::*;
use crate::cmd::Cli;
use clap::CommandFactory;

fn argv(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn table(text: &str) -> toml::Table {
    text.parse().unwrap()
}

fn applied(config: &str, args: &[&str]) -> Result<Vec<String>, ConfigError> {
    apply(
        &Cli::command(),
        &table(config),
        Path::new("/etc/kubeboot/config.toml"),
        argv(args),
    )
    .map(|v| v.into_iter().map(|s| s.into_string().unwrap()).collect())
}

const CONFIG: &str = r#"
[backup]
etcd-servers = ["https://10.0.0.10:2379", "https://10.0.0.11:2379"]
backup-dir = "/srv/backups"
keep-last = 9

[ensure]
boot-grace = "3m"
allow-backup-restore = true
dry-run = false
"#;

#[test]
fn the_command_s_table_becomes_flags_before_the_operator_s() {
    let out = applied(
        CONFIG,
        &["kubeboot", "--log-format", "json", "backup", "--list"],
    )
    .unwrap();
    assert_eq!(
        out,
        [
            "kubeboot",
            "--log-format",
            "json",
            "backup",
            "--backup-dir=/srv/backups",
            "--etcd-servers=https://10.0.0.10:2379",
            "--etcd-servers=https://10.0.0.11:2379",
            "--keep-last=9",
            "--list"
        ]
    );
    // --log-target's value is not taken for the command.
    let out = applied(CONFIG, &["kubeboot", "--log-target", "stderr", "backup"]).unwrap();
    assert_eq!(out[..4], ["kubeboot", "--log-target", "stderr", "backup"]);
    assert_eq!(out[4], "--backup-dir=/srv/backups");
    let out = applied(CONFIG, &["kubeboot", "ensure"]).unwrap();
    assert_eq!(
        out,
        [
            "kubeboot",
            "ensure",
            "--allow-backup-restore",
            "--boot-grace=3m"
        ]
    );
}

#[test]
fn the_command_line_wins() {
    let out = applied(
        CONFIG,
        &[
            "kubeboot",
            "backup",
            "--keep-last",
            "2",
            "--etcd-servers=http://x:2379",
        ],
    )
    .unwrap();
    assert_eq!(
        out,
        [
            "kubeboot",
            "backup",
            "--backup-dir=/srv/backups",
            "--keep-last",
            "2",
            "--etcd-servers=http://x:2379"
        ]
    );
    // Other commands and no command are left alone.
    assert_eq!(
        applied(CONFIG, &["kubeboot", "inspect", "f"]).unwrap(),
        ["kubeboot", "inspect", "f"]
    );
    assert_eq!(
        applied(CONFIG, &["kubeboot", "--help"]).unwrap(),
        ["kubeboot", "--help"]
    );
}

#[test]
fn mistakes_name_the_file_and_the_key() {
    let cases = [
        ("[bakup]\nx = 1", "[bakup]: no such command"),
        ("[generate]\nx = 1", "[generate]: no such command"),
        (
            "[backup]\nkeep-lats = 1",
            "[backup] keep-lats: `kubeboot backup` has no --keep-lats",
        ),
        (
            "[backup]\nkeep-last = \"many\"",
            "[backup] keep-last = \"many\": invalid value",
        ),
        (
            "[ensure]\nboot-grace = \"5 parsecs\"",
            "[ensure] boot-grace = \"5 parsecs\"",
        ),
        (
            "[ensure]\ndry-run = \"yes\"",
            "[ensure] dry-run: must be true or false",
        ),
        (
            "[ensure]\nkubeconfig = true",
            "[ensure] kubeconfig: must be a string",
        ),
        ("backup = 1", "backup: must be a table"),
        ("[backup]\nlog-format = \"json\"", "has no --log-format"),
    ];
    for (text, want) in cases {
        // `config check` reads every table.
        let err = check(
            &Cli::command(),
            &table(text),
            Path::new("/etc/kubeboot/config.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("/etc/kubeboot/config.toml: "), "{err}");
        assert!(err.contains(want), "{text:?}: {err}");
        // The command that owns the table refuses it too; another command ignores it.
        let owner = text
            .trim_start_matches('[')
            .split([']', ' '])
            .next()
            .unwrap();
        if let Ok(err) = applied(text, &["kubeboot", owner]).map_err(|e| e.to_string()) {
            assert!(
                matches!(owner, "bakup" | "generate"),
                "{text:?}: `{owner}` applied {err:?}"
            );
        }
        let other = if owner == "ensure" {
            "backup"
        } else {
            "ensure"
        };
        if !text.contains(&format!("[{other}]")) {
            assert!(applied(text, &["kubeboot", other]).is_ok(), "{text:?}");
        }
    }
}

#[test]
fn the_file_is_found_by_flag_then_environment_then_default() {
    let (p, explicit) = locate(&argv(&["kubeboot", "--config", "/a.toml", "ensure"]), None);
    assert_eq!((p.to_str().unwrap(), explicit), ("/a.toml", true));
    let (p, _) = locate(
        &argv(&["kubeboot", "ensure", "--config=/b.toml"]),
        Some("/env".into()),
    );
    assert_eq!(p.to_str().unwrap(), "/b.toml");
    let (p, explicit) = locate(&argv(&["kubeboot", "ensure"]), Some("/env.toml".into()));
    assert_eq!((p.to_str().unwrap(), explicit), ("/env.toml", true));
    let (p, explicit) = locate(&argv(&["kubeboot", "ensure"]), None);
    assert_eq!((p.to_str().unwrap(), explicit), (DEFAULT_PATH, false));
}

#[test]
fn a_missing_default_is_no_config_but_a_missing_named_file_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let absent = t.path().join("config.toml");
    assert!(read(&absent, false).unwrap().is_none());
    let err = read(&absent, true).unwrap_err().to_string();
    assert!(err.contains("config.toml"), "{err}");
    std::fs::write(&absent, "[backup\n").unwrap();
    let err = read(&absent, false).unwrap_err().to_string();
    assert!(
        err.starts_with(&absent.display().to_string()) && !err.contains('\n'),
        "{err}"
    );
}
