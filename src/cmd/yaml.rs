//! YAML as kubectl prints it (issue 15, finding 14). kubectl turns an object into a
//! map and writes it with go-yaml v2 (sigs.k8s.io/yaml), so keys come sorted
//! (`apiVersion`, `kind`, `metadata`, … at the top) and a string that a YAML 1.1 reader
//! would take for something else is quoted: `"2008-01-01T01:01:01Z"`, `"yes"`, `"on"`,
//! `"1:20"`. serde_yaml_ng writes YAML 1.2, where those are plain strings, so a reader
//! such as go-yaml v2 or PyYAML would get a timestamp, a bool or a number back.
//!
//! Written here, not a crate: no maintained Rust YAML emitter offers YAML 1.1 quoting.
//! The document is serde_yaml_ng's; this only sorts the keys before, and quotes the
//! plain scalars that YAML 1.1 would not read as strings after (never inside a block
//! scalar, whose lines are content).

use serde_json::{Map, Value};

/// An object as kubectl's YAML: sorted keys, YAML 1.1 quoting.
pub fn object(value: &Value) -> anyhow::Result<String> {
    Ok(quote_yaml11(&serde_yaml_ng::to_string(&sorted(value))?))
}

/// `value` with every map's keys in sorted order.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                if let Some(v) = m.get(k) {
                    out.insert(k.clone(), sorted(v));
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        v => v.clone(),
    }
}

/// serde_yaml_ng's `doc` with each plain key or value that YAML 1.1 resolves to a
/// non-string double-quoted.
pub fn quote_yaml11(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len() + 64);
    // Inside a block scalar (`|`, `>`): lines indented deeper than this are content.
    let mut block: Option<usize> = None;
    for line in doc.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(b) = block {
            if line.trim().is_empty() || indent > b {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            block = None;
        }
        let (quoted, header) = quote_line(line);
        if header {
            block = Some(indent);
        }
        out.push_str(&quoted);
        out.push('\n');
    }
    out
}

/// A value that starts a block scalar: `|`, `|-`, `>+2`.
fn block_header(value: &str) -> bool {
    matches!(value.chars().next(), Some('|' | '>'))
        && value
            .chars()
            .skip(1)
            .all(|c| matches!(c, '-' | '+' | '0'..='9'))
}

/// One line: `INDENT (- )* [KEY:] [VALUE]`, its plain key and value quoted as needed,
/// and whether its value starts a block scalar.
fn quote_line(line: &str) -> (String, bool) {
    let body = line.trim_start_matches(' ');
    let mut prefix = line[..line.len() - body.len()].to_string();
    let mut rest = body;
    while let Some(r) = rest.strip_prefix("- ") {
        prefix.push_str("- ");
        rest = r;
    }
    if rest == "-" {
        return (line.to_string(), false);
    }
    let (key, value) = match split_key(rest) {
        Some((k, v)) => (Some(k), v),
        None => (None, rest),
    };
    let mut out = prefix;
    if let Some(k) = key {
        out.push_str(&quote_plain(k));
        out.push(':');
        if !value.is_empty() {
            out.push(' ');
        }
    }
    out.push_str(&quote_plain(value));
    (out, block_header(value))
}

/// `KEY: VALUE` or `KEY:` at the end: the key (quoted ones kept whole) and the value.
fn split_key(s: &str) -> Option<(&str, &str)> {
    let end = match s.chars().next()? {
        q @ ('\'' | '"') => closing_quote(s, q)? + 1,
        _ => s.find(": ").or_else(|| s.strip_suffix(':').map(str::len))?,
    };
    let after = s.get(end..)?;
    if after == ":" {
        return Some((&s[..end], ""));
    }
    after.strip_prefix(": ").map(|v| (&s[..end], v))
}

/// The byte index of the quote that closes the scalar opened at 0.
fn closing_quote(s: &str, q: char) -> Option<usize> {
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if q == '"' => {
                chars.next();
            }
            c if c == q => {
                // '' inside single quotes is an escaped quote.
                if q == '\'' && s[i + 1..].starts_with('\'') {
                    chars.next();
                } else {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `s` double-quoted if it is a plain scalar that YAML 1.1 reads as no string. A plain
/// scalar that YAML 1.2 reads as no string is a real number, bool or null (serde_yaml_ng
/// quotes such strings itself) and stays as it is.
fn quote_plain(s: &str) -> String {
    let plain = !s.is_empty() && !s.starts_with(['\'', '"', '|', '>', '[', '{', '&', '*', '!']);
    if plain && yaml11_non_string(s) && !yaml12_non_string(s) {
        serde_json::to_string(s).unwrap_or_else(|_| s.to_string())
    } else {
        s.to_string()
    }
}

/// What go-yaml v2's resolver (resolve.go) takes for a bool, null, int, float or
/// timestamp; serde_yaml_ng already quotes YAML 1.2's own (true, null, 1e3, …).
fn yaml11_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF", "true", "True", "TRUE", "false", "False", "FALSE", "~", "null", "Null", "NULL",
        ".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF", "+.inf", ".nan", ".NaN", ".NAN",
    ];
    WORDS.contains(&s) || is_number(s) || is_timestamp(s)
}

/// What YAML 1.2's core schema reads as a bool, null, int or float: what serde_yaml_ng
/// writes plain for a value that is no string.
fn yaml12_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL", "~", ".inf",
        ".Inf", ".INF", "-.inf", "-.Inf", "-.INF", "+.inf", "+.Inf", "+.INF", ".nan", ".NaN",
        ".NAN",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    if let Some(o) = s.strip_prefix("0o") {
        return !o.is_empty() && o.chars().all(|c| ('0'..='7').contains(&c));
    }
    if let Some(h) = s.strip_prefix("0x") {
        return !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit());
    }
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |x: &str| x.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = all_digits(whole)
        && all_digits(frac)
        && (!whole.is_empty() || !frac.is_empty())
        && (mantissa.contains('.') || !whole.is_empty());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exp_ok
}

/// YAML 1.1 ints and floats, underscores and base 60 included (`1_000`, `1:20`).
fn is_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let digits =
        |t: &str, ok: fn(char) -> bool| !t.is_empty() && t.chars().all(|c| ok(c) || c == '_');
    if let Some(h) = s.strip_prefix("0x") {
        return digits(h, |c| c.is_ascii_hexdigit());
    }
    if let Some(b) = s.strip_prefix("0b") {
        return digits(b, |c| c == '0' || c == '1');
    }
    if !s.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return false;
    }
    // Base 60: 1:20, 1:20:30.5
    if s.contains(':') {
        let mut parts = s.split(':');
        let first = parts.next().unwrap_or("");
        return digits(first, |c| c.is_ascii_digit())
            && parts.all(|p| {
                let (whole, frac) = p.split_once('.').unwrap_or((p, ""));
                (1..=2).contains(&whole.len())
                    && whole.chars().all(|c| c.is_ascii_digit())
                    && frac.chars().all(|c| c.is_ascii_digit() || c == '_')
            });
    }
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = mantissa.chars().any(|c| c.is_ascii_digit())
        && mantissa
            .chars()
            .all(|c| c.is_ascii_digit() || c == '_' || c == '.')
        && mantissa.matches('.').count() <= 1;
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exp_ok
}

/// YAML 1.1 timestamps: `2001-12-14`, `2001-12-14t21:59:43.10-05:00`,
/// `2001-12-14 21:59:43.10 -5`.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    if !(0..4).all(digit) || b.get(4) != Some(&b'-') {
        return false;
    }
    // Month and day: one or two digits each.
    let mut i = 5;
    for sep in [Some(b'-'), None] {
        let start = i;
        while digit(i) && i - start < 2 {
            i += 1;
        }
        if i == start {
            return false;
        }
        if let Some(sep) = sep {
            if b.get(i) != Some(&sep) {
                return false;
            }
            i += 1;
        }
    }
    match b.get(i) {
        None => true,
        Some(b'T' | b't' | b' ' | b'\t') => b
            .get(i + 1..)
            .is_some_and(|t| t.first().is_some_and(u8::is_ascii_digit) && t.contains(&b':')),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_as_kubectl_prints_them() {
        let v = serde_json::json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "a", "creationTimestamp": "2008-01-01T01:01:01Z"}});
        assert_eq!(
            object(&v).unwrap(),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: \"2008-01-01T01:01:01Z\"\n  name: a\n"
        );
    }

    #[test]
    fn what_yaml_1_1_reads_as_no_string_is_quoted_and_nothing_else() {
        for s in [
            "yes",
            "NO",
            "on",
            "Off",
            "y",
            "N",
            "~",
            "1_000",
            "1:20",
            "0x1F",
            "0b101",
            "012",
            "2008-01-01",
            "2008-1-1",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 -5",
            ".5",
            "1.5e+3",
            "-.inf",
            "190:20:30.15",
        ] {
            assert!(yaml11_non_string(s), "{s}");
        }
        for s in [
            "yesterday",
            "a",
            "v1",
            "nameValue",
            "1.2.3",
            "10.0.0.1",
            "1:2:3:4x",
            "2008-01",
            "2008-01-01x",
            "e3",
            "0xZ",
            "-",
            "1e",
            "127.0.0.1:2379",
            "a:b",
        ] {
            assert!(!yaml11_non_string(s), "{s}");
        }
    }

    #[test]
    fn real_numbers_bools_and_nulls_stay_plain() {
        let v = serde_json::json!({"k": 20480, "f": 1.5, "b": true, "z": null, "s": "20480", "u": "1_000"});
        assert_eq!(
            object(&v).unwrap(),
            "b: true\nf: 1.5\nk: 20480\ns: '20480'\nu: \"1_000\"\nz: null\n"
        );
    }

    #[test]
    fn block_scalars_and_quoted_scalars_are_left_as_they_are() {
        let doc = "a:\n- |\n  on\n  2008-01-01\n- 'yes'\n- on\nb: |-\n  x: on\nc: off\n'd: e': y\n";
        assert_eq!(
            quote_yaml11(doc),
            "a:\n- |\n  on\n  2008-01-01\n- 'yes'\n- \"on\"\nb: |-\n  x: on\nc: \"off\"\n'd: e': \"y\"\n"
        );
    }

    #[test]
    fn only_a_whole_value_of_bar_or_angle_starts_a_block() {
        for v in ["|", "|-", "|+", ">", ">-", "|2"] {
            assert!(block_header(v), "{v}");
        }
        for v in ["a |", "|x", "", "'|'"] {
            assert!(!block_header(v), "{v}");
        }
    }

    #[test]
    fn sequences_of_maps_and_keys_are_quoted_too() {
        let doc = "- - on\n  - name: x\n    yes: 1:20\n";
        assert_eq!(
            quote_yaml11(doc),
            "- - \"on\"\n  - name: x\n    \"yes\": \"1:20\"\n"
        );
    }
}
