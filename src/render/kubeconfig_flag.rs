//! Points kube-controller-manager and kube-scheduler at the bootstrap kubeconfig.
//!
//! A self-hosted controller-manager or scheduler usually talks to the api-server with its
//! service-account token (an in-cluster kubeconfig), which a static pod does not get. So
//! its containers must use the kubeconfig `start` puts on the host.
//!
//! bootkube appended `--kubeconfig=…` to containers *named* `kube-controller-manager` or
//! `kube-scheduler`, even when the flag was already there. Then the flag appears twice
//! and only pflag's last-one-wins rule decides which file is used, and a renamed
//! container gets nothing. kubeboot instead:
//! - finds the containers by what they run (name, binary, image or hyperkube
//!   subcommand), falling back to the only container of a controller-manager or
//!   scheduler parent;
//! - rewrites every existing `--kubeconfig` (in `command` *or* `args`, as `--flag=v` or
//!   `--flag v`, including a value split across the two lists) to the mounted file, since
//!   the old path names a file of the self-hosted pod's volumes that the bootstrap pod
//!   may not have, or one that needs the service-account token;
//! - appends the flag only when none is present;
//! - warns when a kube-scheduler also has `--config`: it then ignores `--kubeconfig`,
//!   and the config file's `clientConnection.kubeconfig` decides (rewriting that file
//!   is not done yet);
//! - leaves shell-wrapped commands (`sh -c "…"`) alone and reports them, since editing a
//!   script string cannot be done safely.

use k8s_openapi::api::core::v1::Container;

const FLAG: &str = "--kubeconfig";

/// Components whose containers need `--kubeconfig`.
pub const NEEDS_KUBECONFIG: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];

/// What [`set_kubeconfig`] did to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// No `--kubeconfig` was present; one was appended.
    Added,
    /// This many existing `--kubeconfig` flags now name the bootstrap kubeconfig.
    Rewritten(usize),
    /// The command is a shell script; nothing was changed.
    ShellWrapped,
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// The repository's last path element of an image reference, without tag or digest.
fn image_basename(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = basename(no_digest);
    last.split(':').next().unwrap_or(last)
}

/// Whether container `c` runs `component` (e.g. `kube-scheduler`).
pub fn runs(c: &Container, component: &str) -> bool {
    let short = component.strip_prefix("kube-").unwrap_or(component);
    let cmd = c.command.as_deref().unwrap_or_default();
    let first = cmd.first().map(|s| basename(s));
    let hyperkube_sub = match first {
        Some("hyperkube") => cmd
            .get(1)
            .or_else(|| c.args.as_deref().and_then(|a| a.first()))
            .map(String::as_str),
        _ => None,
    };
    c.name == component
        || first == Some(component)
        || c.image.as_deref().map(image_basename) == Some(component)
        || hyperkube_sub.is_some_and(|s| s == component || s == short)
}

fn is_shell(c: &Container) -> bool {
    let cmd = c.command.as_deref().unwrap_or_default();
    matches!(
        cmd.first().map(|s| basename(s)),
        Some("sh" | "bash" | "dash" | "ash" | "busybox")
    )
}

/// Whether `c` is a kube-scheduler given a component config file (`--config`): the
/// scheduler then ignores `--kubeconfig` (documented in its flag reference) and takes
/// the connection from the file's `clientConnection.kubeconfig`.
pub fn has_config_file(c: &Container) -> bool {
    runs(c, "kube-scheduler")
        && c.command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .any(|a| a == "--config" || a.starts_with("--config="))
}

/// Makes container `c` use the kubeconfig at `path` (a path inside the container).
pub fn set_kubeconfig(c: &mut Container, path: &str) -> Edit {
    if is_shell(c) {
        return Edit::ShellWrapped;
    }
    let mut all: Vec<&mut String> = c
        .command
        .iter_mut()
        .flatten()
        .chain(c.args.iter_mut().flatten())
        .collect();
    let mut rewritten = 0;
    let mut i = 0;
    while i < all.len() {
        let is_bare = all.get(i).is_some_and(|s| s.as_str() == FLAG);
        let is_eq = all.get(i).is_some_and(|s| s.starts_with("--kubeconfig="));
        if is_bare {
            if let Some(value) = all.get_mut(i + 1) {
                **value = path.to_string();
                i += 1;
            } else if let Some(flag) = all.get_mut(i) {
                **flag = format!("{FLAG}={path}");
            }
            rewritten += 1;
        } else if is_eq {
            if let Some(flag) = all.get_mut(i) {
                **flag = format!("{FLAG}={path}");
            }
            rewritten += 1;
        }
        i += 1;
    }
    if rewritten > 0 {
        return Edit::Rewritten(rewritten);
    }
    let flag = format!("{FLAG}={path}");
    match (&mut c.command, &mut c.args) {
        (_, Some(args)) if !args.is_empty() => args.push(flag),
        (Some(cmd), _) if !cmd.is_empty() => cmd.push(flag),
        (_, args) => args.get_or_insert_with(Vec::new).push(flag),
    }
    Edit::Added
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, image: &str, command: &[&str], args: &[&str]) -> Container {
        let v = |s: &[&str]| (!s.is_empty()).then(|| s.iter().map(|x| x.to_string()).collect());
        Container {
            name: name.into(),
            image: Some(image.into()),
            command: v(command),
            args: v(args),
            ..Default::default()
        }
    }

    #[test]
    fn runs_table() {
        let cases = [
            (c("kube-scheduler", "x", &[], &[]), "kube-scheduler", true),
            (
                c("sched", "x", &["/usr/local/bin/kube-scheduler"], &[]),
                "kube-scheduler",
                true,
            ),
            (
                c("sched", "registry.k8s.io/kube-scheduler:v1.35.0", &[], &[]),
                "kube-scheduler",
                true,
            ),
            (
                c("s", "r.io/kube-scheduler@sha256:abc", &[], &[]),
                "kube-scheduler",
                true,
            ),
            (
                c("s", "hyperkube:v1", &["/hyperkube", "scheduler"], &[]),
                "kube-scheduler",
                true,
            ),
            (
                c("s", "hyperkube:v1", &["/hyperkube"], &["kube-scheduler"]),
                "kube-scheduler",
                true,
            ),
            (
                c("kube-scheduler", "x", &[], &[]),
                "kube-controller-manager",
                false,
            ),
            (
                c("sidecar", "busybox", &["sleep"], &[]),
                "kube-scheduler",
                false,
            ),
        ];
        for (container, component, want) in cases {
            assert_eq!(
                runs(&container, component),
                want,
                "{container:?} {component}"
            );
        }
    }

    #[test]
    fn has_config_file_table() {
        let sched = "registry.k8s.io/kube-scheduler:v1.35.0";
        assert!(has_config_file(&c(
            "s",
            sched,
            &["kube-scheduler"],
            &["--config=/c"]
        )));
        assert!(has_config_file(&c(
            "s",
            sched,
            &["kube-scheduler", "--config", "/c"],
            &[]
        )));
        assert!(!has_config_file(&c(
            "s",
            sched,
            &["kube-scheduler"],
            &["--config-x=1"]
        )));
        assert!(!has_config_file(&c(
            "kcm",
            "kcm",
            &["kube-controller-manager", "--config=/c"],
            &[]
        )));
    }

    #[test]
    fn set_kubeconfig_table() {
        let p = "/m/kubeconfig";
        // (command, args) → (edit, command, args)
        #[allow(clippy::type_complexity)]
        let cases: &[(&[&str], &[&str], Edit, &[&str], &[&str])] = &[
            (
                &["kcm", "--v=2"],
                &[],
                Edit::Added,
                &["kcm", "--v=2", "--kubeconfig=/m/kubeconfig"],
                &[],
            ),
            (
                &["kcm"],
                &["--v=2"],
                Edit::Added,
                &["kcm"],
                &["--v=2", "--kubeconfig=/m/kubeconfig"],
            ),
            (&[], &[], Edit::Added, &[], &["--kubeconfig=/m/kubeconfig"]),
            (
                &["kcm", "--kubeconfig=/old"],
                &["--v=2"],
                Edit::Rewritten(1),
                &["kcm", "--kubeconfig=/m/kubeconfig"],
                &["--v=2"],
            ),
            (
                &["kcm"],
                &["--kubeconfig", "/old", "--v=2"],
                Edit::Rewritten(1),
                &["kcm"],
                &["--kubeconfig", "/m/kubeconfig", "--v=2"],
            ),
            (
                &["kcm", "--kubeconfig"],
                &["/old"],
                Edit::Rewritten(1),
                &["kcm", "--kubeconfig"],
                &["/m/kubeconfig"],
            ),
            (
                &["kcm", "--kubeconfig=/a"],
                &["--kubeconfig=/b"],
                Edit::Rewritten(2),
                &["kcm", "--kubeconfig=/m/kubeconfig"],
                &["--kubeconfig=/m/kubeconfig"],
            ),
            (
                &["kcm", "--kubeconfig"],
                &[],
                Edit::Rewritten(1),
                &["kcm", "--kubeconfig=/m/kubeconfig"],
                &[],
            ),
            (
                &["kcm", "--kubeconfig-extra=1"],
                &[],
                Edit::Added,
                &["kcm", "--kubeconfig-extra=1", "--kubeconfig=/m/kubeconfig"],
                &[],
            ),
            (
                &["/bin/sh", "-c", "exec kcm --kubeconfig=/x"],
                &[],
                Edit::ShellWrapped,
                &["/bin/sh", "-c", "exec kcm --kubeconfig=/x"],
                &[],
            ),
        ];
        for (cmd, args, edit, want_cmd, want_args) in cases {
            let mut ct = c("x", "x", cmd, args);
            assert_eq!(set_kubeconfig(&mut ct, p), *edit, "{cmd:?} {args:?}");
            assert_eq!(
                ct.command.unwrap_or_default(),
                *want_cmd,
                "{cmd:?} {args:?}"
            );
            assert_eq!(ct.args.unwrap_or_default(), *want_args, "{cmd:?} {args:?}");
        }
    }
}
