//! One bootstrap static pod from one self-hosted parent.
//!
//! The pod runs the parent's template spec, edited so the kubelet can run it from its
//! static pod dir before any api-server, scheduler or controller exists:
//! - *Scheduling* fields are removed (`nodeSelector`, `affinity`, `nodeName`,
//!   `schedulerName`, topology spread, scheduling gates, workload ref): the kubelet runs a
//!   static pod on its own node, and bootkube keeping them broke mirror pods (#1009).
//! - *Service account*: removed, `automountServiceAccountToken: false`; a static pod
//!   cannot have one. Image pull secrets are dropped with a warning for the same reason.
//! - *Identity*: `runAsUser`/`runAsNonRoot` are cleared at pod and container level, as
//!   bootkube did, because the host files under `tls/` are root-owned 0600.
//! - *Network*: `hostNetwork: true` (there is no pod network yet); a `hostPort` that
//!   differs from its `containerPort` is set equal, which host networking requires.
//! - *Lifecycle*: `restartPolicy: Always`; fields the api-server's admission sets or a
//!   controller drives (`priority`, `preemptionPolicy`, `overhead`, `readinessGates`,
//!   `activeDeadlineSeconds`, ephemeral containers) are removed.
//! - Env values read from Secrets/ConfigMaps and resource claims are an error: the
//!   kubelet would need the API to resolve them.
//!
//! Metadata: name `bootstrap-<parent>`, the parent's namespace. No template label is
//! copied, so no Service, DaemonSet or Deployment selector can match the bootstrap pod
//! and adopt or route to it. Instead it carries `kubeboot.io/bootstrap: "true"`,
//! `kubeboot.io/component: <component>` and `kubeboot.io/bootstrap-of: <parent name>`
//! (omitted with a warning if the name is too long for a label value). Annotations are
//! the *template's* (what the self-hosted pod has; bootkube copied the parent object's,
//! which carry Deployment bookkeeping), minus `checkpointer.alpha.coreos.com/*` (or the
//! checkpointer would checkpoint a bootstrap pod), `kubernetes.io/config.*` (the kubelet
//! sets those on static pods) and `kubeboot.io/*`; plus `kubeboot.io/parent:
//! <Kind>/<namespace>/<name>`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, HostPathVolumeSource, Pod, PodSecurityContext, PodSpec, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::kubeconfig_flag::{self, Edit, NEEDS_KUBECONFIG};
use super::select::Parent;
use super::volumes::{self, Ctx, Files, Objects};
use super::{RenderError, RenderOptions};

/// Label on every bootstrap pod.
pub const LABEL_BOOTSTRAP: &str = "kubeboot.io/bootstrap";
/// Label naming the component (`kube-apiserver`, …).
pub const LABEL_COMPONENT: &str = "kubeboot.io/component";
/// Label naming the parent DaemonSet/Deployment.
pub const LABEL_BOOTSTRAP_OF: &str = "kubeboot.io/bootstrap-of";
/// Annotation `<Kind>/<namespace>/<name>` of the parent.
pub const ANNOTATION_PARENT: &str = "kubeboot.io/parent";
/// Name of the volume holding the bootstrap kubeconfig.
pub const KUBECONFIG_VOLUME: &str = "kubeboot-bootstrap-kubeconfig";
/// Where that volume is mounted in the containers that need it.
pub const KUBECONFIG_MOUNT: &str = "/kubeboot-bootstrap";

const DROPPED_ANNOTATION_PREFIXES: [&str; 3] = [
    "checkpointer.alpha.coreos.com/",
    "kubernetes.io/config.",
    "kubeboot.io/",
];

/// Builds the bootstrap pod of `parent`, collecting its files into `files`.
pub fn bootstrap_pod(
    parent: &Parent<'_>,
    objects: &Objects,
    opts: &RenderOptions,
    files: &mut Files,
    warnings: &mut Vec<String>,
) -> Result<Pod, RenderError> {
    let owner = parent.to_string();
    let invalid = |reason: String| RenderError::Invalid {
        owner: owner.clone(),
        reason,
    };
    volumes::check_name(&parent.name)
        .map_err(|r| invalid(format!("name is not a safe file name ({r})")))?;
    let pod_name = parent.pod_name();
    if pod_name.len() > 253 {
        return Err(invalid(format!(
            "bootstrap pod name {pod_name:?} is longer than 253 characters"
        )));
    }
    let mut spec = parent
        .template
        .spec
        .clone()
        .ok_or_else(|| invalid("has no spec.template.spec".into()))?;
    edit_spec(&mut spec, &owner, warnings)?;
    let mut ctx = Ctx {
        parent,
        objects,
        secrets_host_dir: &opts.secrets_host_dir,
        files,
        warnings,
    };
    for v in spec.volumes.iter_mut().flatten() {
        ctx.convert(v)?;
    }
    wire_kubeconfig(&mut spec, parent, opts, warnings)?;
    Ok(Pod {
        metadata: metadata(parent, warnings),
        spec: Some(spec),
        status: None,
    })
}

fn metadata(parent: &Parent<'_>, warnings: &mut Vec<String>) -> ObjectMeta {
    let mut labels = BTreeMap::from([
        (LABEL_BOOTSTRAP.to_string(), "true".to_string()),
        (LABEL_COMPONENT.to_string(), parent.component.to_string()),
    ]);
    if parent.name.len() <= 63 {
        labels.insert(LABEL_BOOTSTRAP_OF.to_string(), parent.name.clone());
    } else {
        warnings.push(format!(
            "{parent}: name is longer than 63 characters, so the bootstrap pod has no {LABEL_BOOTSTRAP_OF} label"
        ));
    }
    let mut annotations: BTreeMap<String, String> = parent
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !DROPPED_ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p)))
        .collect();
    annotations.insert(
        ANNOTATION_PARENT.to_string(),
        format!(
            "{}/{}/{}",
            parent.kind.as_str(),
            parent.namespace,
            parent.name
        ),
    );
    ObjectMeta {
        name: Some(parent.pod_name()),
        namespace: Some(parent.namespace.clone()),
        labels: Some(labels),
        annotations: Some(annotations),
        ..Default::default()
    }
}

fn edit_spec(
    spec: &mut PodSpec,
    owner: &str,
    warnings: &mut Vec<String>,
) -> Result<(), RenderError> {
    if spec
        .image_pull_secrets
        .as_ref()
        .is_some_and(|s| !s.is_empty())
    {
        warnings.push(format!(
            "{owner}: imagePullSecrets dropped (a static pod cannot read Secrets); the node must already have the images or pull them anonymously"
        ));
    }
    crate::staticpod::strip(spec).map_err(|what| RenderError::Unsupported {
        owner: owner.to_string(),
        what: what.into(),
    })?;
    spec.automount_service_account_token = Some(false);
    spec.host_network = Some(true);
    spec.restart_policy = Some("Always".into());
    if let Some(sc) = spec.security_context.as_mut() {
        sc.run_as_user = None;
        sc.run_as_non_root = None;
        if *sc == PodSecurityContext::default() {
            spec.security_context = None;
        }
    }
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        edit_container(c, owner, warnings)?;
    }
    // No declared ports: the self-hosted twin must be admitted beside this pod (see
    // `staticpod::drop_host_network_ports`).
    crate::staticpod::drop_host_network_ports(spec);
    Ok(())
}

fn edit_container(
    c: &mut Container,
    owner: &str,
    warnings: &mut Vec<String>,
) -> Result<(), RenderError> {
    if let Some(sc) = c.security_context.as_mut() {
        sc.run_as_user = None;
        sc.run_as_non_root = None;
        if *sc == SecurityContext::default() {
            c.security_context = None;
        }
    }
    for p in c.ports.iter().flatten() {
        if p.host_port.is_some_and(|h| h != p.container_port) {
            warnings.push(format!(
                "{owner}: container {:?} hostPort {:?} dropped; on the host network it serves on its containerPort {}",
                c.name, p.host_port, p.container_port
            ));
        }
    }
    let unsupported = |what: String| RenderError::Unsupported {
        owner: owner.to_string(),
        what: format!("container {:?} {what}", c.name),
    };
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        if let Some(r) = &from.secret_key_ref {
            return Err(unsupported(format!(
                "env {:?} reads secret {:?}",
                e.name, r.name
            )));
        }
        if let Some(r) = &from.config_map_key_ref {
            return Err(unsupported(format!(
                "env {:?} reads configmap {:?}",
                e.name, r.name
            )));
        }
    }
    for e in c.env_from.iter().flatten() {
        if let Some(r) = &e.secret_ref {
            return Err(unsupported(format!("envFrom reads secret {:?}", r.name)));
        }
        if let Some(r) = &e.config_map_ref {
            return Err(unsupported(format!("envFrom reads configmap {:?}", r.name)));
        }
    }
    Ok(())
}

/// Gives the controller-manager and scheduler containers the bootstrap kubeconfig
/// (see `kubeconfig_flag`), mounting its host dir read-only.
fn wire_kubeconfig(
    spec: &mut PodSpec,
    parent: &Parent<'_>,
    opts: &RenderOptions,
    warnings: &mut Vec<String>,
) -> Result<(), RenderError> {
    let (host_dir, file) = opts.kubeconfig_split()?;
    let mut targets: Vec<usize> = spec
        .containers
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            NEEDS_KUBECONFIG
                .iter()
                .any(|comp| kubeconfig_flag::runs(c, comp))
        })
        .map(|(i, _)| i)
        .collect();
    if targets.is_empty() && NEEDS_KUBECONFIG.contains(&parent.component) {
        if spec.containers.len() == 1 {
            targets.push(0);
        } else {
            warnings.push(format!(
                "{parent}: no container runs {}, so none was given --kubeconfig; edit the bootstrap manifest",
                parent.component
            ));
        }
    }
    if targets.is_empty() {
        return Ok(());
    }
    let owner = parent.to_string();
    let conflict = |what: String| RenderError::Invalid {
        owner: owner.clone(),
        reason: format!("{what} is already used; kubeboot needs it for the bootstrap kubeconfig"),
    };
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if volumes.iter().any(|v| v.name == KUBECONFIG_VOLUME) {
        return Err(conflict(format!("volume name {KUBECONFIG_VOLUME:?}")));
    }
    volumes.push(Volume {
        name: KUBECONFIG_VOLUME.into(),
        host_path: Some(HostPathVolumeSource {
            path: host_dir.to_string(),
            type_: Some("Directory".into()),
        }),
        ..Default::default()
    });
    let in_container = format!("{KUBECONFIG_MOUNT}/{file}");
    for i in targets {
        let Some(c) = spec.containers.get_mut(i) else {
            continue;
        };
        let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
        if mounts
            .iter()
            .any(|m| m.mount_path.trim_end_matches('/') == KUBECONFIG_MOUNT)
        {
            return Err(conflict(format!(
                "mount path {KUBECONFIG_MOUNT:?} of container {:?}",
                c.name
            )));
        }
        mounts.push(VolumeMount {
            name: KUBECONFIG_VOLUME.into(),
            mount_path: KUBECONFIG_MOUNT.into(),
            read_only: Some(true),
            ..Default::default()
        });
        if kubeconfig_flag::set_kubeconfig(c, &in_container) == Edit::ShellWrapped {
            warnings.push(format!(
                "{owner}: container {:?} runs a shell script, so its --kubeconfig was not changed; make it use {in_container}",
                c.name
            ));
        } else if kubeconfig_flag::has_config_file(c) {
            warnings.push(format!(
                "{owner}: container {:?} has --config, and kube-scheduler then ignores --kubeconfig; its config's clientConnection.kubeconfig must name {in_container}",
                c.name
            ));
        }
    }
    Ok(())
}
