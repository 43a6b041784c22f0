//! kubeboot keeps a self-hosted Kubernetes control plane recoverable: it reads the
//! control plane out of a live api-server, a live etcd or an etcd snapshot, renders a
//! bootkube-style asset dir, and boots it again. See docs/design.md for the flow.

pub mod assets;
pub mod backup;
pub mod certs;
pub mod checkpoint;
pub mod cmd;
pub mod codec;
pub mod config;
pub mod cri;
pub mod encryption;
pub mod ensure;
pub mod fsutil;
pub mod health;
pub mod hostetcd;
pub mod kubeclient;
pub mod model;
pub mod newcluster;
pub mod nodelabels;
pub mod progress;
pub mod recover;
pub mod registry;
pub mod render;
pub mod snapshot;
pub mod source;
pub mod start;
pub mod staticpod;
pub mod systemd;
