//! Docker's human units (its `go-units` package), the one copy every skiff crate uses: the
//! durations `docker ps` prints and the sizes `--memory`, `--log-opt max-size` and friends
//! accept. Outputs and errors match Docker's; the tests below are go-units' own cases.

use std::time::Duration;

/// A size string Docker would refuse; the message is go-units' own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("invalid size: '{0}'")]
    InvalidSize(String),
    #[error("invalid suffix: '{0}'")]
    InvalidSuffix(String),
    /// The number part is not a number (Go's `strconv.ParseFloat` message).
    #[error("strconv.ParseFloat: parsing {0:?}: invalid syntax")]
    InvalidNumber(String),
}

/// `HumanDuration`: "Less than a second", "About a minute", "2 hours", "3 weeks" …
/// Negative durations count as zero.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours_f = d.as_secs_f64() / 3600.0;
    // Go rounds hours to the nearest (`int(d.Hours() + 0.5)`).
    let hours = (hours_f + 0.5) as u64;
    match () {
        _ if seconds < 1 => "Less than a second".into(),
        _ if seconds == 1 => "1 second".into(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        // Go truncates here (`int(d.Hours())/24/365`).
        _ => format!("{} years", hours_f as u64 / 24 / 365),
    }
}

/// [`human_duration`] of a signed number of seconds (a difference of two timestamps).
pub fn human_duration_secs(seconds: i64) -> String {
    human_duration(Duration::from_secs(seconds.max(0).unsigned_abs()))
}

/// `RAMInBytes`: binary units, case-insensitive, optional `b`/`ib` (`64m`, `1.5GiB`, `512k`);
/// what `--memory`, `--memory-swap` and `--shm-size` accept.
pub fn ram_in_bytes(size: &str) -> Result<i64, SizeError> {
    parse_size(size, 1024)
}

/// `FromHumanSize`: decimal units (`10m` is 10,000,000 bytes), otherwise like
/// [`ram_in_bytes`]; what `--log-opt max-size` accepts.
pub fn from_human_size(size: &str) -> Result<i64, SizeError> {
    parse_size(size, 1000)
}

/// go-units' `parseSize`: a number, an optional space, an optional suffix
/// (`k`, `m`, `g`, `t`, `p`, each optionally followed by `b` or `ib`, or just `b`).
fn parse_size(size: &str, base: i64) -> Result<i64, SizeError> {
    let Some(sep) = size.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(SizeError::InvalidSize(size.to_string()));
    };
    let (num, suffix) = if size.as_bytes()[sep] == b' ' {
        (&size[..sep], &size[sep + 1..])
    } else {
        (&size[..=sep], &size[sep + 1..])
    };
    let value: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| !v.is_nan())
        .ok_or_else(|| SizeError::InvalidNumber(num.to_string()))?;
    if value < 0.0 {
        return Err(SizeError::InvalidSize(size.to_string()));
    }
    if suffix.is_empty() {
        return Ok(value as i64);
    }
    if suffix.len() > 3 {
        return Err(SizeError::InvalidSuffix(suffix.to_string()));
    }
    let lower = suffix.to_ascii_lowercase();
    let bad = || SizeError::InvalidSuffix(lower.clone());
    let mut chars = lower.chars();
    let exponent = match chars.next() {
        Some('b') if lower.len() == 1 => return Ok(value as i64),
        Some('k') => 1,
        Some('m') => 2,
        Some('g') => 3,
        Some('t') => 4,
        Some('p') => 5,
        _ => return Err(bad()),
    };
    match &lower[1..] {
        "" | "b" | "ib" => {}
        _ => return Err(bad()),
    }
    Ok((value * (base as f64).powi(exponent)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> String {
        human_duration(Duration::from_secs(s))
    }

    /// go-units' own `TestHumanDuration` cases.
    #[test]
    fn durations_are_dockers() {
        assert_eq!(
            human_duration(Duration::from_millis(450)),
            "Less than a second"
        );
        assert_eq!(secs(0), "Less than a second");
        assert_eq!(secs(1), "1 second");
        assert_eq!(secs(15), "15 seconds");
        assert_eq!(secs(59), "59 seconds");
        assert_eq!(secs(60), "About a minute");
        assert_eq!(secs(119), "About a minute");
        assert_eq!(secs(120), "2 minutes");
        assert_eq!(secs(59 * 60), "59 minutes");
        assert_eq!(secs(3600), "About an hour");
        assert_eq!(secs(3600 + 29 * 60), "About an hour");
        assert_eq!(secs(100 * 60), "2 hours", "hours are rounded");
        assert_eq!(secs(2 * 3600), "2 hours");
        assert_eq!(secs(47 * 3600 + 29 * 60), "47 hours");
        assert_eq!(secs(48 * 3600), "2 days");
        assert_eq!(secs(13 * 86400), "13 days");
        assert_eq!(secs(14 * 86400), "2 weeks");
        assert_eq!(secs(59 * 86400), "8 weeks");
        assert_eq!(secs(60 * 86400), "2 months");
        assert_eq!(secs(365 * 2 * 86400 - 86400), "24 months");
        assert_eq!(secs(365 * 2 * 86400), "2 years");
        assert_eq!(secs(365 * 10 * 86400), "10 years");
        assert_eq!(human_duration_secs(-5), "Less than a second");
    }

    /// go-units' `TestRAMInBytes` cases.
    #[test]
    fn ram_sizes_parse_like_docker() {
        assert_eq!(ram_in_bytes("32"), Ok(32));
        assert_eq!(ram_in_bytes("32b"), Ok(32));
        assert_eq!(ram_in_bytes("32B"), Ok(32));
        assert_eq!(ram_in_bytes("32k"), Ok(32 * 1024));
        assert_eq!(ram_in_bytes("32K"), Ok(32 * 1024));
        assert_eq!(ram_in_bytes("32kb"), Ok(32 * 1024));
        assert_eq!(ram_in_bytes("32Kb"), Ok(32 * 1024));
        assert_eq!(ram_in_bytes("32Kib"), Ok(32 * 1024));
        assert_eq!(ram_in_bytes("32KIB"), Ok(32 * 1024));
        assert_eq!(ram_in_bytes("32Mb"), Ok(32 << 20));
        assert_eq!(ram_in_bytes("32Gb"), Ok(32 << 30));
        assert_eq!(ram_in_bytes("32Tb"), Ok(32 << 40));
        assert_eq!(ram_in_bytes("8Pb"), Ok(8 << 50));
        assert_eq!(ram_in_bytes("8 PB"), Ok(8 << 50));
        assert_eq!(ram_in_bytes("0.3m"), Ok(314_572));
        assert_eq!(
            ram_in_bytes("-1").unwrap_err().to_string(),
            "invalid size: '-1'"
        );
        assert_eq!(
            ram_in_bytes("").unwrap_err().to_string(),
            "invalid size: ''"
        );
        assert_eq!(
            ram_in_bytes("hello").unwrap_err().to_string(),
            "invalid size: 'hello'"
        );
        assert_eq!(
            ram_in_bytes("32MM").unwrap_err().to_string(),
            "invalid suffix: 'mm'"
        );
        assert_eq!(
            ram_in_bytes("32kib1").unwrap_err(),
            SizeError::InvalidNumber("32kib1".into())
        );
        assert_eq!(
            ram_in_bytes("32bb").unwrap_err().to_string(),
            "invalid suffix: 'bb'"
        );
        assert_eq!(
            ram_in_bytes("32 x").unwrap_err().to_string(),
            "invalid suffix: 'x'"
        );
        assert_eq!(
            ram_in_bytes("32 kibi").unwrap_err().to_string(),
            "invalid suffix: 'kibi'"
        );
    }

    /// go-units' `TestFromHumanSize` cases.
    #[test]
    fn human_sizes_parse_decimal_like_docker() {
        assert_eq!(from_human_size("32"), Ok(32));
        assert_eq!(from_human_size("32.3"), Ok(32));
        assert_eq!(from_human_size("32k"), Ok(32_000));
        assert_eq!(from_human_size("10m"), Ok(10_000_000));
        assert_eq!(from_human_size("32.5 KB"), Ok(32_500));
        assert_eq!(from_human_size("1.1g"), Ok(1_100_000_000));
        assert_eq!(from_human_size("2GiB"), Ok(2_000_000_000));
        assert!(from_human_size("1.2.3m").is_err());
    }
}
