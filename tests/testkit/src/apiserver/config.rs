//! kube-apiserver's command line, the subset the rendered manifests rely on. The real
//! server has hundreds of flags and manifests pass many of them, so unknown flags are
//! accepted and reported back to be logged, never an error: a static pod that runs the
//! double in place of kube-apiserver must start with the same arguments.
//!
//! One flag is the double's own: `--testkit-fault` (see `fault.rs`), which kube-apiserver
//! does not have. [`Config::resolve_node`] then applies the simulated node's network and
//! mounts (`node.rs`) before any file is opened.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::authz::{Mode, parse_modes};
use super::fault::Fault;
use super::node::{self, Mounts};
use super::store::EtcdConfig;

/// The parsed flags.
#[derive(Debug, Clone)]
pub struct Config {
    pub etcd: EtcdConfig,
    pub etcd_prefix: String,
    /// 0 picks a free port (tests); the real server would disable HTTPS.
    pub secure_port: u16,
    pub bind_address: IpAddr,
    /// `--permit-port-sharing`: SO_REUSEPORT on the serving socket (`listen.rs`).
    pub permit_port_sharing: bool,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub token_auth_file: Option<PathBuf>,
    /// Keys that verify service-account tokens (public or private PEM).
    pub service_account_key_files: Vec<PathBuf>,
    /// The key that signs TokenRequest tokens (PKCS#8 PEM, EC P-256 or RSA).
    pub service_account_signing_key_file: Option<PathBuf>,
    /// `--service-account-issuer` (repeatable): the first is `iss` of new tokens, all are
    /// accepted.
    pub service_account_issuers: Vec<String>,
    /// `--api-audiences`; empty means the issuers.
    pub api_audiences: Vec<String>,
    /// `--service-account-max-token-expiration` (a Go duration; zero: no cap). Checked
    /// against upstream's bounds when the server signs tokens
    /// (`serviceaccount::ServiceAccounts::from_config`).
    pub service_account_max_token_expiration: std::time::Duration,
    pub encryption_provider_config: Option<PathBuf>,
    /// The address served in `/api`'s `serverAddressByClientCIDRs`.
    pub advertise_address: Option<String>,
    /// `-v`/`--v`: 2 and up logs every request.
    pub verbosity: u8,
    /// `--testkit-fault` rules (test-only; see `fault.rs`).
    pub faults: Vec<Fault>,
    /// `--authorization-mode` (default `Node,RBAC`, as kube-apiserver's since 1.x).
    pub authorization_modes: Vec<Mode>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            etcd: EtcdConfig::default(),
            etcd_prefix: "/registry".into(),
            secure_port: 6443,
            bind_address: IpAddr::from([0, 0, 0, 0]),
            permit_port_sharing: false,
            tls_cert_file: None,
            tls_private_key_file: None,
            client_ca_file: None,
            token_auth_file: None,
            service_account_key_files: Vec::new(),
            service_account_signing_key_file: None,
            service_account_issuers: Vec::new(),
            api_audiences: Vec::new(),
            service_account_max_token_expiration: std::time::Duration::ZERO,
            encryption_provider_config: None,
            advertise_address: None,
            verbosity: 0,
            faults: Vec::new(),
            authorization_modes: vec![Mode::Node, Mode::Rbac],
        }
    }
}

const KNOWN: &[&str] = &[
    "etcd-servers",
    "etcd-prefix",
    "etcd-cafile",
    "etcd-certfile",
    "etcd-keyfile",
    "secure-port",
    "bind-address",
    "permit-port-sharing",
    "tls-cert-file",
    "tls-private-key-file",
    "client-ca-file",
    "token-auth-file",
    "service-account-key-file",
    "service-account-signing-key-file",
    "service-account-issuer",
    "service-account-max-token-expiration",
    "api-audiences",
    "testkit-fault",
    "encryption-provider-config",
    "advertise-address",
    "v",
    "authorization-mode",
];

impl Config {
    /// Parses arguments (without the program name). Returns the config and the
    /// unknown flags, which the caller logs.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<(Config, Vec<String>)> {
        let mut c = Config::default();
        let mut ignored = Vec::new();
        let mut args = args.into_iter().peekable();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                ignored.push(arg);
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (flag.to_string(), None),
            };
            let takes_next =
                inline.is_none() && args.peek().is_some_and(|next| !next.starts_with('-'));
            if !KNOWN.contains(&name.as_str()) {
                let value = if takes_next { args.next() } else { inline };
                ignored.push(match value {
                    Some(v) => format!("--{name}={v}"),
                    None => format!("--{name}"),
                });
                continue;
            }
            let value = match inline {
                Some(v) => v,
                // A pflag bool alone means true and never takes the next argument.
                None if name == "permit-port-sharing" => "true".into(),
                None if takes_next => args.next().unwrap_or_default(),
                None => bail!("flag --{name} needs a value"),
            };
            c.set(&name, value)?;
        }
        if c.etcd.servers.is_empty() {
            bail!("--etcd-servers must be specified");
        }
        Ok((c, ignored))
    }

    fn set(&mut self, name: &str, v: String) -> Result<()> {
        let path = || Some(PathBuf::from(&v));
        match name {
            "etcd-servers" => {
                self.etcd.servers = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "etcd-prefix" => self.etcd_prefix = v.clone(),
            "etcd-cafile" => self.etcd.cafile = path(),
            "etcd-certfile" => self.etcd.certfile = path(),
            "etcd-keyfile" => self.etcd.keyfile = path(),
            "secure-port" => self.secure_port = v.parse().context("--secure-port")?,
            "bind-address" => self.bind_address = v.parse().context("--bind-address")?,
            "permit-port-sharing" => {
                self.permit_port_sharing =
                    crate::controllers::config::parse_bool(&v).context("--permit-port-sharing")?
            }
            "tls-cert-file" => self.tls_cert_file = path(),
            "tls-private-key-file" => self.tls_private_key_file = path(),
            "client-ca-file" => self.client_ca_file = path(),
            "token-auth-file" => self.token_auth_file = path(),
            "service-account-key-file" => self
                .service_account_key_files
                .extend(v.split(',').filter(|s| !s.is_empty()).map(PathBuf::from)),
            "service-account-signing-key-file" => self.service_account_signing_key_file = path(),
            "service-account-issuer" => self.service_account_issuers.push(v.clone()),
            "service-account-max-token-expiration" => {
                self.service_account_max_token_expiration =
                    crate::controllers::config::parse_duration(&v)
                        .context("--service-account-max-token-expiration")?
            }
            "api-audiences" => {
                self.api_audiences = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "testkit-fault" => self.faults.push(Fault::parse(&v)?),
            "encryption-provider-config" => self.encryption_provider_config = path(),
            "advertise-address" => self.advertise_address = Some(v.clone()),
            "v" => self.verbosity = v.parse().context("--v")?,
            "authorization-mode" => self.authorization_modes = parse_modes(&v)?,
            _ => {}
        }
        Ok(())
    }
}

impl Config {
    /// Applies the simulated node (`node.rs`): an unspecified bind address becomes the
    /// node IP and every file path is translated through the pod's mounts.
    pub fn resolve_node(&mut self, node_ip: Option<IpAddr>, mounts: &Mounts) {
        self.bind_address = node::bind_address(self.bind_address, node_ip);
        let tr = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut() {
                *path = node::translate(path, mounts);
            }
        };
        tr(&mut self.etcd.cafile);
        tr(&mut self.etcd.certfile);
        tr(&mut self.etcd.keyfile);
        tr(&mut self.tls_cert_file);
        tr(&mut self.tls_private_key_file);
        tr(&mut self.client_ca_file);
        tr(&mut self.token_auth_file);
        tr(&mut self.service_account_signing_key_file);
        tr(&mut self.encryption_provider_config);
        for p in &mut self.service_account_key_files {
            *p = node::translate(p, mounts);
        }
    }

    /// The audiences tokens must name: `--api-audiences`, else the issuers.
    pub fn audiences(&self) -> Vec<String> {
        if self.api_audiences.is_empty() {
            self.service_account_issuers.clone()
        } else {
            self.api_audiences.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(Config, Vec<String>)> {
        Config::from_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn known_and_unknown_flags() {
        let (c, ignored) = parse(&[
            "--etcd-servers=https://127.0.0.1:2379,https://127.0.0.2:2379",
            "--secure-port",
            "6444",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged",
            "--enable-admission-plugins",
            "NodeRestriction",
            "--service-account-key-file=/a",
            "--service-account-key-file=/b,/c",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-account-max-token-expiration=1h30m",
            "--testkit-fault",
            "GET:/api=503:1",
            "--tls-cert-file=/etc/kubernetes/secrets/apiserver.crt",
            "--bind-address=0.0.0.0",
            "--v=2",
        ])
        .unwrap();
        let mut c = c;
        c.resolve_node(
            Some([10, 0, 0, 2].into()),
            &vec![("/etc/kubernetes/secrets".into(), "/host/s".into())],
        );
        assert_eq!(c.bind_address, IpAddr::from([10, 0, 0, 2]));
        assert_eq!(
            c.tls_cert_file.as_deref(),
            Some(std::path::Path::new("/host/s/apiserver.crt"))
        );
        assert_eq!(c.faults.len(), 1);
        assert_eq!(c.audiences(), ["https://kubernetes.default.svc"]);
        assert_eq!(c.etcd.servers.len(), 2);
        assert_eq!(c.secure_port, 6444);
        assert_eq!(c.etcd_prefix, "/registry");
        assert_eq!(c.service_account_key_files.len(), 3);
        assert_eq!(
            c.service_account_max_token_expiration,
            std::time::Duration::from_secs(5400)
        );
        assert_eq!(c.verbosity, 2);
        assert_eq!(c.authorization_modes, [Mode::Node, Mode::Rbac]);
        assert_eq!(
            ignored,
            [
                "--allow-privileged",
                "--enable-admission-plugins=NodeRestriction"
            ]
        );
    }

    #[test]
    fn etcd_servers_are_required_and_values_checked() {
        assert!(parse(&["--secure-port=1"]).is_err());
        assert!(parse(&["--etcd-servers=x", "--secure-port=no"]).is_err());
        assert!(parse(&["--etcd-servers=x", "--tls-cert-file"]).is_err());
        assert!(parse(&["--etcd-servers=x", "--authorization-mode=Webhook"]).is_err());
        assert!(
            parse(&[
                "--etcd-servers=x",
                "--service-account-max-token-expiration=1d"
            ])
            .is_err()
        );
        let (c, _) = parse(&["--etcd-servers=x", "--authorization-mode=AlwaysAllow"]).unwrap();
        assert_eq!(c.authorization_modes, [Mode::AlwaysAllow]);
    }
}
