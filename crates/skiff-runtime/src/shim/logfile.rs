//! The container log in Docker's json-file format: one JSON object per line of output,
//! `{"log":"…\n","stream":"stdout","time":"<RFC 3339 nanoseconds, UTC>"}`, rotated to
//! `<log>.1`, `<log>.2`, … like Docker's `max-size`/`max-file` options.
//!
//! Owns only the file and its rotation; it never reads the container's output itself.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Docker splits lines longer than this into partial entries (without a trailing newline).
const MAX_LINE: usize = 16 * 1024;

#[derive(Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: String,
}

/// An open json-file log with rotation.
pub(crate) struct JsonLog {
    path: PathBuf,
    file: File,
    /// Entries not written yet.
    pending: Vec<u8>,
    size: u64,
    max_size: Option<u64>,
    max_files: u32,
}

impl JsonLog {
    /// Opens (appending to) the log at `path`.
    pub(crate) fn open(path: &Path, max_size: Option<u64>, max_files: u32) -> io::Result<JsonLog> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(JsonLog {
            path: path.to_path_buf(),
            file,
            pending: Vec::new(),
            size,
            max_size,
            max_files,
        })
    }

    /// Queues one entry (written by [`Self::flush`]); `line` keeps its trailing newline if it
    /// had one.
    fn write_entry(&mut self, stream: &str, line: &[u8]) -> io::Result<()> {
        if self.max_size.is_some_and(|max| self.size >= max) {
            self.flush()?;
            self.rotate()?;
        }
        let entry = Entry {
            log: &String::from_utf8_lossy(line),
            stream,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        };
        let before = self.pending.len();
        serde_json::to_writer(&mut self.pending, &entry).map_err(io::Error::other)?;
        self.pending.push(b'\n');
        self.size += (self.pending.len() - before) as u64;
        Ok(())
    }

    /// Writes the queued entries (one write per chunk of output, not one per line).
    fn flush(&mut self) -> io::Result<()> {
        let result = self.file.write_all(&self.pending);
        self.pending.clear();
        result
    }

    /// Shifts `log.N-1` … `log.1` up by one, moves the current file to `log.1` and starts an
    /// empty one. With a single file allowed, the current file is truncated instead.
    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files <= 1 {
            self.file.set_len(0)?;
        } else {
            let numbered = |n: u32| {
                let mut name = self.path.clone().into_os_string();
                name.push(format!(".{n}"));
                PathBuf::from(name)
            };
            match std::fs::remove_file(numbered(self.max_files - 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            for n in (1..self.max_files - 1).rev() {
                match std::fs::rename(numbered(n), numbered(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// Splits one stream's output into lines for the log, holding an unfinished line until its
/// newline arrives (or it grows past Docker's partial-line limit).
#[derive(Default)]
pub(crate) struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// Adds output and writes every complete line to `log` as `stream`.
    pub(crate) fn push(
        &mut self,
        log: &mut JsonLog,
        stream: &str,
        mut data: &[u8],
    ) -> io::Result<()> {
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            let (line, rest) = data.split_at(end + 1);
            if self.pending.is_empty() {
                write_split(log, stream, line)?;
            } else {
                self.pending.extend_from_slice(line);
                let whole = std::mem::take(&mut self.pending);
                write_split(log, stream, &whole)?;
            }
            data = rest;
        }
        self.pending.extend_from_slice(data);
        if self.pending.len() >= MAX_LINE {
            let whole = self.pending.len() / MAX_LINE * MAX_LINE;
            let rest = self.pending.split_off(whole);
            let partial = std::mem::replace(&mut self.pending, rest);
            write_split(log, stream, &partial)?;
        }
        Ok(())
    }

    /// Writes what is left of an unfinished line (at the end of the output).
    pub(crate) fn flush(&mut self, log: &mut JsonLog, stream: &str) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let partial = std::mem::take(&mut self.pending);
        log.write_entry(stream, &partial)
    }
}

/// Writes `line` as entries of at most [`MAX_LINE`] bytes (Docker's partial messages).
fn write_split(log: &mut JsonLog, stream: &str, line: &[u8]) -> io::Result<()> {
    line.chunks(MAX_LINE)
        .try_for_each(|chunk| log.write_entry(stream, chunk))
}

/// A container's log: its stdout and stderr lines in one json-file log.
pub(crate) struct ContainerLog {
    log: JsonLog,
    stdout: LineBuffer,
    stderr: LineBuffer,
}

impl ContainerLog {
    pub(crate) fn new(log: JsonLog) -> ContainerLog {
        ContainerLog {
            log,
            stdout: LineBuffer::default(),
            stderr: LineBuffer::default(),
        }
    }

    /// Logs output of `stream` (`stdout` or `stderr`). Failures are reported and skipped: the
    /// container must never wait for its log.
    pub(crate) fn write(&mut self, stream: &'static str, data: &[u8]) {
        let lines = if stream == "stderr" {
            &mut self.stderr
        } else {
            &mut self.stdout
        };
        if let Err(e) = lines
            .push(&mut self.log, stream, data)
            .and_then(|()| self.log.flush())
        {
            tracing::warn!(error = %e, "writing the container log failed");
        }
    }

    /// Writes unfinished lines (the output has ended).
    pub(crate) fn finish(&mut self) {
        for (lines, stream) in [(&mut self.stdout, "stdout"), (&mut self.stderr, "stderr")] {
            if let Err(e) = lines
                .flush(&mut self.log, stream)
                .and_then(|()| self.log.flush())
            {
                tracing::warn!(error = %e, "writing the container log failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container log at `c.log` in a fresh `skiff-log` temp dir (kept alive by the caller).
    fn container_log(
        max_size: Option<u64>,
        max_files: u32,
    ) -> (tempfile::TempDir, PathBuf, ContainerLog) {
        let dir = tempfile::Builder::new()
            .prefix("skiff-log")
            .tempdir()
            .unwrap();
        let path = dir.path().join("c.log");
        let log = ContainerLog::new(JsonLog::open(&path, max_size, max_files).unwrap());
        (dir, path, log)
    }

    fn entries(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_become_json_file_entries_split_at_newlines() {
        let (_dir, path, mut log) = container_log(None, 1);
        log.write("stdout", b"hel");
        log.write("stdout", b"lo\nwor\"ld\n\xffpart");
        log.finish();
        let got = entries(&path);
        let logs: Vec<_> = got.iter().map(|e| e["log"].as_str().unwrap()).collect();
        assert_eq!(logs, ["hello\n", "wor\"ld\n", "\u{fffd}part"]);
        assert!(got.iter().all(|e| e["stream"] == "stdout"));
        let time = got[0]["time"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert!(time.ends_with('Z'), "{time}");
    }

    #[test]
    fn overlong_lines_are_split_into_partial_entries() {
        let (_dir, path, mut log) = container_log(None, 1);
        let mut long = vec![b'a'; MAX_LINE + 10];
        long.push(b'\n');
        log.write("stderr", &long);
        let got = entries(&path);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["log"].as_str().unwrap().len(), MAX_LINE);
        assert_eq!(got[1]["log"].as_str().unwrap(), "aaaaaaaaaa\n");
        assert_eq!(got[1]["stream"], "stderr");
    }

    #[test]
    fn rotation_keeps_max_files_like_docker() {
        let (dir, path, mut log) = container_log(Some(10), 3);
        for i in 0..5 {
            log.write("stdout", format!("line{i}\n").as_bytes());
        }
        let numbered = |n: u32| dir.path().join(format!("c.log.{n}"));
        assert_eq!(entries(&path)[0]["log"], "line4\n");
        assert_eq!(entries(&numbered(1))[0]["log"], "line3\n");
        assert_eq!(entries(&numbered(2))[0]["log"], "line2\n");
        assert!(!numbered(3).exists());
    }

    #[test]
    fn stdout_and_stderr_keep_separate_unfinished_lines() {
        let (_dir, path, mut log) = container_log(None, 1);
        log.write("stdout", b"out-");
        log.write("stderr", b"err\n");
        log.write("stdout", b"done\n");
        let got: Vec<_> = entries(&path)
            .iter()
            .map(|e| (e["stream"].clone(), e["log"].clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("stderr".into(), "err\n".into()),
                ("stdout".into(), "out-done\n".into())
            ]
        );
    }

    #[test]
    fn single_file_rotation_truncates() {
        let (dir, path, mut log) = container_log(Some(10), 1);
        log.write("stdout", b"first\nsecond\n");
        let got = entries(&path);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["log"], "second\n");
        assert!(!dir.path().join("c.log.1").exists());
    }
}
