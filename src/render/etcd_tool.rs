//! The restore command of a self-hosted etcd: which tool its image has, and the argv
//! that restores a snapshot as the same member.
//!
//! No shell: etcd images are distroless, so the argv is the tool itself. etcd 3.5 and
//! later ship `etcdutl snapshot restore`; older images only `etcdctl snapshot restore`
//! (API v3), which etcd 3.6 removed. The member identity (`--name`,
//! `--initial-cluster`, `--initial-advertise-peer-urls`, `--initial-cluster-token`) is
//! read from the etcd container itself, flags first, then etcd's `ETCD_*` env vars.

use k8s_openapi::api::core::v1::Container;

use super::etcd::RESTORE_MOUNT;
use super::flags;

/// How far `--bump-revision` moves a restored etcd on: the Kubernetes docs' value, far
/// beyond any number of writes lost between a backup and a disaster.
pub const BUMP_REVISION: u64 = 1_000_000_000;

/// Which tool an etcd image restores with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTool {
    Etcdutl,
    Etcdctl,
}

/// The `major.minor` of an image's tag (`3.5.21-0`, `v3.4.13`), if it has one.
pub fn image_version(image: &str) -> Option<(u32, u32)> {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    let (_, tag) = last.split_once(':')?;
    let mut parts = tag.trim_start_matches('v').split(['.', '-', '_']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The `major.minor.patch` of an image's tag (`3.5.21-0` → 3.5.21), if it has one.
fn image_release(image: &str) -> Option<(u32, u32, u32)> {
    let (major, minor) = image_version(image)?;
    let no_digest = image.split('@').next().unwrap_or(image);
    let tag = no_digest.rsplit('/').next()?.split_once(':')?.1;
    let patch = tag
        .trim_start_matches('v')
        .split(['.', '-', '_'])
        .nth(2)?
        .parse()
        .ok()?;
    Some((major, minor, patch))
}

/// Whether the restore tool of `image` has `--bump-revision` and `--mark-compacted`
/// (etcdutl from etcd 3.5.10 on); then the restore itself moves the revision on.
pub fn bumps_revision(tool: RestoreTool, image: &str) -> bool {
    tool == RestoreTool::Etcdutl && image_release(image).is_some_and(|v| v >= (3, 5, 10))
}

/// The tool of `image`: `etcdctl` before 3.5, else (and when the tag says no version)
/// `etcdutl`; the bool says whether the version was known.
pub fn restore_tool(image: &str) -> (RestoreTool, bool) {
    match image_version(image) {
        Some(v) if v < (3, 5) => (RestoreTool::Etcdctl, true),
        Some(_) => (RestoreTool::Etcdutl, true),
        None => (RestoreTool::Etcdutl, false),
    }
}

/// The etcd flags the restore repeats, read from the etcd container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub data_dir: String,
    pub name: Option<String>,
    pub initial_cluster: Option<String>,
    pub initial_advertise_peer_urls: Option<String>,
    pub initial_cluster_token: Option<String>,
}

impl Member {
    pub fn of(c: &Container) -> Option<Member> {
        let get = |name: &str| flags::flag_or_env(c, name, "ETCD_");
        Some(Member {
            data_dir: get("data-dir")?,
            name: get("name"),
            initial_cluster: get("initial-cluster"),
            initial_advertise_peer_urls: get("initial-advertise-peer-urls"),
            initial_cluster_token: get("initial-cluster-token"),
        })
    }
}

/// The init container's argv. Flags etcd was not given are left out: the restore
/// tool's defaults are etcd's. With `bump`, the restore moves the revision on by
/// [`BUMP_REVISION`] and marks everything below compacted (see docs/start.md).
pub fn restore_command(
    tool: RestoreTool,
    m: &Member,
    has_trailer: bool,
    bump: bool,
) -> Vec<String> {
    let bin = match tool {
        RestoreTool::Etcdutl => "etcdutl",
        RestoreTool::Etcdctl => "etcdctl",
    };
    let mut argv: Vec<String> = [bin, "snapshot", "restore"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.push(format!("{RESTORE_MOUNT}/snapshot.db"));
    argv.extend(["--data-dir".to_string(), m.data_dir.clone()]);
    for (flag, value) in [
        ("--name", &m.name),
        ("--initial-cluster", &m.initial_cluster),
        (
            "--initial-advertise-peer-urls",
            &m.initial_advertise_peer_urls,
        ),
        ("--initial-cluster-token", &m.initial_cluster_token),
    ] {
        if let Some(v) = value {
            argv.extend([flag.to_string(), v.clone()]);
        }
    }
    if !has_trailer {
        argv.push("--skip-hash-check".into());
    }
    if bump {
        argv.extend([
            "--bump-revision".to_string(),
            BUMP_REVISION.to_string(),
            "--mark-compacted".to_string(),
        ]);
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_per_image_version() {
        let cases = [
            (
                "registry.k8s.io/etcd:3.5.21-0",
                Some((3, 5)),
                RestoreTool::Etcdutl,
                true,
            ),
            (
                "quay.io/coreos/etcd:v3.4.13",
                Some((3, 4)),
                RestoreTool::Etcdctl,
                true,
            ),
            (
                "gcr.io/etcd-development/etcd:v3.6.0",
                Some((3, 6)),
                RestoreTool::Etcdutl,
                true,
            ),
            (
                "quay.io/coreos/etcd:v3.1.8",
                Some((3, 1)),
                RestoreTool::Etcdctl,
                true,
            ),
            (
                "localhost:5000/etcd:3.3.10",
                Some((3, 3)),
                RestoreTool::Etcdctl,
                true,
            ),
            ("localhost:5000/etcd", None, RestoreTool::Etcdutl, false),
            ("etcd:latest", None, RestoreTool::Etcdutl, false),
            ("etcd@sha256:abcd", None, RestoreTool::Etcdutl, false),
        ];
        for (image, version, tool, known) in cases {
            assert_eq!(image_version(image), version, "{image}");
            assert_eq!(restore_tool(image), (tool, known), "{image}");
        }
    }

    #[test]
    fn argv_per_tool_and_trailer() {
        let m = Member {
            data_dir: "/var/lib/etcd".into(),
            name: Some("$(NODE_NAME)".into()),
            initial_cluster: Some("$(NODE_NAME)=https://$(POD_IP):2380".into()),
            initial_advertise_peer_urls: Some("https://$(POD_IP):2380".into()),
            initial_cluster_token: None,
        };
        assert_eq!(
            restore_command(RestoreTool::Etcdutl, &m, true, false),
            [
                "etcdutl",
                "snapshot",
                "restore",
                "/kubeboot-restore/snapshot.db",
                "--data-dir",
                "/var/lib/etcd",
                "--name",
                "$(NODE_NAME)",
                "--initial-cluster",
                "$(NODE_NAME)=https://$(POD_IP):2380",
                "--initial-advertise-peer-urls",
                "https://$(POD_IP):2380",
            ]
        );
        let bare = Member {
            data_dir: "/d".into(),
            name: None,
            initial_cluster: None,
            initial_advertise_peer_urls: None,
            initial_cluster_token: Some("t".into()),
        };
        assert_eq!(
            restore_command(RestoreTool::Etcdctl, &bare, false, false),
            [
                "etcdctl",
                "snapshot",
                "restore",
                "/kubeboot-restore/snapshot.db",
                "--data-dir",
                "/d",
                "--initial-cluster-token",
                "t",
                "--skip-hash-check",
            ]
        );
    }

    #[test]
    fn only_etcdutl_from_3_5_10_bumps_the_revision() {
        let bumps = |image: &str| bumps_revision(restore_tool(image).0, image);
        assert!(bumps("registry.k8s.io/etcd:3.5.21-0"));
        assert!(bumps("registry.k8s.io/etcd:3.5.10-0"));
        assert!(bumps("quay.io/coreos/etcd:v3.6.0"));
        assert!(!bumps("registry.k8s.io/etcd:3.5.9-0"));
        assert!(!bumps("registry.k8s.io/etcd:3.5.1-0"));
        assert!(!bumps("registry.k8s.io/etcd:3.4.23-0"));
        assert!(!bumps("etcd:latest"));
        let m = Member {
            data_dir: "/var/lib/etcd".into(),
            name: None,
            initial_cluster: None,
            initial_advertise_peer_urls: None,
            initial_cluster_token: None,
        };
        let argv = restore_command(RestoreTool::Etcdutl, &m, true, true);
        assert_eq!(
            argv[argv.len() - 3..],
            ["--bump-revision", "1000000000", "--mark-compacted"]
        );
    }
}
