//! The provisioning examples of docs/provisioning.md: the Ignition config is validated
//! against Ignition's own schema (spec 3.4.0, tests/data/ignition/), with every key one
//! the schema names; the Butane example says the same; the config it writes passes
//! `kubeboot config check`. Ignition itself is not run here (validated only).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::kubeboot;
use serde_json::Value;

fn doc() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/provisioning.md"))
        .unwrap()
}

/// The first fenced block of `lang` after `heading`.
fn block(doc: &str, heading: &str, lang: &str) -> String {
    let after = &doc[doc.find(heading).unwrap_or_else(|| panic!("no {heading}"))..];
    let fence = format!("```{lang}\n");
    let start = after
        .find(&fence)
        .unwrap_or_else(|| panic!("no {lang} block after {heading}"))
        + fence.len();
    let len = after[start..].find("```").unwrap();
    after[start..start + len].to_string()
}

fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ignition/ignition-3.4.0.schema.json")
}

/// `python -m jsonschema`-style check with the venv's jsonschema (kubernetes-validate's
/// own dependency); `None` when the venv is not set up outside CI.
fn validate(instance: &Value) -> Option<Result<(), String>> {
    let validator = kubeboot_testkit::validate::validator()?;
    let python = Path::new(&validator).with_file_name("python");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.ign");
    std::fs::write(&file, serde_json::to_vec(instance).unwrap()).unwrap();
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             errors = [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(json.load(open(sys.argv[2])))]\n\
             print('\\n'.join(errors)); sys.exit(1 if errors else 0)",
        ])
        .arg(schema_path())
        .arg(&file)
        .output()
        .unwrap();
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

/// Follows `$ref` (local) and merges `allOf` branches: the properties a node allows.
fn properties<'a>(node: &'a Value, root: &'a Value) -> Vec<(&'a String, &'a Value)> {
    let node = resolve(node, root);
    let mut out: Vec<_> = node["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .collect();
    for branch in node["allOf"].as_array().into_iter().flatten() {
        out.extend(properties(branch, root));
    }
    out
}

fn resolve<'a>(node: &'a Value, root: &'a Value) -> &'a Value {
    match node["$ref"].as_str() {
        Some(r) => resolve(root.pointer(r.trim_start_matches('#')).unwrap(), root),
        None => node,
    }
}

/// Every key of `v` is one the schema names at that place; returns the unknown ones.
fn unknown_keys(v: &Value, node: &Value, root: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let props = properties(node, root);
            for (k, child) in map {
                match props.iter().find(|(name, _)| *name == k) {
                    Some((_, sub)) => unknown_keys(child, sub, root, &format!("{at}.{k}"), out),
                    None => out.push(format!("{at}.{k}")),
                }
            }
        }
        Value::Array(items) => {
            let item = &resolve(node, root)["items"];
            for (i, child) in items.iter().enumerate() {
                unknown_keys(child, item, root, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn ignition() -> Value {
    serde_json::from_str(&block(&doc(), "## Ignition", "json")).unwrap()
}

#[test]
fn the_ignition_example_is_a_valid_spec_3_4_config() {
    let ign = ignition();
    assert_eq!(ign["ignition"]["version"], "3.4.0");
    let Some(result) = validate(&ign) else { return };
    result.unwrap();
    // The validator is really run: a mode written as a string is refused.
    let mut bad = ign.clone();
    bad["storage"]["files"][0]["mode"] = Value::String("0600".into());
    let err = validate(&bad).unwrap().unwrap_err();
    assert!(err.contains("is not of type"), "{err}");
}

#[test]
fn every_key_of_the_ignition_example_is_one_the_schema_names() {
    let root: Value = serde_json::from_slice(&std::fs::read(schema_path()).unwrap()).unwrap();
    let mut unknown = Vec::new();
    unknown_keys(&ignition(), &root, &root, "", &mut unknown);
    assert!(
        unknown.is_empty(),
        "keys Ignition 3.4.0 does not define: {unknown:?}"
    );
    // The check can fail: a misspelt key is caught.
    let mut typo = ignition();
    typo["systemd"]["units"][0]["enable"] = Value::Bool(true);
    let mut found = Vec::new();
    unknown_keys(&typo, &root, &root, "", &mut found);
    assert_eq!(found, vec![".systemd.units[0].enable"]);
}

#[test]
fn butane_and_ignition_say_the_same_and_the_config_checks() {
    let d = doc();
    let ign = ignition();
    let butane: Value =
        serde_yaml_ng::from_str(&block(&d, "## Ignition (Butane)", "yaml")).unwrap();
    let file = &ign["storage"]["files"][0];
    assert_eq!(butane["storage"]["files"][0]["path"], file["path"]);
    assert_eq!(file["mode"], 0o600);
    assert!(
        d.contains("      mode: 0600\n"),
        "the Butane file mode is 0600"
    );
    let units = |v: &Value| -> Vec<(String, bool)> {
        v["systemd"]["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["name"].as_str().unwrap().to_string(),
                    u["enabled"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(units(&butane), units(&ign));

    // The data URL holds the documented config, which `kubeboot config check` accepts.
    let source = file["contents"]["source"].as_str().unwrap();
    let encoded = source.strip_prefix("data:,").expect("a plain data URL");
    let toml = percent_decode(encoded);
    assert_eq!(toml, block(&d, "## The config", "toml"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &toml).unwrap();
    let out = kubeboot(&["--config", config.to_str().unwrap(), "config", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
