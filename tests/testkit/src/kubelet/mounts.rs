//! Path translation, the double's stand-in for a container's mount namespace. Containers
//! are plain host processes, so a pod that mounts a volume at `/etc/kubernetes/secrets`
//! would otherwise read the host's (or nothing). The kubelet builds a mount table
//! (mountPath → host path) per container and rewrites argv and env values with it; the
//! table is also exported as `KUBEBOOT_TESTKIT_MOUNTS` (a JSON object) so the other
//! doubles can translate paths they find *inside* files, such as a kubeconfig's
//! `tokenFile`, with [`translate`].
//!
//! Rewrite rule for one argv element or env value: the whole token when it equals a
//! mountPath or starts with `mountPath/`; otherwise, for a `-flag=value` token, each
//! comma-separated element of the value. The longest matching mountPath wins, like the
//! innermost mount in a real mount namespace. A `--host-<name>=value` token is left
//! alone: by convention (`kubeboot checkpoint --host-checkpoint-dir`, `kubeboot ensure
//! --host-bootstrap-secrets-dir`) such a flag names a path as the host's kubelet sees
//! it, which the process writes into manifests and never opens, so a real mount
//! namespace would not change it either. Everything here is pure except
//! [`translate`], which reads the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The env var holding the container's mount table as a JSON object.
pub const MOUNTS_ENV: &str = "KUBEBOOT_TESTKIT_MOUNTS";
/// The env var holding the node's IP (doubles bind it when asked for `0.0.0.0`).
pub const NODE_IP_ENV: &str = "KUBEBOOT_TESTKIT_NODE_IP";

/// mountPath → host path, without trailing slashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountTable(BTreeMap<String, String>);

fn trim(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() && p.starts_with('/') {
        "/"
    } else {
        t
    }
}

impl MountTable {
    /// Adds a mount; a later mount at the same path replaces the earlier one.
    pub fn insert(&mut self, mount_path: &str, host: &Path) {
        let host = host.to_string_lossy();
        self.0
            .insert(trim(mount_path).to_string(), trim(&host).to_string());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The table as `KUBEBOOT_TESTKIT_MOUNTS` carries it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".into())
    }

    /// Parses `KUBEBOOT_TESTKIT_MOUNTS`; anything that is not a string map is no table.
    pub fn from_json(s: &str) -> MountTable {
        let map: BTreeMap<String, String> = serde_json::from_str(s).unwrap_or_default();
        let mut t = MountTable::default();
        for (k, v) in map {
            t.insert(&k, Path::new(&v));
        }
        t
    }

    /// The host path for `path` when it lies under a mount (longest mountPath wins).
    pub fn lookup(&self, path: &str) -> Option<String> {
        if !path.starts_with('/') {
            return None;
        }
        self.0
            .iter()
            .filter_map(|(mp, host)| {
                let rest = if mp == "/" {
                    Some(path.trim_start_matches('/'))
                } else if path == mp {
                    Some("")
                } else {
                    path.strip_prefix(mp.as_str())
                        .and_then(|r| r.strip_prefix('/'))
                };
                rest.map(|r| (mp.len(), host, r))
            })
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, host, rest)| match (rest.is_empty(), host.as_str()) {
                (true, _) => host.clone(),
                (false, "/") => format!("/{rest}"),
                (false, h) => format!("{h}/{rest}"),
            })
    }

    /// Rewrites one argv element or env value by the rule in the module doc.
    pub fn rewrite(&self, token: &str) -> String {
        if let Some(t) = self.lookup(token) {
            return t;
        }
        if token.starts_with('-')
            && let Some((flag, value)) = token.split_once('=')
        {
            if flag.trim_start_matches('-').starts_with("host-") {
                return token.to_string();
            }
            let value: Vec<String> = value
                .split(',')
                .map(|v| self.lookup(v).unwrap_or_else(|| v.to_string()))
                .collect();
            return format!("{flag}={}", value.join(","));
        }
        token.to_string()
    }
}

/// Translates a path the way the calling container would see it, using the table the
/// fake-kubelet exported in `KUBEBOOT_TESTKIT_MOUNTS`. Outside a fake-kubelet pod, or
/// for a path under no mount, the path comes back unchanged.
pub fn translate(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    let Ok(json) = std::env::var(MOUNTS_ENV) else {
        return path.to_path_buf();
    };
    translate_with(&MountTable::from_json(&json), path)
}

/// [`translate`] with an explicit table.
pub fn translate_with(table: &MountTable, path: &Path) -> PathBuf {
    match path.to_str().and_then(|p| table.lookup(p)) {
        Some(t) => PathBuf::from(t),
        None => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> MountTable {
        let mut t = MountTable::default();
        t.insert(
            "/etc/kubernetes/secrets/",
            Path::new("/n1/pods/u/volumes/secrets"),
        );
        t.insert("/var/run", Path::new("/n1/var/run"));
        t.insert(
            "/var/run/secrets/kubernetes.io/serviceaccount",
            Path::new("/n1/pods/u/volumes/kube-api-access"),
        );
        t.insert("/etc/kubernetes", Path::new("/n1/etc/kubernetes"));
        t
    }

    #[test]
    fn rewrite_table() {
        let t = table();
        let sa = "/n1/pods/u/volumes/kube-api-access";
        for (input, want) in [
            ("/etc/kubernetes/secrets", "/n1/pods/u/volumes/secrets"),
            (
                "/etc/kubernetes/secrets/ca.crt",
                "/n1/pods/u/volumes/secrets/ca.crt",
            ),
            ("/etc/kubernetes/manifests", "/n1/etc/kubernetes/manifests"),
            ("/etc/kubernetesX", "/etc/kubernetesX"),
            (
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                &format!("{sa}/token"),
            ),
            ("/var/run/docker.sock", "/n1/var/run/docker.sock"),
            (
                "--tls-cert-file=/etc/kubernetes/secrets/a.crt",
                "--tls-cert-file=/n1/pods/u/volumes/secrets/a.crt",
            ),
            (
                "--files=/etc/kubernetes/a,/tmp/b,/var/run",
                "--files=/n1/etc/kubernetes/a,/tmp/b,/n1/var/run",
            ),
            ("-c=/var/run/x", "-c=/n1/var/run/x"),
            (
                "--host-checkpoint-dir=/etc/kubernetes/checkpoints",
                "--host-checkpoint-dir=/etc/kubernetes/checkpoints",
            ),
            ("--hostnames=/var/run/x", "--hostnames=/n1/var/run/x"),
            ("x=/var/run/x", "x=/var/run/x"),
            ("--bind-address=0.0.0.0", "--bind-address=0.0.0.0"),
            ("relative/etc/kubernetes", "relative/etc/kubernetes"),
            ("cat /etc/kubernetes/x", "cat /etc/kubernetes/x"),
            ("", ""),
        ] {
            assert_eq!(t.rewrite(input), want, "{input}");
        }
    }

    #[test]
    fn root_mounts_and_json_round_trip() {
        let mut t = MountTable::default();
        t.insert("/", Path::new("/n1"));
        t.insert("/host", Path::new("/"));
        assert_eq!(t.lookup("/etc/x").as_deref(), Some("/n1/etc/x"));
        assert_eq!(t.lookup("/host/etc").as_deref(), Some("/etc"));
        assert_eq!(t.lookup("/host").as_deref(), Some("/"));
        let back = MountTable::from_json(&t.to_json());
        assert_eq!(back, t);
        assert!(MountTable::from_json("[1]").is_empty());
        assert_eq!(
            translate_with(&table(), Path::new("/etc/kubernetes/secrets/k")),
            PathBuf::from("/n1/pods/u/volumes/secrets/k")
        );
        assert_eq!(
            translate_with(&table(), Path::new("/opt")),
            PathBuf::from("/opt")
        );
    }
}
