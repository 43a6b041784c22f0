//! `kubeboot generate`: man pages and shell completions, made from the CLI definition
//! itself (`Cli::command()`) so they never drift from it. Hidden from `--help`: it is
//! for packagers (`scripts/package` runs it), not for operators.
//!
//! Pages are generated for the root command and every subcommand that is not hidden,
//! found by walking the clap `Command` (no list to keep in sync). Each page gets an
//! EXIT STATUS section built from [`Exit`], the one definition of the codes, and a
//! SEE ALSO section linking the pages to each other. Files are written atomically
//! (0644) so a packaging run that dies never leaves a half page behind.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Command, CommandFactory, Subcommand, ValueEnum, ValueHint};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use super::{Cli, Exit, ExitWith, Failure, manual, usage};
use crate::fsutil;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generate,
}

#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Writes kubeboot.1 and one kubeboot-<subcommand>.1 per visible subcommand.
    Man {
        /// Where to write the pages (created if missing).
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
    /// Prints a completion script for SHELL on stdout.
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// The shells whose completions the packages ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl CompletionShell {
    fn clap_shell(self) -> clap_complete::Shell {
        match self {
            CompletionShell::Bash => clap_complete::Shell::Bash,
            CompletionShell::Zsh => clap_complete::Shell::Zsh,
            CompletionShell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// Every exit code with what it means (docs/design.md §2, README), for the EXIT STATUS
/// section. Built from [`meaning`], whose match is exhaustive, so a new [`Exit`] variant
/// does not compile until it is described; [`EXITS`] lists them in order.
pub const EXIT_CODES: [(u8, &str); 9] = {
    let mut out = [(0, "Done; for a health check, healthy."); 9];
    let mut i = 0;
    while i < EXITS.len() {
        out[i + 1] = (EXITS[i] as u8, meaning(EXITS[i]));
        i += 1;
    }
    out
};

/// Every [`Exit`] variant, by code.
const EXITS: [Exit; 8] = [
    Exit::Failed,
    Exit::Usage,
    Exit::NoSource,
    Exit::Policy,
    Exit::Changed,
    Exit::Unhealthy,
    Exit::LockLost,
    Exit::Stale,
];

/// What a non-zero exit code means, as the README and `kubeboot --help` say it.
const fn meaning(e: Exit) -> &'static str {
    match e {
        Exit::Failed => "Failed.",
        Exit::Usage => "Usage or configuration error.",
        Exit::NoSource => {
            "No recovery source could be read (or the input file of inspect or decode), \
             or the source holds no control plane."
        }
        Exit::Policy => {
            "Refused by policy: a lock is held, another master is recovering, \
             a backup restore is not allowed on this node, or recover --strict met a \
             field the descriptors do not know."
        }
        Exit::Changed => {
            "ensure stopped a backup restore because etcd or the local etcd data \
             changed after the decision; nothing was moved."
        }
        Exit::Unhealthy => {
            "ensure reported required components that stay un-Ready; it does not \
             recover them."
        }
        Exit::LockLost => {
            "ensure stopped a recovery whose cluster lock could not be renewed in time."
        }
        Exit::Stale => {
            "backup list --max-age found the newest backup damaged, or no whole backup \
             that recent."
        }
    }
}

pub fn run(args: GenerateArgs) -> Result<(), Failure> {
    match args.what {
        Generate::Man { out_dir } => write_man_pages(&out_dir),
        Generate::Completions { shell } => {
            let script = completions(shell)?;
            let mut out = io::stdout().lock();
            out.write_all(&script)
                .and_then(|()| out.flush())
                .map_err(|e| anyhow::anyhow!("writing the {shell:?} completions to stdout: {e}"))
                .exit_with(Exit::Failed)
        }
    }
}

fn write_man_pages(out_dir: &Path) -> Result<(), Failure> {
    if out_dir.as_os_str().is_empty() {
        return Err(usage("--out-dir must not be empty"));
    }
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(usage(format!(
            "--out-dir {}: exists and is not a directory",
            out_dir.display()
        )));
    }
    let pages = man_pages().map_err(|e| anyhow::anyhow!("rendering the man pages: {e}"))?;
    fsutil::create_dir_all_with_mode(out_dir, 0o755)?;
    for (name, bytes) in pages {
        fsutil::write_atomic(&out_dir.join(name), &bytes, 0o644)?;
    }
    Ok(())
}

/// The CLI as the pages and completions describe it: built (so subcommands carry
/// their `kubeboot-<name>` display and `kubeboot <name>` bin names) and without
/// clap's `help` subcommand, which is not a kubeboot command.
fn cli_command() -> Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// The subcommands that get a page of their own: every one, at any depth, that is not
/// hidden (a hidden command's children are skipped with it).
fn visible_subcommands(cmd: &Command) -> Vec<&Command> {
    let mut out = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out.push(sub);
        out.extend(visible_subcommands(sub));
    }
    out
}

/// Every man page as (file name, roff bytes): the root page first, then one per
/// visible subcommand.
pub fn man_pages() -> io::Result<Vec<(String, Vec<u8>)>> {
    let root = cli_command();
    let version = root.get_version().unwrap_or_default().to_owned();
    let subs = visible_subcommands(&root);
    let sub_pages: Vec<String> = subs.iter().map(|s| page_title(s)).collect();
    let mut pages = vec![(
        format!("{}.1", page_title(&root)),
        man_page(&root, true, &version, &sub_pages)?,
    )];
    let root_page = vec![page_title(&root)];
    for sub in subs {
        let mut see_also = root_page.clone();
        see_also.extend(visible_subcommands(sub).iter().map(|s| page_title(s)));
        pages.push((
            format!("{}.1", page_title(sub)),
            man_page(sub, false, &version, &see_also)?,
        ));
    }
    Ok(pages)
}

fn page_title(cmd: &Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned()
}

/// One page: clap_mangen's sections in man(7) order, with EXIT STATUS and SEE ALSO
/// added. The root's after-help is its exit-code summary, which EXIT STATUS replaces;
/// a subcommand's after-help, if any, becomes NOTES.
fn man_page(
    cmd: &Command,
    is_root: bool,
    version: &str,
    see_also: &[String],
) -> io::Result<Vec<u8>> {
    let man = Man::new(cmd.clone())
        .source(format!("kubeboot {version}"))
        .manual("kubeboot");
    // Each clap_mangen section render starts with the same roff preamble (apostrophe
    // handling); keep the first and strip the rest.
    let preamble = Roff::new().render();
    let mut page = String::new();
    let mut add = |render: &dyn Fn(&mut Vec<u8>) -> io::Result<()>| -> io::Result<()> {
        let mut buf = Vec::new();
        render(&mut buf)?;
        let text =
            String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        match text.strip_prefix(&preamble) {
            Some(rest) if !page.is_empty() => page.push_str(rest),
            _ => page.push_str(&text),
        }
        Ok(())
    };
    add(&|w| man.render_title(w))?;
    add(&|w| man.render_name_section(w))?;
    add(&|w| man.render_synopsis_section(w))?;
    if cmd.get_about().is_some() || cmd.get_long_about().is_some() {
        add(&|w| man.render_description_section(w))?;
    }
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        add(&|w| man.render_options_section(w))?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        add(&|w| man.render_subcommands_section(w))?;
    }
    // The page's command path (`backup`, `certs check`): its manual (`cmd::manual`).
    let path = cmd
        .get_bin_name()
        .and_then(|b| b.strip_prefix("kubeboot "))
        .unwrap_or(cmd.get_name());
    let manual = manual::of(path).filter(|_| !is_root);
    add(&|w| exit_status_section(manual.as_ref().map(|m| m.exits)).to_writer(w))?;
    add(&|w| pairs_section("ENVIRONMENT", manual::ENVIRONMENT).to_writer(w))?;
    if let Some(m) = &manual {
        if !m.files.is_empty() {
            add(&|w| pairs_section("FILES", m.files).to_writer(w))?;
        }
        add(&|w| examples_section(m.examples).to_writer(w))?;
    }
    if !is_root && let Some(notes) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        let notes = notes.to_string();
        add(&|w| text_section("NOTES", &notes).to_writer(w))?;
    }
    if cmd.get_version().is_some() {
        add(&|w| man.render_version_section(w))?;
    }
    if !see_also.is_empty() {
        add(&|w| see_also_section(see_also).to_writer(w))?;
    }
    Ok(page.into_bytes())
}

/// Every code on the root page; on a command's, 0 and the codes it returns.
fn exit_status_section(only: Option<&[Exit]>) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in EXIT_CODES {
        if let Some(only) = only
            && code != 0
            && !only.iter().any(|e| *e as u8 == code)
        {
            continue;
        }
        roff.control("TP", []);
        roff.text([bold(code.to_string())]);
        roff.text([roman(meaning)]);
    }
    roff
}

/// A section of `NAME` / what it is pairs (ENVIRONMENT, FILES).
fn pairs_section(heading: &str, pairs: &[(&str, &str)]) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", [heading]);
    for (name, what) in pairs {
        roff.control("TP", []);
        roff.text([bold(*name)]);
        roff.text([roman(*what)]);
    }
    roff
}

/// EXAMPLES: what each does, then the command line, unfilled.
fn examples_section(examples: &[(&str, &str)]) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    for (what, line) in examples {
        roff.control("PP", []);
        roff.text([roman(*what)]);
        roff.control("nf", []);
        roff.control("RS", ["4"]);
        roff.text([bold(*line)]);
        roff.control("RE", []);
        roff.control("fi", []);
    }
    roff
}

fn text_section(heading: &str, text: &str) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", [heading]);
    for line in text.lines() {
        if line.trim().is_empty() {
            roff.control("PP", []);
        } else {
            roff.text([roman(line)]);
        }
    }
    roff
}

fn see_also_section(pages: &[String]) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(page.as_str()));
        line.push(roman("(1)"));
    }
    roff.text(line);
    roff
}

/// The CLI as completions offer it. clap_complete's generators offer hidden
/// subcommands too (`kubeboot generate` would be tab-completed), so the root is
/// rebuilt without them: the generators read only its name, version, about, args and
/// subcommands, and each visible subcommand is kept whole.
fn completion_command() -> Command {
    let cli = Cli::command();
    let mut cmd = Command::new("kubeboot")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(cli.is_subcommand_required_set())
        .args(cli.get_arguments().cloned())
        .groups(cli.get_groups().cloned())
        .subcommands(cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = cli.get_about() {
        cmd = cmd.about(about.clone());
    }
    with_hints(cmd)
}

/// Completion hints from each option's value name where none was set (issue 15,
/// finding 13: the shells offered file names for `--get` and `--etcd-servers`):
/// FILE a file, DIR a directory, PATH (or a FILE that may be a URL) either, URL(S) a
/// URL, and anything else (a name, a key, a duration) nothing. Options with a fixed set
/// of values keep completing those.
fn with_hints(cmd: Command) -> Command {
    let cmd = cmd.mut_args(|a| {
        let takes = a.get_num_args().is_none_or(|n| n.takes_values());
        // clap's derive gives every PathBuf AnyPath: refined to a file or a dir here,
        // never to "nothing".
        let given = a.get_value_hint();
        if !matches!(given, ValueHint::Unknown | ValueHint::AnyPath)
            || !takes
            || !a.get_possible_values().is_empty()
        {
            return a;
        }
        let name = a
            .get_value_names()
            .and_then(|n| n.first())
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default();
        let hint = match (given, hint_for(&name)) {
            (ValueHint::AnyPath, h @ (ValueHint::FilePath | ValueHint::DirPath)) => h,
            (ValueHint::AnyPath, _) => ValueHint::AnyPath,
            (_, h) => h,
        };
        a.value_hint(hint)
    });
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    names
        .into_iter()
        .fold(cmd, |c, n| c.mut_subcommand(n, with_hints))
}

fn hint_for(value_name: &str) -> ValueHint {
    let has = |w: &str| value_name.split(['|', '=', ',']).any(|p| p == w);
    if (has("FILE") || has("PATH")) && has("URL") || has("PATH") {
        ValueHint::AnyPath
    } else if has("FILE") {
        ValueHint::FilePath
    } else if has("DIR") {
        ValueHint::DirPath
    } else if has("URL") || has("URLS") {
        ValueHint::Url
    } else {
        ValueHint::Other
    }
}

/// The completion script for one shell, rendered in memory (clap_complete panics on a
/// failed write; a `Vec` never fails, and stdout errors are then ours to report).
pub fn completions(shell: CompletionShell) -> Result<Vec<u8>, Failure> {
    let mut cmd = completion_command();
    let name = cmd.get_name().to_owned();
    let mut buf = Vec::new();
    clap_complete::generate(shell.clap_shell(), &mut cmd, name, &mut buf);
    if buf.is_empty() {
        return Err(anyhow::anyhow!("clap_complete produced no {shell:?} completions").into());
    }
    Ok(buf)
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
