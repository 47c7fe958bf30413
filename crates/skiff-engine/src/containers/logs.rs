//! `docker logs` from the json-file log the shim writes (`<id>-json.log`, rotated to
//! `.1`, `.2`, …): tail, since/until, timestamps, and follow (noticing new lines and
//! rotation, ending when the container stops).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::Life;
use crate::error::{EngineError, Result};
use crate::{Engine, LogChunk, LogOptions, LogStream, Logs};

/// How often a follower looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
    #[serde(default)]
    attrs: std::collections::BTreeMap<String, String>,
}

/// One parsed log entry.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    stream: LogStream,
    time: DateTime<Utc>,
    log: String,
    /// json-file's `attrs` (`--log-opt labels=…`), sorted by name.
    attrs: std::collections::BTreeMap<String, String>,
}

fn parse_line(line: &[u8]) -> Option<Entry> {
    let l: Line = serde_json::from_slice(line).ok()?;
    let time = DateTime::parse_from_rfc3339(&l.time)
        .ok()?
        .with_timezone(&Utc);
    let stream = if l.stream == "stderr" {
        LogStream::Stderr
    } else {
        LogStream::Stdout
    };
    Some(Entry {
        stream,
        time,
        log: l.log,
        attrs: l.attrs,
    })
}

/// What the reader keeps and how it prints.
#[derive(Debug, Clone)]
struct Selection {
    stdout: bool,
    stderr: bool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    timestamps: bool,
    details: bool,
    /// None = all.
    tail: Option<usize>,
}

fn to_time(secs: Option<f64>) -> Option<DateTime<Utc>> {
    let s = secs.filter(|s| *s > 0.0)?;
    DateTime::from_timestamp(s.trunc() as i64, ((s.fract()) * 1e9) as u32)
}

impl Selection {
    fn new(opts: &LogOptions) -> Result<Selection> {
        // Like moby, a tail that is not a number (`all`, `bogus`) or is negative means all.
        let tail = opts
            .tail
            .as_deref()
            .and_then(|n| n.trim().parse::<i64>().ok())
            .and_then(|n| usize::try_from(n).ok());
        Ok(Selection {
            stdout: opts.stdout,
            stderr: opts.stderr,
            since: to_time(opts.since),
            until: to_time(opts.until),
            timestamps: opts.timestamps,
            details: opts.details,
            tail,
        })
    }

    fn wanted(&self, e: &Entry) -> bool {
        let stream_ok = match e.stream {
            LogStream::Stdout => self.stdout,
            LogStream::Stderr => self.stderr,
        };
        stream_ok && self.since.is_none_or(|s| e.time >= s)
    }

    fn past_until(&self, e: &Entry) -> bool {
        self.until.is_some_and(|u| e.time > u)
    }

    fn chunk(&self, e: Entry) -> LogChunk {
        let mut data = e.log;
        if self.details {
            // moby's attrsByteSlice: `k=v` pairs sorted by name, joined by commas.
            let attrs: Vec<String> = e.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            data = format!("{} {data}", attrs.join(","));
        }
        if self.timestamps {
            data = format!("{} {data}", e.time.format("%Y-%m-%dT%H:%M:%S%.9fZ"));
        }
        LogChunk {
            stream: e.stream,
            data: Bytes::from(data),
        }
    }
}

/// The log files oldest first: `log.N` … `log.1`, `log`.
fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            if let Some(n) = file
                .strip_prefix(name)
                .and_then(|s| s.strip_prefix('.'))
                .and_then(|s| s.parse().ok())
            {
                rotated.push((n, entry.path()));
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    out.push(path.to_path_buf());
    out
}

/// Reads complete lines from `reader`, keeping a trailing partial line in `partial`.
fn read_lines(reader: &mut impl Read, partial: &mut Vec<u8>, mut f: impl FnMut(&[u8])) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                partial.extend_from_slice(&buf[..n]);
                while let Some(i) = partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=i).collect();
                    f(&line[..line.len() - 1]);
                }
            }
        }
    }
}

/// Sends what the log holds now, then (when following) what gets appended, until the
/// container stops or the receiver goes away. Runs on a blocking thread.
fn pump(
    path: PathBuf,
    sel: Selection,
    follow: bool,
    life: watch::Receiver<Life>,
    tx: mpsc::Sender<LogChunk>,
) {
    let send = |e: Entry| -> bool {
        if !sel.wanted(&e) {
            return true;
        }
        tx.blocking_send(sel.chunk(e)).is_ok()
    };
    // The existing content, with tail applied over all streams like Docker.
    let mut entries: std::collections::VecDeque<Entry> = Default::default();
    let mut current: Option<(File, u64)> = None;
    let files = log_files(&path);
    let last = files.len() - 1;
    for (i, file) in files.into_iter().enumerate() {
        let Ok(mut f) = File::open(&file) else {
            continue;
        };
        let mut partial = Vec::new();
        read_lines(&mut f, &mut partial, |line| {
            if let Some(e) = parse_line(line) {
                entries.push_back(e);
                if sel.tail.is_some_and(|t| entries.len() > t) {
                    entries.pop_front();
                }
            }
        });
        if i == last {
            let consumed = f.stream_position().unwrap_or(0) - partial.len() as u64;
            let ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(consumed));
            current = Some((f, ino));
        }
    }
    if sel.tail == Some(0) {
        entries.clear();
    }
    for e in entries {
        if sel.past_until(&e) {
            return;
        }
        if !send(e) {
            return;
        }
    }
    if !follow {
        return;
    }
    let mut partial = Vec::new();
    let mut reader = current.map(|(f, ino)| (BufReader::new(f), ino));
    loop {
        let running = life.borrow().running;
        if reader.is_none() {
            if let Ok(f) = File::open(&path) {
                let ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
                reader = Some((BufReader::new(f), ino));
            }
        }
        let mut stop = false;
        if let Some((r, ino)) = reader.as_mut() {
            let mut drain = |r: &mut BufReader<File>| {
                read_lines(r, &mut partial, |line| {
                    if stop {
                        return;
                    }
                    if let Some(e) = parse_line(line) {
                        if sel.past_until(&e) || !send(e) {
                            stop = true;
                        }
                    }
                });
            };
            drain(r);
            // Rotated: finish the old file, then continue with the new one.
            let rotated = std::fs::metadata(&path)
                .map(|m| m.ino() != *ino)
                .unwrap_or(false);
            if rotated {
                drain(r);
                partial.clear();
                reader = None;
                continue;
            }
        }
        if stop || tx.is_closed() || !running {
            return;
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

impl Engine {
    pub(crate) async fn do_logs(&self, key: &str, opts: LogOptions) -> Result<Logs> {
        let c = self.find(key)?;
        let rec = c.rec();
        if rec
            .host_config
            .log_config
            .as_ref()
            .and_then(|l| l.typ.as_deref())
            == Some("none")
        {
            return Err(EngineError::invalid(
                "configured logging driver does not support reading",
            ));
        }
        let sel = Selection::new(&opts)?;
        let tty = rec.config.tty.unwrap_or(false);
        let (tx, rx) = mpsc::channel(256);
        let path = c.log_path();
        let life = c.life.subscribe();
        tokio::task::spawn_blocking(move || pump(path, sel, opts.follow, life, tx));
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
                .boxed();
        Ok(Logs { tty, stream })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(stream: &str, text: &str, time: &str) -> String {
        format!(
            "{}\n",
            serde_json::json!({"log": text, "stream": stream, "time": time})
        )
    }

    fn opts(tail: Option<&str>) -> LogOptions {
        LogOptions {
            stdout: true,
            stderr: true,
            tail: tail.map(str::to_string),
            ..Default::default()
        }
    }

    fn collect(path: &Path, o: LogOptions) -> Vec<String> {
        let (tx, mut rx) = mpsc::channel(100);
        let life = watch::channel(Life::default()).1;
        pump(
            path.to_path_buf(),
            Selection::new(&o).unwrap(),
            false,
            life,
            tx,
        );
        let mut out = Vec::new();
        while let Ok(c) = rx.try_recv() {
            out.push(String::from_utf8(c.data.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn follow_sees_appends_across_rotation_and_ends_with_the_container() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        std::fs::write(&log, line("stdout", "1\n", "2024-01-01T00:00:01Z")).unwrap();
        let (life_tx, life) = watch::channel(Life {
            running: true,
            ..Life::default()
        });
        let (tx, mut rx) = mpsc::channel(100);
        let mut o = opts(None);
        o.follow = true;
        let sel = Selection::new(&o).unwrap();
        let path = log.clone();
        let follower = std::thread::spawn(move || pump(path, sel, true, life, tx));
        let next = |rx: &mut mpsc::Receiver<LogChunk>| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(c) = rx.try_recv() {
                    return String::from_utf8(c.data.to_vec()).unwrap();
                }
                assert!(std::time::Instant::now() < deadline, "no log line arrived");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        assert_eq!(next(&mut rx), "1\n");
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(line("stdout", "2\n", "2024-01-01T00:00:02Z").as_bytes())
            .unwrap();
        assert_eq!(next(&mut rx), "2\n");
        // Rotation: a last line lands in the old file, then the file moves to .1.
        f.write_all(line("stdout", "3\n", "2024-01-01T00:00:03Z").as_bytes())
            .unwrap();
        std::fs::rename(&log, log.with_extension("log.1")).unwrap();
        std::fs::write(&log, line("stderr", "4\n", "2024-01-01T00:00:04Z")).unwrap();
        assert_eq!(next(&mut rx), "3\n");
        assert_eq!(next(&mut rx), "4\n");
        life_tx.send_modify(|l| l.running = false);
        follower.join().unwrap();
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn tail_since_and_timestamps_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        std::fs::write(
            log.with_extension("log.1"),
            line("stdout", "one\n", "2024-01-01T00:00:01.000000001Z"),
        )
        .unwrap();
        std::fs::write(
            &log,
            line("stderr", "two\n", "2024-01-01T00:00:02Z")
                + &line("stdout", "three\n", "2024-01-01T00:00:03Z")
                + "{partial",
        )
        .unwrap();
        assert_eq!(collect(&log, opts(None)), vec!["one\n", "two\n", "three\n"]);
        assert_eq!(collect(&log, opts(Some("2"))), vec!["two\n", "three\n"]);
        assert_eq!(collect(&log, opts(Some("0"))), Vec::<String>::new());
        let mut o = opts(None);
        o.stderr = false;
        o.timestamps = true;
        assert_eq!(
            collect(&log, o),
            vec![
                "2024-01-01T00:00:01.000000001Z one\n",
                "2024-01-01T00:00:03.000000000Z three\n"
            ]
        );
        let mut o = opts(None);
        o.since = Some(1704067202.0);
        assert_eq!(collect(&log, o), vec!["two\n", "three\n"]);
        let mut o = opts(None);
        o.until = Some(1704067202.5);
        assert_eq!(collect(&log, o), vec!["one\n", "two\n"]);
        // Like moby, a tail that is no number shows everything.
        assert_eq!(collect(&log, opts(Some("x"))).len(), 3);
        assert_eq!(collect(&log, opts(Some("-1"))).len(), 3);
        // --details: the entry's attributes (none here) and a space before each line.
        let mut o = opts(Some("1"));
        o.details = true;
        o.timestamps = true;
        assert_eq!(
            collect(&log, o),
            vec!["2024-01-01T00:00:03.000000000Z  three\n"]
        );
        std::fs::write(
            &log,
            r#"{"log":"x\n","stream":"stdout","time":"2024-01-01T00:00:04Z","attrs":{"b":"2","a":"1"}}"#
                .to_owned()
                + "\n",
        )
        .unwrap();
        let mut o = opts(Some("1"));
        o.details = true;
        assert_eq!(collect(&log, o), vec!["a=1,b=2 x\n"]);
    }
}
