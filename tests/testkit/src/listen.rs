//! Binding a control-plane double's serving port, with or without `--permit-port-sharing`.
//!
//! Upstream: `staging/src/k8s.io/apiserver/pkg/server/options/serving.go`
//! (`SecureServingOptions.AddFlags` defines `--permit-port-sharing`, default false;
//! `ApplyTo` then listens through a `net.ListenConfig` whose `Control` sets SO_REUSEPORT
//! only when it is true). kube-apiserver, kube-scheduler and kube-controller-manager all
//! take their serving flags from `SecureServingOptions` (`cmd/kube-scheduler/app/options`
//! and `cmd/kube-controller-manager/app/options` add `SecureServing.AddFlags`), so each
//! accepts the flag. Go's listener sets SO_REUSEADDR in any case, as Rust's does.
//!
//! The kernel decides the rest, and the doubles leave it to the kernel: a second socket
//! binds a port in use only if *every* socket on it set SO_REUSEPORT (and runs as the same
//! user). So a self-hosted api-server with the flag starts beside a bootstrap pod or a
//! checkpoint that has it too, and still fails to bind beside one that has not.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Go's `net.Listen` backlog is the kernel's `somaxconn`; 1024 is its usual value.
const BACKLOG: u32 = 1024;

/// Listens on `addr`, with SO_REUSEPORT when `permit_port_sharing`.
pub fn bind(addr: SocketAddr, permit_port_sharing: bool) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if permit_port_sharing {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_port() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[tokio::test]
    async fn sharing_needs_the_flag_on_both_sockets() {
        let first = bind(any_port(), true).expect("first bind");
        let addr = first.local_addr().expect("addr");
        // Both shared: the second binds and listens too.
        let second = bind(addr, true).expect("both with SO_REUSEPORT");
        drop(second);
        // The newcomer without the flag is refused.
        let err = bind(addr, false).expect_err("newcomer without the flag");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(first);

        // The holder without the flag refuses even a newcomer that has it.
        let plain = bind(any_port(), false).expect("plain bind");
        let addr = plain.local_addr().expect("addr");
        let err = bind(addr, true).expect_err("holder without the flag");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(plain);
        // Once the holder is gone, the port is free again.
        bind(addr, false).expect("port released");
    }

    #[test]
    fn the_doubles_take_the_flag() {
        use crate::controllers::config::{CONTROLLER_MANAGER, Config as Ctl, SCHEDULER};
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let api = |a: &[&str]| crate::apiserver::Config::from_args(args(a)).unwrap();
        let (c, ignored) = api(&["--etcd-servers=http://e", "--permit-port-sharing", "--v=2"]);
        assert!(c.permit_port_sharing);
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(c.verbosity, 2, "the bool did not take the next argument");
        assert!(!api(&["--etcd-servers=http://e"]).0.permit_port_sharing);
        assert!(
            !api(&["--etcd-servers=e", "--permit-port-sharing=false"])
                .0
                .permit_port_sharing
        );
        let ctl = |p, a: &[&str]| Ctl::from_args(p, args(a)).unwrap().unwrap();
        assert!(ctl(&SCHEDULER, &["--permit-port-sharing=true"]).permit_port_sharing);
        assert!(
            ctl(
                &CONTROLLER_MANAGER,
                &["--permit-port-sharing", "--leader-elect=false"]
            )
            .permit_port_sharing
        );
        assert!(!ctl(&SCHEDULER, &[]).permit_port_sharing);
    }
}
