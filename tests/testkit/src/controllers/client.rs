//! The api-server connection of both doubles, built to outlive api-server restarts:
//! every request is bounded by a read timeout, nothing is cached across a failure (each
//! cycle lists afresh), and errors are logged one line at a time, only when they change,
//! so an outage is two lines in the log, not hundreds.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use kube::Client;

use crate::kubelet::mounts::translate;

/// A request that has not answered in this time is abandoned and retried next cycle.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client from `--kubeconfig`, or from the environment (in-cluster, `$KUBECONFIG`) as
/// the real components do without the flag.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client> {
    Ok(Client::try_from(config(kubeconfig).await?)?)
}

/// The configuration [`connect`] builds its client from.
pub async fn config(kubeconfig: Option<&Path>) -> Result<kube::Config> {
    // kube-rs may see more than one rustls provider in this build; pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = match kubeconfig {
        Some(p) => {
            let mut kc = kube::config::Kubeconfig::read_from(p)
                .with_context(|| format!("reading --kubeconfig {}", p.display()))?;
            translate_paths(&mut kc);
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no --kubeconfig and no in-cluster config")?,
    };
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    config.reset_reader_on_write = true;
    Ok(config)
}

/// A pod's kubeconfig names files as the container sees them (the in-cluster one's
/// `tokenFile` and `certificate-authority` under `/var/run/secrets/...`); under the
/// fake-kubelet a container is a host process, so they are mapped to where the kubelet
/// put them.
fn translate_paths(kc: &mut kube::config::Kubeconfig) {
    let tr = |p: &mut Option<String>| {
        if let Some(path) = p.as_mut() {
            *path = translate(path.as_str()).to_string_lossy().into_owned();
        }
    };
    for c in kc.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        tr(&mut c.certificate_authority);
    }
    for a in kc
        .auth_infos
        .iter_mut()
        .filter_map(|a| a.auth_info.as_mut())
    {
        tr(&mut a.token_file);
        tr(&mut a.client_certificate);
        tr(&mut a.client_key);
    }
}

/// Logs an error once per change, and once when things work again.
pub struct ErrorLog {
    component: &'static str,
    last: Option<String>,
}

impl ErrorLog {
    pub fn new(component: &'static str) -> ErrorLog {
        ErrorLog {
            component,
            last: None,
        }
    }

    /// Records the outcome of one cycle.
    pub fn record(&mut self, what: &str, r: &Result<()>) {
        match r {
            Ok(()) => {
                if self.last.take().is_some() {
                    crate::note!("{}: {what}: working again", self.component);
                }
            }
            Err(e) => {
                let line = format!("{e:#}");
                if self.last.as_deref() != Some(line.as_str()) {
                    crate::note!("{}: {what}: {line} (retrying)", self.component);
                    self.last = Some(line);
                }
            }
        }
    }
}
