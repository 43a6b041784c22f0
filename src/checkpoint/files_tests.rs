//! File naming and reading the disk into `OnDisk`, on temp dirs.

use super::*;
use crate::checkpoint::sanitize::ANNOTATION_CHECKPOINT_OF;

fn layout(root: &Path) -> Layout {
    Layout {
        active_dir: root.join("manifests"),
        checkpoint_dir: root.join("checkpoints"),
        host_checkpoint_dir: "/etc/kubernetes/checkpoints".into(),
    }
}

fn checkpoint_json(ns: &str, name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"{ns}","annotations":{{"{ANNOTATION_CHECKPOINT_OF}":"{name}"}}}},"spec":{{"containers":[{{"name":"c","image":"i"}}]}}}}"#
    )
}

#[test]
fn file_names_round_trip_and_foreign_names_are_not_ours() {
    let key = PodKey::new("kube-system", "kube-apiserver-x7k2p.a");
    let name = file_name(&key);
    assert_eq!(
        name,
        "kubeboot-checkpoint_kube-system_kube-apiserver-x7k2p.a.json"
    );
    assert_eq!(parse_file_name(&name), Some(key));
    for foreign in [
        "kube-system-kube-apiserver.json", // bootkube's
        "kube-apiserver.yaml",
        "kubeboot-checkpoint_kube-system.json",
        "kubeboot-checkpoint_a_b_c.json",
        "kubeboot-checkpoint_a_b.yaml",
        "kubeboot-checkpoint__b.json",
        "kubeboot-checkpoint_a_..json",
        ".kubeboot-checkpoint_a_b.json.tmp-12",
    ] {
        assert_eq!(parse_file_name(foreign), None, "{foreign}");
    }
    assert!(is_own_temp(".kubeboot-checkpoint_a_b.json.tmp-12"));
    assert!(!is_own_temp(".kube-apiserver.yaml.swp"));
    assert!(!is_own_temp(".hidden"));
    assert!(!is_own_temp("kubeboot-checkpoint_a_b.json"));
}

#[test]
fn host_paths_map_into_the_local_checkpoint_dir_only() {
    let l = layout(Path::new("/node"));
    assert_eq!(
        l.local("/etc/kubernetes/checkpoints/secrets/ns/p/v"),
        Some(PathBuf::from("/node/checkpoints/secrets/ns/p/v"))
    );
    assert_eq!(
        l.local("/etc/kubernetes/checkpoints"),
        Some(PathBuf::from("/node/checkpoints"))
    );
    assert_eq!(l.local("/etc/kubernetes/checkpoints-other/x"), None);
    assert_eq!(l.local("/etc/kubernetes/checkpoints/../x"), None);
    assert_eq!(l.local("/etc/kubernetes/secrets"), None);
}

#[test]
fn missing_dirs_are_empty_and_saved_active_and_stale_are_told_apart() {
    let t = tempfile::tempdir().unwrap();
    let l = layout(t.path());
    assert!(read_disk(&l).unwrap().disk.is_empty());

    std::fs::create_dir_all(l.saved_dir()).unwrap();
    std::fs::create_dir_all(&l.active_dir).unwrap();
    let a = PodKey::new("ns", "a");
    let b = PodKey::new("ns", "b");
    let c = PodKey::new("ns", "c");
    let d = PodKey::new("ns", "d");
    for k in [&a, &b, &c] {
        std::fs::write(l.saved(k), checkpoint_json("ns", &k.name)).unwrap();
    }
    std::fs::write(l.active(&b), checkpoint_json("ns", "b")).unwrap();
    std::fs::write(l.active(&c), checkpoint_json("ns", "c") + "\n").unwrap();
    std::fs::write(l.active(&d), "garbage").unwrap();
    // Other files in both dirs are not ours.
    std::fs::write(l.active_dir.join("kube-apiserver.yaml"), "x").unwrap();
    std::fs::write(l.active_dir.join(".hidden"), "x").unwrap();
    std::fs::write(l.saved_dir().join("notes.txt"), "x").unwrap();

    let view = read_disk(&l).unwrap();
    assert!(view.problems.is_empty(), "{:?}", view.problems);
    assert_eq!(view.disk.len(), 4);
    assert_eq!(view.disk[&a].active, Active::No);
    assert_eq!(view.disk[&b].active, Active::Current);
    assert_eq!(view.disk[&c].active, Active::Stale);
    assert_eq!(view.disk[&d].active, Active::Stale);
    assert!(view.disk[&d].saved.is_none());
    assert_eq!(
        view.disk[&a]
            .saved
            .as_ref()
            .and_then(|p| p.metadata.name.clone()),
        Some("a".to_string())
    );
}

#[test]
fn a_saved_file_that_is_not_its_keys_checkpoint_is_a_problem_not_a_checkpoint() {
    let t = tempfile::tempdir().unwrap();
    let l = layout(t.path());
    std::fs::create_dir_all(l.saved_dir()).unwrap();
    let a = PodKey::new("ns", "a");
    let b = PodKey::new("ns", "b");
    std::fs::write(l.saved(&a), checkpoint_json("ns", "other")).unwrap();
    std::fs::write(l.saved(&b), "{").unwrap();
    let view = read_disk(&l).unwrap();
    assert_eq!(view.problems.len(), 2, "{:?}", view.problems);
    assert!(view.disk[&a].saved.is_none());
    assert!(view.disk[&b].saved.is_none());
    let plain = r#"{"metadata":{"name":"a","namespace":"ns"}}"#;
    assert!(parse_saved(&a, plain.as_bytes()).is_err());
}

#[test]
fn only_own_temp_files_are_cleaned() {
    let t = tempfile::tempdir().unwrap();
    let ours = t.path().join(".kubeboot-checkpoint_ns_a.json.tmp-77");
    let theirs = t.path().join(".kube-apiserver.yaml.tmp-77");
    std::fs::write(&ours, "x").unwrap();
    std::fs::write(&theirs, "x").unwrap();
    assert!(remove_own_temps(t.path()).is_empty());
    assert!(!ours.exists());
    assert!(theirs.exists());
}
