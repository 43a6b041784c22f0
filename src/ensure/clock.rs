//! The api-server's clock, read from the `Date` header of its answer.
//!
//! Whether a kubelet is alive is judged by how long ago its node Lease was renewed.
//! The renewal times are the cluster's; comparing them with this node's clock makes
//! a node whose clock is minutes ahead (a dead RTC battery, NTP not yet synced at
//! boot) find every lease dead and the whole control plane gone (issue 11). So every
//! "now" `ensure` compares with a lease is the api-server's: this node's clock plus
//! the offset between the two, read from the `Date` header (RFC 9110 §6.6.1; Go's
//! net/http, and so the kube-apiserver, sets it on every response). Its resolution is
//! one second, far below `--node-grace`.

use jiff::{SignedDuration, Timestamp};

/// How far the api-server's clock is ahead of this node's (negative: behind), from
/// a `Date` header read at `local` (this node's time when the answer came).
pub fn offset(date: &str, local: Timestamp) -> Result<SignedDuration, String> {
    let server = jiff::fmt::rfc2822::parse(date.trim())
        .map_err(|e| format!("the api-server's Date header {date:?}: {e}"))?
        .timestamp();
    Ok(server.duration_since(local))
}

/// This node's `local` time on the api-server's clock; without an offset (no
/// `Date` header), the local clock.
pub fn server_now(local: Timestamp, offset: Option<SignedDuration>) -> Timestamp {
    offset
        .and_then(|o| local.checked_add(o).ok())
        .unwrap_or(local)
}

/// A line for the journal when the clocks differ by more than a few seconds.
pub fn describe(offset: SignedDuration) -> Option<String> {
    let secs = offset.as_secs();
    (secs.abs() > 5).then(|| {
        let (n, way) = if secs > 0 {
            (secs, "ahead of")
        } else {
            (-secs, "behind")
        };
        format!(
            "the api-server's clock is {n} s {way} this node's; node leases are judged by the api-server's clock"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_date_header_gives_the_offset_both_ways() {
        let date = "Wed, 02 Dec 2026 13:00:00 GMT";
        // This node is 5 minutes ahead: the api-server is 300 s behind it.
        let o = offset(date, ts("2026-12-02T13:05:00Z")).unwrap();
        assert_eq!(o, SignedDuration::from_secs(-300));
        assert_eq!(
            server_now(ts("2026-12-02T13:05:10Z"), Some(o)),
            ts("2026-12-02T13:00:10Z")
        );
        assert!(describe(o).unwrap().contains("300 s behind"));
        // This node is 5 minutes behind.
        let o = offset(date, ts("2026-12-02T12:55:00Z")).unwrap();
        assert_eq!(o, SignedDuration::from_secs(300));
        assert!(describe(o).unwrap().contains("300 s ahead of"));
        assert_eq!(describe(SignedDuration::from_secs(1)), None);
    }

    #[test]
    fn no_or_a_bad_header_falls_back_to_the_local_clock() {
        assert!(offset("yesterday", ts("2026-12-02T13:00:00Z")).is_err());
        let local = ts("2026-12-02T13:00:00Z");
        assert_eq!(server_now(local, None), local);
    }
}
