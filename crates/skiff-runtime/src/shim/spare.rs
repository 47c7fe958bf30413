//! A spare shim: `skiff shim -` started before a container needs it, detached and waiting for
//! the path of its configuration on a pipe. Handing it a container saves that start the exec
//! and dynamic loading of the skiff binary (a few milliseconds of every `docker run`).
//! Dropping an unused spare closes its pipe, and it exits.

use std::io::{self, PipeReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};

use super::ShimError;

/// A started, detached shim waiting for a configuration.
pub struct Spare {
    config_in: ChildStdin,
    report: PipeReader,
}

impl Spare {
    /// Starts one from `exe` (the skiff binary). Blocking: call it from `spawn_blocking`.
    pub fn start(exe: &Path) -> Result<Spare, ShimError> {
        let failed = |op| {
            move |source| ShimError::Io {
                op,
                path: exe.to_path_buf(),
                source,
            }
        };
        let (report, writer) = std::io::pipe().map_err(failed("create a report pipe for"))?;
        let mut child = {
            // The command holds a copy of the report pipe's write end: dropped once spawned.
            let mut command = Command::new(exe);
            command
                .arg("shim")
                .arg("-")
                .stdin(Stdio::piped())
                .stdout(writer)
                .stderr(Stdio::null());
            command.spawn().map_err(failed("run"))?
        };
        let config_in = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("its stdin is not a pipe"))
            .map_err(failed("start a spare shim from"))?;
        // The launched process detaches (forks the real spare) and exits at once.
        child.wait().map_err(failed("wait for"))?;
        Ok(Spare { config_in, report })
    }

    /// Gives the spare its configuration; returns the pipe it reports on. Fails when the
    /// spare is gone (the caller then launches a shim the usual way).
    pub(super) fn hand(mut self, config_path: &Path) -> io::Result<PipeReader> {
        let mut line = config_path.as_os_str().as_bytes().to_vec();
        if line.contains(&b'\n') {
            return Err(io::Error::other("configuration path with a newline"));
        }
        line.push(b'\n');
        self.config_in.write_all(&line)?;
        Ok(self.report)
    }
}
