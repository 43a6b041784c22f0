//! Client-side encryption of a backup with age: the snapshot, the PKI and the inner
//! `backup.json` sealed together into one file, `backup.tar.age`, before the backup
//! counts (issue 14: a backup that carries the etcd client key cannot leave the node
//! in the clear).
//!
//! The format is a plain ustar stream inside an age v1 file, both upstream formats
//! with independent tools, weighed against:
//! - one age file per backup file: leaks the names and sizes of the PKI, needs a
//!   recipient stanza per file, and a restore has to decrypt each file apart;
//! - a format of kubeboot's own (length-prefixed records): nothing but kubeboot could
//!   read it, and an operator whose master is gone may not have kubeboot at hand.
//!
//! With tar inside age, `age -d -i KEY backup.tar.age | tar x` gives back exactly the
//! directory a plain backup is (`backup.json`, `snapshot.db`, `pki/…`), which
//! `recover --etcd-backup-file` and `etcdutl snapshot restore` read as they are. age
//! authenticates every 64 KiB chunk and the end of the stream, so a changed or cut
//! archive fails to decrypt instead of restoring something else.
//!
//! Only X25519 recipients (`age1…`) and identities (`AGE-SECRET-KEY-1…`) are accepted:
//! the age crate's ssh and plugin features are off, so nothing runs another binary.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The archive's name inside an encrypted backup.
pub const ARCHIVE: &str = "backup.tar.age";
/// How every age v1 file starts.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    /// A recipient or identity the operator gave cannot be used (exit 2).
    #[error("{0}")]
    Key(String),
    /// The identity opens no recipient stanza of the archive (exit 2).
    #[error("{archive}: not encrypted to any identity in {identity}")]
    WrongIdentity { archive: String, identity: String },
    /// The archive is damaged or not an archive (exit 1).
    #[error("{path}: {reason}")]
    Archive { path: String, reason: String },
}

fn archive_err(path: &Path) -> impl Fn(String) -> CryptError + '_ {
    move |reason| CryptError::Archive {
        path: path.display().to_string(),
        reason,
    }
}

/// The recipients a backup is encrypted to: every `--recipient` and every line of every
/// `--recipients-file` (age's recipients-file format: one recipient a line, `#`
/// comments and blank lines ignored). Duplicates are dropped; the order is kept.
pub fn recipients(
    given: &[String],
    files: &[PathBuf],
) -> Result<Vec<age::x25519::Recipient>, CryptError> {
    let mut texts: Vec<(String, String)> = given
        .iter()
        .map(|r| (format!("--recipient {r:?}"), r.trim().to_string()))
        .collect();
    for file in files {
        let body = std::fs::read_to_string(file)
            .map_err(|e| CryptError::Key(format!("{}: {e}", file.display())))?;
        let before = texts.len();
        for (n, line) in body.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                texts.push((format!("{} line {}", file.display(), n + 1), line.into()));
            }
        }
        if texts.len() == before {
            return Err(CryptError::Key(format!(
                "{}: no recipient in it",
                file.display()
            )));
        }
    }
    let mut out: Vec<age::x25519::Recipient> = Vec::new();
    for (where_, text) in texts {
        let r = age::x25519::Recipient::from_str(&text).map_err(|_| {
            CryptError::Key(format!(
                "{where_}: not an age X25519 recipient (age1…); ssh and plugin recipients are not supported"
            ))
        })?;
        if !out.iter().any(|o| o.to_string() == r.to_string()) {
            out.push(r);
        }
    }
    Ok(out)
}

/// An age identity file (`age-keygen`'s output), read once; its path is kept for the
/// errors. The keys never appear in a message or a log line.
pub struct Identity {
    file: PathBuf,
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.file.display())
    }
}

impl Identity {
    /// Reads `file`; one-line errors name it (age's own message names the line, never
    /// its contents).
    pub fn load(file: &Path) -> Result<Identity, CryptError> {
        let err = |what: String| CryptError::Key(format!("{}: {what}", file.display()));
        let parsed = age::IdentityFile::from_file(file.display().to_string())
            .map_err(|e| err(first_line(&e.to_string())))?;
        let keys = parsed
            .into_identities()
            .map_err(|e| err(first_line(&e.to_string())))?;
        if keys.is_empty() {
            return Err(err(
                "no age identity in it (an X25519 secret key, as age-keygen writes)".into(),
            ));
        }
        Ok(Identity {
            file: file.to_path_buf(),
            keys,
        })
    }

    pub fn file(&self) -> &Path {
        &self.file
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// Whether `path` is an age file (by its header line).
pub fn is_age_file(path: &Path) -> io::Result<bool> {
    let mut head = [0u8; AGE_MAGIC.len()];
    let mut f = File::open(path)?;
    let mut got = 0;
    while got < head.len() {
        match f.read(head.get_mut(got..).unwrap_or_default())? {
            0 => break,
            n => got += n,
        }
    }
    Ok(head.get(..got) == Some(AGE_MAGIC))
}

/// Counts and hashes what passes through to the file, so the archive's sha256 is
/// known without reading it back.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `out` (created new, 0600, fsynced): the files `members` (paths relative to
/// `root`, in this order) as a tar stream encrypted to `recipients`. Returns the
/// archive's size and hex sha256. The caller removes `out` on error.
pub fn seal(
    root: &Path,
    members: &[String],
    recipients: &[age::x25519::Recipient],
    out: &Path,
) -> Result<(u64, String), CryptError> {
    let io_err = |e: io::Error| archive_err(out)(e.to_string());
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| CryptError::Key(format!("age: {e}")))?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(io_err)?;
    let hashing = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        size: 0,
    };
    let sealed = encryptor.wrap_output(hashing).map_err(io_err)?;
    let mut tar = tar::Builder::new(sealed);
    tar.mode(tar::HeaderMode::Deterministic);
    for name in members {
        let path = root.join(name);
        let mut f = File::open(&path).map_err(|e| archive_err(&path)(e.to_string()))?;
        let len = f
            .metadata()
            .map_err(|e| archive_err(&path)(e.to_string()))?
            .len();
        let mut header = tar::Header::new_ustar();
        header.set_size(len);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, &mut f).map_err(io_err)?;
    }
    let sealed = tar.into_inner().map_err(io_err)?;
    let hashing = sealed.finish().map_err(io_err)?;
    let Hashing {
        inner,
        hasher,
        size,
    } = hashing;
    let file = inner.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Opens `archive` with `identity` and calls `visit` with each member's name and
/// contents, in archive order, until it returns `false` or the archive ends. The whole
/// archive is read only when `visit` never stops it.
pub fn read_members(
    archive: &Path,
    identity: &Identity,
    mut visit: impl FnMut(&str, &mut dyn Read) -> Result<bool, CryptError>,
) -> Result<(), CryptError> {
    let bad = archive_err(archive);
    let file = File::open(archive).map_err(|e| bad(e.to_string()))?;
    let decryptor =
        age::Decryptor::new_buffered(BufReader::with_capacity(1 << 20, file)).map_err(|e| {
            bad(format!(
                "not an age archive of a backup: {}",
                first_line(&e.to_string())
            ))
        })?;
    let plain = decryptor
        .decrypt(
            identity
                .keys
                .iter()
                .map(|k| k.as_ref() as &dyn age::Identity),
        )
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => CryptError::WrongIdentity {
                archive: archive.display().to_string(),
                identity: identity.file.display().to_string(),
            },
            other => bad(first_line(&other.to_string())),
        })?;
    let mut tar = tar::Archive::new(plain);
    let entries = tar.entries().map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if !visit(&name, &mut entry)? {
            return Ok(());
        }
    }
    Ok(())
}

/// One member's bytes (e.g. `snapshot.db`), read out of the archive into memory.
pub fn read_member(
    archive: &Path,
    identity: &Identity,
    member: &str,
) -> Result<Vec<u8>, CryptError> {
    let mut found = None;
    read_members(archive, identity, |name, r| {
        if name != member {
            return Ok(true);
        }
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes)
            .map_err(|e| archive_err(archive)(format!("{member}: {e}")))?;
        found = Some(bytes);
        Ok(false)
    })?;
    found.ok_or_else(|| archive_err(archive)(format!("no {member} in it")))
}

/// A snapshot decrypted out of an archive into a private dir, for the readers that take
/// a file (`recover`, and `ensure` once it is given an identity). The dir is removed
/// when this is dropped, on every exit.
#[derive(Debug)]
pub struct PlainSnapshot {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl PlainSnapshot {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Decrypts `archive`'s `snapshot.db` into a new dir (0700, the file 0600) under `base`,
/// which should be on the disk the recovery is written to: the snapshot may be large,
/// and a tmpfs `/tmp` holds it in memory.
pub fn unseal_snapshot(
    archive: &Path,
    identity: &Identity,
    base: &Path,
) -> Result<PlainSnapshot, CryptError> {
    let bytes = read_member(archive, identity, super::catalog::SNAPSHOT)?;
    let bad = |e: io::Error| CryptError::Archive {
        path: base.display().to_string(),
        reason: format!("a private dir for the decrypted snapshot: {e}"),
    };
    // The writer's PID at the end, as every temp name of kubeboot's carries it, so a
    // killed run's copy is found and removed (`fsutil::remove_stale_temps`).
    let dir = tempfile::Builder::new()
        .prefix(".kubeboot-decrypted-")
        .suffix(&format!(".kubeboot-tmp-{}", std::process::id()))
        .tempdir_in(base)
        .map_err(bad)?;
    // tempfile leaves the mode to the umask; a decrypted snapshot is for root alone.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).map_err(bad)?;
    let path = dir.path().join(super::catalog::SNAPSHOT);
    crate::fsutil::write_new(&path, &bytes, 0o600).map_err(|e| CryptError::Archive {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(PlainSnapshot { dir, path })
}

#[cfg(test)]
#[path = "crypt_tests.rs"]
mod tests;
