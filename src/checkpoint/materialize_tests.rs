//! Modes, ownership and key selection of checkpoint volume files; no api-server.

use super::*;
use crate::checkpoint::sanitize::Item;

fn of(
    items: &[(&str, &str, Option<i32>)],
    default_mode: Option<i32>,
    optional: bool,
) -> ObjectFiles {
    ObjectFiles {
        name: "obj".into(),
        items: items
            .iter()
            .map(|(k, p, m)| Item {
                key: (*k).into(),
                path: (*p).into(),
                mode: *m,
            })
            .collect(),
        default_mode,
        optional,
    }
}

fn data(keys: &[&str]) -> BTreeMap<String, Vec<u8>> {
    keys.iter()
        .map(|k| (k.to_string(), format!("value-of-{k}").into_bytes()))
        .collect()
}

#[test]
fn modes() {
    assert_eq!(file_mode(None, true, false), 0o600);
    assert_eq!(file_mode(None, false, false), 0o644);
    assert_eq!(file_mode(Some(0o644), true, false), 0o640);
    assert_eq!(file_mode(Some(0o777), true, false), 0o770);
    assert_eq!(file_mode(Some(0o400), true, true), 0o440);
    assert_eq!(file_mode(Some(0o4755), false, false), 0o755);
    assert_eq!(file_mode(Some(-1), true, false), 0o770);
    assert_eq!(file_mode(None, true, true), 0o640);
}

#[test]
fn ownership_follows_file_owner() {
    let o = FileOwner {
        uid: Some(65534),
        gid: Some(2000),
    };
    assert_eq!(
        ownership(&o, true),
        Ok(Ownership {
            dir_mode: 0o750,
            owner: Some((65534, 2000))
        })
    );
    assert_eq!(ownership(&o, false).map(|x| x.owner), Ok(None));
    let root = ownership(&FileOwner::default(), true).unwrap();
    assert_eq!((root.dir_mode, root.owner), (0o700, Some((0, 0))));
    assert!(
        ownership(
            &FileOwner {
                uid: Some(-1),
                gid: None
            },
            true
        )
        .is_err()
    );
}

#[test]
fn every_key_or_the_items_with_their_modes() {
    let d = data(&["tls.crt", "tls.key"]);
    let all = object_files(&of(&[], Some(0o440), false), Some(&d), true, false, "s").unwrap();
    assert_eq!(
        all.iter()
            .map(|f| (f.path.as_str(), f.mode))
            .collect::<Vec<_>>(),
        [("tls.crt", 0o440), ("tls.key", 0o440)]
    );
    let items = of(&[("tls.key", "k/key.pem", Some(0o400))], None, false);
    let some = object_files(&items, Some(&d), true, false, "s").unwrap();
    assert_eq!(some.len(), 1);
    assert_eq!(some[0].path, "k/key.pem");
    assert_eq!(some[0].mode, 0o400);
    assert_eq!(some[0].bytes, b"value-of-tls.key");
}

#[test]
fn missing_objects_and_keys_fail_unless_optional_and_never_show_values() {
    let d = data(&["a"]);
    let err = object_files(&of(&[], None, false), None, true, false, "secret ns/obj").unwrap_err();
    assert_eq!(err, "secret ns/obj does not exist");
    assert!(
        object_files(&of(&[], None, true), None, true, false, "s")
            .unwrap()
            .is_empty()
    );
    let missing = of(&[("b", "b", None)], None, false);
    let err = object_files(&missing, Some(&d), true, false, "secret ns/obj").unwrap_err();
    assert_eq!(err, "secret ns/obj has no key \"b\"");
    let optional = of(&[("b", "b", None), ("a", "a", None)], None, true);
    let got = object_files(&optional, Some(&d), true, false, "s").unwrap();
    assert_eq!(got.len(), 1);
    let bad = data(&["..data"]);
    let err = object_files(&of(&[], None, false), Some(&bad), true, false, "s").unwrap_err();
    assert!(!err.contains("value-of"), "{err}");
}

#[test]
fn later_projection_sources_win() {
    let f = |p: &str, b: &str| File {
        path: p.into(),
        bytes: b.into(),
        mode: 0o600,
    };
    let mut all = vec![f("a", "1"), f("b", "1")];
    merge(&mut all, vec![f("a", "2")]);
    assert_eq!(all, vec![f("b", "1"), f("a", "2")]);
}
