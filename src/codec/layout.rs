//! The JSON layout of one message: its fields in print order, each with its Go JSON rule.
//!
//! Both directions use it, so the decoder and encoder can never disagree on a field's JSON name,
//! on which structs are flattened (`json:",inline"`), or on which zeros Go writes to the wire.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use super::fields::{self, Row, Rule, Zero};

/// One field of a message with the rule for printing it.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub field: FieldDescriptor,
    pub rule: Rule,
}

/// The fields of `desc` in the order encoding/json prints them (Go declaration order where the
/// table knows it, field number order otherwise).
pub(crate) fn layout(desc: &MessageDescriptor) -> Vec<Slot> {
    let mut slots = Vec::with_capacity(desc.fields().len());
    if let Some(rows) = fields::rows(desc) {
        for row in rows {
            let Some(field) = row.number.and_then(|n| desc.get_field(n)) else {
                continue;
            };
            slots.push(Slot {
                field,
                rule: row.rule.clone(),
            });
        }
    } else if let Some(rows) = fields::sibling_rows(desc) {
        let mut matched: Vec<(usize, Slot)> = desc
            .fields()
            .filter_map(|field| {
                let (index, row) = rows
                    .iter()
                    .enumerate()
                    .find(|(_, row)| row_matches(row, &field))?;
                Some((
                    index,
                    Slot {
                        field,
                        rule: row.rule.clone(),
                    },
                ))
            })
            .collect();
        matched.sort_by_key(|(index, _)| *index);
        slots.extend(matched.into_iter().map(|(_, slot)| slot));
    }
    let mut rest: Vec<FieldDescriptor> = desc
        .fields()
        .filter(|f| !slots.iter().any(|s| s.field.number() == f.number()))
        .collect();
    rest.sort_by_key(FieldDescriptor::number);
    for field in rest {
        let mut rule = Rule::fallback(json_name(desc, &field));
        if matches!(field.kind(), Kind::Message(_)) && !field.is_list() && !field.is_map() {
            // A pointer to a struct: present means printed, even as `{}`.
            rule.zero = Zero::Emit;
        }
        slots.push(Slot { field, rule });
    }
    slots
}

/// Does a sibling version's row describe this field? Inline rows match by embedded type.
fn row_matches(row: &Row, field: &FieldDescriptor) -> bool {
    if row.rule.inline {
        match (field.kind(), row.inline_type.as_deref()) {
            (Kind::Message(m), Some(t)) => m.name() == t && !field.is_list(),
            _ => false,
        }
    } else {
        row.rule.json_name == field.name()
    }
}

/// The JSON key for a field the table does not cover. The proto field names are the JSON names,
/// except in apiextensions' JSONSchemaProps, whose JSON keys are not identifiers.
fn json_name(desc: &MessageDescriptor, field: &FieldDescriptor) -> String {
    let name = field.name();
    if desc.name() != "JSONSchemaProps" {
        return name.to_string();
    }
    match name {
        "ref" => "$ref".to_string(),
        "schema" => "$schema".to_string(),
        _ => match name.strip_prefix("xKubernetes") {
            Some(rest) => {
                let mut out = String::from("x-kubernetes");
                for c in rest.chars() {
                    if c.is_ascii_uppercase() {
                        out.push('-');
                        out.push(c.to_ascii_lowercase());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
            None => name.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::descriptors::message;
    use super::*;

    fn names(full: &str) -> Vec<String> {
        let desc = message(full).unwrap_or_else(|| panic!("{full}"));
        layout(&desc)
            .into_iter()
            .map(|s| s.rule.json_name)
            .collect()
    }

    #[test]
    fn table_order_is_go_declaration_order() {
        let pod = names("k8s.io.api.core.v1.Pod");
        assert_eq!(pod, ["metadata", "spec", "status"]);
        let volume = names("k8s.io.api.core.v1.Volume");
        assert_eq!(volume, ["name", ""]);
    }

    #[test]
    fn uncovered_versions_borrow_their_siblings_rules() {
        let desc = message("k8s.io.api.apps.v1beta2.DeploymentSpec").unwrap_or_else(|| panic!());
        let slots = layout(&desc);
        let replicas = slots.iter().find(|s| s.rule.json_name == "replicas");
        assert_eq!(replicas.map(|s| s.rule.zero), Some(Zero::Emit));
    }

    #[test]
    fn json_schema_props_keys() {
        let keys =
            names("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps");
        for key in [
            "$ref",
            "$schema",
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-list-map-keys",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key}");
        }
    }
}
