//! A host-run etcd cluster (an `etcd.service` on each master, as most self-hosted
//! control planes ran it after bootkube): who this master's member is (`member`) and
//! what `ensure` does when the cluster is gone or split (`decide`).
//!
//! `ensure --etcd-unit` runs it (`crate::ensure::host`); `act` does the restore and the
//! join through the unit (systemd over D-Bus).

pub mod act;
pub mod decide;
pub mod join;
pub mod member;
pub mod probe;
pub mod restore;
