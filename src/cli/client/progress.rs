//! Docker's JSON progress messages (pull, push) drawn as the docker CLI draws them: on a
//! terminal one line per layer, updated in place with its bar; otherwise plain lines, one
//! per status change, without bars.

use std::collections::HashMap;
use std::io::Write;

use http_body_util::BodyExt;
use serde::Deserialize;

use super::transport::RawReply;

/// One message of the stream.
#[derive(Debug, Default, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// `{}` on per-layer lines, byte counts while transferring.
    #[serde(default, rename = "progressDetail")]
    pub progress_detail: Option<serde_json::Value>,
    /// The bar the daemon rendered.
    #[serde(default)]
    pub progress: Option<String>,
    #[serde(default)]
    pub aux: Option<serde_json::Value>,
    #[serde(default, rename = "errorDetail")]
    pub error_detail: Option<serde_json::Value>,
    #[serde(default)]
    pub error: Option<String>,
}

impl Message {
    /// Whether the daemon sent byte counts (a transfer line, drawn only on a terminal).
    fn has_bytes(&self) -> bool {
        self.progress_detail
            .as_ref()
            .is_some_and(|d| d.get("current").is_some() || d.get("total").is_some())
    }
}

/// Draws messages; layer lines are kept in place on a terminal.
pub struct Printer<W: Write> {
    out: W,
    tty: bool,
    /// Layer id → its line, counted from the first layer line of the current block.
    lines: HashMap<String, usize>,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, tty: bool) -> Self {
        Printer {
            out,
            tty,
            lines: HashMap::new(),
        }
    }

    pub fn show(&mut self, m: &Message) -> std::io::Result<()> {
        if m.aux.is_some() {
            return Ok(());
        }
        match (&m.id, &m.progress_detail) {
            (Some(id), Some(_)) => {
                let next = self.lines.len();
                let line = *self.lines.entry(id.clone()).or_insert(next);
                if line == next && self.tty {
                    writeln!(self.out)?;
                }
                let up = self.lines.len() - line;
                if self.tty {
                    write!(self.out, "\x1b[{up}A")?;
                }
                self.line(m)?;
                if self.tty {
                    write!(self.out, "\x1b[{up}B")?;
                }
            }
            _ => {
                // A line that is not about a layer ends the block of layer lines.
                self.lines.clear();
                self.line(m)?;
            }
        }
        self.out.flush()
    }

    fn line(&mut self, m: &Message) -> std::io::Result<()> {
        let status = m.status.as_deref().unwrap_or_default();
        let in_place = self.tty && m.progress_detail.is_some();
        if in_place {
            write!(self.out, "\x1b[2K\r")?;
        } else if m.has_bytes() {
            // Plain output shows status changes, not every transfer step.
            return Ok(());
        }
        if let Some(id) = &m.id {
            write!(self.out, "{id}: ")?;
        }
        if in_place {
            match m.progress.as_deref().filter(|p| !p.is_empty()) {
                Some(bar) => write!(self.out, "{status} {bar}\r"),
                None => write!(self.out, "{status}\r"),
            }
        } else {
            writeln!(self.out, "{status}")
        }
    }
}

/// Reads a progress reply to its end, drawing each message with `printer` (when given)
/// and handing `aux` records to `aux`. An error message in the stream ends it as an error
/// carrying the daemon's words; an HTTP error status is Docker's `Error response from
/// daemon: …`.
pub async fn follow<W: Write>(
    reply: RawReply,
    mut printer: Option<&mut Printer<W>>,
    mut aux: impl FnMut(&serde_json::Value),
) -> anyhow::Result<()> {
    let status = reply.status();
    let mut body = reply.into_body();
    if !status.is_success() {
        let bytes = body.collect().await?.to_bytes();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned());
        anyhow::bail!("Error response from daemon: {message}");
    }
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            handle(&line, printer.as_deref_mut(), &mut aux)?;
        }
    }
    handle(&pending, printer, &mut aux)
}

fn handle<W: Write>(
    line: &[u8],
    printer: Option<&mut Printer<W>>,
    aux: &mut impl FnMut(&serde_json::Value),
) -> anyhow::Result<()> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let m: Message = serde_json::from_slice(line)
        .map_err(|e| anyhow::anyhow!("invalid progress message from the daemon: {e}"))?;
    if m.error.is_some() || m.error_detail.is_some() {
        let message = m
            .error_detail
            .as_ref()
            .and_then(|d| d["message"].as_str())
            .map(str::to_owned)
            .or(m.error)
            .unwrap_or_default();
        anyhow::bail!("{message}");
    }
    if let Some(a) = &m.aux {
        aux(a);
    }
    if let Some(p) = printer {
        p.show(&m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(json: &str) -> Message {
        serde_json::from_str(json).unwrap()
    }

    fn draw(tty: bool, lines: &[&str]) -> String {
        let mut out = Vec::new();
        let mut p = Printer::new(&mut out, tty);
        for l in lines {
            p.show(&msg(l)).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    const PULL: &[&str] = &[
        r#"{"status":"Pulling from t/bb","id":"1"}"#,
        r#"{"status":"Pulling fs layer","progressDetail":{},"id":"aaa"}"#,
        r#"{"status":"Pulling fs layer","progressDetail":{},"id":"bbb"}"#,
        r#"{"status":"Downloading","progressDetail":{"current":5,"total":10},"progress":"[==>  ]","id":"aaa"}"#,
        r#"{"status":"Pull complete","progressDetail":{},"id":"aaa"}"#,
        r#"{"status":"Digest: sha256:00"}"#,
    ];

    #[test]
    fn plain_output_has_one_line_per_status_and_no_bars() {
        assert_eq!(
            draw(false, PULL),
            "1: Pulling from t/bb\naaa: Pulling fs layer\nbbb: Pulling fs layer\naaa: Pull complete\nDigest: sha256:00\n"
        );
    }

    #[test]
    fn a_terminal_updates_layer_lines_in_place() {
        let out = draw(true, PULL);
        // Two layer lines opened, then layer aaa (two lines up) redrawn with its bar.
        assert!(
            out.contains("\x1b[2A\x1b[2K\raaa: Downloading [==>  ]\r\x1b[2B"),
            "{out:?}"
        );
        assert!(out.ends_with("Digest: sha256:00\n"), "{out:?}");
        assert_eq!(out.matches("\x1b[2K\rbbb: Pulling fs layer").count(), 1);
    }
}
