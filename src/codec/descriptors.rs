//! The protobuf descriptors of every Kubernetes API type, built once per process.
//!
//! `build.rs` compiles the `.proto` files kept in `proto/` into two sets: the newest Kubernetes
//! release, which decodes every value a released cluster writes (stable protobuf fields are only
//! ever added, and removed ones are reserved), and kubernetes/api's HEAD, tried only for a value
//! carrying fields the release does not know (a pre-release cluster). Embedding both keeps the
//! binary self-contained: no files to find at run time.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

/// Which compiled set of descriptors decoded a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Descriptors {
    /// The newest Kubernetes release (`proto/v1.36`).
    Release,
    /// kubernetes/api's HEAD (`proto/head`), only where the release lacks a field.
    Head,
}

impl Descriptors {
    /// Where the set came from, e.g. `k8s.io/api v0.36.3 (3fde3c43c3cf)`, for reports.
    pub fn source(self) -> &'static str {
        match self {
            Descriptors::Release => env!("KUBEBOOT_PROTOS_RELEASE"),
            Descriptors::Head => env!("KUBEBOOT_PROTOS_HEAD"),
        }
    }

    fn pool(self) -> Option<&'static DescriptorPool> {
        match self {
            Descriptors::Release => RELEASE.as_ref(),
            Descriptors::Head => HEAD.as_ref(),
        }
    }
}

static RELEASE_FDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s.fds"));
static HEAD_FDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s-head.fds"));

/// `None` only if an embedded set is corrupt, which a unit test rules out.
static RELEASE: LazyLock<Option<DescriptorPool>> =
    LazyLock::new(|| DescriptorPool::decode(RELEASE_FDS).ok());
static HEAD: LazyLock<Option<DescriptorPool>> =
    LazyLock::new(|| DescriptorPool::decode(HEAD_FDS).ok());

/// Builds the release's descriptors on a thread of their own, for a command that will
/// decode after a read: building them takes about 25 ms of CPU (`DescriptorPool::decode`
/// of 290 KB), a third of `recover`'s time on a 10k-key snapshot when it came after the
/// read, and the read leaves a core idle part of the time. A decode that comes before
/// they are built waits for them ([`LazyLock`]); no thread, and the decode builds them.
pub fn build_beside() {
    let _ = std::thread::Builder::new()
        .name("descriptors".into())
        .spawn(|| LazyLock::force(&RELEASE).is_some());
}

/// The release's message with this full name (`k8s.io.api.core.v1.Pod`), if it has one.
pub(crate) fn message(full_name: &str) -> Option<MessageDescriptor> {
    message_in(Descriptors::Release, full_name)
}

/// The message with this full name in one set.
pub(crate) fn message_in(set: Descriptors, full_name: &str) -> Option<MessageDescriptor> {
    set.pool()?.get_message_by_name(full_name)
}

/// The set a descriptor belongs to, so the walker reads the matching JSON field table.
pub(crate) fn set_of(desc: &MessageDescriptor) -> Descriptors {
    match HEAD.as_ref() {
        Some(head) if desc.parent_pool() == head => Descriptors::Head,
        _ => Descriptors::Release,
    }
}

/// Full names of special messages whose JSON form is not a plain object.
pub(crate) mod names {
    pub const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
    pub const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
    pub const DURATION: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Duration";
    pub const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";
    pub const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
    pub const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
    pub const RAW_EXTENSION: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";
    pub const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_pools_decode_and_have_core_types() {
        for set in [Descriptors::Release, Descriptors::Head] {
            assert!(set.pool().is_some(), "{set:?}");
            for name in [
                "k8s.io.api.core.v1.Pod",
                "k8s.io.api.apps.v1.Deployment",
                names::TIME,
                names::UNKNOWN,
                names::QUANTITY,
                "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
                "k8s.io.kube_aggregator.pkg.apis.apiregistration.v1.APIService",
            ] {
                let desc = message_in(set, name).unwrap_or_else(|| panic!("{set:?} {name}"));
                assert_eq!(set_of(&desc), set, "{name}");
            }
        }
    }

    #[test]
    fn sources_name_the_commits() {
        assert!(Descriptors::Release.source().contains("v0.36."));
        assert!(Descriptors::Head.source().contains("HEAD"));
    }
}
