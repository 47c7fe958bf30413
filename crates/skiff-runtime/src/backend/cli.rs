//! The `runc` and `crun` command-line runtimes: the same OCI CLI (`create --bundle
//! --pid-file`, `start`, `kill`, `pause`, `resume`, `exec --process --detach`, `delete`), run
//! with `--root <runtime_root>` and a JSON `--log` so that the runtime's own error reaches the
//! caller even when its stderr is the container's.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{write_process, Backend, BackendError, Result, Scratch, Stdio};
use crate::cgroups;

/// An OCI runtime driven through its command line.
pub struct CliRuntime {
    name: &'static str,
    root: PathBuf,
}

impl CliRuntime {
    pub fn runc(root: &Path) -> Self {
        CliRuntime {
            name: "runc",
            root: root.to_path_buf(),
        }
    }

    pub fn crun(root: &Path) -> Self {
        CliRuntime {
            name: "crun",
            root: root.to_path_buf(),
        }
    }

    fn failed(&self, op: &str, message: String) -> BackendError {
        // runc's own messages already start with "runc create failed: "; say it once.
        let prefix = format!("{} {op} failed: ", self.name);
        let message = message
            .strip_prefix(&prefix)
            .map(str::to_string)
            .unwrap_or(message);
        BackendError::failed(self.name, op, message)
    }

    fn command(&self, log: Option<&Path>) -> Command {
        let mut cmd = Command::new(self.name);
        cmd.arg("--root").arg(&self.root);
        if let Some(log) = log {
            cmd.arg("--log").arg(log).arg("--log-format").arg("json");
        }
        cmd
    }

    fn ensure_exists(&self, id: &str) -> Result<()> {
        if self.root.join(id).is_dir() {
            Ok(())
        } else {
            Err(BackendError::NotFound(id.to_string()))
        }
    }

    /// Runs a short command whose output is the runtime's own; returns its stdout.
    fn run(&self, op: &str, args: &[&str]) -> Result<String> {
        let out = self
            .command(None)
            .args(args)
            .output()
            .map_err(|e| self.spawn_error(op, e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(self.failed(op, String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    }

    fn spawn_error(&self, op: &str, e: std::io::Error) -> BackendError {
        if e.kind() == std::io::ErrorKind::NotFound {
            BackendError::Unavailable(self.name.into(), format!("{} not found in PATH", self.name))
        } else {
            self.failed(op, format!("cannot run {}: {e}", self.name))
        }
    }

    /// Runs a command whose stdio may belong to a container: its errors are read from the
    /// JSON log (plus stderr when it was ours).
    fn run_with_stdio(
        &self,
        op: &str,
        scratch: &Scratch,
        args: Vec<std::ffi::OsString>,
        stdio: Stdio,
    ) -> Result<()> {
        let log = scratch.path("runtime.log");
        let mut cmd = self.command(Some(&log));
        cmd.arg(op);
        let console = match stdio {
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => {
                cmd.stdin(stdin).stdout(stdout).stderr(stderr);
                false
            }
            Stdio::Console { socket } => {
                cmd.arg("--console-socket").arg(socket);
                cmd.stdin(std::process::Stdio::null());
                true
            }
        };
        cmd.args(args);
        let (status, stderr) = if console {
            let out = cmd.output().map_err(|e| self.spawn_error(op, e))?;
            (
                out.status,
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            )
        } else {
            let status = cmd.status().map_err(|e| self.spawn_error(op, e))?;
            (status, String::new())
        };
        // `cmd` still holds the container's descriptors until dropped.
        drop(cmd);
        if status.success() {
            return Ok(());
        }
        let mut message = log_errors(&std::fs::read_to_string(&log).unwrap_or_default());
        if message.is_empty() {
            message = stderr;
        }
        if message.is_empty() {
            message = format!("exited with {status}");
        }
        Err(self.failed(op, message))
    }

    /// Why this runtime cannot run here, if it cannot.
    fn unavailable_reason(&self) -> Option<String> {
        if !in_path(self.name) {
            return Some(format!("{} not found in PATH", self.name));
        }
        if self.name == "crun" {
            let controllers = Path::new("/sys/fs/cgroup/unified/cgroup.controllers");
            if let Ok(list) = std::fs::read_to_string(controllers) {
                if !list.trim().is_empty() {
                    return Some(format!(
                        "crun refuses hybrid cgroups while {} is not empty (it lists: {})",
                        controllers.display(),
                        list.trim()
                    ));
                }
            }
        }
        None
    }
}

/// Reads a pid file a runtime wrote.
fn read_pid(runtime: &str, op: &str, path: &Path) -> Result<i32> {
    let text = std::fs::read_to_string(path).map_err(super::io("read", path))?;
    text.trim().parse().map_err(|_| {
        BackendError::failed(runtime, op, format!("invalid pid file content {text:?}"))
    })
}

fn in_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
        .unwrap_or(false)
}

/// The `msg` of every error-level line of a runc/crun JSON log (or the raw text when the log
/// is not JSON).
fn log_errors(log: &str) -> String {
    let mut msgs = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => {
                let level = v.get("level").and_then(|l| l.as_str()).unwrap_or_default();
                if matches!(level, "error" | "fatal" | "panic") {
                    if let Some(msg) = v.get("msg").and_then(|m| m.as_str()) {
                        msgs.push(msg.to_string());
                    }
                }
            }
            Err(_) => msgs.push(line.to_string()),
        }
    }
    msgs.join("; ")
}

impl Backend for CliRuntime {
    fn name(&self) -> &'static str {
        self.name
    }

    fn check_host(&self) -> Result<()> {
        match self.unavailable_reason() {
            Some(reason) => Err(BackendError::Unavailable(self.name.into(), reason)),
            None => Ok(()),
        }
    }

    fn create(&self, id: &str, bundle: &Path, stdio: Stdio) -> Result<i32> {
        self.check_host()?;
        std::fs::create_dir_all(&self.root).map_err(super::io("create", &self.root))?;
        let scratch = Scratch::new(&self.root)?;
        let pid_file = scratch.path("init.pid");
        let args = vec![
            "--bundle".into(),
            bundle.into(),
            "--pid-file".into(),
            pid_file.clone().into(),
            id.into(),
        ];
        self.run_with_stdio("create", &scratch, args, stdio)?;
        read_pid(self.name, "create", &pid_file)
    }

    fn start(&self, id: &str) -> Result<()> {
        self.ensure_exists(id)?;
        self.run("start", &["start", id]).map(drop)
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        self.ensure_exists(id)?;
        let signal = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, signal.as_str()]);
        self.run("kill", &args).map(drop)
    }

    fn pause(&self, id: &str) -> Result<()> {
        self.ensure_exists(id)?;
        self.run("pause", &["pause", id]).map(drop)
    }

    fn resume(&self, id: &str) -> Result<()> {
        self.ensure_exists(id)?;
        self.run("resume", &["resume", id]).map(drop)
    }

    fn exec(&self, id: &str, process: &oci_spec::runtime::Process, stdio: Stdio) -> Result<i32> {
        self.ensure_exists(id)?;
        let scratch = Scratch::new(&self.root)?;
        let process_file = write_process(&scratch, process)?;
        let pid_file = scratch.path("exec.pid");
        let args = vec![
            "--process".into(),
            process_file.into(),
            "--detach".into(),
            "--pid-file".into(),
            pid_file.clone().into(),
            id.into(),
        ];
        self.run_with_stdio("exec", &scratch, args, stdio)?;
        read_pid(self.name, "exec", &pid_file)
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        self.ensure_exists(id)?;
        // The cgroup path lives in the bundle, which the runtime's state remembers.
        let cgroups_path = self
            .run("state", &["state", id])
            .ok()
            .and_then(|state| serde_json::from_str::<serde_json::Value>(&state).ok())
            .and_then(|state| {
                state
                    .get("bundle")
                    .and_then(|b| b.as_str())
                    .map(PathBuf::from)
            })
            .and_then(|bundle| cgroups::path_from_bundle(&bundle).ok());
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.run("delete", &args)?;
        match cgroups_path {
            Some(path) => cgroups::remove(&path).map_err(|e| self.failed("delete", format!("{e}"))),
            None => {
                tracing::warn!(
                    id,
                    "cgroup path unknown (bundle gone), cgroup dirs left as they are"
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_errors_keeps_only_error_messages() {
        let log = r#"{"level":"info","msg":"starting"}
{"level":"error","msg":"container_linux.go: no such file","time":"x"}
"#;
        assert_eq!(log_errors(log), "container_linux.go: no such file");
        assert_eq!(log_errors("plain failure\n"), "plain failure");
    }

    #[test]
    fn runtime_prefix_was_repeated_in_errors() {
        let runc = CliRuntime::runc(Path::new("/run/skiff-none"));
        let e = runc.failed(
            "create",
            "runc create failed: unable to start container process".into(),
        );
        assert_eq!(
            e.to_string(),
            "runc create failed: unable to start container process"
        );
    }
}
