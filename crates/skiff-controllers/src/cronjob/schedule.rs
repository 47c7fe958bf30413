//! A CronJob's schedule: five POSIX/Vixie fields, an `@` descriptor or `@every <duration>`,
//! parsed by [`skiff_core::cron`] (croner; the API server validates with the same parser),
//! evaluated in the CronJob's `timeZone` (an IANA name read from the system's zoneinfo by
//! jiff; UTC without one).

use chrono::{DateTime, FixedOffset, TimeZone as _};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::Timestamp;
use skiff_core::cron::Schedule as Spec;

/// Where time zone names are looked up, as Go's `time.LoadLocation` does on Linux.
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// The zone `name` from the system's zoneinfo (names only: no absolute paths, no `..`).
fn zone(name: &str) -> Result<TimeZone, String> {
    if name.starts_with('/')
        || name
            .split('/')
            .any(|p| p == ".." || p == "." || p.is_empty())
    {
        return Err(format!("unknown time zone {name:?}"));
    }
    let data = std::fs::read(std::path::Path::new(ZONEINFO).join(name))
        .map_err(|e| format!("unknown time zone {name:?}: {e}"))?;
    TimeZone::tzif(name, &data).map_err(|e| format!("unknown time zone {name:?}: {e}"))
}

/// A parsed schedule in its time zone.
pub struct Schedule {
    spec: Spec,
    tz: TimeZone,
}

impl Schedule {
    /// Parses `spec` (`*/5 * * * *`, `@hourly`, …) for `time_zone` (None: UTC).
    pub fn parse(spec: &str, time_zone: Option<&str>) -> Result<Self, String> {
        let spec = spec.trim();
        let parsed = skiff_core::cron::parse(spec)
            .map_err(|e| format!("unparseable schedule {spec:?}: {e}"))?;
        let tz = match time_zone.filter(|z| !z.is_empty()) {
            None | Some("UTC") => TimeZone::UTC,
            Some(z) => zone(z)?,
        };
        Ok(Schedule { spec: parsed, tz })
    }

    /// The first scheduled time strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let cron = match &self.spec {
            // A constant delay from the previous time, in whole seconds (robfig/cron's
            // `ConstantDelaySchedule`); time zones do not matter.
            Spec::Every(d) => {
                let secs = i64::try_from(d.as_secs()).ok()?;
                return Timestamp::new(after.as_second().checked_add(secs)?, 0).ok();
            }
            Spec::Cron(c) => c,
        };
        // croner works on chrono times with a fixed offset: search with the zone's offset
        // at `after`, and again with the offset at the result when that differs (a
        // daylight-saving change in between).
        let mut offset = self.tz.to_offset(after).seconds();
        for _ in 0..4 {
            let fixed = FixedOffset::east_opt(offset)?;
            let start: DateTime<FixedOffset> = fixed
                .timestamp_opt(after.as_second(), after.subsec_nanosecond().max(0) as u32)
                .single()?;
            let next = cron.find_next_occurrence(&start, false).ok()?;
            let next = Timestamp::new(next.timestamp(), 0).ok()?;
            let there = self.tz.to_offset(next).seconds();
            if there == offset {
                return Some(next);
            }
            offset = there;
        }
        None
    }

    /// The latest scheduled time in `(earliest, now]` and how many there were
    /// (kube-controller-manager's `mostRecentScheduleTime`); past `limit` the count stops
    /// and the latest is found from shortly before `now`.
    pub fn most_recent(
        &self,
        earliest: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> (Option<Timestamp>, usize) {
        let (last, count) = self.scan(earliest, now, limit);
        if count <= limit {
            return (last, count);
        }
        // Too many to walk: look back over growing windows for the latest one.
        for minutes in [1, 60, 24 * 60, 31 * 24 * 60, 366 * 24 * 60] {
            let Ok(from) = now.checked_sub(k8s_openapi::jiff::SignedDuration::from_mins(minutes))
            else {
                continue;
            };
            let from = from.max(earliest);
            let (latest, _) = self.scan(from, now, usize::MAX);
            if latest.is_some() {
                return (latest, count);
            }
        }
        (last, count)
    }

    /// Walks the scheduled times in `(from, now]`, stopping after `limit` + 1 of them.
    fn scan(&self, from: Timestamp, now: Timestamp, limit: usize) -> (Option<Timestamp>, usize) {
        let mut last = None;
        let mut count = 0;
        let mut t = from;
        while let Some(next) = self.next_after(t) {
            if next > now {
                break;
            }
            last = Some(next);
            count += 1;
            if count > limit {
                break;
            }
            t = next;
        }
        (last, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn five_fields_and_descriptors() {
        let s = Schedule::parse("*/5 * * * *", None).unwrap();
        assert_eq!(
            s.next_after(at("2026-03-01T10:02:00Z")),
            Some(at("2026-03-01T10:05:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-03-01T10:05:00Z")),
            Some(at("2026-03-01T10:10:00Z"))
        );
        let h = Schedule::parse("@hourly", None).unwrap();
        assert_eq!(
            h.next_after(at("2026-03-01T10:02:00Z")),
            Some(at("2026-03-01T11:00:00Z"))
        );
        // Sunday is 0 (and 7), as in cron and Kubernetes.
        let sun = Schedule::parse("0 0 * * 0", None).unwrap();
        assert_eq!(
            sun.next_after(at("2026-03-02T00:00:00Z")),
            Some(at("2026-03-08T00:00:00Z"))
        );
        assert!(Schedule::parse("61 * * * *", None).is_err());
        assert!(Schedule::parse("* * *", None).is_err());
    }

    #[test]
    fn every_runs_a_constant_delay_after_the_previous_time() {
        let s = Schedule::parse("@every 90s", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            s.next_after(at("2026-03-01T10:00:00.250Z")),
            Some(at("2026-03-01T10:01:30Z"))
        );
        let (t, n) = s.most_recent(at("2026-03-01T10:00:00Z"), at("2026-03-01T10:05:00Z"), 100);
        assert_eq!((t, n), (Some(at("2026-03-01T10:04:30Z")), 3));
    }

    #[test]
    fn time_zones_move_the_schedule() {
        let s = Schedule::parse("0 9 * * *", Some("Europe/Berlin")).unwrap();
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(
            s.next_after(at("2026-01-10T00:00:00Z")),
            Some(at("2026-01-10T08:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-07-10T00:00:00Z")),
            Some(at("2026-07-10T07:00:00Z"))
        );
        // Across the spring change (29 March 2026), the day after is in summer time.
        assert_eq!(
            s.next_after(at("2026-03-28T09:00:00Z")),
            Some(at("2026-03-29T07:00:00Z"))
        );
        assert!(Schedule::parse("0 9 * * *", Some("Mars/Olympus")).is_err());
        assert!(Schedule::parse("0 9 * * *", Some("../../etc/passwd")).is_err());
    }

    #[test]
    fn most_recent_counts_missed_times() {
        let s = Schedule::parse("*/10 * * * *", None).unwrap();
        let (t, n) = s.most_recent(at("2026-03-01T10:00:00Z"), at("2026-03-01T10:35:00Z"), 100);
        assert_eq!(t, Some(at("2026-03-01T10:30:00Z")));
        assert_eq!(n, 3);
        let (t, n) = s.most_recent(at("2026-03-01T10:00:00Z"), at("2026-03-01T10:05:00Z"), 100);
        assert_eq!((t, n), (None, 0));
        // Over the limit: still the latest one.
        let (t, n) = s.most_recent(at("2026-03-01T10:00:00Z"), at("2026-03-02T10:35:00Z"), 5);
        assert_eq!(t, Some(at("2026-03-02T10:30:00Z")));
        assert!(n > 5);
    }
}
