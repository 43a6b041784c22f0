//! Reading a container's flags, and following a path inside a container to the volume
//! that holds it.
//!
//! The etcd restore must learn from the pods themselves where etcd keeps its data on
//! the host and which files the api-server reaches etcd with; guessing
//! (`/var/lib/etcd`, bootkube's fixed `/etc/kubernetes/bootstrap-secrets/etcd/`) is
//! what made bootkube's self-hosted etcd recovery fragile (docs/bootkube-notes.md §5.8).

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, Volume, VolumeMount};

/// The value of flag `name` (without dashes) in `command` then `args`: `--name=v`,
/// `--name v`, or with one dash (Go's `flag` package, which etcd uses, accepts both).
/// The last occurrence wins, as in Go's and pflag's parsers.
pub fn flag(c: &Container, name: &str) -> Option<String> {
    let all: Vec<&String> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .collect();
    let mut found = None;
    let mut i = 0;
    while let Some(arg) = all.get(i) {
        let bare = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .unwrap_or_default();
        if bare == name {
            if let Some(v) = all.get(i + 1) {
                found = Some(v.to_string());
                i += 1;
            }
        } else if let Some(v) = bare
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
        {
            found = Some(v.to_string());
        }
        i += 1;
    }
    found
}

/// A flag, or else the literal value of its environment variable (`ETCD_DATA_DIR` for
/// etcd's `data-dir`): etcd reads every flag from `ETCD_<FLAG>` too.
pub fn flag_or_env(c: &Container, name: &str, env_prefix: &str) -> Option<String> {
    flag(c, name).or_else(|| {
        let var = format!(
            "{env_prefix}{}",
            name.replace('-', "_").to_ascii_uppercase()
        );
        c.env
            .iter()
            .flatten()
            .find(|e: &&EnvVar| e.name == var)
            .and_then(|e| e.value.clone())
    })
}

/// Where a path of a container lives: the volume, the mount and the path below the
/// volume's root (`subPath` applied; empty for the root itself).
#[derive(Debug)]
pub struct InVolume<'a> {
    pub volume: &'a Volume,
    pub mount: &'a VolumeMount,
    pub rel: String,
}

/// Follows absolute `path` of container `c` through its longest matching mount.
pub fn resolve<'a>(spec: &'a PodSpec, c: &'a Container, path: &str) -> Option<InVolume<'a>> {
    let mut best: Option<(&VolumeMount, &str)> = None;
    for m in c.volume_mounts.iter().flatten() {
        let mount = m.mount_path.trim_end_matches('/');
        let Some(rest) = path.strip_prefix(mount) else {
            continue;
        };
        if !(rest.is_empty() || rest.starts_with('/')) {
            continue;
        }
        if best.is_none_or(|(b, _)| b.mount_path.trim_end_matches('/').len() < mount.len()) {
            best = Some((m, rest.trim_matches('/')));
        }
    }
    let (mount, rest) = best?;
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)?;
    let sub = mount
        .sub_path
        .as_deref()
        .unwrap_or_default()
        .trim_matches('/');
    let rel = [sub, rest]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    Some(InVolume { volume, mount, rel })
}

/// `dir` and `rel` joined with one `/` (just `dir` when `rel` is empty).
pub fn join(dir: &str, rel: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if rel.is_empty() {
        if dir.is_empty() {
            "/".into()
        } else {
            dir.into()
        }
    } else {
        format!("{dir}/{rel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(command: &[&str], args: &[&str]) -> Container {
        let v = |xs: &[&str]| Some(xs.iter().map(|s| s.to_string()).collect());
        Container {
            command: v(command),
            args: v(args),
            ..Default::default()
        }
    }

    #[test]
    fn flag_forms_and_last_wins() {
        let c = container(
            &["etcd", "--data-dir=/a", "-name", "n1"],
            &["--data-dir", "/b", "--data-dirx=/no"],
        );
        assert_eq!(flag(&c, "data-dir").as_deref(), Some("/b"));
        assert_eq!(flag(&c, "name").as_deref(), Some("n1"));
        assert_eq!(flag(&c, "initial-cluster"), None);
        let dangling = container(&["etcd", "--name"], &[]);
        assert_eq!(flag(&dangling, "name"), None);
    }

    #[test]
    fn env_is_the_fallback() {
        let mut c = container(&["etcd"], &[]);
        c.env = Some(vec![EnvVar {
            name: "ETCD_DATA_DIR".into(),
            value: Some("/env".into()),
            ..Default::default()
        }]);
        assert_eq!(
            flag_or_env(&c, "data-dir", "ETCD_").as_deref(),
            Some("/env")
        );
    }

    #[test]
    fn resolve_takes_the_longest_mount_and_sub_path() {
        let mount = |name: &str, path: &str, sub: Option<&str>| VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            sub_path: sub.map(Into::into),
            ..Default::default()
        };
        let vol = |name: &str| Volume {
            name: name.into(),
            ..Default::default()
        };
        let mut c = container(&["x"], &[]);
        c.volume_mounts = Some(vec![
            mount("var", "/var/lib", None),
            mount("data", "/var/lib/etcd/", Some("member-data")),
        ]);
        let spec = PodSpec {
            volumes: Some(vec![vol("var"), vol("data")]),
            ..Default::default()
        };
        let r = resolve(&spec, &c, "/var/lib/etcd").unwrap();
        assert_eq!(
            (r.volume.name.as_str(), r.rel.as_str()),
            ("data", "member-data")
        );
        let r = resolve(&spec, &c, "/var/lib/etcd/x/y").unwrap();
        assert_eq!(r.rel, "member-data/x/y");
        let r = resolve(&spec, &c, "/var/lib/etcdx").unwrap();
        assert_eq!((r.volume.name.as_str(), r.rel.as_str()), ("var", "etcdx"));
        assert!(resolve(&spec, &c, "/etc").is_none());
        assert_eq!(join("/h/", ""), "/h");
        assert_eq!(join("/h", "a/b"), "/h/a/b");
    }
}
