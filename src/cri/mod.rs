//! The container runtime's own view of what runs on this node, over the CRI v1
//! `RuntimeService` (k8s.io/cri-api `pkg/apis/runtime/v1/api.proto`, vendored in
//! `proto/cri/`).
//!
//! Why a module of its own, below `checkpoint`: the runtime answers from its unix socket
//! with no network, no TLS and no api-server, which is exactly what the checkpointer needs
//! after a power-off, when the kubelet's secure port refuses every request it cannot
//! authorize through the api-server (bootkube #1025/#1027). Nothing here knows about
//! checkpoints: [`client`] does the gRPC calls (with a deadline each, errors naming the
//! socket), [`sandbox`] turns the answers into pod identities the way the kubelet wrote
//! them (pure, unit-tested). The messages and the client are generated at build time by
//! `tonic-prost-build` from the vendored proto through protox (no system protoc); the
//! generated code is in [`proto`].

pub mod client;
pub mod sandbox;

/// The generated CRI v1 messages and `RuntimeServiceClient` (package `runtime.v1`).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod proto {
    tonic::include_proto!("runtime.v1");
}

pub use client::{DEFAULT_SOCKET, Runtime, socket_flag, socket_path};
pub use sandbox::{ContainerView, SandboxPod};
