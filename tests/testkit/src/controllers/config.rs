//! The command line shared by fake-controller-manager and fake-scheduler. Flags keep
//! the real components' names and defaults so a test (or a rendered manifest) reads the
//! same for both. Parsing is pure: nothing here reads a file or the network, so `--help`
//! and a bad flag are answered before anything can fail for another reason.
//!
//! Both `--flag=value` and `--flag value` are accepted, except for boolean flags which,
//! as with Go's pflag, take a value only as `--flag=value`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Which component is parsing: its name, default `--secure-port`, and the real flags it
/// accepts but ignores (`(name, is_bool)`).
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    pub name: &'static str,
    pub default_port: u16,
    pub ignored: &'static [(&'static str, bool)],
}

/// The real kube-controller-manager flags the rendered manifests pass; none matters to
/// the double.
pub const CONTROLLER_MANAGER: Profile = Profile {
    name: "fake-controller-manager",
    default_port: 10257,
    ignored: &[
        ("allocate-node-cidrs", true),
        ("cluster-cidr", false),
        ("cluster-signing-cert-file", false),
        ("cluster-signing-key-file", false),
        ("service-account-private-key-file", false),
        ("service-cluster-ip-range", false),
    ],
};

/// kube-scheduler's delegated-auth kubeconfigs are accepted and ignored.
pub const SCHEDULER: Profile = Profile {
    name: "fake-scheduler",
    default_port: 10259,
    ignored: &[
        ("authentication-kubeconfig", false),
        ("authorization-kubeconfig", false),
    ],
};

/// `--leader-elect*`, with client-go's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderFlags {
    pub enabled: bool,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for LeaderFlags {
    fn default() -> Self {
        LeaderFlags {
            enabled: true,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// kube-controller-manager's node lifecycle flags, with its defaults
/// (`cmd/kube-controller-manager/app/options/nodelifecyclecontroller.go` and the
/// `RecommendedDefaultNodeLifecycleControllerConfiguration`; the grace period is 50 s
/// since Kubernetes 1.32, kubernetes/kubernetes#126287). Only fake-controller-manager
/// takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeFlags {
    /// `--node-monitor-period`: how often node health is looked at.
    pub monitor_period: Duration,
    /// `--node-monitor-grace-period`: silence after which a node is Unknown.
    pub monitor_grace_period: Duration,
    /// `--node-startup-grace-period`: the same for a node that never posted Ready.
    pub startup_grace_period: Duration,
}

impl Default for NodeFlags {
    fn default() -> Self {
        NodeFlags {
            monitor_period: Duration::from_secs(5),
            monitor_grace_period: Duration::from_secs(50),
            startup_grace_period: Duration::from_secs(60),
        }
    }
}

/// Everything either binary needs, resolved from flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// None: in-cluster config or `$KUBECONFIG`, as kube-rs infers it.
    pub kubeconfig: Option<PathBuf>,
    pub leader: LeaderFlags,
    pub bind_address: IpAddr,
    /// `/healthz` over plain HTTP; 0 disables serving, as for the real components.
    pub secure_port: u16,
    /// `--permit-port-sharing`: SO_REUSEPORT on the serving socket (`listen.rs`).
    pub permit_port_sharing: bool,
    /// Node lifecycle flags (fake-controller-manager only).
    pub node: NodeFlags,
    /// `--use-service-account-credentials` (controller-manager): each controller writes
    /// as its own service account (`credentials.rs`).
    pub use_service_account_credentials: bool,
    /// `--root-ca-file` (controller-manager): what the root CA publisher puts into every
    /// namespace's `kube-root-ca.crt` (`rootca.rs`); unset, nothing is published.
    pub root_ca_file: Option<PathBuf>,
}

pub fn usage(p: &Profile) -> String {
    format!(
        "usage: {} [--kubeconfig FILE] [--leader-elect=true|false]
  [--leader-elect-lease-duration 15s] [--leader-elect-renew-deadline 10s]
  [--leader-elect-retry-period 2s] [--bind-address 0.0.0.0] [--secure-port {}]{}
  [--permit-port-sharing]
  (also accepted and ignored: {})",
        p.name,
        p.default_port,
        if p.name == CONTROLLER_MANAGER.name {
            "\n  [--node-monitor-period 5s] [--node-monitor-grace-period 50s] [--node-startup-grace-period 1m]\n  [--root-ca-file FILE] [--use-service-account-credentials]"
        } else {
            ""
        },
        p.ignored
            .iter()
            .map(|(n, _)| format!("--{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn is_bool(p: &Profile, name: &str) -> bool {
    name == "leader-elect"
        || name == "permit-port-sharing"
        || (name == "use-service-account-credentials" && p.name == CONTROLLER_MANAGER.name)
        || p.ignored.iter().any(|(n, b)| *n == name && *b)
}

impl Config {
    /// Parses the arguments (without argv[0]); `Ok(None)` means `--help`.
    pub fn from_args<I: IntoIterator<Item = String>>(
        p: &Profile,
        args: I,
    ) -> Result<Option<Config>> {
        let mut cfg = Config {
            kubeconfig: None,
            leader: LeaderFlags::default(),
            bind_address: IpAddr::from([0, 0, 0, 0]),
            secure_port: p.default_port,
            permit_port_sharing: false,
            node: NodeFlags::default(),
            use_service_account_credentials: false,
            root_ca_file: None,
        };
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            if arg == "-h" || arg == "--help" {
                return Ok(None);
            }
            let Some(flag) = arg.strip_prefix("--") else {
                bail!("unexpected argument {arg:?}");
            };
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None if is_bool(p, flag) => (flag.to_string(), "true".to_string()),
                None => {
                    let v = it
                        .next()
                        .with_context(|| format!("--{flag} needs a value"))?;
                    (flag.to_string(), v)
                }
            };
            cfg.set(p, &name, &value)
                .with_context(|| format!("--{name}={value}"))?;
        }
        let l = &cfg.leader;
        // client-go's `NewLeaderElector` checks, which make a leader stop before its
        // lease can expire under it.
        if l.enabled && l.lease_duration <= l.renew_deadline {
            bail!(
                "--leader-elect-lease-duration must be greater than --leader-elect-renew-deadline"
            );
        }
        if l.enabled && l.renew_deadline <= l.retry_period.mul_f64(1.2) {
            bail!(
                "--leader-elect-renew-deadline must be greater than 1.2 × --leader-elect-retry-period"
            );
        }
        Ok(Some(cfg))
    }

    fn set(&mut self, p: &Profile, name: &str, v: &str) -> Result<()> {
        match name {
            "kubeconfig" => self.kubeconfig = Some(v.into()),
            "leader-elect" => self.leader.enabled = parse_bool(v)?,
            "leader-elect-lease-duration" => self.leader.lease_duration = parse_duration(v)?,
            "leader-elect-renew-deadline" => self.leader.renew_deadline = parse_duration(v)?,
            "leader-elect-retry-period" => self.leader.retry_period = parse_duration(v)?,
            "bind-address" => self.bind_address = v.parse()?,
            "secure-port" => self.secure_port = v.parse()?,
            "permit-port-sharing" => self.permit_port_sharing = parse_bool(v)?,
            "node-monitor-period" if p.name == CONTROLLER_MANAGER.name => {
                self.node.monitor_period = parse_duration(v)?;
            }
            "node-monitor-grace-period" if p.name == CONTROLLER_MANAGER.name => {
                self.node.monitor_grace_period = parse_duration(v)?;
            }
            "node-startup-grace-period" if p.name == CONTROLLER_MANAGER.name => {
                self.node.startup_grace_period = parse_duration(v)?;
            }
            "use-service-account-credentials" if p.name == CONTROLLER_MANAGER.name => {
                self.use_service_account_credentials = parse_bool(v)?
            }
            "root-ca-file" if p.name == CONTROLLER_MANAGER.name => {
                self.root_ca_file = Some(v.into());
            }
            n if p.ignored.iter().any(|(i, _)| *i == n) => {}
            _ => bail!("unknown flag"),
        }
        Ok(())
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => bail!("expected true or false"),
    }
}

/// A Go duration as the flags take it: `1m30s`, `500ms`, `15s`, `1h` (no fractions).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest == "0" {
        return Ok(total);
    }
    if rest.is_empty() {
        bail!("empty duration");
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(digits);
        let n: u64 = num.parse().context("expected e.g. 500ms, 15s, 1m30s")?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let one = match unit {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => bail!("unknown unit {unit:?} (ms, s, m, h)"),
        };
        total += one.saturating_mul(u32::try_from(n).context("duration too large")?);
        rest = next;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Config>> {
        Config::from_args(&CONTROLLER_MANAGER, args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_match_the_real_component() -> Result<()> {
        let c = parse(&[])?.context("help")?;
        assert_eq!(c.leader, LeaderFlags::default());
        assert_eq!(c.secure_port, 10257);
        assert!(c.leader.enabled);
        assert_eq!(c.node.monitor_grace_period, Duration::from_secs(50));
        assert_eq!(c.node.monitor_period, Duration::from_secs(5));
        assert_eq!(c.node.startup_grace_period, Duration::from_secs(60));
        let c = parse(&[
            "--node-monitor-grace-period=20s",
            "--node-monitor-period",
            "1s",
        ])?
        .context("help")?;
        assert_eq!(c.node.monitor_grace_period, Duration::from_secs(20));
        assert_eq!(c.node.monitor_period, Duration::from_secs(1));
        let sched = Config::from_args(&SCHEDULER, ["--node-monitor-period=1s".to_string()]);
        assert!(sched.is_err(), "kube-scheduler has no node lifecycle flags");
        Ok(())
    }

    #[test]
    fn both_value_forms_and_ignored_flags() -> Result<()> {
        let c = parse(&[
            "--kubeconfig",
            "/k",
            "--leader-elect=false",
            "--leader-elect-lease-duration=3s",
            "--leader-elect-renew-deadline",
            "2s",
            "--allocate-node-cidrs=true",
            "--use-service-account-credentials",
            "--cluster-cidr",
            "10.0.0.0/16",
            "--secure-port=0",
        ])?
        .context("help")?;
        assert_eq!(c.kubeconfig, Some(PathBuf::from("/k")));
        assert!(!c.leader.enabled);
        assert_eq!(c.leader.lease_duration, Duration::from_secs(3));
        assert_eq!(c.leader.renew_deadline, Duration::from_secs(2));
        assert_eq!(c.secure_port, 0);
        assert!(c.use_service_account_credentials);
        Ok(())
    }

    #[test]
    fn unknown_and_bad_flags_are_errors() {
        assert!(parse(&["--nope=1"]).is_err());
        assert!(parse(&["--leader-elect=maybe"]).is_err());
        assert!(parse(&["--kubeconfig"]).is_err());
        assert!(parse(&["stray"]).is_err());
        assert!(parse(&["--leader-elect-renew-deadline=20s"]).is_err());
        assert!(parse(&["--leader-elect-retry-period=9s"]).is_err());
        assert!(parse(&["--leader-elect=false", "--leader-elect-retry-period=9s"]).is_ok());
        let sched = Config::from_args(&SCHEDULER, ["--cluster-cidr=x".to_string()]);
        assert!(sched.is_err());
    }

    #[test]
    fn go_durations() -> Result<()> {
        assert_eq!(parse_duration("1m30s")?, Duration::from_secs(90));
        assert_eq!(parse_duration("500ms")?, Duration::from_millis(500));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
        Ok(())
    }
}
