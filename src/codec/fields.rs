//! Go JSON metadata per protobuf field: the facts the `.proto` files cannot tell.
//!
//! Go's generated protobuf code writes every non-pointer scalar, even a zero, so the wire cannot
//! say whether `hostNetwork: false` should be printed; the Go struct tags decide (`omitempty` or
//! not, pointer or not, `json:",inline"`). Those facts come from data tables derived from the
//! Kubernetes Go sources (Apache-2.0, The Kubernetes Authors), one per descriptor set:
//! `v1.36-fields.tsv` for the release and `head-fields.tsv` for kubernetes/api's HEAD, both
//! written by `scripts/gen-json-fields` (its header and `docs/codec.md` describe the columns).
//! Rows are in Go declaration order, which is also the order encoding/json prints keys in.
//!
//! Messages the table does not cover (beta versions, apiextensions, apiregistration, …) borrow
//! the rule of a same-named message of the same API group when one exists, and otherwise fall
//! back to "omit zero scalars, print whatever is present" ([`Rule::fallback`]).

use std::collections::HashMap;
use std::sync::LazyLock;

use prost_reflect::MessageDescriptor;

use super::descriptors::{self, Descriptors};

const RELEASE_TABLE: &str = include_str!("v1.36-fields.tsv");
const HEAD_TABLE: &str = include_str!("head-fields.tsv");

/// What encoding/json does with a field present on the wire whose value is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zero {
    Emit,
    Omit,
}

/// What encoding/json prints for a field absent from the wire (a nil or zero Go value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Absent {
    Omit,
    Null,
    /// The type's zero value: `0`, `""`, `false`, or the nested object built from its own rules.
    Zero,
}

/// How one protobuf field maps to Kubernetes JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    /// The JSON key; empty for an inline (flattened) struct.
    pub json_name: String,
    pub inline: bool,
    /// `json:"-"`: never printed (FieldsV1.Raw, whose type has its own JSON form).
    pub skip: bool,
    pub zero: Zero,
    pub absent: Absent,
    /// Go writes this field even when unset: a non-pointer scalar or struct.
    pub always_written: bool,
}

impl Rule {
    /// The rule for a field no table row covers: like `omitempty` on a pointer or scalar.
    pub(crate) fn fallback(json_name: String) -> Rule {
        Rule {
            json_name,
            inline: false,
            skip: false,
            zero: Zero::Omit,
            absent: Absent::Omit,
            always_written: false,
        }
    }
}

/// One table row, keyed by its message.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Protobuf field number; `None` for the inline TypeMeta, which lives in the envelope.
    pub number: Option<u32>,
    /// Short name of the field's resolved message type, for inline rows (`VolumeSource`).
    pub inline_type: Option<String>,
    pub rule: Rule,
}

/// One parsed table.
struct Table {
    /// Rows of every covered message, keyed by full name (`k8s.io.api.core.v1.PodSpec`).
    rows: HashMap<String, Vec<Row>>,
    /// The same messages keyed by (package without version, short name), to find siblings fast.
    by_group: HashMap<(String, String), String>,
}

impl Table {
    fn new(text: &str) -> Table {
        let rows = parse(text);
        let by_group = rows
            .keys()
            .filter_map(|name| Some((group_and_short(name)?, name.clone())))
            .collect();
        Table { rows, by_group }
    }
}

static RELEASE: LazyLock<Table> = LazyLock::new(|| Table::new(RELEASE_TABLE));
static HEAD: LazyLock<Table> = LazyLock::new(|| Table::new(HEAD_TABLE));

fn table(set: Descriptors) -> &'static Table {
    match set {
        Descriptors::Release => &RELEASE,
        Descriptors::Head => &HEAD,
    }
}

/// `k8s.io.api.apps.v1.Deployment` → (`k8s.io.api.apps`, `Deployment`).
fn group_and_short(message: &str) -> Option<(String, String)> {
    let (package, short) = message.rsplit_once('.')?;
    let (group, _version) = package.rsplit_once('.')?;
    Some((group.to_string(), short.to_string()))
}

/// The rows of a message, from the table of the descriptor set it belongs to, in Go declaration
/// order.
pub(crate) fn rows(desc: &MessageDescriptor) -> Option<&'static [Row]> {
    rows_in(descriptors::set_of(desc), desc.full_name())
}

fn rows_in(set: Descriptors, message: &str) -> Option<&'static [Row]> {
    table(set).rows.get(message).map(Vec::as_slice)
}

/// Rows of a same-named message in another version of the same API group, used for versions the
/// table does not cover (`k8s.io.api.apps.v1beta2.Deployment` borrows from
/// `k8s.io.api.apps.v1.Deployment`).
pub(crate) fn sibling_rows(desc: &MessageDescriptor) -> Option<&'static [Row]> {
    let set = descriptors::set_of(desc);
    let name = table(set)
        .by_group
        .get(&group_and_short(desc.full_name())?)?;
    rows_in(set, name)
}

fn parse(table: &str) -> HashMap<String, Vec<Row>> {
    let mut out: HashMap<String, Vec<Row>> = HashMap::new();
    for line in table.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [
            message,
            _,
            _,
            json_name,
            kind,
            omit,
            inline,
            zero,
            absent,
            _,
            _,
            resolved,
            _,
            number,
            ..,
        ] = cols.as_slice()
        else {
            continue;
        };
        let inline = *inline == "yes";
        let pointer = kind.starts_with("pointer-");
        let rule = Rule {
            json_name: json_name.to_string(),
            inline,
            skip: *omit == "skip",
            zero: if *zero == "omit" {
                Zero::Omit
            } else {
                Zero::Emit
            },
            absent: match *absent {
                "null" => Absent::Null,
                "zero" => Absent::Zero,
                _ => Absent::Omit,
            },
            always_written: !pointer && (*kind == "scalar" || *kind == "struct"),
        };
        let inline_type = inline.then(|| {
            resolved
                .rsplit_once('.')
                .map_or(*resolved, |(_, s)| s)
                .to_string()
        });
        out.entry(message.to_string()).or_default().push(Row {
            number: number.parse().ok(),
            inline_type,
            rule,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(message: &str) -> Option<&'static [Row]> {
        rows_in(Descriptors::Release, message)
    }

    fn rule(message: &str, json: &str) -> Rule {
        rows(message)
            .and_then(|rows| rows.iter().find(|r| r.rule.json_name == json))
            .map(|r| r.rule.clone())
            .unwrap_or_else(|| panic!("no row {message}.{json}"))
    }

    #[test]
    fn readme_sanity_checks() {
        assert_eq!(
            rule("k8s.io.api.core.v1.ContainerStatus", "ready").zero,
            Zero::Emit
        );
        assert_eq!(
            rule("k8s.io.api.core.v1.ContainerStatus", "restartCount").zero,
            Zero::Emit
        );
        assert_eq!(
            rule("k8s.io.api.core.v1.PodSpec", "hostNetwork").zero,
            Zero::Omit
        );
        let replicas = rule("k8s.io.api.apps.v1.DeploymentSpec", "replicas");
        assert_eq!((replicas.zero, replicas.absent), (Zero::Emit, Absent::Omit));
        assert!(!replicas.always_written);
        let created = rule(
            "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "creationTimestamp",
        );
        assert_eq!((created.zero, created.absent), (Zero::Omit, Absent::Omit));
    }

    #[test]
    fn inline_rows_name_their_type() {
        let volume = rows("k8s.io.api.core.v1.Volume").unwrap_or_default();
        let inline: Vec<_> = volume.iter().filter(|r| r.rule.inline).collect();
        assert_eq!(inline.len(), 1);
        assert_eq!(inline[0].number, Some(2));
        assert_eq!(inline[0].inline_type.as_deref(), Some("VolumeSource"));
    }

    #[test]
    fn siblings_share_group_only() {
        let sibling = |name: &str| {
            let desc = descriptors::message(name).unwrap_or_else(|| panic!("{name}"));
            sibling_rows(&desc).is_some()
        };
        assert!(sibling("k8s.io.api.apps.v1beta2.Deployment"));
        let by_group = &table(Descriptors::Release).by_group;
        assert!(by_group.contains_key(&("k8s.io.api.apps".into(), "Deployment".into())));
        assert!(!by_group.contains_key(&("k8s.io.api.batch".into(), "Deployment".into())));
    }
}
