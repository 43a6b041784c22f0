//! Test harness for kubeboot: real etcd on free loopback ports, cluster loaders and
//! (later) the api-server and kubelet doubles. Not shipped.
/// A line of a double's log (the fake api-server, kubelet, scheduler, controllers) on
/// stderr, led by the UTC time to the millisecond as etcd's own log has it, so a drill's
/// logs can be read side by side when it fails.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        eprintln!(
            "{} {}",
            ::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
            format_args!($($arg)*)
        )
    };
}

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
