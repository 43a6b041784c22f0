use prost::Message;
use prost::bytes::Bytes;

use super::*;

/// A file of `mvccpb.KeyValue`s one after another, and the index built from them in
/// this order (bucket order): `None` values are tombstones.
fn build(entries: &[(&str, Option<&str>)]) -> (Index, Bytes) {
    let records: Vec<Vec<u8>> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| record(key, *value, i))
        .collect();
    build_from(&records, entries.iter().map(|(_, v)| v.is_none()))
}

fn record(key: &str, value: Option<&str>, i: usize) -> Vec<u8> {
    StoredKv {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.unwrap_or_default().as_bytes()),
        mod_revision: i as i64 + 2,
        create_revision: 1,
        version: 3,
        lease: 4,
    }
    .encode_to_vec()
}

/// The index over `records` laid side by side, as `mvcc::read` builds it.
fn build_from(records: &[Vec<u8>], tombstones: impl Iterator<Item = bool>) -> (Index, Bytes) {
    let body = Bytes::from(records.concat());
    let mut b = Builder::new(body.clone());
    let mut at = 0;
    for (r, tombstone) in records.iter().zip(tombstones) {
        let place = at..at + r.len();
        let kv = StoredKv::decode(body.slice(place.clone())).unwrap();
        b.push(place, &kv, tombstone).unwrap();
        at += r.len();
    }
    (b.finish(), body)
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

fn live(index: &Index) -> Vec<(String, String, i64)> {
    (0..index.len())
        .map(|i| {
            let kv = index.get(i).unwrap().unwrap();
            assert_eq!((kv.create_revision, kv.version, kv.lease), (1, 3, 4));
            (utf8(&kv.key), utf8(&kv.value), kv.mod_revision)
        })
        .collect()
}

#[test]
fn keeps_the_newest_entry_of_each_key_and_drops_tombstones() {
    let (index, _) = build(&[
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
        live(&index),
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
    assert!(index.get(3).is_none());
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
    let (index, _) = build(&entries);
    let got: Vec<String> = live(&index).into_iter().map(|kv| kv.0).collect();
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_value_that_no_longer_decodes_is_an_error_naming_its_key() {
    let (index, body) = build(&[("/registry/pods/ns/a", Some("v"))]);
    let mut changed = body.to_vec();
    let last = changed.len() - 1;
    changed[last] = 0xff;
    let index = Index {
        body: Bytes::from(changed),
        ..index
    };
    let err = index.get(0).unwrap().unwrap_err().to_string();
    assert!(
        err.contains("\"/registry/pods/ns/a\"") && err.contains("changed"),
        "{err}"
    );
}

/// Records etcd never writes but protobuf allows: fields out of order, the key twice
/// (the last counts), unknown fields. Each is indexed by the key prost decodes.
#[test]
fn records_not_written_as_etcd_writes_them_are_found_by_their_decoded_key() {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let field = |n: u32, bytes: &[u8], out: &mut Vec<u8>| {
        encode_key(n, WireType::LengthDelimited, out);
        encode_varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    };
    let mut reversed = Vec::new();
    field(5, b"v-b", &mut reversed);
    field(1, b"/b", &mut reversed);
    let mut twice = Vec::new();
    field(1, b"/z", &mut twice);
    field(5, b"v-a", &mut twice);
    field(1, b"/a", &mut twice);
    let mut unknown = Vec::new();
    field(9, b"x", &mut unknown);
    field(1, b"/c", &mut unknown);
    field(5, b"v-c", &mut unknown);
    let plain = record("/d", Some("v-d"), 0);
    let (index, _) = build_from(&[plain, reversed, twice, unknown], std::iter::repeat(false));
    let got: Vec<(String, String)> = (0..index.len())
        .map(|i| index.get(i).unwrap().unwrap())
        .map(|kv| (utf8(&kv.key), utf8(&kv.value)))
        .collect();
    let want = [("/a", "v-a"), ("/b", "v-b"), ("/c", "v-c"), ("/d", "v-d")];
    assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));
    assert_eq!(index.sizes(1), Some((&b"/b"[..], 3)));
    assert_eq!(index.find(b"/z"), None);
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
        let key = |seq: u32| &keys[(n - 1 - seq) as usize][..];
        let mut slots: Vec<Slot> = (0..n)
            .map(|i| {
                let seq = n - 1 - i;
                let k = key(seq);
                Slot { seq, key_len: k.len() as u32, scratch: digit(k, pad), ..Slot::default() }
            })
            .collect();
        sort_by_key(&mut slots, pad, |s, depth| digit(key(s.seq), depth));
        let mut want: Vec<u32> = (0..n).collect();
        want.sort_by(|a, b| (&keys[(n - 1 - a) as usize], a).cmp(&(&keys[(n - 1 - b) as usize], b)));
        let got: Vec<u32> = slots.iter().map(|s| s.seq).collect();
        proptest::prop_assert_eq!(&got, &want);
        // Each slot says whether its key is the one before it.
        for (i, s) in slots.iter().enumerate() {
            let same = i > 0 && key(slots[i - 1].seq) == key(s.seq);
            proptest::prop_assert_eq!(s.scratch, if same { SAME_KEY } else { NEW_KEY });
        }
    }
}

proptest::proptest! {
    /// The whole index against a map: entries of keys with long shared prefixes (that
    /// shorten as the bucket goes on), repeats and deletes, in any order.
    #[test]
    fn the_index_agrees_with_a_map(
        entries in proptest::collection::vec(
            (proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(b'/'), proptest::strategy::Just(b'a'),
                proptest::strategy::Just(0u8)], 0..24), proptest::bool::ANY), 0..80),
        long in 0usize..40,
    ) {
        let entries: Vec<(String, Option<String>)> = entries.into_iter().enumerate()
            .map(|(i, (k, delete))| {
                // The first entries share a longer prefix than the rest.
                let pad = if i < 3 { "/registry/".len() + long } else { 1 };
                let key = String::from_utf8([vec![b'/'; pad], k].concat()).unwrap();
                (key, (!delete).then(|| format!("v{i}")))
            })
            .collect();
        let mut want = std::collections::BTreeMap::new();
        for (k, v) in &entries {
            match v {
                Some(v) => want.insert(k.clone(), v.clone()),
                None => want.remove(k),
            };
        }
        let borrowed: Vec<(&str, Option<&str>)> =
            entries.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        let (index, _) = build(&borrowed);
        let got: std::collections::BTreeMap<String, String> =
            live(&index).into_iter().map(|(k, v, _)| (k, v)).collect();
        proptest::prop_assert_eq!(&got, &want);
        let order: Vec<String> = live(&index).into_iter().map(|kv| kv.0).collect();
        proptest::prop_assert_eq!(order, want.keys().cloned().collect::<Vec<_>>());
    }
}
