//! `decode` reads untrusted bytes (a damaged snapshot, a hostile etcd): whatever it is given, it
//! returns a value or an error, and never panics.

use std::path::PathBuf;

use kubeboot::codec;
use proptest::prelude::*;

fn stored(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/auger/storage")
        .join(format!("{name}.bin"));
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.pop();
    bytes
}

/// One edit of a real value.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Overwrite(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
    ]
}

fn apply(value: &mut Vec<u8>, m: &Mutation) {
    let len = value.len().max(1);
    match m {
        Mutation::FlipBit(i, bit) => {
            if let Some(b) = value.get_mut(i % len) {
                *b ^= 1 << bit;
            }
        }
        Mutation::Truncate(i) => value.truncate(i % len),
        Mutation::Insert(i, bytes) => {
            let at = i % (value.len() + 1);
            value.splice(at..at, bytes.iter().copied());
        }
        Mutation::Overwrite(i, b) => {
            if let Some(x) = value.get_mut(i % len) {
                *x = *b;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn codec_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = codec::decode("k", &bytes);
        let _ = codec::decode_printed("k", &bytes);
        let mut framed = b"k8s\0".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = codec::decode("k", &framed);
        let _ = codec::decode_bare("k", "v1", "Pod", &bytes);
    }

    #[test]
    fn codec_mutated_fixtures_never_panic(
        pod in any::<bool>(),
        edits in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut value = stored(if pod { "pod" } else { "job" });
        for edit in &edits {
            apply(&mut value, edit);
        }
        if let Ok(decoded) = codec::decode("k", &value) {
            // Whatever decodes must also encode without panicking.
            let _ = codec::encode(&decoded.object);
        }
    }
}
