//! fake-kubelet's command line and `--image-map`. Flags keep the real kubelet's names so a
//! test reads like a node's unit file; parsing is pure (no file or network access) and
//! only [`Config::load_image_map`] touches the disk, so `--help` can never fail.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::cri;

pub const USAGE: &str = "usage: fake-kubelet [--pod-manifest-path DIR] [--kubeconfig FILE]
  [--hostname-override NAME] [--node-ip IP] [--node-labels k=v,...]
  [--healthz-port 10248] [--port 10250] [--read-only-port 10255] (0 disables a port)
  [--root-dir /var/lib/kubelet] [--root-fs /] [--image-map FILE]
  [--backoff-base 10s] [--backoff-max 300s] [--max-grace-period 30s]
  [--file-check-frequency 500ms] [--container-runtime-endpoint unix:///PATH]
  [--tls-cert-file F --tls-private-key-file F] [--cert-dir DIR] [--client-ca-file F]
  [--anonymous-auth=true] [--authentication-token-webhook=false]
  [--authentication-token-webhook-cache-ttl 2m] [--authorization-mode AlwaysAllow|Webhook]
  [--authorization-webhook-cache-authorized-ttl 5m]
  [--authorization-webhook-cache-unauthorized-ttl 30s]";

/// Everything the kubelet needs, resolved from flags.
#[derive(Debug, Clone)]
pub struct Config {
    pub pod_manifest_path: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub node_name: String,
    pub node_ip: IpAddr,
    pub node_labels: BTreeMap<String, String>,
    pub healthz_port: u16,
    pub port: u16,
    pub read_only_port: u16,
    pub root_dir: PathBuf,
    /// The node's filesystem: hostPath `P` is `root_fs/P` (several "nodes" on one host).
    pub root_fs: PathBuf,
    pub image_map_path: Option<PathBuf>,
    pub image_map: ImageMap,
    /// First crash-loop delay; doubles per restart up to `backoff_max`. The defaults are
    /// upstream's (`initialCrashLoopBackOff` 10 s, `MaxCrashLoopBackOff` 300 s); `backoff_max`
    /// stands for `crashLoopBackOff.maxContainerRestartPeriod` (`backoff.rs`).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Upper bound on a pod's `terminationGracePeriodSeconds` when stopping it.
    pub max_grace: Duration,
    /// How often the static pod dir is rescanned (the real kubelet uses inotify + 20 s).
    pub file_check: Duration,
    /// Where the CRI v1 `RuntimeService` is served (`unix:///path`); `None`: not served.
    pub container_runtime_endpoint: Option<String>,
    /// 10250's TLS, authentication and authorization flags ([`super::auth`]).
    pub auth: super::auth::AuthFlags,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pod_manifest_path: None,
            kubeconfig: None,
            node_name: "localhost".into(),
            node_ip: IpAddr::from([127, 0, 0, 1]),
            node_labels: BTreeMap::new(),
            healthz_port: 10248,
            port: 10250,
            read_only_port: 10255,
            root_dir: PathBuf::from("/var/lib/kubelet"),
            root_fs: PathBuf::from("/"),
            image_map_path: None,
            image_map: ImageMap::default(),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            max_grace: Duration::from_secs(30),
            file_check: Duration::from_millis(500),
            container_runtime_endpoint: None,
            auth: super::auth::AuthFlags::default(),
        }
    }
}

impl Config {
    /// Parses `--flag value` and `--flag=value`; `Ok(None)` means `--help` was asked for.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Config>> {
        let mut cfg = Config::default();
        // The real kubelet's default node name is the host name, lower-cased.
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname")
            && !h.trim().is_empty()
        {
            cfg.node_name = h.trim().to_lowercase();
        }
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            if arg == "-h" || arg == "--help" {
                return Ok(None);
            }
            let Some(flag) = arg.strip_prefix("--") else {
                bail!("unexpected argument {arg:?}\n{USAGE}");
            };
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None if super::auth::is_bool_flag(flag) => (flag.to_string(), "true".into()),
                None => {
                    let v = it
                        .next()
                        .with_context(|| format!("--{flag} needs a value"))?;
                    (flag.to_string(), v)
                }
            };
            cfg.set(&name, &value)
                .with_context(|| format!("--{name}={value}"))?;
        }
        crate::nodelabels::validate_flag_labels(&cfg.node_labels)
            .map_err(|e| anyhow::anyhow!("failed to validate kubelet flags: {e}"))?;
        Ok(Some(cfg))
    }

    fn set(&mut self, name: &str, v: &str) -> Result<()> {
        match name {
            "pod-manifest-path" => self.pod_manifest_path = Some(v.into()),
            "kubeconfig" => self.kubeconfig = Some(v.into()),
            "hostname-override" => self.node_name = v.to_lowercase(),
            "node-ip" => self.node_ip = v.parse()?,
            "node-labels" => {
                for kv in v.split(',').filter(|s| !s.is_empty()) {
                    let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
                    self.node_labels.insert(k.to_string(), val.to_string());
                }
            }
            "healthz-port" => self.healthz_port = v.parse()?,
            "port" => self.port = v.parse()?,
            "read-only-port" => self.read_only_port = v.parse()?,
            "root-dir" => self.root_dir = v.into(),
            "root-fs" => self.root_fs = v.into(),
            "image-map" => self.image_map_path = Some(v.into()),
            "backoff-base" => self.backoff_base = parse_duration(v)?,
            "backoff-max" => self.backoff_max = parse_duration(v)?,
            "max-grace-period" => self.max_grace = parse_duration(v)?,
            "file-check-frequency" => self.file_check = parse_duration(v)?,
            "container-runtime-endpoint" => {
                cri::socket_path(v)?;
                self.container_runtime_endpoint = Some(v.to_string());
            }
            _ => match self.auth.set(name, v) {
                Some(r) => r?,
                None => bail!("unknown flag\n{USAGE}"),
            },
        }
        Ok(())
    }

    /// Reads `--image-map` (the only disk access of configuration).
    pub fn load_image_map(&mut self) -> Result<()> {
        if let Some(p) = &self.image_map_path {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading --image-map {}", p.display()))?;
            self.image_map = ImageMap::parse(&text)
                .with_context(|| format!("parsing --image-map {}", p.display()))?;
        }
        Ok(())
    }
}

/// `500ms`, `10s`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let (num, mult_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        (s, 1000)
    };
    let n: u64 = num.trim().parse().context("expected e.g. 500ms, 10s, 2m")?;
    Ok(Duration::from_millis(n.saturating_mul(mult_ms)))
}

/// Image name → local executable. A YAML mapping, looked up in this order:
/// the exact image (`repo:tag` or `repo@digest`), the repository without tag/digest,
/// then `*` globs in file order (`*` matches any run of characters, `/` included).
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    entries: Vec<(String, PathBuf)>,
}

impl ImageMap {
    pub fn parse(text: &str) -> Result<ImageMap> {
        let map: Option<serde_yaml_ng::Mapping> = serde_yaml_ng::from_str(text)?;
        let mut entries = Vec::new();
        for (k, v) in map.unwrap_or_default() {
            match (k.as_str(), v.as_str()) {
                (Some(k), Some(v)) => entries.push((k.to_string(), PathBuf::from(v))),
                _ => bail!("every entry must be `image: /path/to/executable`"),
            }
        }
        Ok(ImageMap { entries })
    }

    pub fn from_pairs<S: Into<String>, P: AsRef<Path>>(
        pairs: impl IntoIterator<Item = (S, P)>,
    ) -> Self {
        let entries = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.as_ref().to_path_buf()))
            .collect();
        ImageMap { entries }
    }

    pub fn lookup(&self, image: &str) -> Option<&Path> {
        let repo = repository(image);
        let exact = |want: &str| self.entries.iter().find(|(k, _)| k == want);
        exact(image)
            .or_else(|| exact(repo))
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|(k, _)| k.contains('*') && (glob(k, image) || glob(k, repo)))
            })
            .map(|(_, v)| v.as_path())
    }
}

/// `registry:5000/a/b:tag@sha256:..` → `registry:5000/a/b` (a `:` after the last `/` is a tag).
pub fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].find(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    }
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            let Some(tail) = s.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_lookup_order() {
        let m = ImageMap::parse(
            "registry.k8s.io/etcd:3.5: /a\nregistry.k8s.io/etcd: /b\n'*/kube-*': /c\n'*': /d\n",
        )
        .unwrap();
        assert_eq!(m.lookup("registry.k8s.io/etcd:3.5"), Some(Path::new("/a")));
        assert_eq!(m.lookup("registry.k8s.io/etcd:3.6"), Some(Path::new("/b")));
        assert_eq!(
            m.lookup("registry.k8s.io/etcd@sha256:00"),
            Some(Path::new("/b"))
        );
        assert_eq!(m.lookup("q.io/kube-proxy:v1"), Some(Path::new("/c")));
        assert_eq!(m.lookup("busybox"), Some(Path::new("/d")));
        assert_eq!(ImageMap::default().lookup("busybox"), None);
    }

    #[test]
    fn repository_strips_tag_not_port() {
        assert_eq!(repository("localhost:5000/x"), "localhost:5000/x");
        assert_eq!(repository("localhost:5000/x:1"), "localhost:5000/x");
        assert_eq!(repository("x@sha256:ab"), "x");
    }

    #[test]
    fn flags() {
        let args = [
            "--node-ip=127.0.0.2",
            "--backoff-base",
            "500ms",
            "--node-labels",
            "a=b,c=",
            "--root-fs=/t/nodes/m1",
        ];
        let cfg = Config::from_args(args.map(String::from)).unwrap().unwrap();
        assert_eq!(cfg.node_ip.to_string(), "127.0.0.2");
        assert_eq!(cfg.backoff_base, Duration::from_millis(500));
        assert_eq!(cfg.node_labels.get("c").map(String::as_str), Some(""));
        assert_eq!(cfg.root_fs, PathBuf::from("/t/nodes/m1"));
        assert_eq!(Config::default().root_fs, PathBuf::from("/"));
        assert!(Config::from_args(["--nope=1".to_string()]).is_err());
        assert!(Config::from_args(["--help".to_string()]).unwrap().is_none());
    }

    #[test]
    fn a_role_label_on_the_command_line_is_refused_as_upstream_does() {
        let args = ["--node-labels=node-role.kubernetes.io/control-plane=".to_string()];
        let e = format!("{:#}", Config::from_args(args).unwrap_err());
        assert!(
            e.starts_with(
                "failed to validate kubelet flags: unknown 'kubernetes.io' or 'k8s.io' labels"
            ),
            "{e}"
        );
    }
}
