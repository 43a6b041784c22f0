//! Where log lines go: the journal's native protocol when systemd connected stderr to
//! the journal, stderr otherwise.
//!
//! systemd's "Native Journal Protocol" document (docs/JOURNAL_NATIVE_PROTOCOL.md in the
//! systemd repository, "Automatic Protocol Upgrading") says how a program tells: the
//! service manager puts the device and inode numbers of the stderr it connected to the
//! journal in `$JOURNAL_STREAM` (`DEV:INO`, decimal); when `fstat(2)` of fd 2 gives the
//! same pair, stderr is the journal and the program may upgrade to the native socket.
//! Checking only that the variable is set, or that `/run/systemd/journal/socket` exists,
//! is not enough: an operator's shell on a systemd host has the socket, and a unit's
//! script may redirect a child's stderr to a file while the variable is still set; both
//! must keep their stderr.
//!
//! Native entries carry `PRIORITY` per level and the `KUBEBOOT_*` fields of
//! [`super::logfields`]; on stderr those fields are left out of the text lines, which stay
//! what operators and drills read.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::logfields::TextFields;

/// Where the operator asked log lines to go (`--log-target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The journal when stderr is connected to it (`$JOURNAL_STREAM`), else stderr.
    Auto,
    /// The journal's socket, whatever stderr is (stderr when the socket is not there).
    Journal,
    /// Always stderr.
    Stderr,
}

/// Where log lines went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journal,
    Stderr,
}

/// How [`init`] sets up logging.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub target: Target,
    /// JSON lines instead of text, on stderr (`--log-format json`).
    pub json: bool,
    /// The subcommand, sent as `KUBEBOOT_COMMAND` with every journal entry.
    pub command: &'static str,
}

/// `$JOURNAL_STREAM` as `(device, inode)`, if it is two decimal numbers.
pub fn parse_stream(value: &OsStr) -> Option<(u64, u64)> {
    let (dev, ino) = value.to_str()?.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// Whether the stream named by `$JOURNAL_STREAM` is `stderr` (its device and inode).
pub fn connected(journal_stream: Option<&OsStr>, stderr: Option<(u64, u64)>) -> bool {
    match (journal_stream.and_then(parse_stream), stderr) {
        (Some(stream), Some(ours)) => stream == ours,
        _ => false,
    }
}

/// Whether to try the journal's socket.
pub fn wants_journal(target: Target, connected: bool) -> bool {
    match target {
        Target::Auto => connected,
        Target::Journal => true,
        Target::Stderr => false,
    }
}

/// The device and inode of this process's stderr (`fstat` of fd 2, through a dup).
pub fn stderr_id() -> Option<(u64, u64)> {
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Levels as syslog priorities, the way systemd's own tools log: info is 6
/// (informational), so `journalctl -p notice` hides the routine lines and `-p warning`
/// shows what went wrong. The journal has nothing below debug, so trace is debug too.
pub fn priorities() -> PriorityMappings {
    PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

/// `KUBEBOOT_LOG`, or `info` with kube-rs's own request errors off: kube-rs logs every
/// failed request at error level itself; kubeboot reports the ones that matter, once,
/// with what it was doing.
fn filter() -> EnvFilter {
    EnvFilter::try_from_env("KUBEBOOT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,kube_client=off"))
}

/// The journal layer: every event field is prefixed `KUBEBOOT_` and upper-cased by
/// tracing-journald (`decision` → `KUBEBOOT_DECISION`); `message` is `MESSAGE`.
///
/// Each entry also names the unit kubeboot runs in as `OBJECT_SYSTEMD_UNIT`. journald
/// learns a native entry's `_SYSTEMD_UNIT` by reading `/proc/PID/cgroup` when the entry
/// arrives; the error line is sent just before `ensure` exits, and when the process is
/// gone by then the entry has no unit (seen on a booted master: `journalctl -u
/// kubeboot` lacked the one line that said why the unit failed). `journalctl -u UNIT`
/// also matches `OBJECT_SYSTEMD_UNIT=UNIT` from root's processes (systemd's
/// `add_matches_for_unit`, src/shared/logs-show.c), and `_UID` comes from the socket's
/// credentials, so it never misses.
fn journal_layer(command: &str) -> std::io::Result<tracing_journald::Layer> {
    let mut fields = vec![("KUBEBOOT_COMMAND", command.to_string())];
    if let Some(unit) = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .as_deref()
        .and_then(unit_of_cgroup)
    {
        fields.push(("OBJECT_SYSTEMD_UNIT", unit));
    }
    Ok(tracing_journald::layer()?
        .with_field_prefix(Some("KUBEBOOT".into()))
        .with_priority_mappings(priorities())
        .with_syslog_identifier("kubeboot".into())
        .with_custom_fields(fields))
}

/// The service a process runs in, from its `/proc/PID/cgroup`: the unified hierarchy's
/// line (`0::/system.slice/kubeboot.service`) or, on cgroup v1, systemd's own
/// (`1:name=systemd:/system.slice/kubeboot.service`); the deepest `.service` on the
/// path. `None` outside a service (a shell, a scope).
pub fn unit_of_cgroup(text: &str) -> Option<String> {
    let path = text.lines().find_map(|line| {
        let (_, rest) = line.split_once(':')?;
        let (controllers, path) = rest.split_once(':')?;
        (controllers.is_empty() || controllers == "name=systemd").then_some(path)
    })?;
    path.rsplit('/')
        .find(|c| {
            c.len() > ".service".len()
                && c.ends_with(".service")
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":_.\\@-".contains(&b))
        })
        .map(str::to_string)
}

/// Sets the global subscriber once, for the whole process. Returns where lines go.
pub fn init(setup: Setup) -> Sink {
    let connected = connected(std::env::var_os("JOURNAL_STREAM").as_deref(), stderr_id());
    let mut failed = None;
    if wants_journal(setup.target, connected) {
        match journal_layer(setup.command) {
            Ok(layer) => {
                tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .init();
                return Sink::Journal;
            }
            Err(e) => failed = Some(e),
        }
    }
    init_stderr(setup.json);
    if let Some(e) = failed {
        tracing::warn!("the journal's socket /run/systemd/journal/socket: {e}; logging to stderr");
    }
    Sink::Stderr
}

/// Log lines on stderr (stdout is kept for the command's own output, so it can be
/// piped): text without the journal-only fields, or JSON with every field.
fn init_stderr(json: bool) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.without_time().fmt_fields(TextFields).init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_is_read_from_the_cgroup_path() {
        let v2 = "0::/system.slice/kubeboot.service\n";
        assert_eq!(unit_of_cgroup(v2).as_deref(), Some("kubeboot.service"));
        let v1 = "12:pids:/system.slice/kubeboot.service\n\
                  1:name=systemd:/system.slice/kubeboot-backup.service\n\
                  0::/\n";
        assert_eq!(
            unit_of_cgroup(v1).as_deref(),
            Some("kubeboot-backup.service")
        );
        // A delegated service's own sub-cgroup; a template instance.
        let deep = "0::/system.slice/kubeboot.service/init.scope\n";
        assert_eq!(unit_of_cgroup(deep).as_deref(), Some("kubeboot.service"));
        let inst = "0::/system.slice/system-kubeboot.slice/kubeboot@a\\x2db.service\n";
        assert_eq!(
            unit_of_cgroup(inst).as_deref(),
            Some("kubeboot@a\\x2db.service")
        );
        for outside in [
            "0::/user.slice/user-0.slice/session-3.scope\n",
            "0::/\n",
            "",
            "garbage",
            "0::/system.slice/.service\n",
            "0::/system.slice/a b.service\n",
        ] {
            assert_eq!(unit_of_cgroup(outside), None, "{outside:?}");
        }
    }

    #[test]
    fn journal_stream_is_two_decimals() {
        assert_eq!(
            parse_stream(OsStr::new("64770:123456")),
            Some((64770, 123456))
        );
        for bad in ["", "64770", "64770:", ":1", "a:1", "1:b", "0x10:1", "1:2:3"] {
            assert_eq!(parse_stream(OsStr::new(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn connected_only_when_stderr_is_the_named_stream() {
        let s = OsStr::new("8:42");
        assert!(connected(Some(s), Some((8, 42))));
        // A child whose stderr was redirected keeps the variable, not the stream.
        assert!(!connected(Some(s), Some((8, 43))));
        assert!(!connected(Some(s), Some((9, 42))));
        assert!(!connected(None, Some((8, 42))));
        assert!(!connected(Some(s), None));
        assert!(!connected(Some(OsStr::new("garbage")), Some((8, 42))));
    }

    #[test]
    fn target_decides_with_the_stream() {
        assert!(wants_journal(Target::Auto, true));
        assert!(!wants_journal(Target::Auto, false));
        assert!(wants_journal(Target::Journal, false));
        assert!(!wants_journal(Target::Stderr, true));
    }

    #[test]
    fn stderr_id_is_fd_2() {
        let ours = stderr_id().unwrap();
        let meta = std::fs::metadata("/proc/self/fd/2").unwrap();
        assert_eq!(ours, (meta.dev(), meta.ino()));
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        let p = priorities();
        let got = [p.error, p.warn, p.info, p.debug, p.trace].map(|p| p as u8 - b'0');
        assert_eq!(got, [3, 4, 6, 7, 7]);
    }
}
