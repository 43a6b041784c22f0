//! The volume dir writer on temp dirs: layout, modes, no-op rewrites, pruning, and a
//! dir inode that survives updates (what a running checkpoint's bind mount holds).

use super::*;

const O: Ownership = Ownership {
    dir_mode: 0o700,
    owner: None,
};

fn file(path: &str, bytes: &str, mode: u32) -> File {
    File {
        path: path.into(),
        bytes: bytes.as_bytes().to_vec(),
        mode,
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn writes_files_behind_data_symlinks_with_their_modes() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("vol");
    let files = [
        file("tls.crt", "CERT", 0o600),
        file("sub/ca.crt", "CA", 0o640),
    ];
    check(&files).unwrap();
    assert!(write(&dir, &files, &O).unwrap());
    assert_eq!(fs::read_to_string(dir.join("tls.crt")).unwrap(), "CERT");
    assert_eq!(fs::read_to_string(dir.join("sub/ca.crt")).unwrap(), "CA");
    assert_eq!(mode(&dir.join("tls.crt")), 0o600);
    assert_eq!(mode(&dir.join("sub/ca.crt")), 0o640);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(
        fs::read_link(dir.join("tls.crt")).unwrap(),
        Path::new("..data/tls.crt")
    );
    let version = fs::read_link(dir.join("..data")).unwrap();
    assert!(version.to_string_lossy().starts_with("..kubeboot-"));
    assert_eq!(mode(&dir.join(&version)), 0o700);
    assert_eq!(mode(&dir.join(&version).join("sub")), 0o700);
}

#[test]
fn the_same_payload_writes_nothing_a_new_one_swaps_and_prunes() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("vol");
    let one = [file("a", "1", 0o600), file("b", "2", 0o600)];
    assert!(write(&dir, &one, &O).unwrap());
    let inode = fs::metadata(&dir).unwrap().ino();
    let first = fs::read_link(dir.join("..data")).unwrap();
    assert!(
        !write(&dir, &one, &O).unwrap(),
        "unchanged payload rewritten"
    );
    assert_eq!(fs::read_link(dir.join("..data")).unwrap(), first);

    // A changed mode alone is a change.
    let chmod = [file("a", "1", 0o640), file("b", "2", 0o600)];
    assert!(write(&dir, &chmod, &O).unwrap());
    assert_eq!(mode(&dir.join("a")), 0o640);

    let two = [file("a", "1b", 0o600), file("c", "3", 0o600)];
    assert!(write(&dir, &two, &O).unwrap());
    assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "1b");
    assert_eq!(fs::read_to_string(dir.join("c")).unwrap(), "3");
    assert!(
        fs::symlink_metadata(dir.join("b")).is_err(),
        "stale key kept"
    );
    assert_eq!(fs::metadata(&dir).unwrap().ino(), inode, "dir replaced");
    let versions: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("..kubeboot-"))
        .collect();
    assert_eq!(versions.len(), 1, "{versions:?}");

    // Empty: an optional object that is gone.
    assert!(write(&dir, &[], &O).unwrap());
    assert!(fs::symlink_metadata(dir.join("a")).is_err());
    assert!(dir.is_dir());
}

#[test]
fn a_missing_visible_link_is_repaired() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("vol");
    let files = [file("a", "1", 0o600)];
    write(&dir, &files, &O).unwrap();
    fs::remove_file(dir.join("a")).unwrap();
    assert!(write(&dir, &files, &O).unwrap());
    assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "1");
}

#[test]
fn unsafe_paths_are_refused() {
    for bad in ["../x", "/abs", "a/../b", "..data", "a/..b", "", "a//b"] {
        assert!(check(&[file(bad, "", 0o600)]).is_err(), "{bad}");
    }
    check(&[file("a.b/c", "", 0o600), file(".hidden", "", 0o600)]).unwrap();
}
