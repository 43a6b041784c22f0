//! Which backups to keep: a pure function of the backups' times and the policy, so
//! every rule is unit-tested without a disk.
//!
//! "Newest" is the highest etcd revision, the time only breaking ties: the time is the
//! node's clock when the backup was taken, and a clock reset to 2000 would otherwise
//! make the backup just taken the oldest, deleted by the run that took it.
//!
//! The rules are restic's and Borg's (`keep-last`, `keep-daily`, `keep-weekly`),
//! which operators already know: the newest N, then the newest backup of each of the
//! D most recent days that have one, then of each of the W most recent ISO weeks. A
//! backup kept by any rule is kept. The newest backup is always kept (`keep_last` is
//! at least 1), so retention can never leave a node without its latest backup. Only
//! backups whose manifest was read take part: retention never deletes a directory it
//! does not understand (the catalog reports those instead).

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// How many backups of each kind to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The newest N backups (at least 1).
    pub keep_last: usize,
    /// The newest backup of each of the D most recent UTC days with a backup.
    pub keep_daily: usize,
    /// The newest backup of each of the W most recent ISO weeks with a backup.
    pub keep_weekly: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep_last: 4,
            keep_daily: 7,
            keep_weekly: 4,
        }
    }
}

/// One backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub taken_at: Timestamp,
    /// The etcd revision the backup holds.
    pub revision: i64,
}

/// The decision for every entry, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Kept entries, each with the first rule that kept it ("last", "daily 2026-11-25",
    /// "weekly 2026-W48").
    pub keep: Vec<(String, String)>,
    pub delete: Vec<String>,
}

/// Decides which entries to keep. `keep_last` below 1 is treated as 1.
pub fn plan(entries: &[Entry], policy: &Policy) -> Plan {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    // Newest first by revision; equal revisions fall back to the time, then the name,
    // so the result is deterministic.
    sorted
        .sort_by(|a, b| (b.revision, b.taken_at, &b.name).cmp(&(a.revision, a.taken_at, &a.name)));
    let mut reasons: Vec<Option<String>> = vec![None; sorted.len()];
    for reason in reasons.iter_mut().take(policy.keep_last.max(1)) {
        *reason = Some("last".to_string());
    }
    keep_newest_per_bucket(&sorted, &mut reasons, policy.keep_daily, |t| {
        format!("daily {}", utc_date(t))
    });
    keep_newest_per_bucket(&sorted, &mut reasons, policy.keep_weekly, |t| {
        let week = utc_date(t).iso_week_date();
        format!("weekly {}-W{:02}", week.year(), week.week())
    });
    let mut out = Plan {
        keep: Vec::new(),
        delete: Vec::new(),
    };
    for (entry, reason) in sorted.into_iter().zip(reasons) {
        match reason {
            Some(r) => out.keep.push((entry.name.clone(), r)),
            None => out.delete.push(entry.name.clone()),
        }
    }
    out
}

/// Walks newest → oldest and marks the first entry of each new bucket, until `limit`
/// buckets are seen. A bucket whose newest entry is already kept still counts.
fn keep_newest_per_bucket(
    sorted: &[&Entry],
    reasons: &mut [Option<String>],
    limit: usize,
    bucket: impl Fn(Timestamp) -> String,
) {
    let mut seen = BTreeSet::new();
    for (entry, reason) in sorted.iter().zip(reasons.iter_mut()) {
        if seen.len() >= limit {
            break;
        }
        let b = bucket(entry.taken_at);
        if seen.insert(b.clone()) && reason.is_none() {
            *reason = Some(b);
        }
    }
}

fn utc_date(t: Timestamp) -> jiff::civil::Date {
    t.to_zoned(TimeZone::UTC).date()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry whose revision grows with its time, as on a node with a sane clock.
    fn entry(name: &str, at: &str) -> Entry {
        let taken_at: Timestamp = at.parse().unwrap();
        Entry {
            name: name.to_string(),
            taken_at,
            revision: taken_at.as_second(),
        }
    }

    fn at_rev(name: &str, at: &str, revision: i64) -> Entry {
        Entry {
            revision,
            ..entry(name, at)
        }
    }

    #[test]
    fn the_backup_just_taken_survives_a_clock_at_2000() {
        // Six weeks of nightly backups, then the clock is reset and a backup is taken.
        let day = jiff::SignedDuration::from_hours(24);
        let start: Timestamp = "2026-10-01T02:00:00Z".parse().unwrap();
        let mut e: Vec<Entry> = (0..42i32)
            .map(|i| {
                let at = start.checked_add(day * i).unwrap();
                at_rev(&format!("n{i}"), &at.to_string(), 1000 + i64::from(i))
            })
            .collect();
        e.push(at_rev("just-taken", "2000-01-01T00:00:00Z", 5000));
        let p = plan(&e, &Policy::default());
        assert!(names(&p.keep).contains(&"just-taken"), "{p:?}");
        assert_eq!(
            p.keep.first().map(|(n, r)| (n.as_str(), r.as_str())),
            Some(("just-taken", "last"))
        );
    }

    #[test]
    fn wrongly_dated_names_keep_the_highest_revision() {
        let e = vec![
            at_rev("r100", "2026-12-01T00:00:00Z", 100),
            at_rev("r900", "2020-01-01T00:00:00Z", 900),
            at_rev("r950", "2000-01-01T00:00:00Z", 950),
        ];
        let p = plan(
            &e,
            &Policy {
                keep_last: 1,
                keep_daily: 0,
                keep_weekly: 0,
            },
        );
        assert_eq!(names(&p.keep), ["r950"]);
        assert_eq!(p.delete, ["r900", "r100"]);
    }

    fn names(v: &[(String, String)]) -> Vec<&str> {
        v.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn keeps_last_n_and_deletes_the_rest() {
        let e = vec![
            entry("a", "2026-11-26T01:00:00Z"),
            entry("b", "2026-11-26T02:00:00Z"),
            entry("c", "2026-11-26T03:00:00Z"),
        ];
        let p = plan(
            &e,
            &Policy {
                keep_last: 2,
                keep_daily: 0,
                keep_weekly: 0,
            },
        );
        assert_eq!(names(&p.keep), ["c", "b"]);
        assert_eq!(p.delete, ["a"]);
    }

    #[test]
    fn newest_is_kept_even_with_keep_last_zero() {
        let e = vec![
            entry("old", "2026-11-01T00:00:00Z"),
            entry("new", "2026-11-02T00:00:00Z"),
        ];
        let p = plan(
            &e,
            &Policy {
                keep_last: 0,
                keep_daily: 0,
                keep_weekly: 0,
            },
        );
        assert_eq!(names(&p.keep), ["new"]);
        assert_eq!(p.delete, ["old"]);
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let e = vec![
            entry("d1-early", "2026-11-24T01:00:00Z"),
            entry("d1-late", "2026-11-24T23:00:00Z"),
            entry("d2-early", "2026-11-25T01:00:00Z"),
            entry("d2-late", "2026-11-25T22:00:00Z"),
            entry("d3", "2026-11-26T05:00:00Z"),
        ];
        let p = plan(
            &e,
            &Policy {
                keep_last: 1,
                keep_daily: 2,
                keep_weekly: 0,
            },
        );
        // d3 is kept as "last" and fills day 1 of the two days; d2-late is day 2.
        assert_eq!(
            p.keep,
            vec![
                ("d3".to_string(), "last".to_string()),
                ("d2-late".to_string(), "daily 2026-11-25".to_string()),
            ]
        );
        assert_eq!(p.delete, ["d2-early", "d1-late", "d1-early"]);
    }

    #[test]
    fn weekly_uses_iso_weeks() {
        // 2026-11-22 is a Sunday (week 47), 2026-11-23 a Monday (week 48).
        let e = vec![
            entry("w46", "2026-11-15T12:00:00Z"),
            entry("w47", "2026-11-22T12:00:00Z"),
            entry("w48", "2026-11-23T12:00:00Z"),
        ];
        let p = plan(
            &e,
            &Policy {
                keep_last: 1,
                keep_daily: 0,
                keep_weekly: 2,
            },
        );
        assert_eq!(
            p.keep,
            vec![
                ("w48".to_string(), "last".to_string()),
                ("w47".to_string(), "weekly 2026-W47".to_string()),
            ]
        );
        assert_eq!(p.delete, ["w46"]);
    }

    #[test]
    fn empty_input_is_an_empty_plan() {
        let p = plan(&[], &Policy::default());
        assert!(p.keep.is_empty() && p.delete.is_empty());
    }

    proptest::proptest! {
        /// Whatever the times and policy: every entry is decided exactly once, the
        /// newest is kept, and no more than last + daily + weekly are kept.
        #[test]
        fn plan_is_a_partition_keeping_the_newest(
            secs in proptest::collection::vec((0i64..100_000_000, 0i64..1000), 1..40),
            last in 0usize..5, daily in 0usize..5, weekly in 0usize..5,
        ) {
            // Times and revisions drawn independently: any clock, right or wrong.
            let base: i64 = 946_684_800;
            let e: Vec<Entry> = secs.iter().enumerate().map(|(i, (s, rev))| Entry {
                name: format!("b{i}"),
                taken_at: Timestamp::from_second(base + s).unwrap(),
                revision: *rev,
            }).collect();
            let policy = Policy { keep_last: last, keep_daily: daily, keep_weekly: weekly };
            let p = plan(&e, &policy);
            proptest::prop_assert_eq!(p.keep.len() + p.delete.len(), e.len());
            let mut all: Vec<&str> = names(&p.keep);
            all.extend(p.delete.iter().map(String::as_str));
            all.sort_unstable();
            all.dedup();
            proptest::prop_assert_eq!(all.len(), e.len());
            let newest = e.iter().max_by_key(|x| (x.revision, x.taken_at, x.name.clone())).unwrap();
            proptest::prop_assert!(names(&p.keep).contains(&newest.name.as_str()));
            proptest::prop_assert!(p.keep.len() <= last.max(1) + daily + weekly);
        }
    }
}
