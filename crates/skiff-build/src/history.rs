//! The `created_by` text Docker's classic builder records in an image's history for a step
//! that only changes the config (`CMD`, `ENV`, `EXPOSE`, …), so that `docker history` reads
//! as it does for an image dockerd built. Docker formats these with Go's `%q` and `%v`
//! verbs; the helpers here reproduce those formats.

use crate::plan::{HealthConfig, Op};

/// The part after `#(nop)  ` for a config-only step; `None` for `RUN`, `COPY`/`ADD` and
/// `WORKDIR`, whose text the executor writes (it knows the resolved paths).
pub fn nop_comment(op: &Op, expose_as_written: &[String]) -> Option<String> {
    let pairs = |keyword: &str, kv: &[(String, String)]| {
        kv.iter().fold(keyword.to_string(), |mut s, (k, v)| {
            s.push_str(&format!(" {k}={v}"));
            s
        })
    };
    Some(match op {
        Op::Run { .. } | Op::Copy { .. } | Op::Workdir(_) => return None,
        Op::Env(kv) => pairs("ENV", kv),
        Op::Label(kv) => pairs("LABEL", kv),
        Op::User(u) => format!("USER {u}"),
        Op::Cmd(argv) => format!("CMD {}", go_quoted_list(argv)),
        Op::Entrypoint(argv) => format!("ENTRYPOINT {}", go_quoted_list(argv)),
        Op::Expose(_) => {
            let mut ports = expose_as_written.to_vec();
            ports.sort();
            format!("EXPOSE {}", ports.join(" "))
        }
        Op::Volume(v) => format!("VOLUME {}", go_list(v)),
        Op::StopSignal(s) => format!("STOPSIGNAL {s}"),
        Op::Healthcheck(h) => format!("HEALTHCHECK {}", go_health(h)),
        Op::Shell(s) => format!("SHELL {}", go_list(s)),
        Op::Onbuild(t) => format!("ONBUILD {t}"),
        Op::Maintainer(m) => format!("MAINTAINER {m}"),
        Op::Arg(args) => arg_comment(args),
    })
}

/// `ARG name[=default] …` as declared.
pub fn arg_comment(declared: &[(String, Option<String>)]) -> String {
    let words: Vec<String> = declared
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    format!("ARG {}", words.join(" "))
}

/// Go's `%q` of a string (`strconv.Quote`).
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => push_escaped(&mut out, c),
        }
    }
    out.push('"');
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
        c => out.push(c),
    }
}

/// Go's `%q` of an integer: a quoted character literal (`strconv.QuoteRune`).
fn go_quote_rune(n: u32) -> String {
    let mut out = String::from("'");
    match char::from_u32(n) {
        Some('\'') => out.push_str("\\'"),
        Some('\\') => out.push_str("\\\\"),
        Some(c) => push_escaped(&mut out, c),
        None => out.push('\u{fffd}'),
    }
    out.push('\'');
    out
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", items.join(" "))
}

/// Go's `%v` of a `[]string`: `[a b]`.
fn go_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// `v / unit` with the remainder as trimmed decimals (`1.5`).
fn decimal(v: u64, unit: u64) -> String {
    let (int, rem) = (v / unit, v % unit);
    if rem == 0 {
        return int.to_string();
    }
    let width = unit.to_string().len() - 1;
    let frac = format!("{rem:0width$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// Go's `time.Duration.String()` of `ns` nanoseconds.
fn go_duration(ns: u64) -> String {
    const S: u64 = 1_000_000_000;
    match ns {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", decimal(n, 1_000)),
        n if n < S => format!("{}ms", decimal(n, 1_000_000)),
        n => {
            let (h, m) = (n / (3600 * S), (n / (60 * S)) % 60);
            let mut out = String::new();
            if h > 0 {
                out.push_str(&format!("{h}h"));
            }
            if h > 0 || m > 0 {
                out.push_str(&format!("{m}m"));
            }
            out.push_str(&format!("{}s", decimal(n % (60 * S), S)));
            out
        }
    }
}

/// Go's `%q` of a `*container.HealthConfig` (Docker 25 and later: with `StartInterval`).
fn go_health(h: &HealthConfig) -> String {
    format!(
        "&{{{} {} {} {} {} {}}}",
        go_quoted_list(&h.test),
        go_quote(&go_duration(h.interval)),
        go_quote(&go_duration(h.timeout)),
        go_quote(&go_duration(h.start_period)),
        go_quote(&go_duration(h.start_interval)),
        go_quote_rune(h.retries)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn formats_as_go_does() {
        assert_eq!(
            go_quoted_list(&s(&["sh", "-c", "echo \"hi\"\n"])),
            r#"["sh" "-c" "echo \"hi\"\n"]"#
        );
        assert_eq!(go_list(&s(&["/v", "/w"])), "[/v /w]");
        assert_eq!(go_duration(5_000_000_000), "5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_quote_rune(0), r"'\x00'");
        assert_eq!(go_quote_rune(3), r"'\x03'");
        assert_eq!(go_quote_rune(65), "'A'");
    }

    #[test]
    fn config_steps_read_like_dockerd_history() {
        let op = Op::Env(vec![
            ("X".into(), "1".into()),
            ("Y".into(), "two words".into()),
        ]);
        assert_eq!(nop_comment(&op, &[]).unwrap(), "ENV X=1 Y=two words");
        let op = Op::Expose(s(&["80/tcp", "443/udp"]));
        assert_eq!(
            nop_comment(&op, &s(&["80", "443/udp"])).unwrap(),
            "EXPOSE 443/udp 80"
        );
        let op = Op::Healthcheck(HealthConfig {
            test: s(&["CMD-SHELL", "echo ok"]),
            interval: 5_000_000_000,
            timeout: 0,
            start_period: 0,
            start_interval: 0,
            retries: 0,
        });
        assert_eq!(
            nop_comment(&op, &[]).unwrap(),
            r#"HEALTHCHECK &{["CMD-SHELL" "echo ok"] "5s" "0s" "0s" "0s" '\x00'}"#
        );
        assert_eq!(nop_comment(&Op::Workdir("/a".into()), &[]), None);
    }
}
