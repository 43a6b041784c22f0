//! The .deb and .rpm that `scripts/package` builds, checked with the real package
//! tools rather than by reading our own staging code back: `dpkg-deb --info/--contents/
//! -x/-e`, `rpm -qpi/-qpl/--scripts/--configfiles` and `rpm2cpio | cpio`. An operator
//! `apt install`s or `dnf install`s exactly these files, so what those tools report is
//! what gets installed.
//!
//! The packages are built from the debug binary (`--binary`, no release build) with
//! light compression (`--fast`), into a temp dir, and never installed: nothing here
//! writes outside its temp dir or touches the host's package databases (rpm queries
//! use a throwaway `--dbpath`). The expected file list is derived from the sources
//! (`units/`, `docs/`, `packaging/default/`, and the clap CLI for the man pages), not
//! copied from the script. The installed units are checked with `systemd-analyze
//! verify` (as `tests/units.rs` does for `units/`), pointed at the extracted binary
//! and conffile. The tools come from `scripts/setup-tools` (Debian packages `dpkg`,
//! `rpm`, `rpm2cpio`, `cpio`, `systemd`); `man` (man-db) is used when present.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use kubeboot::cmd::Cli;

const BIN: &str = env!("CARGO_BIN_EXE_kubeboot");
const CHECKPOINTER: &str = env!("CARGO_BIN_EXE_kubeboot-checkpoint");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The package version `scripts/package` derives from Cargo.toml.
fn package_version() -> String {
    env!("CARGO_PKG_VERSION").replace('-', "~")
}

fn describe(cmd: &Command) -> String {
    format!("{cmd:?}")
}

/// Runs `cmd`, panicking with its stderr unless it succeeds.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup-tools installs it)", describe(cmd)));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}{}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

/// A command whose temp files (dpkg-deb, rpm and man make some) stay in `tmp`.
fn tool(program: impl AsRef<std::ffi::OsStr>, tmp: &Path) -> Command {
    fs::create_dir_all(tmp).unwrap();
    let mut cmd = Command::new(program);
    cmd.env("TMPDIR", tmp);
    cmd
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// `scripts/package FORMAT` from the debug binary into `out`; the paths it printed.
fn build(format: &str, out: &Path) -> Vec<PathBuf> {
    let tmp = out.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let stdout = stdout_of(
        Command::new(repo().join("scripts/package"))
            .args([format, "--binary", BIN, "--fast", "--no-install", "--out"])
            .arg(out)
            .env("TMPDIR", &tmp)
            .env("SOURCE_DATE_EPOCH", "1764115200"),
    );
    let built: Vec<PathBuf> = stdout.lines().map(PathBuf::from).collect();
    for p in &built {
        assert!(p.is_file(), "{} was printed but not written", p.display());
        assert_eq!(p.parent(), Some(out), "{} is outside --out", p.display());
    }
    let leftovers: Vec<_> = fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".package"))
        .collect();
    assert!(leftovers.is_empty(), "staging dirs left: {leftovers:?}");
    built
}

/// Where one package format puts things.
struct Layout {
    unit_dir: &'static str,
    env_dir: &'static str,
    zsh_dir: &'static str,
    deb: bool,
}

const DEB: Layout = Layout {
    unit_dir: "/lib/systemd/system",
    env_dir: "/etc/default",
    zsh_dir: "/usr/share/zsh/vendor-completions",
    deb: true,
};
const RPM: Layout = Layout {
    unit_dir: "/usr/lib/systemd/system",
    env_dir: "/etc/sysconfig",
    zsh_dir: "/usr/share/zsh/site-functions",
    deb: false,
};

fn names_in(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| keep(n))
        .collect();
    names.sort();
    names
}

fn unit_names() -> Vec<String> {
    names_in("units", |n| {
        n.ends_with(".service") || n.ends_with(".timer")
    })
}

fn env_templates() -> Vec<String> {
    names_in("packaging/default", |_| true)
}

/// `kubeboot.1.gz` and `kubeboot-<sub>[-<subsub>].1.gz` for every subcommand clap does
/// not hide: enumerated from the CLI definition, not from the generator.
fn expected_man_pages() -> Vec<String> {
    fn walk(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("{prefix}-{}", sub.get_name());
            out.push(format!("{name}.1.gz"));
            walk(sub, &name, out);
        }
    }
    let mut pages = vec!["kubeboot.1.gz".to_string()];
    walk(&Cli::command(), "kubeboot", &mut pages);
    pages
}

/// Every regular file the package must install (absolute path) with its mode.
fn expected_files(layout: &Layout) -> BTreeMap<String, u32> {
    let mut files = BTreeMap::new();
    files.insert("/usr/bin/kubeboot".to_string(), 0o755);
    files.insert("/usr/bin/kubeboot-checkpoint".to_string(), 0o755);
    for unit in unit_names() {
        files.insert(format!("{}/{unit}", layout.unit_dir), 0o644);
    }
    for page in expected_man_pages() {
        files.insert(format!("/usr/share/man/man1/{page}"), 0o644);
    }
    for path in [
        "/usr/share/bash-completion/completions/kubeboot".to_string(),
        format!("{}/_kubeboot", layout.zsh_dir),
        "/usr/share/fish/vendor_completions.d/kubeboot.fish".to_string(),
    ] {
        files.insert(path, 0o644);
    }
    files.insert("/usr/share/doc/kubeboot/README.md".to_string(), 0o644);
    for doc in names_in("docs", |n| n.ends_with(".md")) {
        files.insert(format!("/usr/share/doc/kubeboot/{doc}"), 0o644);
    }
    if layout.deb {
        files.insert("/usr/share/doc/kubeboot/copyright".to_string(), 0o644);
    }
    for name in env_templates() {
        files.insert(format!("{}/{name}", layout.env_dir), 0o644);
    }
    files
}

/// `-rwxr-xr-x` → 0o755 (the permission bits only).
fn parse_perms(perms: &str) -> u32 {
    assert_eq!(perms.len(), 10, "{perms}");
    perms
        .chars()
        .skip(1)
        .fold(0, |mode, c| (mode << 1) | u32::from(c != '-'))
}

/// Every regular file under `root` (as absolute package paths) with its mode.
fn files_under(root: &Path) -> BTreeMap<String, u32> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u32>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(root, &path, out);
            } else {
                assert!(meta.is_file(), "{} is not a regular file", path.display());
                let rel = path.strip_prefix(root).unwrap().to_string_lossy();
                out.insert(format!("/{rel}"), meta.permissions().mode() & 0o7777);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn at(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

/// The installed files that are the same whatever the format, and the binary itself.
fn check_payload(root: &Path, layout: &Layout, tmp: &Path) {
    assert!(
        fs::read(at(root, "/usr/bin/kubeboot")).unwrap() == fs::read(BIN).unwrap(),
        "the packaged binary is the one given with --binary"
    );
    assert!(
        fs::read(at(root, "/usr/bin/kubeboot-checkpoint")).unwrap()
            == fs::read(CHECKPOINTER).unwrap(),
        "the packaged checkpointer is the one built beside --binary"
    );
    let version = stdout_of(tool(at(root, "/usr/bin/kubeboot"), tmp).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("kubeboot {}", env!("CARGO_PKG_VERSION"))
    );
    check_man_pages(&at(root, "/usr/share/man/man1"), tmp);
    check_completions(root, layout, tmp);
    for name in env_templates() {
        let installed =
            fs::read_to_string(at(root, &format!("{}/{name}", layout.env_dir))).unwrap();
        let source = fs::read_to_string(repo().join("packaging/default").join(&name)).unwrap();
        assert_eq!(installed, source, "{name}");
    }
    // Each template sets nothing: its only assignments are empty, for the operator
    // to fill in (the flags are explained in comments).
    for name in env_templates() {
        let text = fs::read_to_string(at(root, &format!("{}/{name}", layout.env_dir))).unwrap();
        let assignments: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .collect();
        assert!(!assignments.is_empty(), "{name} assigns nothing: {text}");
        for line in assignments {
            assert!(
                line.ends_with('=') && !line.contains(' '),
                "{name}: {line:?} is not an empty KEY= to fill in"
            );
        }
    }
    let backup =
        fs::read_to_string(at(root, &format!("{}/kubeboot-backup", layout.env_dir))).unwrap();
    assert!(
        backup.lines().any(|l| l == "KUBEBOOT_BACKUP_ARGS="),
        "{backup}"
    );
    for flag in [
        "--etcd-servers",
        "--etcd-cafile",
        "--etcd-certfile",
        "--etcd-keyfile",
        "--keep-last",
    ] {
        assert!(backup.contains(flag), "the backup template explains {flag}");
    }
    for doc in names_in("docs", |n| n.ends_with(".md")) {
        let installed = fs::read(at(root, &format!("/usr/share/doc/kubeboot/{doc}"))).unwrap();
        assert_eq!(
            installed,
            fs::read(repo().join("docs").join(&doc)).unwrap(),
            "{doc}"
        );
    }
}

/// Each page: valid gzip of a roff page titled after its file; rendered by `man -l`
/// with no macro warnings when man-db is installed.
fn check_man_pages(dir: &Path, tmp: &Path) {
    let use_man = have("man");
    if !use_man {
        eprintln!("SKIPPED: man -l rendering (no man-db); checking the roff header only");
    }
    for page in expected_man_pages() {
        let path = dir.join(&page);
        run(tool("gzip", tmp).arg("-t").arg(&path));
        let roff = stdout_of(tool("gzip", tmp).arg("-dc").arg(&path));
        let title = page.trim_end_matches(".1.gz");
        assert!(roff.contains(&format!(".TH {title} 1")), "{page}: {roff}");
        assert!(roff.contains(".SH \"EXIT STATUS\""), "{page}");
        if use_man {
            let out = run(tool("man", tmp)
                .args(["--warnings", "-l"])
                .arg(&path)
                .env("MANWIDTH", "80")
                .env("MANPAGER", "cat")
                .env("LC_ALL", "C.UTF-8"));
            let text = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                text.contains("NAME") && text.contains("EXIT STATUS"),
                "{page}: {text}"
            );
            assert!(text.contains(title), "{page}: {text}");
            assert!(!stderr.contains("warning"), "{page}: {stderr}");
        }
    }
}

fn check_completions(root: &Path, layout: &Layout, tmp: &Path) {
    let bash = at(root, "/usr/share/bash-completion/completions/kubeboot");
    run(tool("bash", tmp).arg("-n").arg(&bash));
    let zsh = fs::read_to_string(at(root, &format!("{}/_kubeboot", layout.zsh_dir))).unwrap();
    assert!(zsh.starts_with("#compdef kubeboot"), "{zsh}");
    let fish = fs::read_to_string(at(
        root,
        "/usr/share/fish/vendor_completions.d/kubeboot.fish",
    ))
    .unwrap();
    assert!(fish.contains("complete -c kubeboot"), "{fish}");
    for text in [fs::read_to_string(&bash).unwrap(), zsh, fish] {
        assert!(
            text.contains("recover") && text.contains("backup"),
            "{text}"
        );
    }
}

/// The installed units pass `systemd-analyze verify` with ExecStart= pointed at the
/// installed binary and EnvironmentFile= at the installed conffile (which must exist);
/// every `Documentation=file://` they name is installed. Returns the env files named.
fn check_units(root: &Path, layout: &Layout, work: &Path) -> BTreeSet<String> {
    let tmp = &work.join("tmp");
    let verify_dir = work.join("verify-units");
    fs::create_dir_all(&verify_dir).unwrap();
    let binary = at(root, "/usr/bin/kubeboot");
    let mut env_files = BTreeSet::new();
    let mut paths = Vec::new();
    for unit in unit_names() {
        let text = fs::read_to_string(at(root, &format!("{}/{unit}", layout.unit_dir))).unwrap();
        let mut lines = Vec::new();
        let mut env_text = String::new();
        for line in text.lines() {
            if let Some(file) = line.strip_prefix("EnvironmentFile=") {
                let (optional, file) = match file.strip_prefix('-') {
                    Some(f) => (true, f),
                    None => (false, file),
                };
                assert!(
                    file.starts_with(&format!("{}/", layout.env_dir)),
                    "{unit}: EnvironmentFile={file} is not under {}",
                    layout.env_dir
                );
                assert!(
                    optional || at(root, file).is_file(),
                    "{unit}: {file} is not packaged"
                );
                env_text.push_str(&fs::read_to_string(at(root, file)).unwrap_or_default());
                env_files.insert(file.to_string());
                lines.push(format!("EnvironmentFile={}", at(root, file).display()));
                continue;
            }
            if let Some(doc) = line.strip_prefix("Documentation=") {
                for url in doc.split_whitespace() {
                    if let Some(file) = url.strip_prefix("file://") {
                        assert!(at(root, file).is_file(), "{unit}: {url} is not packaged");
                    }
                }
            }
            lines.push(line.replace("/usr/bin/kubeboot", &binary.to_string_lossy()));
        }
        if unit.ends_with(".service") {
            assert!(text.contains("ExecStart=/usr/bin/kubeboot "), "{unit}");
        }
        // Every $VAR the unit uses is assigned in its env file's template.
        for var in text.split('$').skip(1) {
            let var: String = var
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                var.is_empty() || env_text.lines().any(|l| l.starts_with(&format!("{var}="))),
                "{unit} uses ${var}, which no EnvironmentFile= of it sets"
            );
        }
        let path = verify_dir.join(&unit);
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        paths.push(path);
    }
    let out = run(tool("systemd-analyze", tmp).arg("verify").args(&paths));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze complained: {stderr}"
    );
    env_files
}

/// A maintainer script or scriptlet: valid sh; touches systemd only through
/// `systemctl daemon-reload` (or `stop` on removal), only when systemd runs; never
/// enables or starts anything. Then it is run with a fake `systemctl` first on PATH
/// that logs its arguments, for each `args`: it must exit 0 and call only what
/// `expect` says (nothing when systemd is not running on this host).
fn check_script(name: &str, text: &str, work: &Path, runs: &[(&[&str], Option<&str>)]) {
    let path = work.join(format!("script-{name}"));
    fs::write(&path, text).unwrap();
    run(Command::new("sh").arg("-n").arg(&path));
    // Comments may say what the script does not do; its code may not do it.
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for forbidden in [
        "systemctl enable",
        "systemctl start",
        "systemctl restart",
        "systemctl reenable",
        "systemctl preset",
        "--now",
        "deb-systemd-helper enable",
        "deb-systemd-invoke start",
        "deb-systemd-invoke restart",
        "rm -rf",
        "/var/lib/kubeboot",
    ] {
        assert!(
            !code.contains(forbidden),
            "{name} runs {forbidden:?}:\n{text}"
        );
    }
    for line in text
        .lines()
        .filter(|l| l.contains("systemctl") && !l.trim_start().starts_with('#'))
    {
        let line = line.trim();
        assert!(
            line.starts_with("systemctl daemon-reload ") || line.starts_with("systemctl stop "),
            "{name}: {line}"
        );
    }
    if text.contains("systemctl") {
        assert!(
            text.contains("[ -d /run/systemd/system ]"),
            "{name}: unguarded systemctl"
        );
    }

    let fake_bin = work.join(format!("fake-bin-{name}"));
    fs::create_dir_all(&fake_bin).unwrap();
    let log = work.join(format!("systemctl-{name}.log"));
    let fake = fake_bin.join("systemctl");
    fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$*\" >>'{}'\n", log.display()),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let path_var = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", fake_bin.display());
    let systemd_running = Path::new("/run/systemd/system").is_dir();
    for (args, expect) in runs {
        let _ = fs::remove_file(&log);
        run(Command::new("sh")
            .arg(&path)
            .args(*args)
            .env("PATH", &path_var));
        let called = fs::read_to_string(&log).unwrap_or_default();
        let want = match expect {
            Some(call) if systemd_running => format!("{call}\n"),
            _ => String::new(),
        };
        assert_eq!(called, want, "{name} {args:?}");
    }
}

#[test]
fn deb_installs_every_file_with_its_mode_and_enables_nothing() {
    let work = tempfile::tempdir().unwrap();
    let tmp = &work.path().join("tmp");
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    let built = build("deb", &out);
    let arch = stdout_of(tool("dpkg", tmp).arg("--print-architecture"));
    let arch = arch.trim();
    let deb = out.join(format!("kubeboot_{}_{arch}.deb", package_version()));
    assert_eq!(built, vec![deb.clone()]);

    // Control fields and members.
    let info = stdout_of(tool("dpkg-deb", tmp).arg("--info").arg(&deb));
    for member in [
        "control",
        "conffiles",
        "md5sums",
        "postinst",
        "prerm",
        "postrm",
    ] {
        assert!(
            info.lines()
                .any(|l| l.split_whitespace().nth(4) == Some(member)
                    || l.split_whitespace().nth(5) == Some(member)),
            "no {member} in\n{info}"
        );
    }
    let field = |name: &str| {
        stdout_of(tool("dpkg-deb", tmp).arg("--field").arg(&deb).arg(name))
            .trim_end()
            .to_string()
    };
    assert_eq!(field("Package"), "kubeboot");
    assert_eq!(field("Version"), package_version());
    assert_eq!(field("Architecture"), arch);
    assert_eq!(field("Section"), "admin");
    assert_eq!(field("Priority"), "optional");
    let maintainer = field("Maintainer");
    assert!(
        maintainer.contains('<') && maintainer.ends_with('>'),
        "{maintainer}"
    );
    let depends = field("Depends");
    assert!(depends.starts_with("libc6 (>= 2."), "{depends}");
    let installed_size: u64 = field("Installed-Size").parse().unwrap();
    assert!(
        installed_size * 1024 >= fs::metadata(BIN).unwrap().len(),
        "{installed_size}"
    );
    let description = field("Description");
    assert!(
        description.contains("enables and starts nothing"),
        "{description}"
    );
    assert!(
        description.contains("/etc/default/kubeboot-backup"),
        "{description}"
    );
    assert!(info.contains(" Description: "), "{info}");

    // Every path with its mode and owner, as dpkg will install it, and nothing else.
    let contents = stdout_of(tool("dpkg-deb", tmp).arg("--contents").arg(&deb));
    let mut files = BTreeMap::new();
    for line in contents.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols.len(), 6, "unexpected entry (a link?): {line}");
        assert_eq!(cols[1], "root/root", "{line}");
        let path = cols[5].trim_start_matches('.').trim_end_matches('/');
        match cols[0].chars().next() {
            Some('d') => assert_eq!(cols[0], "drwxr-xr-x", "{line}"),
            Some('-') => {
                files.insert(path.to_string(), parse_perms(cols[0]));
            }
            _ => panic!("not a file or dir: {line}"),
        }
    }
    assert_eq!(files, expected_files(&DEB));

    // Extracted: the same files, whole (md5sums), and what is in them.
    let root = work.path().join("root");
    run(tool("dpkg-deb", tmp).arg("-x").arg(&deb).arg(&root));
    assert_eq!(files_under(&root), expected_files(&DEB));
    let control = work.path().join("control");
    run(tool("dpkg-deb", tmp).arg("-e").arg(&deb).arg(&control));
    run(tool("md5sum", tmp)
        .args(["--check", "--quiet", "--strict"])
        .arg(control.join("md5sums"))
        .current_dir(&root));
    check_payload(&root, &DEB, tmp);
    for unit in unit_names() {
        let installed = fs::read(at(&root, &format!("{}/{unit}", DEB.unit_dir))).unwrap();
        assert_eq!(
            installed,
            fs::read(repo().join("units").join(&unit)).unwrap(),
            "{unit} as is"
        );
    }
    let env_files = check_units(&root, &DEB, work.path());
    assert!(
        env_files.contains("/etc/default/kubeboot-backup"),
        "{env_files:?}"
    );

    // conffiles: every /etc/default file, so dpkg keeps the operator's edits.
    let conffiles = fs::read_to_string(control.join("conffiles")).unwrap();
    let conffiles: BTreeSet<String> = conffiles.lines().map(String::from).collect();
    let want: BTreeSet<String> = env_templates()
        .iter()
        .map(|n| format!("/etc/default/{n}"))
        .collect();
    assert_eq!(conffiles, want);
    assert!(
        env_files.is_subset(&conffiles),
        "{env_files:?} ⊄ {conffiles:?}"
    );

    // Maintainer scripts.
    let units = unit_names().join(" ");
    let stop = format!("stop {units}");
    for (name, runs) in [
        (
            "postinst",
            vec![(&["configure", "0.0.1"][..], Some("daemon-reload"))],
        ),
        (
            "prerm",
            vec![
                (&["upgrade", "9.9.9"][..], None),
                (&["remove"][..], Some(stop.as_str())),
            ],
        ),
        (
            "postrm",
            vec![
                (&["remove"][..], Some("daemon-reload")),
                (&["purge"][..], Some("daemon-reload")),
                (&["upgrade", "9.9.9"][..], Some("daemon-reload")),
            ],
        ),
    ] {
        let path = control.join(name);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "{name}");
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{name}");
        check_script(name, &text, work.path(), &runs);
    }
}

/// `rpm -qp --scripts` output → scriptlet name → body.
fn scriptlets(text: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some((name, _)) = line.split_once(" scriptlet (using /bin/sh):") {
            current = Some(name.to_string());
            out.insert(name.to_string(), "#!/bin/sh\n".to_string());
            continue;
        }
        let Some(name) = &current else {
            panic!("text before the first scriptlet: {line}")
        };
        if let Some(body) = out.get_mut(name) {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

#[test]
fn rpm_installs_the_same_files_with_sysconfig_and_enables_nothing() {
    let work = tempfile::tempdir().unwrap();
    let tmp = &work.path().join("tmp");
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    let built = build("all", &out);
    let arch = stdout_of(tool("uname", tmp).arg("-m"));
    let arch = arch.trim();
    let rpm = out.join(format!("kubeboot-{}-1.{arch}.rpm", package_version()));
    assert!(built.contains(&rpm), "{built:?}");
    assert_eq!(built.len(), 2, "all = deb + rpm: {built:?}");
    let dbpath = work.path().join("rpmdb");
    fs::create_dir(&dbpath).unwrap();
    let query = |args: &[&str]| {
        stdout_of(
            tool("rpm", tmp)
                .arg("--dbpath")
                .arg(&dbpath)
                .args(args)
                .arg(&rpm),
        )
    };

    // Header.
    let info = query(&["-qpi"]);
    let field = |name: &str| {
        info.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {name} in\n{info}"))
    };
    assert_eq!(field("Name"), "kubeboot");
    assert_eq!(field("Version"), package_version());
    assert_eq!(field("Release"), "1");
    assert_eq!(field("Architecture"), arch);
    assert_eq!(field("License"), "Apache-2.0");
    assert!(info.contains("enables and starts nothing"), "{info}");
    assert!(info.contains("/etc/sysconfig/kubeboot-backup"), "{info}");

    // File list, modes and owners.
    let listed: BTreeSet<String> = query(&["-qpl"]).lines().map(String::from).collect();
    let mut want: BTreeSet<String> = expected_files(&RPM).into_keys().collect();
    want.insert("/usr/share/doc/kubeboot".to_string());
    assert_eq!(listed, want);
    let modes = query(&[
        "-qp",
        "--qf",
        "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]",
    ]);
    let mut files = BTreeMap::new();
    for line in modes.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols.len(), 4, "{line}");
        assert_eq!((cols[1], cols[2]), ("root", "root"), "{line}");
        if cols[0].starts_with('d') {
            assert_eq!(cols[0], "drwxr-xr-x", "{line}");
        } else {
            assert!(cols[0].starts_with('-'), "{line}");
            files.insert(cols[3].to_string(), parse_perms(cols[0]));
        }
    }
    assert_eq!(files, expected_files(&RPM));

    // Config files: the sysconfig template, kept on upgrade (noreplace).
    let configs: BTreeSet<String> = query(&["-qp", "--configfiles"])
        .lines()
        .map(String::from)
        .collect();
    let want_configs: BTreeSet<String> = env_templates()
        .iter()
        .map(|n| format!("/etc/sysconfig/{n}"))
        .collect();
    assert_eq!(configs, want_configs);
    assert!(configs.contains("/etc/sysconfig/kubeboot-backup"));
    let flags = query(&["-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]"]);
    assert!(
        flags
            .lines()
            .any(|l| l == "cn /etc/sysconfig/kubeboot-backup"),
        "config(noreplace): {flags}"
    );

    // Scriptlets.
    let units = unit_names().join(" ");
    let stop = format!("stop {units}");
    let scripts = scriptlets(&query(&["-qp", "--scripts"]));
    let names: BTreeSet<&str> = scripts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["postinstall", "postuninstall", "preuninstall"])
    );
    for (name, runs) in [
        ("postinstall", vec![(&["1"][..], Some("daemon-reload"))]),
        (
            "preuninstall",
            vec![(&["1"][..], None), (&["0"][..], Some(stop.as_str()))],
        ),
        (
            "postuninstall",
            vec![
                (&["0"][..], Some("daemon-reload")),
                (&["1"][..], Some("daemon-reload")),
            ],
        ),
    ] {
        check_script(&format!("rpm-{name}"), &scripts[name], work.path(), &runs);
    }

    // The payload: rpm2cpio | cpio gives exactly the listed files.
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let mut rpm2cpio = tool("rpm2cpio", tmp)
        .arg(&rpm)
        .stdout(Stdio::piped())
        .spawn()
        .expect("rpm2cpio (Debian package rpm2cpio; scripts/setup-tools installs it)");
    let cpio_out = tool("cpio", tmp)
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(&root)
        .stdin(rpm2cpio.stdout.take().unwrap())
        .output()
        .expect("cpio (Debian package cpio; scripts/setup-tools installs it)");
    assert!(rpm2cpio.wait().unwrap().success());
    assert!(
        cpio_out.status.success(),
        "{}",
        String::from_utf8_lossy(&cpio_out.stderr)
    );
    assert_eq!(files_under(&root), expected_files(&RPM));
    check_payload(&root, &RPM, tmp);
    let env_files = check_units(&root, &RPM, work.path());
    assert!(
        env_files.contains("/etc/sysconfig/kubeboot-backup"),
        "{env_files:?}"
    );
    assert!(env_files.is_subset(&configs), "{env_files:?} ⊄ {configs:?}");

    // Against the .deb built in the same run: the same bytes for every file both
    // ship, but for the units' EnvironmentFile= lines (and the paths themselves).
    let deb_root = work.path().join("deb-root");
    let deb = built
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .unwrap();
    run(tool("dpkg-deb", tmp).arg("-x").arg(deb).arg(&deb_root));
    let to_deb = |path: &str| {
        for (rpm_dir, deb_dir) in [
            (RPM.unit_dir, DEB.unit_dir),
            (RPM.env_dir, DEB.env_dir),
            (RPM.zsh_dir, DEB.zsh_dir),
        ] {
            if let Some(rest) = path.strip_prefix(rpm_dir) {
                return format!("{deb_dir}{rest}");
            }
        }
        path.to_string()
    };
    for path in expected_files(&RPM).keys() {
        let rpm_bytes = fs::read(at(&root, path)).unwrap();
        let deb_bytes = fs::read(at(&deb_root, &to_deb(path))).unwrap();
        let deb_as_rpm = if path.starts_with(RPM.unit_dir) {
            String::from_utf8(deb_bytes)
                .unwrap()
                .replace(
                    "EnvironmentFile=/etc/default/",
                    "EnvironmentFile=/etc/sysconfig/",
                )
                .into_bytes()
        } else {
            deb_bytes
        };
        assert!(
            rpm_bytes == deb_as_rpm,
            "{path} differs between the rpm and the deb"
        );
    }
}

#[test]
fn package_script_refuses_bad_usage_with_exit_2() {
    let work = tempfile::tempdir().unwrap();
    let script = repo().join("scripts/package");
    let attempt = |args: &[&str]| {
        let out = Command::new(&script)
            .args(["--no-install", "--out"])
            .arg(work.path().join("out"))
            .args(args)
            .env("TMPDIR", work.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = attempt(&["tarball", "--binary", BIN]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown argument: tarball"), "{err}");
    let (code, err) = attempt(&["deb", "--binary"]);
    assert_eq!(code, Some(2), "{err}");
    let missing = work.path().join("no-such-kubeboot");
    let (code, err) = attempt(&["deb", "--binary", &missing.to_string_lossy()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not an executable file"), "{err}");
    let (code, err) = attempt(&["deb", "--binary", BIN, "--version", "1.0-1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--version 1.0-1"), "{err}");
    assert!(
        !work.path().join("out").exists(),
        "nothing built on a usage error"
    );
}
