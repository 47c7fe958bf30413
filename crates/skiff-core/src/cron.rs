//! CronJob schedules as Kubernetes reads them (robfig/cron's standard parser): five fields,
//! a descriptor (`@hourly`, `@daily`, …) or `@every <duration>`. The fields are parsed by
//! croner; the API server validates with this and the CronJob controller schedules with it,
//! so what the API accepts is what runs. Errors are worded as Kubernetes words them where
//! robfig/cron has a wording of its own (field count, descriptors, durations).

use std::time::Duration;

use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// A parsed schedule (time zones are the caller's).
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Five fields (descriptors are expanded to theirs).
    Cron(Box<Cron>),
    /// `@every <duration>`: runs that long after the previous time, in whole seconds (at
    /// least one), as robfig/cron's `ConstantDelaySchedule`.
    Every(Duration),
}

/// Why a schedule does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("expected exactly 5 fields, found {count}: [{fields}]")]
    FieldCount { count: usize, fields: String },
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    #[error("failed to parse duration {spec}: time: invalid duration \"{duration}\"")]
    Duration { spec: String, duration: String },
    #[error("{0}")]
    Field(String),
}

/// The descriptors robfig/cron knows, as five fields.
const DESCRIPTORS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Parses `spec`.
pub fn parse(spec: &str) -> Result<Schedule, ScheduleError> {
    let spec = spec.trim();
    if let Some(rest) = spec.strip_prefix("@every ") {
        let invalid = || ScheduleError::Duration {
            spec: spec.to_string(),
            duration: rest.to_string(),
        };
        // Go durations: digits and units without spaces ("1h30m", "90s").
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(invalid());
        }
        let d = humantime::parse_duration(rest).map_err(|_| invalid())?;
        let whole = Duration::from_secs(d.as_secs().max(1));
        return Ok(Schedule::Every(whole));
    }
    let fields = if spec.starts_with('@') {
        DESCRIPTORS
            .iter()
            .find(|(name, _)| *name == spec)
            .map(|(_, fields)| *fields)
            .ok_or_else(|| ScheduleError::Descriptor(spec.to_string()))?
    } else {
        spec
    };
    let parts: Vec<&str> = fields.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(ScheduleError::FieldCount {
            count: parts.len(),
            fields: parts.join(" "),
        });
    }
    let parser = CronParser::builder().seconds(Seconds::Disallowed).build();
    parser
        .parse(fields)
        .map(|c| Schedule::Cron(Box::new(c)))
        .map_err(|e| ScheduleError::Field(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_fields_descriptors_and_every() {
        assert!(matches!(parse("*/5 * * * *"), Ok(Schedule::Cron(_))));
        assert!(matches!(parse("0 0 * * MON-FRI"), Ok(Schedule::Cron(_))));
        for (d, _) in DESCRIPTORS {
            assert!(matches!(parse(d), Ok(Schedule::Cron(_))), "{d}");
        }
        assert!(
            matches!(parse("@every 1h30m"), Ok(Schedule::Every(d)) if d == Duration::from_secs(5400))
        );
        assert!(
            matches!(parse("@every 500ms"), Ok(Schedule::Every(d)) if d == Duration::from_secs(1))
        );
    }

    #[test]
    fn garbage_is_refused_in_robfig_cron_words() {
        assert_eq!(
            parse("garbage").unwrap_err().to_string(),
            "expected exactly 5 fields, found 1: [garbage]"
        );
        assert_eq!(
            parse("0 0 0 * * *").unwrap_err().to_string(),
            "expected exactly 5 fields, found 6: [0 0 0 * * *]"
        );
        assert_eq!(
            parse("@fortnightly").unwrap_err().to_string(),
            "unrecognized descriptor: @fortnightly"
        );
        assert_eq!(
            parse("@every soon").unwrap_err().to_string(),
            "failed to parse duration @every soon: time: invalid duration \"soon\""
        );
        assert!(matches!(parse("61 * * * *"), Err(ScheduleError::Field(_))));
        assert!(matches!(
            parse("* * * * funday"),
            Err(ScheduleError::Field(_))
        ));
        assert!(matches!(parse("* * 32 * *"), Err(ScheduleError::Field(_))));
    }
}
