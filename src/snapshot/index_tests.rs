use prost::Message;
use prost::bytes::Bytes;

use super::*;

/// A file of `mvccpb.KeyValue`s one after another, and the index built from them in
/// this order (bucket order): `None` values are tombstones.
fn build(entries: &[(&str, Option<&str>)]) -> (Index, Bytes) {
    let mut body = Vec::new();
    let mut at = Vec::new();
    for (i, (key, value)) in entries.iter().enumerate() {
        let kv = StoredKv {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.unwrap_or_default().as_bytes()),
            mod_revision: i as i64 + 2,
            create_revision: 1,
            version: 3,
            lease: 4,
        };
        let bytes = kv.encode_to_vec();
        at.push(Entry {
            at: body.len() as u64,
            len: bytes.len() as u32,
            value_len: value.unwrap_or_default().len() as u32,
        });
        body.extend_from_slice(&bytes);
    }
    let mut b = Builder::default();
    for ((key, value), place) in entries.iter().zip(at) {
        b.push(key.as_bytes(), value.map(|_| place)).unwrap();
    }
    (b.finish(), Bytes::from(body))
}

fn live(index: &Index, body: &Bytes) -> Vec<(String, String, i64)> {
    (0..index.len())
        .map(|i| {
            let kv = index.get(i, body).unwrap().unwrap();
            assert_eq!((kv.create_revision, kv.version, kv.lease), (1, 3, 4));
            (
                String::from_utf8(kv.key.to_vec()).unwrap(),
                String::from_utf8(kv.value.to_vec()).unwrap(),
                kv.mod_revision,
            )
        })
        .collect()
}

#[test]
fn keeps_the_newest_entry_of_each_key_and_drops_tombstones() {
    let (index, body) = build(&[
        ("b", Some("b1")),
        ("a", Some("a1")),
        ("b", Some("b2")),
        ("a", None),
        ("c", Some("c1")),
        ("c", None),
        ("c", Some("c2")),
        ("", Some("empty key")),
    ]);
    assert_eq!(
        live(&index, &body),
        [
            ("".into(), "empty key".into(), 9),
            ("b".into(), "b2".into(), 4),
            ("c".into(), "c2".into(), 8)
        ]
    );
    assert_eq!(index.find(b"b"), Some(1));
    assert_eq!(index.find(b"a"), None);
    assert_eq!(index.prefix(b"c"), 2..3);
    assert_eq!(index.prefix(b""), 0..3);
    assert_eq!(index.prefix(b"d"), 3..3);
    assert!(index.get(3, &body).is_none());
    assert_eq!(index.sizes(0), Some((&b""[..], 9)));
    assert_eq!(index.sizes(2), Some((&b"c"[..], 2)));
}

#[test]
fn abbreviated_sort_agrees_with_byte_order() {
    let keys = [
        "/p/x",
        "/p/x\0",
        "/p/",
        "/p/x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0a",
        "/p/y",
        "/p/x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    ];
    let entries: Vec<_> = keys.iter().map(|k| (*k, Some("v"))).collect();
    let (index, body) = build(&entries);
    let got: Vec<String> = live(&index, &body).into_iter().map(|kv| kv.0).collect();
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_value_that_no_longer_decodes_is_an_error_naming_its_key() {
    let (index, body) = build(&[("/registry/pods/ns/a", Some("v"))]);
    let changed = Bytes::from(vec![0xff; body.len()]);
    let err = index.get(0, &changed).unwrap().unwrap_err().to_string();
    assert!(
        err.contains("\"/registry/pods/ns/a\"") && err.contains("changed"),
        "{err}"
    );
    let short = body.slice(..1);
    assert!(index.get(0, &short).unwrap().is_err());
}

proptest::proptest! {
    /// Keys from a tiny alphabet with zero bytes, long shared runs and repeats: the
    /// radix sort must agree with a plain sort of `(key, seq)`.
    #[test]
    fn radix_sort_agrees_with_a_plain_sort(
        keys in proptest::collection::vec(
            proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(0u8), proptest::strategy::Just(b'a'),
                proptest::strategy::Just(0xffu8)], 0..40), 0..60),
        pad in 0usize..40,
    ) {
        let keys: Vec<Vec<u8>> = keys.into_iter()
            .map(|k| [vec![b'/'; pad], k].concat()).collect();
        // Reversed seqs, so that ties on key are ordered by them, not by position.
        let n = keys.len() as u32;
        let mut slots: Vec<Slot> = (0..n)
            .map(|i| Slot { seq: n - 1 - i, ..Slot::default() })
            .collect();
        let key = |s: &Slot| &keys[(n - 1 - s.seq) as usize][..];
        sort_by_key(&mut slots, key);
        let mut want: Vec<u32> = (0..n).collect();
        want.sort_by(|a, b| (&keys[(n - 1 - a) as usize], a).cmp(&(&keys[(n - 1 - b) as usize], b)));
        let got: Vec<u32> = slots.iter().map(|s| s.seq).collect();
        proptest::prop_assert_eq!(got, want);
    }
}
