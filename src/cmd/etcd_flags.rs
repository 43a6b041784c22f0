//! The etcd connection flags `recover` and `backup` share, with bootkube's names (its
//! `--etcd-*-path` spellings are aliases, so existing runbooks keep working).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{Failure, parse_duration, usage};
use crate::source::etcd::EtcdConfig;

#[derive(Debug, Args)]
pub struct EtcdFlags {
    /// Live etcd endpoints (comma-separated URLs).
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub etcd_servers: Vec<String>,
    /// CA bundle that signed etcd's serving certificate.
    #[arg(long, alias = "etcd-ca-path", value_name = "FILE")]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long, alias = "etcd-certificate-path", value_name = "FILE")]
    pub etcd_certfile: Option<PathBuf>,
    /// Client key for etcd.
    #[arg(long, alias = "etcd-private-key-path", value_name = "FILE")]
    pub etcd_keyfile: Option<PathBuf>,
    /// The api-server's --etcd-prefix.
    #[arg(long, default_value = "/registry", value_name = "PREFIX")]
    pub etcd_prefix: String,
    /// How long to wait for a connection to etcd.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub etcd_dial_timeout: Duration,
    /// How long one etcd request may take (for a snapshot: one chunk of it).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub etcd_request_timeout: Duration,
}

impl EtcdFlags {
    /// The cross-checks clap cannot do.
    pub fn check(&self) -> Result<(), Failure> {
        if !self.etcd_prefix.starts_with('/') {
            return Err(usage(format!(
                "--etcd-prefix {:?} must start with '/'",
                self.etcd_prefix
            )));
        }
        if self.etcd_certfile.is_some() != self.etcd_keyfile.is_some() {
            return Err(usage(
                "--etcd-certfile and --etcd-keyfile must be given together",
            ));
        }
        Ok(())
    }

    pub fn config(&self) -> EtcdConfig {
        let mut cfg = EtcdConfig::new(self.etcd_servers.clone());
        cfg.ca_file = self.etcd_cafile.clone();
        cfg.cert_file = self.etcd_certfile.clone();
        cfg.key_file = self.etcd_keyfile.clone();
        cfg.dial_timeout = self.etcd_dial_timeout;
        cfg.request_timeout = self.etcd_request_timeout;
        cfg
    }

    /// The TLS files given, which a backup must carry (bootkube #612).
    pub fn tls_files(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.etcd_cafile, &self.etcd_certfile, &self.etcd_keyfile]
            .into_iter()
            .flatten()
    }
}
