//! What a `secret`, `configMap`, `downwardAPI` or `projected` volume contains, given the
//! API objects it names: pure, so the kubelet's rules (items as key → path, `defaultMode`
//! and per-item `mode`, `optional`, configMap `binaryData`, the downward API's label
//! format) are table-tested without an api-server. [`refs`] lists what to fetch,
//! [`render`] turns the fetched objects into the payload the atomic writer stores.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, Volume};

use super::atomic::File;

/// The kubelet's default file mode for API-backed volumes (0644).
pub const DEFAULT_MODE: i32 = 0o644;

/// An API object a volume needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ref {
    Secret(String),
    ConfigMap(String),
    /// A token for the pod's service account; `audience` "" means the api-server's own.
    Token {
        audience: String,
        seconds: i64,
    },
}

/// The result of fetching a [`Ref`]; a token is `Data` with the key `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    Data(BTreeMap<String, Vec<u8>>),
    /// 404: fine when the reference is optional.
    Missing,
    /// Any other failure, with a message for the container's waiting state.
    Failed(String),
}

pub type Objects = BTreeMap<Ref, Fetched>;

/// Lifetime of a projected token without `expirationSeconds` (the API default).
pub const TOKEN_SECONDS: i64 = 3600;

/// The API objects volume `v` reads.
pub fn refs(v: &Volume) -> Vec<Ref> {
    let mut out = Vec::new();
    if let Some(s) = &v.secret {
        out.push(Ref::Secret(s.secret_name.clone().unwrap_or_default()));
    }
    if let Some(c) = &v.config_map {
        out.push(Ref::ConfigMap(c.name.clone()));
    }
    for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
        if let Some(s) = &s.secret {
            out.push(Ref::Secret(s.name.clone()));
        }
        if let Some(c) = &s.config_map {
            out.push(Ref::ConfigMap(c.name.clone()));
        }
        if let Some(t) = &s.service_account_token {
            out.push(Ref::Token {
                audience: t.audience.clone().unwrap_or_default(),
                seconds: t.expiration_seconds.unwrap_or(TOKEN_SECONDS),
            });
        }
    }
    out
}

fn mode(m: Option<i32>, default: i32) -> u32 {
    u32::try_from(m.unwrap_or(default)).unwrap_or(0o644) & 0o777
}

/// A secret's or configMap's keys as files: all keys, or `items` (key → path).
fn keyed(
    what: &str,
    name: &str,
    fetched: Option<&Fetched>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Vec<File>, String> {
    let data = match fetched {
        Some(Fetched::Data(d)) => d,
        Some(Fetched::Missing) | None if optional => return Ok(Vec::new()),
        Some(Fetched::Missing) | None => return Err(format!("{what} {name:?} not found")),
        Some(Fetched::Failed(e)) => return Err(format!("{what} {name:?}: {e}")),
    };
    let Some(items) = items else {
        return Ok(data
            .iter()
            .map(|(k, v)| File {
                path: k.clone(),
                data: v.clone(),
                mode: mode(None, default_mode),
            })
            .collect());
    };
    let mut out = Vec::new();
    for it in items {
        match data.get(&it.key) {
            Some(v) => out.push(File {
                path: it.path.clone(),
                data: v.clone(),
                mode: mode(it.mode, default_mode),
            }),
            None if optional => {}
            None => return Err(format!("{what} {name:?} has no key {:?}", it.key)),
        }
    }
    Ok(out)
}

/// Go's `%q` for the characters labels and annotations carry.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The kubelet's `fieldpath.FormatMap`: sorted `k="v"` lines, no trailing newline.
pub fn format_map(m: &BTreeMap<String, String>) -> String {
    let lines: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
    lines.join("\n")
}

/// One downward API field; `None` for fields this double does not support.
pub fn field(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
            .map(str::to_string)
    };
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "metadata.labels" => Some(format_map(labels)),
        "metadata.annotations" => Some(format_map(annotations)),
        "spec.nodeName" => pod.spec.as_ref()?.node_name.clone(),
        "spec.serviceAccountName" => pod.spec.as_ref()?.service_account_name.clone(),
        _ => {
            if let Some(k) = subscript("metadata.labels") {
                return Some(labels.get(&k).cloned().unwrap_or_default());
            }
            subscript("metadata.annotations")
                .map(|k| annotations.get(&k).cloned().unwrap_or_default())
        }
    }
}

fn downward(pod: &Pod, items: &[DownwardAPIVolumeFile], default_mode: i32) -> Vec<File> {
    items
        .iter()
        .filter_map(|it| {
            let path = &it.field_ref.as_ref()?.field_path;
            let value = field(pod, path);
            if value.is_none() {
                crate::note!("fake-kubelet: downward API field {path:?} is not supported; skipped");
            }
            Some(File {
                path: it.path.clone(),
                data: value?.into_bytes(),
                mode: mode(it.mode, default_mode),
            })
        })
        .collect()
}

/// The payload of an API-backed volume, or `Ok(None)` for other volume kinds.
pub fn render(v: &Volume, objs: &Objects, pod: &Pod) -> Result<Option<Vec<File>>, String> {
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let d = s.default_mode.unwrap_or(DEFAULT_MODE);
        let f = objs.get(&Ref::Secret(name.clone()));
        let opt = s.optional == Some(true);
        return keyed("secret", &name, f, s.items.as_deref(), d, opt).map(Some);
    }
    if let Some(c) = &v.config_map {
        let d = c.default_mode.unwrap_or(DEFAULT_MODE);
        let f = objs.get(&Ref::ConfigMap(c.name.clone()));
        let opt = c.optional == Some(true);
        return keyed("configmap", &c.name, f, c.items.as_deref(), d, opt).map(Some);
    }
    if let Some(d) = &v.downward_api {
        let dm = d.default_mode.unwrap_or(DEFAULT_MODE);
        return Ok(Some(downward(pod, d.items.as_deref().unwrap_or(&[]), dm)));
    }
    let Some(p) = &v.projected else {
        return Ok(None);
    };
    let dm = p.default_mode.unwrap_or(DEFAULT_MODE);
    let mut out = Vec::new();
    for s in p.sources.iter().flatten() {
        if let Some(s) = &s.secret {
            let f = objs.get(&Ref::Secret(s.name.clone()));
            let opt = s.optional == Some(true);
            out.extend(keyed("secret", &s.name, f, s.items.as_deref(), dm, opt)?);
        }
        if let Some(c) = &s.config_map {
            let f = objs.get(&Ref::ConfigMap(c.name.clone()));
            let opt = c.optional == Some(true);
            out.extend(keyed("configmap", &c.name, f, c.items.as_deref(), dm, opt)?);
        }
        if let Some(d) = &s.downward_api {
            out.extend(downward(pod, d.items.as_deref().unwrap_or(&[]), dm));
        }
        if let Some(t) = &s.service_account_token {
            let r = Ref::Token {
                audience: t.audience.clone().unwrap_or_default(),
                seconds: t.expiration_seconds.unwrap_or(TOKEN_SECONDS),
            };
            let token = match objs.get(&r) {
                Some(Fetched::Data(d)) => d.get("token").cloned().unwrap_or_default(),
                Some(Fetched::Failed(e)) => return Err(format!("service account token: {e}")),
                Some(Fetched::Missing) | None => {
                    return Err("service account token: not available".into());
                }
            };
            out.push(File {
                path: t.path.clone(),
                data: token,
                mode: mode(None, dm),
            });
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
#[path = "projection_tests.rs"]
mod tests;
