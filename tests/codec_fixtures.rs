//! The codec against real data that no one here wrote: etcd values captured from a real
//! kube-apiserver (auger's testdata, `tests/data/auger`), and the JSON they must decode to.

use std::path::PathBuf;

use kubeboot::codec::{self, CodecError, Format};
use serde_json::{Value, json};

fn fixture(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/auger")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("json/{name}.json"))).expect("fixture JSON")
}

/// The `storage/*.bin` captures end in the `\n` that `etcdctl --print-value-only` adds; the
/// value in etcd does not have it.
fn etcd_value(name: &str) -> Vec<u8> {
    let mut bytes = fixture(&format!("storage/{name}.bin"));
    assert_eq!(bytes.pop(), Some(b'\n'), "capture ends in one newline");
    bytes
}

/// `TypeMeta.APIVersion: v1` / `TypeMeta.Kind: Pod` → ("v1", "Pod").
fn type_meta(name: &str) -> (String, String) {
    let text = String::from_utf8(fixture(&format!("meta/{name}.txt"))).expect("UTF-8");
    let get = |field: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{field} in meta/{name}.txt"))
    };
    (get("TypeMeta.APIVersion:"), get("TypeMeta.Kind:"))
}

#[test]
fn codec_storage_values_decode_exactly() {
    for name in ["pod", "job"] {
        let key = format!("/registry/{name}s/default/x");
        let decoded = codec::decode(&key, &etcd_value(name)).expect("decode");
        assert_eq!(decoded.format, Format::Protobuf);
        assert_eq!(decoded.object, fixture_json(name), "{name}");
        // Field 15 of ObjectMeta is `clusterName`, removed from Kubernetes in 1.25; this 2017
        // object still carries it (empty). It must be reported, not dropped silently.
        assert_eq!(
            decoded.unknown_fields,
            ["k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta field 15"],
            "{name}"
        );
    }
}

#[test]
fn codec_printed_values_decode_with_one_newline() {
    for name in ["pod", "job"] {
        let printed = fixture(&format!("storage/{name}.bin"));
        let decoded = codec::decode_printed(name, &printed).expect("decode_printed");
        assert_eq!(decoded.object, fixture_json(name));
        // The exact value is accepted too; two newlines are not.
        assert!(codec::decode_printed(name, &etcd_value(name)).is_ok());
        let mut twice = printed.clone();
        twice.push(b'\n');
        assert!(codec::decode_printed(name, &twice).is_err());
    }
}

#[test]
fn codec_printed_value_with_key_line() {
    // `etcdctl get KEY` without --print-value-only prints the key on its own line first.
    let bytes = fixture("storage/pod-with-key.bin");
    let newline = bytes.iter().position(|b| *b == b'\n').expect("key line");
    let key = std::str::from_utf8(&bytes[..newline]).expect("key");
    assert!(key.starts_with("/registry/pods/"));
    let decoded = codec::decode_printed(key, &bytes[newline + 1..]).expect("decode");
    let want: Value = {
        let text = fixture("json/pod-with-key.txt");
        let start = text
            .iter()
            .position(|b| *b == b'{')
            .expect("JSON after the key");
        serde_json::from_slice(&text[start..]).expect("JSON")
    };
    assert_eq!(decoded.object, want);
}

#[test]
fn codec_bare_protobuf_decodes_with_meta() {
    for name in ["pod", "job"] {
        let (api_version, kind) = type_meta(name);
        let raw = fixture(&format!("proto/{name}.bin"));
        let decoded = codec::decode_bare(name, &api_version, &kind, &raw).expect("decode_bare");
        assert_eq!(decoded.object, fixture_json(name), "{name}");
    }
}

#[test]
fn codec_fixture_json_round_trips() {
    for name in ["pod", "job"] {
        let want = fixture_json(name);
        let bytes = codec::encode(&want).expect("encode");
        assert!(bytes.starts_with(b"k8s\0"));
        let again = codec::decode(name, &bytes).expect("decode of encode");
        assert_eq!(again.object, want, "{name}");
        // Encoding is deterministic and stable under a second round.
        assert_eq!(codec::encode(&again.object).expect("encode"), bytes);
    }
}

#[test]
fn codec_encode_keeps_the_stored_envelope_and_field_order() {
    // Byte equality with the stored value is not achievable for these 2017 objects: their Times
    // carry sub-second nanos the JSON does not show, ObjectMeta has the since-removed field 15,
    // and Go 1.35 writes non-pointer fields added since (checked with `protoc --decode_raw`:
    // those are the only differences). What must hold: the same envelope, and decoding either
    // gives the same object.
    for name in ["pod", "job"] {
        let stored = etcd_value(name);
        let ours = codec::encode(&fixture_json(name)).expect("encode");
        let type_meta_len = 2 + usize::from(stored[5]);
        assert_eq!(
            &ours[..4 + type_meta_len],
            &stored[..4 + type_meta_len],
            "{name}"
        );
        assert!(ours.ends_with(b"\x1a\x00\x22\x00"));
        let a = codec::decode(name, &stored).expect("stored").object;
        let b = codec::decode(name, &ours).expect("ours").object;
        assert_eq!(a, b);
    }
}

#[test]
fn codec_encrypted_values_name_key_and_provider() {
    let err = codec::decode(
        "/registry/secrets/kube-system/x",
        b"k8s:enc:aescbc:v1:key1:\x01\x02",
    )
    .expect_err("encrypted");
    assert!(matches!(err, CodecError::Encrypted { .. }));
    assert_eq!(
        err.to_string(),
        "/registry/secrets/kube-system/x: encrypted at rest with provider aescbc (key \"key1\"); \
         pass --encryption-provider-config"
    );
}

#[test]
fn codec_unknown_kind_is_named() {
    let mut value = b"k8s\0".to_vec();
    let type_meta = [b"\x0a\x0eexample.com/v1\x12\x06Widget".as_slice()].concat();
    value.push(0x0a);
    value.push(type_meta.len() as u8);
    value.extend_from_slice(&type_meta);
    value.extend_from_slice(b"\x12\x00\x1a\x00\x22\x00");
    let err = codec::decode("/registry/example.com/widgets/a", &value).expect_err("unknown");
    let text = err.to_string();
    assert!(matches!(err, CodecError::UnknownKind { .. }), "{text}");
    assert!(
        text.contains("/registry/example.com/widgets/a") && text.contains("Widget"),
        "{text}"
    );
    assert!(text.contains("example.com/v1"), "{text}");
}

#[test]
fn codec_truncated_is_incomplete_and_garbage_is_invalid() {
    let value = etcd_value("pod");
    let err = codec::decode("k", &value[..value.len() / 2]).expect_err("truncated");
    assert!(matches!(err, CodecError::Incomplete { .. }), "{err}");
    let err = codec::decode("k", b"\xff\xfe garbage").expect_err("garbage");
    assert!(matches!(err, CodecError::Invalid { .. }), "{err}");
    let err = codec::decode("k", b"").expect_err("empty");
    assert!(matches!(err, CodecError::Incomplete { .. }), "{err}");
    assert!(!err.to_string().contains('\n'));
}

#[test]
fn codec_unknown_protobuf_fields_are_listed() {
    // Append field 99 (a string) to the Pod's spec: a cluster newer than our protos.
    let (api_version, kind) = type_meta("pod");
    let mut object = fixture_json("pod");
    object["spec"]["hostNetwork"] = json!(true);
    let raw = codec::encode_bare(&object).expect("encode");
    let decoded = codec::decode_bare("k", &api_version, &kind, &raw).expect("decode");
    assert!(decoded.unknown_fields.is_empty());
    // Pod field 2 is the spec: rebuild it with an extra field.
    let mut with_extra = raw.clone();
    with_extra.extend_from_slice(b"\x12\x05\x9a\x06\x02hi"); // spec += field 99 "hi"
    let decoded = codec::decode_bare("k", &api_version, &kind, &with_extra).expect("decode");
    assert_eq!(
        decoded.unknown_fields,
        ["k8s.io.api.core.v1.PodSpec field 99"]
    );
    assert_eq!(decoded.object["spec"]["hostNetwork"], json!(true));
}

#[test]
fn codec_an_alpha_field_a_later_release_removed_is_unknown_not_an_error() {
    // Kubernetes 1.35 stored the alpha `PodSpec.workloadRef` as field 42; 1.36 removed it (and
    // HEAD has not brought it back). A 1.35 object carrying it still decodes, and the field is
    // named rather than dropped in silence.
    let (api_version, kind) = type_meta("pod");
    let raw = codec::encode_bare(&fixture_json("pod")).expect("encode");
    let mut with_42 = raw.clone();
    // Pod field 2 (spec) appended again: protobuf merges it into the spec. Field 42, wire type 2,
    // holding WorkloadReference{name: "w"}.
    with_42.extend_from_slice(b"\x12\x06\xd2\x02\x03\x0a\x01w");
    let decoded = codec::decode_bare("k", &api_version, &kind, &with_42).expect("decode");
    assert_eq!(
        decoded.unknown_fields,
        ["k8s.io.api.core.v1.PodSpec field 42"]
    );
    assert_eq!(decoded.descriptors, codec::Descriptors::Release);
    let plain = codec::decode_bare("k", &api_version, &kind, &raw).expect("decode");
    assert_eq!(decoded.object, plain.object);
}
