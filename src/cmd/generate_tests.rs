use super::*;

fn page_text(pages: &[(String, Vec<u8>)], name: &str) -> String {
    let (_, bytes) = pages
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no page {name}"));
    String::from_utf8(bytes.clone()).unwrap()
}

#[test]
fn every_visible_subcommand_has_a_page_and_hidden_ones_do_not() {
    let pages = man_pages().unwrap();
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"kubeboot.1"));
    let cli = Cli::command();
    let mut visible = 0;
    for sub in cli.get_subcommands() {
        let page = format!("kubeboot-{}.1", sub.get_name());
        if sub.is_hide_set() {
            assert!(
                !names.contains(&page.as_str()),
                "{page} is for a hidden command"
            );
        } else {
            visible += 1;
            assert!(names.contains(&page.as_str()), "no {page} in {names:?}");
        }
    }
    assert!(
        visible >= 6,
        "recover, inspect, decode, render, start, backup"
    );
    for expected in [
        "kubeboot-recover.1",
        "kubeboot-start.1",
        "kubeboot-backup.1",
    ] {
        assert!(names.contains(&expected), "{expected}");
    }
    assert!(!names.contains(&"kubeboot-generate.1"));
    assert!(!names.contains(&"kubeboot-help.1"));
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "duplicate page names: {names:?}");
}

/// The codes a page must list: all on the root page; 0 and its manual's on a command's
/// (`cmd::manual`, issue 15: EXIT STATUS per command).
fn codes_of(name: &str) -> Vec<Exit> {
    let path = name
        .trim_end_matches(".1")
        .trim_start_matches("kubeboot")
        .trim_start_matches('-')
        .replace('-', " ");
    match super::manual::of(&path) {
        Some(m) => m.exits.to_vec(),
        None => EXITS.to_vec(),
    }
}

#[test]
fn every_command_page_lists_exactly_its_exit_codes_with_their_meaning() {
    let codes: Vec<u8> = EXIT_CODES.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes,
        (0..=8).collect::<Vec<u8>>(),
        "one row per code, in order"
    );
    let pages = man_pages().unwrap();
    for (name, bytes) in &pages {
        // roff escapes '-'; words may wrap, so compare with the whitespace folded.
        let text = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("\\-", "-");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let status = text
            .split(".SH \"EXIT STATUS\"")
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: no EXIT STATUS"));
        let status = status.split(".SH").next().unwrap_or("");
        let want = codes_of(name);
        for e in EXITS {
            let code = e as u8;
            let said = meaning(e).split_whitespace().collect::<Vec<_>>().join(" ");
            let listed = status.contains(&format!("\\fB{code}\\fR {said}"));
            assert_eq!(
                listed,
                want.contains(&e),
                "{name}: exit {code} ({e:?}) listed {listed}: {status}"
            );
        }
        assert!(status.contains("\\fB0\\fR Done"), "{name}: {status}");
    }
}

#[test]
fn pages_are_roff_with_synopsis_exit_status_and_links() {
    let pages = man_pages().unwrap();
    for (name, bytes) in &pages {
        let text = String::from_utf8(bytes.clone()).unwrap();
        let title = name.trim_end_matches(".1");
        assert!(text.contains(&format!(".TH {title} 1")), "{name}: {text}");
        assert_eq!(text.matches(".ds Aq").count(), 2, "{name}: one preamble");
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH \"EXIT STATUS\"",
            ".SH \"SEE ALSO\"",
        ] {
            assert!(text.contains(section), "{name} lacks {section}");
        }
        for section in [".SH ENVIRONMENT", "KUBEBOOT_CONFIG", "KUBEBOOT_LOG"] {
            assert!(text.contains(section), "{name} lacks {section}");
        }
        if name != "kubeboot.1" {
            assert!(text.contains(".SH EXAMPLES"), "{name} lacks EXAMPLES");
        }
        assert!(text.contains(&format!("kubeboot {}", env!("CARGO_PKG_VERSION"))));
    }
    let recover = page_text(&pages, "kubeboot-recover.1");
    assert!(
        recover.contains("kubeboot recover"),
        "synopsis names the command"
    );
    assert!(recover.contains("recovery\\-dir"), "options are listed");
    assert!(
        recover.contains("\\fBkubeboot\\fR(1)"),
        "links back to kubeboot(1)"
    );
    let root = page_text(&pages, "kubeboot.1");
    assert!(root.contains("\\fBkubeboot\\-backup\\fR(1)"), "{root}");
    assert!(
        !root.contains("generate"),
        "the hidden command stays hidden"
    );
}

#[test]
fn exit_codes_match_the_cli_summary() {
    // The root page replaces clap's after-help summary with EXIT STATUS: they must
    // tell the same story.
    let cli = Cli::command();
    let summary = cli
        .get_after_help()
        .map(|s| s.to_string())
        .unwrap_or_default();
    for (code, _) in EXIT_CODES {
        assert!(
            summary.contains(&format!("{code} ")),
            "{code} missing from {summary}"
        );
    }
    assert_eq!(EXIT_CODES.map(|(c, _)| c), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn completions_for_each_shell_know_the_commands() {
    for shell in CompletionShell::value_variants() {
        let script = String::from_utf8(completions(*shell).unwrap()).unwrap();
        assert!(!script.trim().is_empty(), "{shell:?}");
        assert!(script.contains("recover"), "{shell:?}");
        assert!(script.contains("backup"), "{shell:?}");
        assert!(script.contains("kubeboot"), "{shell:?}");
    }
    let cli = Cli::command();
    assert_eq!(completion_command().get_name(), cli.get_name());
    assert_eq!(completion_command().get_version(), cli.get_version());
    let completing = completion_command();
    let offered: Vec<&str> = completing.get_subcommands().map(|s| s.get_name()).collect();
    for sub in cli.get_subcommands() {
        assert_eq!(
            offered.contains(&sub.get_name()),
            !sub.is_hide_set(),
            "{}",
            sub.get_name()
        );
    }
    for shell in CompletionShell::value_variants() {
        let script = String::from_utf8(completions(*shell).unwrap()).unwrap();
        // The word, not "generated" in some flag's help.
        let offered = script
            .match_indices("generate")
            .any(|(i, w)| !script[i + w.len()..].starts_with(|c: char| c.is_ascii_alphabetic()));
        assert!(!offered, "{shell:?} offers the hidden command");
    }
    let bash = String::from_utf8(completions(CompletionShell::Bash).unwrap()).unwrap();
    assert!(bash.contains("complete -F _kubeboot"), "{bash}");
    let zsh = String::from_utf8(completions(CompletionShell::Zsh).unwrap()).unwrap();
    assert!(zsh.starts_with("#compdef kubeboot"), "{zsh}");
    let fish = String::from_utf8(completions(CompletionShell::Fish).unwrap()).unwrap();
    assert!(fish.contains("complete -c kubeboot"), "{fish}");
}

/// Issue 15, finding 13: a file where a file is expected, nothing where it is not.
#[test]
fn completions_offer_files_only_where_a_file_is_expected() {
    assert_eq!(hint_for("FILE"), ValueHint::FilePath);
    assert_eq!(hint_for("DIR"), ValueHint::DirPath);
    assert_eq!(hint_for("ID|FILE|URL"), ValueHint::AnyPath);
    assert_eq!(hint_for("URLS"), ValueHint::Url);
    assert_eq!(hint_for("KEY"), ValueHint::Other);
    assert_eq!(hint_for("DURATION"), ValueHint::Other);
    let cmd = completion_command();
    let arg = |path: &[&str], long: &str| {
        let mut c = &cmd;
        for p in path {
            c = c.find_subcommand(p).unwrap();
        }
        c.get_arguments()
            .find(|a| a.get_long() == Some(long) || a.get_id() == long)
            .unwrap_or_else(|| panic!("{path:?} {long}"))
            .get_value_hint()
    };
    assert_eq!(arg(&["inspect"], "file"), ValueHint::FilePath);
    assert_eq!(arg(&["inspect"], "get"), ValueHint::Other);
    assert_eq!(arg(&["inspect"], "prefix"), ValueHint::Other);
    assert_eq!(arg(&["recover"], "etcd-servers"), ValueHint::Url);
    assert_eq!(arg(&["recover"], "recovery-dir"), ValueHint::DirPath);
    assert_eq!(arg(&["recover"], "kubeconfig"), ValueHint::FilePath);
    assert_eq!(arg(&["backup"], "keep-last"), ValueHint::Other);
    // zsh, whose script names the completer per option: files for a file, none for a key.
    let zsh = String::from_utf8(completions(CompletionShell::Zsh).unwrap()).unwrap();
    let line = |opt: &str| {
        zsh.lines()
            .find(|l| l.contains(&format!("'--{opt}=")))
            .unwrap_or_else(|| panic!("--{opt}"))
            .to_owned()
    };
    assert!(
        line("recovery-dir").contains("_files -/"),
        "{}",
        line("recovery-dir")
    );
    assert!(!line("get").contains("_files"), "{}", line("get"));
}

#[test]
fn man_refuses_a_file_as_out_dir_with_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = write_man_pages(&file).unwrap_err();
    assert_eq!(err.code, Exit::Usage);
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert_eq!(
        write_man_pages(Path::new("")).unwrap_err().code,
        Exit::Usage
    );
}

#[test]
fn man_writes_every_page_0644_into_a_new_dir() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a/man1");
    write_man_pages(&out).unwrap();
    let expected: Vec<String> = man_pages().unwrap().into_iter().map(|(n, _)| n).collect();
    let mut found: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(found, sorted, "no temp files left, nothing missing");
    for name in &expected {
        let mode = std::fs::metadata(out.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644, "{name}");
    }
}
