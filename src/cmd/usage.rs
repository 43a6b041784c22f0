//! clap's usage errors as the one error line every other kubeboot error is (issue 15,
//! finding 9). clap renders 4–6 lines: `error: …`, a blank, a `tip:`, a `Usage:` block
//! and a pointer to `--help`; under `KUBEBOOT_CONFIG` its usage line also showed a
//! `--config <FILE>` nobody typed, and with no subcommand it listed the hidden ones.
//! Scripts and `journalctl -p err` want one line that names what is wrong and where to
//! read more. Written here because clap has no one-line error format.

/// The one line for clap's rendered error `text`: the message and its `tip:` joined,
/// `error: `, the usage block and clap's list of subcommands (which names hidden ones)
/// dropped, then where the help is: `see '<command> --help'`.
pub fn one_line(text: &str, command: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("Usage:") {
            break;
        }
        if line.is_empty() || line.starts_with("For more information") {
            continue;
        }
        let line = line.strip_prefix("error:").map_or(line, str::trim_start);
        if line.starts_with("[subcommands:") {
            continue;
        }
        match parts.last_mut() {
            // A list under "…were not provided:" continues its line.
            Some(last) if last.ends_with(':') => {
                last.push(' ');
                last.push_str(line);
            }
            Some(last) if !line.starts_with("tip:") => {
                last.push_str(", ");
                last.push_str(line);
            }
            _ => parts.push(line.to_string()),
        }
    }
    format!("{} (see '{command} --help')", parts.join("; "))
}

/// The subcommand path `argv` names (`kubeboot backup list`), as far as it names
/// subcommands of `root`.
pub fn command_path(root: &clap::Command, argv: &[std::ffi::OsString]) -> String {
    let mut path = vec![root.get_name().to_string()];
    let mut cmd = root;
    for arg in argv.iter().skip(1).filter_map(|a| a.to_str()) {
        match cmd.find_subcommand(arg) {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                cmd = sub;
            }
            None if arg.starts_with('-') => continue,
            None => break,
        }
    }
    path.join(" ")
}

#[cfg(test)]
mod tests {
    use super::{command_path, one_line};

    #[test]
    fn an_unexpected_argument_and_its_tip_are_one_line() {
        let text = "error: unexpected argument '--nope' found\n\n  tip: to pass '--nope' as a value, use '-- --nope'\n\nUsage: kubeboot inspect [OPTIONS] <FILE>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(text, "kubeboot inspect"),
            "unexpected argument '--nope' found; tip: to pass '--nope' as a value, use '-- --nope' (see 'kubeboot inspect --help')"
        );
    }

    #[test]
    fn a_missing_argument_list_continues_its_line_and_the_config_flag_is_gone() {
        let text = "error: the following required arguments were not provided:\n  --recovery-dir <DIR>\n  --kubeconfig <FILE>\n\nUsage: kubeboot recover --recovery-dir <DIR> --config <FILE>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(text, "kubeboot recover"),
            "the following required arguments were not provided: --recovery-dir <DIR>, --kubeconfig <FILE> (see 'kubeboot recover --help')"
        );
    }

    #[test]
    fn an_invalid_value_keeps_clap_s_reason() {
        let text = "error: invalid value 'yaml' for '--output <FORMAT>'\n  [possible values: text, json]\n\nUsage: kubeboot backup list [OPTIONS]\n";
        assert_eq!(
            one_line(text, "kubeboot backup list"),
            "invalid value 'yaml' for '--output <FORMAT>', [possible values: text, json] (see 'kubeboot backup list --help')"
        );
    }

    #[test]
    fn clap_s_subcommand_list_is_dropped_it_names_hidden_ones() {
        let text = "error: 'kubeboot' requires a subcommand but one was not provided\n  [subcommands: recover, generate, help]\n\nUsage: kubeboot [OPTIONS] <COMMAND>\n";
        assert_eq!(
            one_line(text, "kubeboot"),
            "'kubeboot' requires a subcommand but one was not provided (see 'kubeboot --help')"
        );
    }

    #[test]
    fn the_command_path_is_the_subcommands_argv_names() {
        let root = clap::Command::new("kubeboot")
            .subcommand(clap::Command::new("backup").subcommand(clap::Command::new("list")));
        let argv = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            command_path(&root, &argv(&["kubeboot", "backup", "list", "-o", "x"])),
            "kubeboot backup list"
        );
        assert_eq!(
            command_path(&root, &argv(&["kubeboot", "--log-format", "backup"])),
            "kubeboot backup"
        );
        assert_eq!(
            command_path(&root, &argv(&["kubeboot", "nope", "backup"])),
            "kubeboot"
        );
    }
}
