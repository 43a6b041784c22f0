//! The protobuf descriptors of every Kubernetes v1.35 API type, built once per process.
//!
//! `build.rs` compiles the `.proto` files of the `k8s-rs-pb` build-dependency into
//! `OUT_DIR/k8s.fds`; embedding it keeps the binary self-contained (no files to find at run time)
//! and lets the codec decode every built-in kind generically.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

static FDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s.fds"));

/// `None` only if the embedded set is corrupt, which a unit test rules out.
static POOL: LazyLock<Option<DescriptorPool>> = LazyLock::new(|| DescriptorPool::decode(FDS).ok());

/// The message with this full name (`api.core.v1.Pod`), if the protos have it.
pub(crate) fn message(full_name: &str) -> Option<MessageDescriptor> {
    POOL.as_ref()?.get_message_by_name(full_name)
}

/// Full names of special messages whose JSON form is not a plain object.
pub(crate) mod names {
    pub const TIME: &str = "apimachinery.pkg.apis.meta.v1.Time";
    pub const MICRO_TIME: &str = "apimachinery.pkg.apis.meta.v1.MicroTime";
    pub const DURATION: &str = "apimachinery.pkg.apis.meta.v1.Duration";
    pub const FIELDS_V1: &str = "apimachinery.pkg.apis.meta.v1.FieldsV1";
    pub const QUANTITY: &str = "apimachinery.pkg.api.resource.Quantity";
    pub const INT_OR_STRING: &str = "apimachinery.pkg.util.intstr.IntOrString";
    pub const RAW_EXTENSION: &str = "apimachinery.pkg.runtime.RawExtension";
    pub const UNKNOWN: &str = "apimachinery.pkg.runtime.Unknown";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_pool_decodes_and_has_core_types() {
        assert!(POOL.is_some());
        for name in [
            "api.core.v1.Pod",
            "api.apps.v1.Deployment",
            names::TIME,
            names::UNKNOWN,
            names::QUANTITY,
            "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
            "kube_aggregator.pkg.apis.apiregistration.v1.APIService",
        ] {
            assert!(message(name).is_some(), "{name}");
        }
    }
}
