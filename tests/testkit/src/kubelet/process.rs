//! A container as a local process: the image is mapped to an executable by `--image-map`,
//! `command`/`args`/`env` become argv and environment with the kubelet's `$(VAR)`
//! expansion, and output goes to `<root-dir>/pods/<ns>_<name>/<container>.log`.
//!
//! argv rule: with no `command`, argv is `[mapped executable] + args` (the executable is
//! the image's entrypoint). With a `command`, `command[0]` is replaced by the mapped
//! executable when its base name is the executable's base name or the image's last path
//! component (`kube-apiserver` for `registry.k8s.io/kube-apiserver`); otherwise the
//! command runs as written from the host (`/bin/sh -c ...` in a `busybox` pod).
//!
//! Paths in argv and env values are rewritten by the container's mount table, and every
//! process gets `KUBEBOOT_TESTKIT_MOUNTS` and `KUBEBOOT_TESTKIT_NODE_IP` (see [`in_node`]).
//!
//! Each process gets its own process group so SIGTERM reaches a shell's children, and
//! `PR_SET_PDEATHSIG` so a killed kubelet leaves no process behind (unlike a real node,
//! whose containers outlive the kubelet).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::process::{Child, Command};

use super::config::{Config, repository};
use super::mounts::{MOUNTS_ENV, MountTable, NODE_IP_ENV};

/// Why a container could not be started; becomes `waiting.reason`.
#[derive(Debug)]
pub struct StartError {
    pub reason: &'static str,
    pub message: String,
}

fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The argv for `c`, or `ErrImagePull` when the image is not mapped and there is no
/// host command to fall back to.
pub fn argv(
    cfg: &Config,
    c: &Container,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, StartError> {
    let image = c.image.clone().unwrap_or_default();
    let mapped = cfg
        .image_map
        .lookup(&image)
        .map(|p| p.to_string_lossy().into_owned());
    let command: Vec<String> = c.command.iter().flatten().map(|s| expand(s, env)).collect();
    let args = c.args.iter().flatten().map(|s| expand(s, env));
    let mut argv = match (mapped, command.split_first()) {
        (Some(exe), None) => vec![exe],
        (Some(exe), Some((first, rest))) => {
            let own = base(first) == base(&exe) || base(first) == base(repository(&image));
            let first = if own { exe } else { first.clone() };
            std::iter::once(first).chain(rest.iter().cloned()).collect()
        }
        (None, Some(_)) if image.is_empty() => command,
        (None, _) => {
            return Err(StartError {
                reason: "ErrImagePull",
                message: format!("image {image:?} is not in --image-map"),
            });
        }
    };
    argv.extend(args);
    Ok(argv)
}

/// `env` with `value` and the supported `fieldRef`s; other sources are skipped.
pub fn env(c: &Container, pod: &Pod, node_ip: &str) -> BTreeMap<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let mut out = BTreeMap::new();
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            Some(expand(v, &out))
        } else if let Some(f) = e.value_from.as_ref().and_then(|v| v.field_ref.as_ref()) {
            match f.field_path.as_str() {
                "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
                "status.podIP" | "status.hostIP" => Some(node_ip.to_string()),
                "metadata.name" => meta.name.clone(),
                "metadata.namespace" => meta.namespace.clone(),
                "metadata.uid" => meta.uid.clone(),
                "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
                _ => None,
            }
        } else {
            None
        };
        match value {
            Some(v) => {
                out.insert(e.name.clone(), v);
            }
            None => crate::note!(
                "fake-kubelet: env {} of container {}: unsupported source, skipped",
                e.name,
                c.name
            ),
        }
    }
    out
}

/// argv and env as the process gets them on this "node": every element and value
/// rewritten by the container's mount table ([`MountTable::rewrite`]), plus the table
/// itself and the node IP for the doubles to read.
pub fn in_node(
    table: &MountTable,
    argv: Vec<String>,
    env: &BTreeMap<String, String>,
    node_ip: &str,
) -> (Vec<String>, BTreeMap<String, String>) {
    let argv = argv.iter().map(|a| table.rewrite(a)).collect();
    let mut env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.clone(), table.rewrite(v)))
        .collect();
    env.insert(MOUNTS_ENV.into(), table.to_json());
    env.insert(NODE_IP_ENV.into(), node_ip.into());
    (argv, env)
}

/// The kubelet's `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`,
/// anything else is left as written.
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        if let Some(t) = tail.strip_prefix('$') {
            out.push('$');
            rest = t;
        } else if let Some((name, after)) = tail.strip_prefix('(').and_then(|t| t.split_once(')'))
            && let Some(v) = env.get(name)
        {
            out.push_str(v);
            rest = after;
        } else {
            out.push('$');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

pub fn log_path(cfg: &Config, ns: &str, name: &str, container: &str) -> PathBuf {
    cfg.root_dir
        .join("pods")
        .join(format!("{ns}_{name}"))
        .join(format!("{container}.log"))
}

/// Starts the process; stdout and stderr are appended to `log`.
pub fn spawn(
    argv: &[String],
    env: &BTreeMap<String, String>,
    cwd: Option<&str>,
    log: &Path,
) -> Result<Child, StartError> {
    let fail = |reason, e: std::io::Error| StartError {
        reason,
        message: format!("{argv:?}: {e}"),
    };
    let (exe, args) = argv.split_first().ok_or(StartError {
        reason: "CreateContainerError",
        message: "empty argv".into(),
    })?;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail("CreateContainerError", e))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| fail("CreateContainerError", e))?;
    let err = file
        .try_clone()
        .map_err(|e| fail("CreateContainerError", e))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .envs(env)
        .current_dir(cwd.unwrap_or("/"))
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent; the closure
    // runs in the forked child before exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| fail("StartError", e))
}

/// Sends `sig` to the process group led by `pid`.
pub fn signal_group(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is shared.
        unsafe {
            libc::kill(-pid, sig);
        }
    }
}

/// Sends `sig` to one process.
pub fn signal_pid(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill(2) on a positive pid; no memory is shared.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// SIGTERM to the group, SIGKILL after `grace`; returns the exit status code.
pub async fn terminate(child: &mut Child, grace: Duration) -> i32 {
    if let Some(pid) = child.id() {
        signal_group(pid, libc::SIGTERM);
        if let Ok(Ok(st)) = tokio::time::timeout(grace, child.wait()).await {
            signal_group(pid, libc::SIGKILL);
            return exit_code(st);
        }
        crate::note!("fake-kubelet: pid {pid} still running {grace:?} after SIGTERM; SIGKILL");
        signal_group(pid, libc::SIGKILL);
    }
    child.wait().await.map(exit_code).unwrap_or(137)
}

/// Like the container runtime: a signal `n` is exit code `128 + n`.
pub fn exit_code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code()
        .or_else(|| st.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let env = BTreeMap::from([("IP".to_string(), "1.2.3.4".to_string())]);
        assert_eq!(
            expand("--a=$(IP):$(NOPE) $$(IP) $", &env),
            "--a=1.2.3.4:$(NOPE) $(IP) $"
        );
    }

    #[test]
    fn in_node_rewrites_argv_and_env() {
        let mut t = MountTable::default();
        t.insert("/etc/k/secrets", Path::new("/n/pods/u/volumes/s"));
        let env = BTreeMap::from([("KUBECONFIG".to_string(), "/etc/k/secrets/kc".to_string())]);
        let argv = vec!["/bin/x".into(), "--key=/etc/k/secrets/a.key".into()];
        let (a, e) = in_node(&t, argv, &env, "127.0.0.2");
        assert_eq!(a, ["/bin/x", "--key=/n/pods/u/volumes/s/a.key"]);
        assert_eq!(e["KUBECONFIG"], "/n/pods/u/volumes/s/kc");
        assert_eq!(e[NODE_IP_ENV], "127.0.0.2");
        assert_eq!(MountTable::from_json(&e[MOUNTS_ENV]), t);
    }

    #[test]
    fn argv_rule() {
        let cfg = Config {
            image_map: super::super::config::ImageMap::from_pairs([
                ("registry.k8s.io/kube-apiserver", "/x/fake-apiserver"),
                ("busybox", "/bin/sh"),
            ]),
            ..Config::default()
        };
        let c = |image: &str, cmd: &[&str], args: &[&str]| Container {
            image: Some(image.into()),
            command: Some(cmd.iter().map(|s| s.to_string()).collect()),
            args: Some(args.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let env = BTreeMap::new();
        let a = argv(
            &cfg,
            &c(
                "registry.k8s.io/kube-apiserver:v1.35.0",
                &["/usr/local/bin/kube-apiserver", "--x"],
                &["--y"],
            ),
            &env,
        )
        .unwrap();
        assert_eq!(a, ["/x/fake-apiserver", "--x", "--y"]);
        let a = argv(&cfg, &c("busybox", &["/bin/sleep", "9"], &[]), &env).unwrap();
        assert_eq!(a, ["/bin/sleep", "9"]);
        let a = argv(&cfg, &c("busybox:1", &[], &["-c", "true"]), &env).unwrap();
        assert_eq!(a, ["/bin/sh", "-c", "true"]);
        assert_eq!(
            argv(&cfg, &c("nginx", &["nginx"], &[]), &env)
                .unwrap_err()
                .reason,
            "ErrImagePull"
        );
    }
}
