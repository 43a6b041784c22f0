//! `ensure`'s flags for a host-run etcd cluster (`--etcd-unit`), and their resolution
//! into the member it looks after: the unit's environment is read from systemd itself
//! (its `Environment=` and EnvironmentFiles, in order), unless files are given.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::hostetcd::act::HostEtcd;
use crate::hostetcd::member::{Member, unit_env};
use crate::source::etcd::EtcdConfig;

#[derive(Debug, Args)]
pub struct HostEtcdFlags {
    /// etcd's own systemd unit on this master, for an etcd cluster run by the hosts:
    /// when the api-server and etcd are down past the boot grace, this member is
    /// waited for, restored from the newest backup as a new one-member cluster (on
    /// the node the policy names), or joined to the cluster there is
    /// (docs/ensure.md) [default: none; etcd is not kubeboot's to start]
    #[arg(long, default_value = "", value_name = "UNIT")]
    pub etcd_unit: String,
    /// The unit's EnvironmentFiles, in order, a later one overriding [default: what
    /// systemd says the unit reads]
    #[arg(long = "etcd-env-file", value_name = "FILE")]
    pub etcd_env_files: Vec<PathBuf>,
    /// The etcd binary the unit runs; a restore starts it privately, on loopback
    /// ports, to move the restored revision on
    #[arg(long, default_value = "/usr/bin/etcd", value_name = "FILE")]
    pub etcd_binary: PathBuf,
    /// The snapshot restore tool: etcdutl, or etcdctl for etcd before 3.5 [default:
    /// etcdutl if on PATH, else etcdctl]
    #[arg(long, value_name = "FILE")]
    pub etcd_restore_tool: Option<PathBuf>,
    /// Where systemd reads runtime drop-ins (a join's, removed once it is done)
    #[arg(long, default_value = "/run/systemd/system", value_name = "DIR")]
    pub systemd_runtime_dir: PathBuf,
    /// The extra EnvironmentFile a joining member starts with
    #[arg(
        long,
        default_value = "/run/kubeboot/etcd-join.env",
        value_name = "FILE"
    )]
    pub etcd_join_env_file: PathBuf,
}

/// Whether `name` is an executable on `$PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

impl HostEtcdFlags {
    /// The member, or `None` without `--etcd-unit`; `Err` is one line naming what is
    /// wrong (a usage error).
    pub async fn resolve(
        &self,
        bus: Option<&str>,
        client: &EtcdConfig,
        bump: u64,
        timeout: Duration,
    ) -> Result<Option<HostEtcd>, String> {
        if self.etcd_unit.is_empty() {
            return Ok(None);
        }
        let unit = &self.etcd_unit;
        let env = if self.etcd_env_files.is_empty() {
            let conn = crate::systemd::dbus::connect(bus).await?;
            let (environment, files) = crate::systemd::dbus::unit_environment(&conn, unit).await?;
            let files: Vec<_> = files
                .into_iter()
                .map(|(f, opt)| (PathBuf::from(f), opt))
                .collect();
            unit_env(&environment, &files)
        } else {
            let files: Vec<_> = self
                .etcd_env_files
                .iter()
                .map(|f| (f.clone(), false))
                .collect();
            unit_env(&[], &files)
        }
        .map_err(|e| format!("--etcd-unit {unit}: its environment: {e}"))?;
        let member = Member::from_env(&env).map_err(|e| format!("--etcd-unit {unit}: {e}"))?;
        let tool = self.etcd_restore_tool.clone().unwrap_or_else(|| {
            PathBuf::from(if on_path("etcdutl") {
                "etcdutl"
            } else {
                "etcdctl"
            })
        });
        let peers = client
            .endpoints
            .iter()
            .filter(|e| !member.client_urls.contains(e))
            .cloned()
            .collect();
        Ok(Some(HostEtcd {
            drop_in: self
                .systemd_runtime_dir
                .join(format!("{unit}.d"))
                .join("50-kubeboot-join.conf"),
            unit: unit.clone(),
            member,
            client: client.clone(),
            peers,
            etcd_bin: self.etcd_binary.clone(),
            restore_tool: tool,
            bump,
            join_env: self.etcd_join_env_file.clone(),
            timeout,
        }))
    }
}
