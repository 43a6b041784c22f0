//! Host-port admission: a pod that needs a host port another pod on this node holds
//! waits (`HostPortConflict`) instead of starting, because every pod here shares the
//! node's network. Ports come from `hostPort`s, and from every `containerPort` of a
//! hostNetwork pod.

use k8s_openapi::api::core::v1::Pod;

use super::Shared;

/// Host ports the pod needs: `hostPort`s, and every `containerPort` under hostNetwork.
pub fn host_ports(pod: &Pod) -> Vec<u16> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let host_net = spec.host_network == Some(true);
    let mut ports: Vec<u16> = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| match p.host_port {
            Some(h) if h > 0 => Some(h),
            _ if host_net => Some(p.container_port),
            _ => None,
        })
        .filter_map(|p| u16::try_from(p).ok())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Takes all of `ports` for `key`, or none: `Err` names the holder.
pub fn acquire(shared: &Shared, key: &str, ports: &[u16]) -> Result<(), String> {
    let mut held = shared.ports.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, k)) = ports
        .iter()
        .find_map(|p| held.get(p).filter(|k| *k != key).map(|k| (p, k)))
    {
        return Err(format!("host port {p} is held by pod {k}"));
    }
    for p in ports {
        held.insert(*p, key.to_string());
    }
    Ok(())
}

pub fn release(shared: &Shared, key: &str) {
    shared
        .ports
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|_, k| k != key);
}
