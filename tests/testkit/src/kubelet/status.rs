//! What a pod is doing, kept by its supervisor and rendered into a real `v1.PodStatus`
//! for `/pods` and the api-server. `start` waits on `phase: Running` and the checkpointer
//! reads container states, so phase, conditions and container states follow the real
//! kubelet's rules; the pure parts (phase, back-off) are unit-tested here.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// One container's state machine position.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting { reason: String, message: String },
    Running { since: Timestamp },
    Terminated(Term),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub exit_code: i32,
    pub reason: String,
    pub started: Option<Timestamp>,
    pub finished: Timestamp,
}

#[derive(Debug, Clone)]
pub struct CState {
    pub name: String,
    pub image: String,
    pub state: State,
    pub last: Option<Term>,
    pub restarts: i32,
    pub ready: bool,
    pub pid: Option<u32>,
    /// The runtime's id of the container's newest run: what the CRI socket lists and
    /// the status's `containerID` names (see [`run_id`]).
    pub id: Option<String>,
    pub ever_started: bool,
    /// Set when the container will not run again (policy says so).
    pub done: Option<i32>,
}

impl CState {
    pub fn new(name: &str, image: &str, reason: &str) -> CState {
        CState {
            name: name.into(),
            image: image.into(),
            state: waiting(reason, ""),
            last: None,
            restarts: 0,
            ready: false,
            pid: None,
            id: None,
            ever_started: false,
            done: None,
        }
    }
}

/// The runtime's name, as the CRI `Version` call gives it; the kubelet writes a
/// container's id as `<runtime>://<id>` (upstream `kubecontainer.ContainerID.String()`,
/// pkg/kubelet/container/runtime.go, with `Type` the runtime's name).
pub const RUNTIME: &str = "fake-kubelet";

/// The id of one run of a container: unique per run as a real runtime's are (64 hex
/// digits, like containerd's), the last 16 the process id so that tests can find the
/// process from the status ([`super::harness::container_pid`]).
pub fn run_id(pod_key: &str, container: &str, started: Timestamp, pid: u32) -> String {
    let seed = format!("{pod_key}\0{container}\0{}", started.as_nanosecond());
    let d = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
    let hex: String = d
        .as_ref()
        .iter()
        .take(24)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{hex}{pid:016x}")
}

pub fn waiting(reason: &str, message: &str) -> State {
    State::Waiting {
        reason: reason.into(),
        message: message.into(),
    }
}

/// A pod's live status.
#[derive(Debug, Clone)]
pub struct Live {
    pub start_time: Timestamp,
    pub init: Vec<CState>,
    pub containers: Vec<CState>,
    pub initialized: bool,
    /// An init container failed and restartPolicy is Never.
    pub init_failed: bool,
    /// Admission refused the pod: (reason, message). It never runs (`rejectPod`).
    pub rejected: Option<(String, String)>,
    /// condition type → (status, lastTransitionTime)
    transitions: BTreeMap<&'static str, (bool, Timestamp)>,
}

impl Live {
    pub fn new(init: Vec<CState>, containers: Vec<CState>) -> Live {
        let initialized = init.is_empty();
        Live {
            start_time: Timestamp::now(),
            init,
            containers,
            initialized,
            init_failed: false,
            rejected: None,
            transitions: BTreeMap::new(),
        }
    }

    pub fn phase(&self) -> &'static str {
        phase(self)
    }

    /// The `v1.PodStatus`. Takes `&mut` to record condition transition times.
    pub fn render(&mut self, host_ip: &str) -> PodStatus {
        // `rejectPod` sets only phase, reason and message (and keeps the QoS class).
        if let Some((reason, message)) = &self.rejected {
            return PodStatus {
                phase: Some("Failed".into()),
                reason: Some(reason.clone()),
                message: Some(message.clone()),
                qos_class: Some("BestEffort".into()),
                ..Default::default()
            };
        }
        let phase = phase(self);
        let ready = phase == "Running" && self.containers.iter().all(|c| c.ready);
        let now = Timestamp::now();
        let mut conditions = Vec::new();
        for (ty, status) in [
            ("PodScheduled", true),
            ("Initialized", self.initialized),
            ("ContainersReady", ready),
            ("Ready", ready),
        ] {
            let entry = self.transitions.entry(ty).or_insert((status, now));
            if entry.0 != status {
                *entry = (status, now);
            }
            conditions.push(PodCondition {
                type_: ty.into(),
                status: if status { "True" } else { "False" }.into(),
                last_transition_time: Some(Time(entry.1)),
                ..Default::default()
            });
        }
        let ip = Some(host_ip.to_string());
        let ips = Some(vec![k8s_openapi::api::core::v1::PodIP {
            ip: host_ip.into(),
        }]);
        PodStatus {
            phase: Some(phase.into()),
            conditions: Some(conditions),
            container_statuses: Some(self.containers.iter().map(container_status).collect()),
            init_container_statuses: (!self.init.is_empty())
                .then(|| self.init.iter().map(container_status).collect()),
            host_ip: ip.clone(),
            host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP {
                ip: host_ip.into(),
            }]),
            pod_ip: ip,
            pod_ips: ips,
            start_time: Some(Time(self.start_time)),
            qos_class: Some("BestEffort".into()),
            ..Default::default()
        }
    }
}

/// Pod phase from container states (kubelet's `getPhase`, simplified):
/// Failed if an init container failed for good; Pending until initialized; Succeeded or
/// Failed when every container is done; Running once any container has started.
pub fn phase(l: &Live) -> &'static str {
    if l.init_failed || l.rejected.is_some() {
        return "Failed";
    }
    if !l.initialized {
        return "Pending";
    }
    if l.containers.iter().all(|c| c.done.is_some()) {
        return if l.containers.iter().all(|c| c.done == Some(0)) {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    if l.containers.iter().any(|c| c.ever_started) {
        "Running"
    } else {
        "Pending"
    }
}

/// What to do when a container exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// Start it again, after the crash-loop back-off (`backoff.rs`).
    Restart,
    /// Stay terminated.
    Done,
}

/// restartPolicy + exit code → restart or not. Init containers treat `Always` as
/// `OnFailure`: they must run to completion.
#[must_use]
pub fn after_exit(policy: &str, init: bool, code: i32) -> AfterExit {
    let restart = match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => code != 0 || !init,
    };
    if restart {
        AfterExit::Restart
    } else {
        AfterExit::Done
    }
}

fn ts(t: Timestamp) -> Option<Time> {
    Some(Time(t))
}

fn term(t: &Term) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        reason: Some(t.reason.clone()),
        started_at: t.started.and_then(ts),
        finished_at: ts(t.finished),
        ..Default::default()
    }
}

fn container_status(c: &CState) -> ContainerStatus {
    let state = match &c.state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: (!message.is_empty()).then(|| message.clone()),
            }),
            ..Default::default()
        },
        State::Running { since } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: ts(*since),
            }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(term(t)),
            ..Default::default()
        },
    };
    let last_state = c.last.as_ref().map(|t| ContainerState {
        terminated: Some(term(t)),
        ..Default::default()
    });
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: format!("fake-kubelet://{}", c.image),
        // While it runs, as upstream's kubelet writes it: `<runtime>://<id>`.
        container_id: c
            .pid
            .and(c.id.as_ref())
            .map(|id| format!("{RUNTIME}://{id}")),
        ready: c.ready,
        started: Some(matches!(c.state, State::Running { .. })),
        restart_count: c.restarts,
        state: Some(state),
        last_state,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy() {
        assert_eq!(after_exit("Always", false, 0), AfterExit::Restart);
        assert_eq!(after_exit("Always", false, 1), AfterExit::Restart);
        assert_eq!(after_exit("Always", true, 0), AfterExit::Done);
        assert_eq!(after_exit("Always", true, 1), AfterExit::Restart);
        assert_eq!(after_exit("OnFailure", false, 0), AfterExit::Done);
        assert_eq!(after_exit("OnFailure", false, 2), AfterExit::Restart);
        assert_eq!(after_exit("Never", false, 2), AfterExit::Done);
    }

    #[test]
    fn phases() {
        let c = |started, done| CState {
            ever_started: started,
            done,
            ..CState::new("c", "i", "x")
        };
        let mut l = Live::new(vec![c(false, None)], vec![c(false, None)]);
        assert_eq!(phase(&l), "Pending");
        l.initialized = true;
        assert_eq!(phase(&l), "Pending");
        l.containers = vec![c(true, None), c(true, Some(0))];
        assert_eq!(phase(&l), "Running");
        l.containers = vec![c(true, Some(0))];
        assert_eq!(phase(&l), "Succeeded");
        l.containers = vec![c(true, Some(0)), c(true, Some(3))];
        assert_eq!(phase(&l), "Failed");
        l.init_failed = true;
        assert_eq!(phase(&l), "Failed");
        let st = l.render("127.0.0.1");
        assert_eq!(st.conditions.unwrap()[3].status, "False");
    }
}
