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

/// Issue 12, finding 1 (the proof of concept that ran): a process of the pod's user that
/// could write the volume dir planted links for root's next write to follow, and got a
/// file written into the static pod dir. Here such a process races 300 writes, trying to
/// put a link at every name in the volume tree; no entry of its own may ever appear, and
/// nothing may be written outside the volume. Needs root (to write as root and run the
/// attacker as another uid); skipped otherwise.
#[test]
fn a_process_of_the_pods_user_never_steers_a_write() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // The attacker may traverse to the volume, as a pod's process reaches its mount.
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = t.path().join("vol");
    let target = t.path().join("manifests");
    fs::create_dir(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o777)).unwrap();
    let o = Ownership {
        dir_mode: 0o755,
        owner: Some((65534, 65534)),
    };
    write(&dir, &[file("a/b/evil.yaml", "x", 0o644)], &o).unwrap();
    let stop = dir.join("..stop-attacker");
    let script = format!(
        r#"n=0; while [ ! -e {stop} ] && [ $n -lt 100000 ]; do
             for d in {dir} {dir}/..kubeboot-* {dir}/..kubeboot-*/a {dir}/..kubeboot-*/a/b; do
               for name in a b x ..data ..data_tmp evil.yaml; do
                 ln -s {target} "$d/$name" 2>/dev/null && echo planted "$d/$name"
               done
             done; n=$((n+1)); done"#,
        stop = stop.display(),
        dir = dir.display(),
        target = target.display()
    );
    let attacker = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            &script,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux)");
    for i in 0..300 {
        let files = [
            file("a/b/evil.yaml", &format!("v{i}"), 0o644),
            file(&format!("x{}", i % 3), "y", 0o600),
        ];
        // A write may fail on what the attacker did; it must never land elsewhere.
        let _ = write(&dir, &files, &o);
    }
    fs::write(&stop, "").unwrap();
    let out = attacker.wait_with_output().unwrap();
    let planted = String::from_utf8_lossy(&out.stdout);
    assert!(
        planted.trim().is_empty(),
        "the pod's user planted:\n{planted}"
    );
    let landed: Vec<_> = fs::read_dir(&target).unwrap().collect();
    assert!(
        landed.is_empty(),
        "root wrote outside the volume: {landed:?}"
    );
    // The files are the pod's; every dir is root's.
    assert_eq!(
        fs::metadata(dir.join("a/b/evil.yaml")).unwrap().uid(),
        65534
    );
    for d in [dir.clone(), dir.join("a"), dir.join("a/b")] {
        assert_eq!(fs::metadata(&d).unwrap().uid(), 0, "{}", d.display());
    }
}
