//! Downward API values of a parent pod, written as the kubelet writes them.
//!
//! A checkpoint's projected volume is a host dir the daemon fills, so the kubelet no
//! longer resolves its downwardAPI items; they are resolved here from the parent (whose
//! name, labels and annotations the workload expects, not the checkpoint's), byte for
//! byte as the kubelet's `fieldpath` package would.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

/// A downward API field of the parent, as the kubelet writes it (`fieldpath`
/// package), or `None` for a field a downwardAPI volume cannot read.
pub(super) fn field(parent: &Pod, path: &str) -> Option<String> {
    let m = &parent.metadata;
    let map = |which: &str| match which {
        "metadata.labels" => Some(m.labels.as_ref()),
        "metadata.annotations" => Some(m.annotations.as_ref()),
        _ => None,
    };
    match path {
        "metadata.name" => return Some(m.name.clone().unwrap_or_default()),
        "metadata.namespace" => return Some(m.namespace.clone().unwrap_or_default()),
        "metadata.uid" => return Some(m.uid.clone().unwrap_or_default()),
        _ => {}
    }
    if let Some(all) = map(path) {
        return Some(format_map(all));
    }
    let (which, key) = path.strip_suffix("']")?.split_once("['")?;
    let values = map(which)?;
    Some(values.and_then(|v| v.get(key)).cloned().unwrap_or_default())
}

/// Go's `fieldpath.FormatMap`: sorted `key="value"` lines, values quoted like `%q`.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    let lines: Vec<String> = map
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    lines.join("\n")
}

/// Go's `strconv.Quote` for the characters a label or annotation value can hold.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn quotes_like_go() {
        let cases = [
            ("plain", r#""plain""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("\n\t\r\x07\x08\x0b\x0c", r#""\n\t\r\a\b\v\f""#),
            ("\x01\x7f", r#""\x01\x7f""#),
            ("\u{85}é", r#""\u0085é""#),
        ];
        for (raw, want) in cases {
            assert_eq!(go_quote(raw), want, "{raw:?}");
        }
    }
}
