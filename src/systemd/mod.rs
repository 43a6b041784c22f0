//! sd-notify: `STATUS=`, `READY=1` and `WATCHDOG=1` to the service manager.
//!
//! Written here rather than with the `sd-notify` crate because that crate sends with a
//! blocking datagram: when nobody reads `$NOTIFY_SOCKET` (a unit without `Type=notify`
//! that still exports it, a test, a dead manager) its queue fills and every later send
//! blocks, which froze `start` past its own deadline. Here a send never waits: a full
//! queue or a missing socket drops the message, which is what a status line deserves.

pub mod dbus;
pub mod journal;
pub mod logfields;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (newline-separated `KEY=VALUE` lines) to `$NOTIFY_SOCKET`, if set.
/// Returns whether it was sent.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let path = path.to_string_lossy();
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(path.as_ref()),
    };
    let Ok(addr) = addr else {
        return false;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    sock.set_nonblocking(true).is_ok() && sock.send_to_addr(state.as_bytes(), &addr).is_ok()
}

/// `STATUS=` with newlines folded, so one status is one line in `systemctl status`.
pub fn status(msg: &str) -> bool {
    notify(&format!("STATUS={}", msg.replace('\n', " ")))
}

/// `WATCHDOG=1` when systemd watches this process (`WATCHDOG_USEC`, and
/// `WATCHDOG_PID` naming it if set).
pub fn watchdog() {
    let watched =
        std::env::var("WATCHDOG_USEC").is_ok_and(|v| v.parse::<u64>().is_ok_and(|u| u > 0));
    let ours =
        std::env::var("WATCHDOG_PID").map_or(true, |p| p.trim() == std::process::id().to_string());
    if watched && ours {
        notify("WATCHDOG=1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_socket_drops_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        // SAFETY-free: tests in this module are the only users of NOTIFY_SOCKET here.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        assert!(status("one\ntwo"));
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=one two");
        // Nobody reads any more: sends must return, some of them false, never block.
        let sent = (0..1000).filter(|_| status("x")).count();
        assert!(sent < 1000, "the queue never filled");
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
    }
}
