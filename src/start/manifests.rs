//! Reading `manifests/`: the self-hosted objects `start` creates, as JSON values, in a
//! deterministic order, each labelled with the file and document it came from so
//! every later error can name it. Pure: no network, only file reads.
//!
//! Rules, and where they differ from bootkube's `CreateAssets` (docs/bootkube-notes.md §2, §5):
//! - files ending in `.yaml`, `.yml` or `.json`, recursively, sorted by relative path
//!   component by component (the order of Go's `filepath.Walk`);
//! - any file or directory whose name starts with `.` is skipped at every depth
//!   (bootkube's skip was buggy); this also skips the `..data` symlinks of a mounted
//!   ConfigMap. Symlinks to files are followed, symlinked directories are not (no
//!   cycles);
//! - YAML may hold several documents (`---`); a `.json` file may hold a stream of JSON
//!   values; `null` and empty documents are skipped, but a file with no object at all
//!   is an error, as in bootkube;
//! - `kind: List` (and any `*List` with `items`) is expanded into its items;
//! - every object needs `apiVersion`, `kind` and `metadata.name` (no `generateName`:
//!   a second `start` could not find the object again to update it).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Why `manifests/` could not be read. Display is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{op} {path}: {error}")]
    Io {
        op: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: document {doc}: {reason}")]
    Invalid {
        path: PathBuf,
        doc: usize,
        reason: String,
    },
    #[error("{path}: no object in the file (only empty or null documents)")]
    Empty { path: PathBuf },
}

/// One object to create.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Path relative to the directory given to [`load_dir`].
    pub source: PathBuf,
    /// Document in the file, counted from 1 (empty documents count too).
    pub doc: usize,
    /// Index in the document's `items` when it was a `List`, from 0.
    pub item: Option<usize>,
    /// Has string `apiVersion`, `kind` and `metadata.name` (checked by `load_dir`).
    pub object: Value,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

impl Manifest {
    pub fn api_version(&self) -> &str {
        str_at(&self.object, "/apiVersion")
    }
    pub fn kind(&self) -> &str {
        str_at(&self.object, "/kind")
    }
    pub fn name(&self) -> &str {
        str_at(&self.object, "/metadata/name")
    }
    /// `metadata.namespace`, if set and not empty.
    pub fn namespace(&self) -> Option<&str> {
        Some(str_at(&self.object, "/metadata/namespace")).filter(|ns| !ns.is_empty())
    }
    /// `file.yaml#2` or `file.yaml#2 item 0`, for messages.
    pub fn origin(&self) -> String {
        match self.item {
            Some(i) => format!("{}#{} item {i}", self.source.display(), self.doc),
            None => format!("{}#{}", self.source.display(), self.doc),
        }
    }
    /// `Deployment kube-system/kube-scheduler` or `ClusterRole admin`.
    pub fn label(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }
}

/// `manifests/` split in the order objects are created.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Phases {
    pub namespaces: Vec<Manifest>,
    pub crds: Vec<Manifest>,
    pub rest: Vec<Manifest>,
}

impl Phases {
    pub fn len(&self) -> usize {
        self.namespaces.len() + self.crds.len() + self.rest.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Splits into Namespaces, CustomResourceDefinitions and the rest, keeping order.
pub fn phases(ms: Vec<Manifest>) -> Phases {
    let mut p = Phases::default();
    for m in ms {
        let group = m.api_version().split_once('/').map_or("", |(g, _)| g);
        match (group, m.kind()) {
            ("", "Namespace") => p.namespaces.push(m),
            ("apiextensions.k8s.io", "CustomResourceDefinition") => p.crds.push(m),
            _ => p.rest.push(m),
        }
    }
    p
}

/// Every object of every manifest file under `dir`; see the module doc for the rules.
pub fn load_dir(dir: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let mut files = Vec::new();
    walk(dir, Path::new(""), &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for rel in files {
        let path = dir.join(&rel);
        let bytes = std::fs::read(&path).map_err(|source| ManifestError::Io {
            op: "read",
            path: path.clone(),
            error: source,
        })?;
        let mut objects = 0;
        for (i, doc) in documents(&path, &bytes)?.into_iter().enumerate() {
            let doc_no = i + 1;
            let invalid = |reason: String| ManifestError::Invalid {
                path: path.clone(),
                doc: doc_no,
                reason,
            };
            let Some(value) = doc.map_err(invalid)? else {
                continue;
            };
            objects += 1;
            expand(value, &rel, doc_no, &mut out).map_err(invalid)?;
        }
        if objects == 0 {
            return Err(ManifestError::Empty { path });
        }
    }
    Ok(out)
}

/// Relative paths of the manifest files under `dir.join(rel)`.
fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let here = dir.join(rel);
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |error| ManifestError::Io { op, path, error }
    };
    for entry in std::fs::read_dir(&here).map_err(io("read dir", &here))? {
        let entry = entry.map_err(io("read dir", &here))?;
        let name = entry.file_name();
        if name.as_encoded_bytes().first() == Some(&b'.') {
            continue;
        }
        let child = rel.join(&name);
        let path = entry.path();
        let kind = entry.file_type().map_err(io("stat", &path))?;
        if kind.is_dir() {
            walk(dir, &child, out)?;
        } else if is_manifest_name(&child) && std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            out.push(child);
        }
    }
    Ok(())
}

fn is_manifest_name(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Each document of a file: `Ok(None)` for an empty or null one.
type Doc = Result<Option<Value>, String>;

fn documents(path: &Path, bytes: &[u8]) -> Result<Vec<Doc>, ManifestError> {
    let json = path.extension().is_some_and(|e| e == "json");
    if json {
        let mut docs = Vec::new();
        for v in serde_json::Deserializer::from_slice(bytes).into_iter::<Value>() {
            match v {
                Ok(v) => docs.push(Ok(Some(v).filter(|v| !v.is_null()))),
                Err(e) => {
                    docs.push(Err(format!("not valid JSON: {e}")));
                    break;
                }
            }
        }
        return Ok(docs);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ManifestError::Invalid {
        path: path.to_path_buf(),
        doc: 1,
        reason: format!("not UTF-8 text: {e}"),
    })?;
    let mut docs = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        match Value::deserialize(de) {
            Ok(v) => docs.push(Ok(Some(v).filter(|v| !v.is_null()))),
            Err(e) => {
                // Later documents cannot be located reliably after a syntax error.
                docs.push(Err(format!("not valid YAML: {e}").replace('\n', " ")));
                break;
            }
        }
    }
    Ok(docs)
}

/// Checks one document and appends its object, or its items for a List.
fn expand(mut v: Value, rel: &Path, doc: usize, out: &mut Vec<Manifest>) -> Result<(), String> {
    let kind = str_at(&v, "/kind").to_string();
    if kind.ends_with("List")
        && v.get("items").is_some_and(Value::is_array)
        && let Some(Value::Array(items)) = v.get_mut("items").map(Value::take)
    {
        for (i, item) in items.into_iter().enumerate() {
            check(&item).map_err(|e| format!("{kind} item {i}: {e}"))?;
            out.push(Manifest {
                source: rel.to_path_buf(),
                doc,
                item: Some(i),
                object: item,
            });
        }
        return Ok(());
    }
    check(&v)?;
    out.push(Manifest {
        source: rel.to_path_buf(),
        doc,
        item: None,
        object: v,
    });
    Ok(())
}

fn check(v: &Value) -> Result<(), String> {
    if !v.is_object() {
        return Err(format!(
            "expected an object (a mapping), found {}",
            type_of(v)
        ));
    }
    for (field, pointer) in [
        ("apiVersion", "/apiVersion"),
        ("kind", "/kind"),
        ("metadata.name", "/metadata/name"),
    ] {
        match v.pointer(pointer) {
            Some(Value::String(s)) if !s.is_empty() => {}
            None | Some(Value::Null) => return Err(format!("{field} is missing")),
            Some(Value::String(_)) => return Err(format!("{field} is empty")),
            Some(other) => return Err(format!("{field} is {}, not a string", type_of(other))),
        }
    }
    match v.pointer("/metadata/namespace") {
        None | Some(Value::Null | Value::String(_)) => Ok(()),
        Some(other) => Err(format!("metadata.namespace is {}", type_of(other))),
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "manifests_tests.rs"]
mod tests;
