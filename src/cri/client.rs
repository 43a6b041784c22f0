//! A CRI v1 `RuntimeService` client over the runtime's unix socket.
//!
//! Why these choices: gRPC over a unix socket is how the kubelet and crictl reach every
//! CRI runtime (containerd, CRI-O). The channel connects lazily and again for each
//! call after a failure, so a runtime that restarts (a new socket file) is found again
//! without a new client. Every call has a deadline (sent as `grpc-timeout` and enforced
//! locally), so a wedged runtime cannot stall the checkpointer's cycle. Errors name the
//! socket and the call, and say so plainly when the socket is absent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::proto;
use super::proto::runtime_service_client::RuntimeServiceClient;
use super::sandbox::{self, ContainerView, SandboxPod};

/// containerd's socket, the kubelet's default `--container-runtime-endpoint` since
/// dockershim was removed.
pub const DEFAULT_SOCKET: &str = "unix:///run/containerd/containerd.sock";

/// `unix:///path` or `/path` → the socket's path; anything else is refused (the
/// checkpointer reads only a local runtime).
pub fn socket_path(endpoint: &str) -> Result<PathBuf, String> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if !path.starts_with('/') {
        return Err(format!(
            "CRI endpoint {endpoint:?} is not unix:///<absolute path> or an absolute path"
        ));
    }
    Ok(PathBuf::from(path))
}

/// A `--cri-socket` flag's value: empty turns the runtime off (`None`), anything else
/// as [`socket_path`], the error naming the flag.
pub fn socket_flag(value: &str) -> Result<Option<PathBuf>, String> {
    match value {
        "" => Ok(None),
        e => socket_path(e)
            .map(Some)
            .map_err(|e| format!("--cri-socket: {e}")),
    }
}

/// A client for one runtime socket.
#[derive(Clone)]
pub struct Runtime {
    client: RuntimeServiceClient<Channel>,
    socket: PathBuf,
    timeout: Duration,
}

impl Runtime {
    /// A client for `socket`; nothing is connected until the first call.
    pub fn new(socket: &Path, timeout: Duration) -> Runtime {
        // The URI is required by tonic but unused: the connector below ignores it.
        let endpoint = Endpoint::from_static("http://cri.invalid")
            .connect_timeout(timeout)
            .timeout(timeout);
        let path = socket.to_path_buf();
        let channel = endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }));
        Runtime {
            client: RuntimeServiceClient::new(channel),
            socket: socket.to_path_buf(),
            timeout,
        }
    }

    /// The socket this client reads.
    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn fail(&self, call: &str, why: impl std::fmt::Display) -> String {
        if !self.socket.exists() {
            return format!(
                "CRI socket {}: {call}: the socket does not exist (no container runtime there)",
                self.socket.display()
            );
        }
        format!("CRI socket {}: {call}: {why}", self.socket.display())
    }

    async fn call<T, F, Fut>(&self, name: &str, f: F) -> Result<T, String>
    where
        F: FnOnce(RuntimeServiceClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let fut = f(self.client.clone(), self.timeout);
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(self.fail(name, status_text(&status))),
            Err(_) => Err(self.fail(name, format!("no answer within {:?}", self.timeout))),
        }
    }

    /// The pods with a `SANDBOX_READY` sandbox (asked with the state filter, checked
    /// again on the answer).
    pub async fn ready_pods(&self) -> Result<Vec<SandboxPod>, String> {
        let resp = self
            .call("ListPodSandbox", |mut c, t| async move {
                let mut req = tonic::Request::new(proto::ListPodSandboxRequest {
                    filter: Some(proto::PodSandboxFilter {
                        state: Some(proto::PodSandboxStateValue {
                            state: proto::PodSandboxState::SandboxReady as i32,
                        }),
                        ..Default::default()
                    }),
                });
                req.set_timeout(t);
                c.list_pod_sandbox(req).await
            })
            .await?;
        Ok(sandbox::ready_pods(&resp.items))
    }

    /// Every container, or those of one sandbox.
    pub async fn containers(&self, sandbox_id: Option<&str>) -> Result<Vec<ContainerView>, String> {
        let filter = sandbox_id.map(|id| proto::ContainerFilter {
            pod_sandbox_id: id.to_string(),
            ..Default::default()
        });
        let resp = self
            .call("ListContainers", |mut c, t| async move {
                let mut req = tonic::Request::new(proto::ListContainersRequest { filter });
                req.set_timeout(t);
                c.list_containers(req).await
            })
            .await?;
        Ok(resp
            .containers
            .iter()
            .map(sandbox::container_view)
            .collect())
    }
}

/// A status as one line: its code, its message, and the transport error under it.
fn status_text(s: &tonic::Status) -> String {
    let mut out = format!("{:?}: {}", s.code(), s.message());
    let mut cur = std::error::Error::source(s);
    while let Some(e) = cur {
        let t = e.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            socket_path(DEFAULT_SOCKET).unwrap(),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(
            socket_path("/var/run/crio/crio.sock").unwrap(),
            PathBuf::from("/var/run/crio/crio.sock")
        );
        for bad in [
            "tcp://127.0.0.1:1",
            "unix://relative",
            "",
            "npipe:////./pipe/x",
        ] {
            assert!(socket_path(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn an_absent_socket_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("nope.sock");
        let rt = Runtime::new(&sock, Duration::from_secs(2));
        let err = rt.ready_pods().await.unwrap_err();
        assert!(err.contains(&sock.display().to_string()), "{err}");
        assert!(
            err.contains("ListPodSandbox") && err.contains("does not exist"),
            "{err}"
        );
    }
}
