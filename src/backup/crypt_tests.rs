use super::*;
use age::secrecy::ExposeSecret;

fn key_pair(dir: &Path, name: &str) -> (PathBuf, String) {
    let id = age::x25519::Identity::generate();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("# created: test\n{}\n", id.to_string().expose_secret()),
    )
    .unwrap();
    (path, id.to_public().to_string())
}

#[test]
fn seals_and_opens_members_in_order() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("pki/etc")).unwrap();
    std::fs::write(t.path().join("snapshot.db"), b"snap").unwrap();
    std::fs::write(t.path().join("pki/etc/key"), b"secret").unwrap();
    let (id_file, public) = key_pair(t.path(), "id.txt");
    let r = recipients(&[public], &[]).unwrap();
    let out = t.path().join(ARCHIVE);
    let members = ["snapshot.db".to_string(), "pki/etc/key".to_string()];
    let (size, sha) = seal(t.path(), &members, &r, &out).unwrap();
    assert_eq!(
        crate::backup::catalog::hash_file(&out).unwrap(),
        (size, sha)
    );
    assert!(is_age_file(&out).unwrap());
    assert!(!is_age_file(&t.path().join("snapshot.db")).unwrap());
    let raw = std::fs::read(&out).unwrap();
    assert!(!raw.windows(6).any(|w| w == b"secret"), "ciphertext only");

    let id = Identity::load(&id_file).unwrap();
    let mut seen = Vec::new();
    read_members(&out, &id, |name, r| {
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        seen.push((name.to_string(), s));
        Ok(true)
    })
    .unwrap();
    assert_eq!(
        seen,
        [
            ("snapshot.db".to_string(), "snap".to_string()),
            ("pki/etc/key".to_string(), "secret".to_string())
        ]
    );
    assert_eq!(read_member(&out, &id, "pki/etc/key").unwrap(), b"secret");
    let err = read_member(&out, &id, "nope").unwrap_err().to_string();
    assert!(err.ends_with("backup.tar.age: no nope in it"), "{err}");
}

#[test]
fn a_wrong_identity_names_its_file_and_a_cut_archive_fails() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("snapshot.db"), vec![7u8; 200_000]).unwrap();
    let (_, public) = key_pair(t.path(), "right.txt");
    let (wrong, _) = key_pair(t.path(), "wrong.txt");
    let out = t.path().join(ARCHIVE);
    let r = recipients(&[public], &[]).unwrap();
    seal(t.path(), &["snapshot.db".into()], &r, &out).unwrap();
    let err = read_member(&out, &Identity::load(&wrong).unwrap(), "snapshot.db")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}: not encrypted to any identity in {}",
            out.display(),
            wrong.display()
        )
    );
    // Cut inside the payload: age's STREAM refuses the last chunk.
    let right = Identity::load(&t.path().join("right.txt")).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    std::fs::write(&out, &bytes[..bytes.len() - 1000]).unwrap();
    assert!(read_member(&out, &right, "snapshot.db").is_err());
}

#[test]
fn recipients_come_from_flags_and_files_once_each() {
    let t = tempfile::tempdir().unwrap();
    let (_, a) = key_pair(t.path(), "a");
    let (_, b) = key_pair(t.path(), "b");
    let file = t.path().join("recipients.txt");
    std::fs::write(&file, format!("# ops team\n\n{b}\n{a}\n")).unwrap();
    let r = recipients(std::slice::from_ref(&a), &[file]).unwrap();
    let texts: Vec<String> = r.iter().map(|r| r.to_string()).collect();
    assert_eq!(texts, [a, b]);

    let bad = t.path().join("bad.txt");
    std::fs::write(&bad, "age1x\n").unwrap();
    let err = recipients(&[], std::slice::from_ref(&bad))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("{} line 1: not an age", bad.display())),
        "{err}"
    );
    std::fs::write(&bad, "# nothing\n").unwrap();
    let err = recipients(&[], std::slice::from_ref(&bad))
        .unwrap_err()
        .to_string();
    assert_eq!(err, format!("{}: no recipient in it", bad.display()));
}

#[test]
fn identity_errors_name_the_file_and_never_its_contents() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("id.txt");
    std::fs::write(&f, "AGE-SECRET-KEY-1NOTAKEY\n").unwrap();
    let err = Identity::load(&f).unwrap_err().to_string();
    assert!(err.starts_with(&f.display().to_string()), "{err}");
    assert!(!err.contains("NOTAKEY"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    std::fs::write(&f, "# empty\n").unwrap();
    let err = Identity::load(&f).unwrap_err().to_string();
    assert!(err.contains("no age identity"), "{err}");
    let err = Identity::load(&t.path().join("absent"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent: "), "{err}");
}

#[test]
fn an_unsealed_snapshot_is_private_and_gone_when_dropped() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("snapshot.db"), b"snap").unwrap();
    let (id_file, public) = key_pair(t.path(), "id.txt");
    let out = t.path().join(ARCHIVE);
    seal(
        t.path(),
        &["snapshot.db".into()],
        &recipients(&[public], &[]).unwrap(),
        &out,
    )
    .unwrap();
    let base = t.path().join("base");
    std::fs::create_dir(&base).unwrap();
    let plain = unseal_snapshot(&out, &Identity::load(&id_file).unwrap(), &base).unwrap();
    assert_eq!(std::fs::read(plain.path()).unwrap(), b"snap");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(plain.dir()), 0o700);
    assert_eq!(mode(plain.path()), 0o600);
    let dir = plain.dir().to_path_buf();
    drop(plain);
    assert!(!dir.exists());
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 0);
}
