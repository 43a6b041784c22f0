//! A stand-in for systemd-journald's native socket, for testing what kubeboot sends to
//! the journal without a booted systemd.
//!
//! kubeboot (through tracing-journald) sends each entry as one datagram to the fixed path
//! `/run/systemd/journal/socket`. [`Journald::start`] binds that socket inside a temp dir;
//! [`Journald::command`] runs a program in a private mount namespace (`unshare`) where
//! that dir is mounted over `/run`, so the program's datagrams land here and the host's
//! `/run` is never touched. This needs root (or CAP_SYS_ADMIN), as the tests run in CI.
//!
//! Parsing follows systemd's `src/journal/journald-native.c`, `manager_process_entry`:
//! - a datagram holds entries separated by an empty line; lines starting with `.` or `#`
//!   are skipped;
//! - a field is `NAME=value\n`, or `NAME\n` + a little-endian u64 length + that many bytes
//!   + `\n` (values with newlines or binary data);
//! - a field whose name is not valid (`journal_field_valid` in `journal-file.c`, without
//!   protected names: 1–64 characters of `A-Z`, `0-9`, `_`, not starting with a digit or
//!   `_`) is dropped, and the rest of the entry kept;
//! - a binary field that is cut short or lacks its closing `\n` ends the datagram: the
//!   fields before it still make an entry, the rest is dropped; so is text after the last
//!   newline;
//! - an entry with no valid field is not stored. No `PRIORITY` is invented: journald
//!   uses 6 (info) for its own rate limiting and forwarding, but stores only what came.
//!
//! Still simplified: entries passed as a sealed memfd (what a sender does when an entry
//! is larger than a datagram) are not read; journald's trusted fields (`_PID`,
//! `_SYSTEMD_UNIT`, …), rate limiting and size limits are not modelled.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One journal entry: its fields in the order sent (a name may repeat).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub fields: Vec<(String, Vec<u8>)>,
}

impl Entry {
    /// The first value of `name`, as text.
    pub fn get(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of `name`, as text.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The names of the fields, once each, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.fields.iter().map(|(n, _)| n.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// `journal_field_valid(name, len, allow_protected = false)`.
pub fn field_valid(name: &[u8]) -> bool {
    let first_ok = name
        .first()
        .is_some_and(|&c| c != b'_' && !c.is_ascii_digit());
    first_ok
        && name.len() <= 64
        && name
            .iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// The entries of one datagram, as journald would store them.
pub fn parse(datagram: &[u8]) -> Vec<Entry> {
    parse_all(datagram).0
}

/// [`parse`], and the names of the fields journald would drop (invalid names).
pub fn parse_all(datagram: &[u8]) -> (Vec<Entry>, Vec<String>) {
    let mut refused = Vec::new();
    let mut entries = Vec::new();
    let mut entry = Entry::default();
    let mut rest = datagram;
    // Text after the last newline is trailing noise: what was collected is kept.
    while let Some(nl) = rest.iter().position(|&c| c == b'\n') {
        let line = &rest[..nl];
        if line.is_empty() {
            // Entry separator.
            if !entry.fields.is_empty() {
                entries.push(std::mem::take(&mut entry));
            }
            rest = &rest[1..];
            continue;
        }
        if matches!(line.first(), Some(b'.' | b'#')) {
            rest = &rest[nl + 1..];
            continue;
        }
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            let (name, value) = (&line[..eq], &line[eq + 1..]);
            if field_valid(name) {
                entry
                    .fields
                    .push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
            } else {
                refused.push(String::from_utf8_lossy(name).into_owned());
            }
            rest = &rest[nl + 1..];
            continue;
        }
        // Binary form: NAME \n le64 length, bytes, \n.
        let after = &rest[nl + 1..];
        let Some(len) = after.get(..8) else { break };
        let mut le = [0u8; 8];
        le.copy_from_slice(len);
        let Ok(len) = usize::try_from(u64::from_le_bytes(le)) else {
            break;
        };
        let Some(end) = len.checked_add(8) else { break };
        match after.get(end) {
            Some(b'\n') => {}
            _ => break,
        }
        if field_valid(line) {
            entry.fields.push((
                String::from_utf8_lossy(line).into_owned(),
                after[8..end].to_vec(),
            ));
        } else {
            refused.push(String::from_utf8_lossy(line).into_owned());
        }
        rest = &after[end + 1..];
    }
    if !entry.fields.is_empty() {
        entries.push(entry);
    }
    (entries, refused)
}

/// The socket and what has arrived on it.
pub struct Journald {
    run_dir: tempfile::TempDir,
    entries: Arc<Mutex<Vec<Entry>>>,
    refused: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Journald {
    /// Binds `<temp run dir>/systemd/journal/socket` and starts reading it. Reads run
    /// all the time: a sender's datagrams block once the receive queue is full.
    pub fn start() -> std::io::Result<Journald> {
        let run_dir = tempfile::tempdir()?;
        let dir = run_dir.path().join("systemd/journal");
        std::fs::create_dir_all(&dir)?;
        let socket = UnixDatagram::bind(dir.join("socket"))?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let entries = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (e, r, s) = (entries.clone(), refused.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let (got, dropped) = parse_all(&buf[..n]);
                    if let Ok(mut all) = e.lock() {
                        all.extend(got);
                    }
                    if let Ok(mut all) = r.lock() {
                        all.extend(dropped);
                    }
                }
            }
        });
        Ok(Journald {
            run_dir,
            entries,
            refused,
            stop,
            reader: Some(reader),
        })
    }

    /// The dir that stands for `/run`.
    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// `/run/systemd/journal/socket` as seen from outside the namespace.
    pub fn socket_path(&self) -> PathBuf {
        self.run_dir.path().join("systemd/journal/socket")
    }

    /// `program`, to be run where `/run` is this double's dir (a private mount
    /// namespace; the host's mounts are not changed).
    pub fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r#"mount --bind "$0" /run && exec "$@""#)
            .arg(self.run_dir.path())
            .arg(program.as_ref());
        c
    }

    /// Every entry received so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The names of every field journald would have dropped.
    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Polls until `pred` holds for the entries received, or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Entry]) -> bool) -> Vec<Entry> {
        let deadline = Instant::now() + timeout;
        loop {
            let e = self.entries();
            if pred(&e) || Instant::now() > deadline {
                return e;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(name: &str, value: &[u8]) -> Vec<u8> {
        let mut v = format!("{name}\n").into_bytes();
        v.extend_from_slice(&(value.len() as u64).to_le_bytes());
        v.extend_from_slice(value);
        v.push(b'\n');
        v
    }

    #[test]
    fn text_and_binary_fields_make_one_entry() {
        let mut d = b"PRIORITY=4\n".to_vec();
        d.extend(binary("MESSAGE", b"two\nlines"));
        d.extend(b"KUBEBOOT_STEP=pivot\n");
        let e = parse(&d);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].get("PRIORITY").as_deref(), Some("4"));
        assert_eq!(e[0].get("MESSAGE").as_deref(), Some("two\nlines"));
        assert_eq!(e[0].get("KUBEBOOT_STEP").as_deref(), Some("pivot"));
    }

    #[test]
    fn names_journald_refuses_are_dropped_the_rest_kept() {
        let mut d = Vec::new();
        for bad in [
            "lower=x",
            "_PID=1",
            "9LIVES=x",
            "A-B=x",
            "=x",
            "Kubeboot_STEP=x",
        ] {
            d.extend(format!("{bad}\n").into_bytes());
        }
        d.extend(binary("_SYSTEMD_UNIT", b"forged"));
        d.extend(binary(&"L".repeat(65), b"long"));
        d.extend(binary(&"L".repeat(64), b"ok"));
        d.extend(b"MESSAGE=kept\n");
        let (e, refused) = parse_all(&d);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].names(), vec!["L".repeat(64), "MESSAGE".into()]);
        assert_eq!(refused.len(), 8, "{refused:?}");
        // A datagram of refused names only stores nothing.
        assert!(parse(b"lower=x\n_PID=1\n").is_empty());
    }

    #[test]
    fn separators_comments_and_broken_tails() {
        let e = parse(b"MESSAGE=a\n\n# note\n.cmd\nMESSAGE=b\n\n\nMESSAGE=c\ntrailing");
        let m: Vec<_> = e.iter().map(|e| e.get("MESSAGE").unwrap()).collect();
        assert_eq!(m, ["a", "b", "c"]);
        // A binary field cut short ends the datagram; what came before is an entry.
        let mut d = b"MESSAGE=first\n".to_vec();
        let mut cut = binary("KUBEBOOT_X", b"0123456789");
        cut.truncate(cut.len() - 3);
        d.extend(cut);
        let e = parse(&d);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].names(), ["MESSAGE"]);
        // A length whose closing newline is missing: the same.
        let mut bad = binary("KUBEBOOT_X", b"abc");
        *bad.last_mut().unwrap() = b'x';
        bad.extend(b"\nMESSAGE=after\n");
        assert!(parse(&bad).is_empty());
        // The empty probe datagram a sender uses to see the socket is there.
        assert!(parse(b"").is_empty());
    }
}
