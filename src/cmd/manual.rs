//! What each command's help and man page teach beyond its flags (issue 15, finding 12):
//! real command lines (EXAMPLES), the exit codes that command returns (EXIT STATUS), the
//! environment it reads and the files it uses. One table serves `--help` (as the long
//! help's epilogue) and the man pages (`generate`).

use super::Exit;

/// One command's page content.
pub struct Manual {
    pub examples: &'static [(&'static str, &'static str)],
    /// Besides 0: the codes this command returns.
    pub exits: &'static [Exit],
    pub files: &'static [(&'static str, &'static str)],
}

/// The variables kubeboot reads, on every page.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "KUBEBOOT_CONFIG",
        "The config file whose [COMMAND] table supplies flags (default /etc/kubeboot/config.toml, if it exists); --config wins.",
    ),
    (
        "KUBEBOOT_LOG",
        "Which log lines to keep, as tracing's EnvFilter (default info,kube_client=off), e.g. debug or kubeboot::ensure=debug.",
    ),
    (
        "KUBEBOOT_LOG_TARGET",
        "auto (the journal when systemd connected stderr to it), journal or stderr; --log-target wins.",
    ),
    (
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT",
        "Credentials and endpoint of an s3:// backup store (also --remote-option KEY=VALUE).",
    ),
    (
        "GOOGLE_SERVICE_ACCOUNT, GOOGLE_APPLICATION_CREDENTIALS",
        "Credentials of a gs:// backup store: a service-account file (or its JSON in GOOGLE_SERVICE_ACCOUNT_KEY), or application default credentials (also --remote-option KEY=VALUE).",
    ),
    (
        "AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY",
        "Account and key of an az:// backup store; AZURE_STORAGE_SAS_KEY or a service principal's AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID instead of the key (also --remote-option KEY=VALUE).",
    ),
];

const CONFIG: (&str, &str) = (
    "/etc/kubeboot/config.toml",
    "Flags per command, one [COMMAND] table each (kubeboot config check).",
);
const BACKUPS: (&str, &str) = (
    "/var/lib/kubeboot/backups",
    "Backups, one directory each (backup.json, snapshot.db or backup.tar.age, PKI).",
);
const RECOVERIES: (&str, &str) = (
    "/var/lib/kubeboot/recovery",
    "Asset dirs ensure recovered, newest kept (--keep-recoveries).",
);
const MANIFESTS: (&str, &str) = (
    "/etc/kubernetes/manifests",
    "The kubelet's static pod dir: bootstrap pods and checkpoints.",
);
const LOCK: (&str, &str) = (
    "/run/kubeboot/start.lock",
    "One start or recovery at a time on a node.",
);

/// The manual of the command named `name` (a subcommand path like `backup`, `certs
/// check`); `None` for one without a page of its own here.
pub fn of(name: &str) -> Option<Manual> {
    use Exit::*;
    Some(match name {
        "recover" => Manual {
            examples: &[
                (
                    "From the live api-server",
                    "kubeboot recover --recovery-dir /root/recovered --kubeconfig /etc/kubernetes/kubeconfig",
                ),
                (
                    "From etcd, with TLS",
                    "kubeboot recover --recovery-dir /root/recovered --etcd-servers https://10.0.0.10:2379 --etcd-cafile ca.crt --etcd-certfile client.crt --etcd-keyfile client.key",
                ),
                (
                    "From a backup, by URL",
                    "kubeboot recover --recovery-dir /root/recovered --etcd-backup-file s3://backups/cluster/latest",
                ),
                (
                    "As JSON, for a script",
                    "kubeboot recover --recovery-dir /root/recovered --etcd-backup-file snap.db -o json",
                ),
            ],
            exits: &[Failed, Usage, NoSource, Policy],
            files: &[CONFIG],
        },
        "inspect" => Manual {
            examples: &[
                (
                    "What etcdctl snapshot status says, and more",
                    "kubeboot inspect snapshot.db",
                ),
                (
                    "Every key of one resource",
                    "kubeboot inspect snapshot.db --keys --prefix /registry/secrets/kube-system/",
                ),
                (
                    "One object, as the api-server serves it",
                    "kubeboot inspect snapshot.db --get /registry/deployments/kube-system/kube-scheduler",
                ),
            ],
            exits: &[Usage, NoSource],
            files: &[],
        },
        "decode" => Manual {
            examples: &[(
                "A value read with etcdctl",
                "etcdctl get /registry/pods/kube-system/x --print-value-only | kubeboot decode -o json",
            )],
            exits: &[Usage, NoSource],
            files: &[],
        },
        "render" => Manual {
            examples: &[
                (
                    "Three masters behind a load balancer",
                    "kubeboot render --asset-dir cluster --api-servers https://10.0.0.5:6443,https://10.0.0.11:6443 --node-names master-0,master-1,master-2 --etcd-servers https://10.0.0.10:2379",
                ),
                (
                    "Shorter-lived leaf certificates",
                    "kubeboot render --asset-dir cluster --cert-validity 90d",
                ),
            ],
            exits: &[Failed, Usage],
            files: &[],
        },
        "start" => Manual {
            examples: &[(
                "Boot the control plane an asset dir describes",
                "kubeboot start --asset-dir /root/recovered",
            )],
            exits: &[Failed, Usage, Policy],
            files: &[MANIFESTS, LOCK],
        },
        "backup" => Manual {
            examples: &[
                (
                    "One verified backup, encrypted, with a copy off the node",
                    "kubeboot backup --etcd-servers https://10.0.0.10:2379 --recipient age1... --remote s3://backups/cluster",
                ),
                (
                    "Alert when the newest whole backup is older than a day",
                    "kubeboot backup list --max-age 24h",
                ),
            ],
            exits: &[Failed, Usage, NoSource, Policy, Stale],
            files: &[
                CONFIG,
                BACKUPS,
                ("/run/kubeboot/backup.lock", "One backup at a time."),
            ],
        },
        "backup list" => Manual {
            examples: &[
                (
                    "Every backup here and in the store, checked again",
                    "kubeboot backup --remote s3://backups/cluster list",
                ),
                (
                    "For monitoring: exit 8 when the newest whole backup is older than a day",
                    "kubeboot backup list --max-age 24h -o json",
                ),
            ],
            exits: &[Failed, Usage, Stale],
            files: &[CONFIG, BACKUPS],
        },
        "backup verify" => Manual {
            examples: &[(
                "One backup, byte for byte, restored as recover would read it",
                "kubeboot backup verify /var/lib/kubeboot/backups/20261203T020000Z-r1234",
            )],
            exits: &[Failed, Usage, NoSource],
            files: &[BACKUPS],
        },
        "backup prune" => Manual {
            examples: &[(
                "What retention would remove, removing nothing",
                "kubeboot backup prune --keep-last 7 --dry-run",
            )],
            exits: &[Failed, Usage, Policy],
            files: &[CONFIG, BACKUPS],
        },
        "ensure" => Manual {
            examples: &[
                (
                    "What the boot unit would decide, and why",
                    "kubeboot ensure --dry-run -o json",
                ),
                (
                    "The policy, the same on every master",
                    "kubeboot ensure --etcd-servers https://10.0.0.10:2379 --backup-restore-node master-0",
                ),
            ],
            exits: &[
                Failed, Usage, NoSource, Policy, Changed, Unhealthy, LockLost,
            ],
            files: &[
                CONFIG,
                BACKUPS,
                RECOVERIES,
                MANIFESTS,
                LOCK,
                (
                    "/etc/default/kubeboot",
                    "KUBEBOOT_ENSURE_ARGS of kubeboot.service.",
                ),
            ],
        },
        "checkpoint" => Manual {
            examples: &[(
                "As its unit runs it",
                "NODE_NAME=$(hostname) kubeboot checkpoint --checkpoint-grace-period 5m",
            )],
            exits: &[Failed, Usage],
            files: &[
                MANIFESTS,
                (
                    "/etc/kubernetes/checkpoints",
                    "Saved checkpoints and their volumes.",
                ),
                (
                    "/run/kubeboot/checkpointer.lock",
                    "One checkpointer per node.",
                ),
            ],
        },
        "config" | "config check" => Manual {
            examples: &[(
                "Check the config file before enabling the units",
                "kubeboot config check",
            )],
            exits: &[Usage],
            files: &[CONFIG],
        },
        "certs" | "certs check" => Manual {
            examples: &[
                (
                    "Every certificate of an asset dir",
                    "kubeboot certs check /root/recovered",
                ),
                (
                    "Fail when anything expires within 60 days",
                    "kubeboot certs check --kubeconfig /etc/kubernetes/kubeconfig --warn-within 60d",
                ),
            ],
            exits: &[Failed, Usage],
            files: &[],
        },
        _ => return None,
    })
}

/// The EXAMPLES text of `--help` (after the options).
pub fn examples_text(m: &Manual) -> String {
    let mut out = String::from("Examples:\n");
    for (what, line) in m.examples {
        out.push_str(&format!("  # {what}\n  {line}\n"));
    }
    out
}

/// Every subcommand of `cmd` (at any depth) with its examples as the long help's
/// epilogue, so `kubeboot recover --help` ends with real command lines.
pub fn with_examples(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    names.into_iter().fold(cmd, |cmd, name| {
        cmd.mut_subcommand(&name, |sub| {
            let sub = match of(&name) {
                Some(m) => sub.after_long_help(examples_text(&m)),
                None => sub,
            };
            let children: Vec<String> = sub
                .get_subcommands()
                .map(|s| s.get_name().to_string())
                .collect();
            children.into_iter().fold(sub, |sub, child| {
                let path = format!("{name} {child}");
                sub.mut_subcommand(&child, |c| match of(&path) {
                    Some(m) => c.after_long_help(examples_text(&m)),
                    None => c,
                })
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every visible command, at any depth, has a manual, and every example parses as
    /// the command line it shows (clap's own parser: flags, values, required
    /// arguments).
    #[test]
    fn every_command_has_examples_that_parse() {
        let root = super::super::Cli::command();
        let mut todo: Vec<(String, &clap::Command)> = root
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| (s.get_name().to_string(), s))
            .collect();
        while let Some((path, cmd)) = todo.pop() {
            for sub in cmd
                .get_subcommands()
                .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            {
                todo.push((format!("{path} {}", sub.get_name()), sub));
            }
            let Some(m) = of(&path) else {
                panic!("no manual for {path}");
            };
            assert!(!m.examples.is_empty(), "{path}");
            for (_, line) in m.examples {
                let words: Vec<&str> = line.split_whitespace().collect();
                let at = words.iter().rposition(|w| *w == "kubeboot").expect(line);
                let parsed = root.clone().try_get_matches_from(&words[at..]);
                assert!(
                    parsed.is_ok(),
                    "{line}: {}",
                    parsed.err().map(|e| e.to_string()).unwrap_or_default()
                );
            }
        }
    }
}
