//! Which time-stamped copies of key-holding dirs to remove (issue 12, finding 5): the
//! decision alone, apart from the file system, so that it can be tested on names.
//!
//! kubeboot keeps two kinds of such copies, both named by
//! [`super::timestamp_suffix`], which sorts by time: what [`super::move_aside`] made of
//! a replaced dir (`<name>.kubeboot-<time>`: bootstrap secrets, etcd data dirs) and the
//! asset dirs `kubeboot ensure` recovers into (`<recovery-root>/<time>-<source>`). Both
//! hold CA and service-account keys; unbounded, every recovery would add one more set.
//! The bound is a count, the `--keep-*` flags: a count also bounds the time a key is
//! kept, since copies are only made by recoveries, and it never removes the copy an
//! operator is still looking at merely because a clock was wrong.

/// The names among `names` to remove so that only the `keep` newest copies stay. A
/// copy is a name `stamp` accepts; it returns the time stamp to sort by (newest =
/// greatest). Names it rejects are never removed. The result is oldest first.
pub fn beyond_newest<F>(names: &[String], keep: usize, stamp: F) -> Vec<&str>
where
    F: Fn(&str) -> Option<&str>,
{
    let mut copies: Vec<(&str, &str)> = names
        .iter()
        .filter_map(|n| stamp(n).map(|s| (s, n.as_str())))
        .collect();
    // Newest first; equal stamps (never made by one writer) fall back to the name.
    copies.sort_by(|a, b| b.cmp(a));
    let mut old: Vec<&str> = copies.into_iter().skip(keep).map(|(_, n)| n).collect();
    old.reverse();
    old
}

/// Whether `s` begins with a [`super::timestamp_suffix`] (`YYYYMMDDTHHMMSS.ffffffZ`);
/// returns that stamp and the rest.
pub fn split_stamp(s: &str) -> Option<(&str, &str)> {
    const LEN: usize = "20260101T000000.000000Z".len();
    let stamp = s.get(..LEN)?;
    let shaped = stamp.bytes().enumerate().all(|(i, c)| match i {
        8 => c == b'T',
        15 => c == b'.',
        22 => c == b'Z',
        _ => c.is_ascii_digit(),
    });
    Some((stamp, s.get(LEN..)?)).filter(|_| shaped)
}

/// The stamp of a [`super::move_aside`] copy of `name` (`<name>.kubeboot-<time>` with
/// an optional `-N`).
pub fn aside_stamp<'a>(name: &str, candidate: &'a str) -> Option<&'a str> {
    let rest = candidate.strip_prefix(name)?.strip_prefix(".kubeboot-")?;
    let (_, tail) = split_stamp(rest)?;
    let counter = tail
        .strip_prefix('-')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (tail.is_empty() || counter).then_some(rest)
}

/// The stamp of a recovered asset dir's name (`<time>-<source>`, the source a word of
/// lower-case letters and dashes: `etcd`, `local-etcd-data`, ...).
pub fn recovery_stamp(candidate: &str) -> Option<&str> {
    let (stamp, tail) = split_stamp(candidate)?;
    let source = tail.strip_prefix('-')?;
    let word = !source.is_empty()
        && source
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    word.then_some(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_newest_are_kept_and_anything_else_is_left_alone() {
        let all = names(&[
            "20260201T000000.000000Z-etcd",
            "restore-marker.json",
            "20260101T000000.000000Z-apiserver",
            "20260301T000000.000000Z-local-etcd-data",
            "20260301T000000.000000Z-notes.txt",
            ".20250101T000000.000000Z-etcd.tmp-12",
            "2026-notes",
        ]);
        assert_eq!(
            beyond_newest(&all, 1, recovery_stamp),
            [
                "20260101T000000.000000Z-apiserver",
                "20260201T000000.000000Z-etcd"
            ]
        );
        assert_eq!(
            beyond_newest(&all, 2, recovery_stamp),
            ["20260101T000000.000000Z-apiserver"]
        );
        assert!(beyond_newest(&all, 3, recovery_stamp).is_empty());
        assert_eq!(beyond_newest(&all, 0, recovery_stamp).len(), 3);
        assert!(beyond_newest(&[], 0, recovery_stamp).is_empty());
    }

    #[test]
    fn asides_of_one_name_only_counters_included() {
        let all = names(&[
            "bootstrap-secrets.kubeboot-20260101T000000.000000Z",
            "bootstrap-secrets.kubeboot-20260101T000000.000000Z-1",
            "bootstrap-secrets.kubeboot-20260102T000000.000000Z",
            "bootstrap-secrets.kubeboot-notes",
            "bootstrap-secrets.kubeboot-20260103T000000.000000Z.bak",
            "other.kubeboot-20250101T000000.000000Z",
            "bootstrap-secrets",
        ]);
        let gone = beyond_newest(&all, 1, |n| aside_stamp("bootstrap-secrets", n));
        assert_eq!(
            gone,
            [
                "bootstrap-secrets.kubeboot-20260101T000000.000000Z",
                "bootstrap-secrets.kubeboot-20260101T000000.000000Z-1"
            ]
        );
        fn stamp(n: &str) -> Option<&str> {
            aside_stamp("bootstrap-secrets", n)
        }
        assert!(beyond_newest(&all, 3, stamp).is_empty());
        assert!(stamp("other.kubeboot-20250101T000000.000000Z").is_none());
    }

    #[test]
    fn stamps_are_checked_whole() {
        assert!(split_stamp("20260101T000000.000000Z").is_some());
        for bad in [
            "2026010T000000.000000Z-x",
            "20260101X000000.000000Z-x",
            "20260101T000000,000000Z-x",
            "20260101T000000.00000aZ-x",
            "",
            "é",
        ] {
            assert!(recovery_stamp(bad).is_none(), "{bad}");
        }
        assert!(recovery_stamp("20260101T000000.000000Z-").is_none());
        assert!(recovery_stamp("20260101T000000.000000Z-Etcd").is_none());
        assert!(recovery_stamp("20260101T000000.000000Zetcd").is_none());
    }
}
