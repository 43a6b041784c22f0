//! The node a static pod would run on, simulated for the `fake-apiserver` binary when the
//! fake-kubelet starts it: `KUBEBOOT_TESTKIT_NODE_IP` is the node's address (so
//! `--bind-address=0.0.0.0` or `::` binds that IP, as it would in the node's network
//! namespace), and `KUBEBOOT_TESTKIT_MOUNTS` (a JSON object `{mountPath: hostPath}`) maps the
//! pod's volume mounts back to host paths, so every file named by a flag is opened where the
//! kubelet really put it. The fake-kubelet rewrites argv too; this is the belt and braces
//! for paths it cannot see. A deliberately tiny local copy of the kubelet helper's logic,
//! so the two doubles do not depend on each other.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub const NODE_IP_ENV: &str = "KUBEBOOT_TESTKIT_NODE_IP";
pub const MOUNTS_ENV: &str = "KUBEBOOT_TESTKIT_MOUNTS";

/// `(mountPath, hostPath)` pairs.
pub type Mounts = Vec<(String, PathBuf)>;

/// The address to bind: an unspecified `--bind-address` means the node's IP when known.
pub fn bind_address(flag: IpAddr, node_ip: Option<IpAddr>) -> IpAddr {
    match node_ip {
        Some(ip) if flag.is_unspecified() => ip,
        _ => flag,
    }
}

/// Parses `KUBEBOOT_TESTKIT_MOUNTS`.
pub fn parse_mounts(json: &str) -> Result<Mounts> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).with_context(|| format!("{MOUNTS_ENV}: not a JSON object"))?;
    map.into_iter()
        .map(|(k, v)| match v.as_str() {
            Some(host) => Ok((k, PathBuf::from(host))),
            None => anyhow::bail!("{MOUNTS_ENV}: {k:?} does not map to a string"),
        })
        .collect()
}

/// The host path of `path`: the longest mount path equal to it or a `dir/` prefix of it is
/// replaced by its host path; unmounted paths are unchanged.
pub fn translate(path: &Path, mounts: &Mounts) -> PathBuf {
    let text = path.to_string_lossy();
    let best = mounts
        .iter()
        .filter_map(|(mount, host)| {
            let mount = mount.trim_end_matches('/');
            let rest = if text == mount {
                Some("")
            } else {
                text.strip_prefix(mount)?.strip_prefix('/')
            }?;
            Some((mount.len(), host, rest))
        })
        .max_by_key(|(len, ..)| *len);
    match best {
        Some((_, host, "")) => host.clone(),
        Some((_, host, rest)) => host.join(rest),
        None => path.to_path_buf(),
    }
}

/// Both variables from the environment (unset means no simulation).
pub fn from_env() -> Result<(Option<IpAddr>, Mounts)> {
    let ip = match std::env::var(NODE_IP_ENV) {
        Ok(v) if !v.is_empty() => Some(v.parse().with_context(|| format!("{NODE_IP_ENV}={v}"))?),
        _ => None,
    };
    let mounts = match std::env::var(MOUNTS_ENV) {
        Ok(v) if !v.is_empty() => parse_mounts(&v)?,
        _ => Vec::new(),
    };
    Ok((ip, mounts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_mount_wins() {
        let m = parse_mounts(
            r#"{"/etc/kubernetes": "/h/k8s", "/etc/kubernetes/secrets/": "/h/sec", "/x": "/h/x"}"#,
        )
        .unwrap();
        let t = |p: &str| translate(Path::new(p), &m);
        assert_eq!(
            t("/etc/kubernetes/secrets/ca.crt"),
            Path::new("/h/sec/ca.crt")
        );
        assert_eq!(
            t("/etc/kubernetes/admin.conf"),
            Path::new("/h/k8s/admin.conf")
        );
        assert_eq!(t("/etc/kubernetes"), Path::new("/h/k8s"));
        assert_eq!(t("/etc/kubernetes2/a"), Path::new("/etc/kubernetes2/a"));
        assert_eq!(t("/x"), Path::new("/h/x"));
        assert_eq!(t("relative/x"), Path::new("relative/x"));
        assert!(parse_mounts("[]").is_err());
        assert!(parse_mounts(r#"{"/a": 1}"#).is_err());
    }

    #[test]
    fn unspecified_bind_means_the_node() {
        let node: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(bind_address([0, 0, 0, 0].into(), Some(node)), node);
        assert_eq!(bind_address("::".parse().unwrap(), Some(node)), node);
        let lo: IpAddr = [127, 0, 0, 1].into();
        assert_eq!(bind_address(lo, Some(node)), lo);
        assert_eq!(
            bind_address([0, 0, 0, 0].into(), None),
            IpAddr::from([0, 0, 0, 0])
        );
    }
}
