//! Test harness for kubeboot: real etcd on free loopback ports, cluster loaders and
//! (later) the api-server and kubelet doubles. Not shipped.
pub mod apiserver;
pub mod cluster;
pub mod controllers;
pub mod daemon;
pub mod etcd;
pub mod journald;
pub mod kubelet;
pub mod listen;
pub mod nodelabels;
pub mod scheduler;
pub mod secretscan;
pub mod validate;
