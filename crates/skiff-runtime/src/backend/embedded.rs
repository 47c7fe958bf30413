//! The embedded runtime: youki's `libcontainer`, in this process. Its create and exec clone,
//! so they must only be called from a single-threaded process (the shim).
//!
//! libcontainer keeps each container's state in `<runtime_root>/<id>`; `delete(true)` removes
//! the container's cgroup but leaves its parent directories, which [`cgroups::remove`]
//! cleans up.
//!
//! The container's command runs through [`Workload`]: the container's seccomp filter for
//! exec'd processes too, and runc's one line when `execve` fails.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::{LinuxSeccomp, Spec};

use super::{write_process, Backend, BackendError, Result, Scratch, Stdio};
use crate::cgroups;

/// libcontainer, embedded.
pub struct Embedded {
    root: PathBuf,
}

impl Embedded {
    pub fn new(root: &Path) -> Self {
        Embedded {
            root: root.to_path_buf(),
        }
    }

    fn load(&self, id: &str) -> Result<Container> {
        let dir = self.root.join(id);
        if !dir.is_dir() {
            return Err(BackendError::NotFound(id.to_string()));
        }
        Container::load(dir).map_err(|e| failed("load", &e))
    }

    fn builder(&self, id: &str, stdio: Stdio) -> Result<ContainerBuilder> {
        std::fs::create_dir_all(&self.root).map_err(super::io("create", &self.root))?;
        let builder = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
            .with_root_path(&self.root)
            .map_err(|e| failed("create", &e))?
            .validate_id()
            .map_err(|e| failed("create", &e))?;
        Ok(match stdio {
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => builder
                .with_stdin(stdin)
                .with_stdout(stdout)
                .with_stderr(stderr),
            Stdio::Console { socket } => builder.with_console_socket(Some(socket)),
        })
    }
}

/// The error with its whole source chain: libcontainer's top-level messages alone ("failed
/// to create container") rarely say what went wrong.
fn failed(op: &str, e: &(dyn std::error::Error + 'static)) -> BackendError {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    let message = in_runc_words(&message).unwrap_or(message);
    BackendError::failed("embedded", op, message)
}

/// libcontainer's "executable 'X' not found in $PATH" and "executable 'X' at path … does not
/// have correct permissions" in the words runc and Docker use, which the docker CLI
/// recognises to exit with 127 or 126 instead of 125.
fn in_runc_words(message: &str) -> Option<String> {
    let start = message.find("executable '")? + "executable '".len();
    let rest = &message[start..];
    let exe = &rest[..rest.find('\'')?];
    let after = &rest[exe.len()..];
    if after.starts_with("' not found in $PATH") {
        return Some(if exe.contains('/') {
            format!("exec: \"{exe}\": stat {exe}: no such file or directory")
        } else {
            format!("exec: \"{exe}\": executable file not found in $PATH")
        });
    }
    if after.contains("does not have correct permissions") {
        return Some(format!("exec: \"{exe}\": permission denied"));
    }
    None
}

/// Runs the container's command, the init's or an exec'd one's.
///
/// libcontainer 0.7 runs `exec` processes without the container's seccomp filter (its tenant
/// builder rebuilds `linux` from namespaces and cgroup path only). runc applies the filter to
/// exec'd processes, so we do too: `seccomp` is loaded in the new process just before
/// `execve`. Loading a filter needs `no_new_privs` or CAP_SYS_ADMIN; a process with neither
/// gets `no_new_privs` (it could not have gained privileges through a setuid binary under the
/// filter anyway in runc, which refuses such a spec).
///
/// When `execve` itself fails (a script whose interpreter is missing), the process is the
/// container's already and nobody waits for an error on libcontainer's channel: like runc,
/// it writes `exec <path>: <reason>` to its stderr (`docker logs`) and exits 255.
#[derive(Clone, Default)]
struct Workload {
    seccomp: Option<LinuxSeccomp>,
}

fn holds_cap_sys_admin() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_ADMIN,
    )
    .unwrap_or(false)
}

impl Executor for Workload {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some(seccomp) = &self.seccomp {
            if !holds_cap_sys_admin() {
                nix::sys::prctl::set_no_new_privs()
                    .map_err(|e| ExecutorError::Other(format!("cannot set no_new_privs: {e}")))?;
            }
            libcontainer::seccomp::initialize_seccomp(seccomp).map_err(|e| {
                ExecutorError::Other(format!("cannot load the container's seccomp filter: {e}"))
            })?;
        }
        let args = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .filter(|a| !a.is_empty())
            .ok_or(ExecutorError::InvalidArg)?;
        let path = resolve(&args[0], std::env::var_os("PATH").as_deref());
        let c = |s: &str| CString::new(s.as_bytes()).map_err(|_| ExecutorError::InvalidArg);
        let argv = args.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>()?;
        let Err(errno) = nix::unistd::execv(&c(&path)?, &argv);
        let _ = writeln!(std::io::stderr(), "{}", exec_failure(&path, errno));
        std::process::exit(255);
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        libcontainer::workload::default::get_executor().validate(spec)
    }
}

/// The file `command` names: itself when it has a slash, else the first executable file of
/// that name in `path` (`$PATH`), else itself (for `execve` to report).
fn resolve(command: &str, path: Option<&std::ffi::OsStr>) -> String {
    if command.contains('/') {
        return command.to_string();
    }
    let dirs = path.map(std::env::split_paths).into_iter().flatten();
    for dir in dirs {
        let candidate = dir.join(command);
        let executable = std::fs::metadata(&candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if executable {
            return candidate.to_string_lossy().into_owned();
        }
    }
    command.to_string()
}

/// runc's line for a failed `execve`, with the reason in Go's words (lower case).
fn exec_failure(path: &str, errno: nix::errno::Errno) -> String {
    let desc = errno.desc();
    let mut reason = desc.chars();
    let reason = match reason.next() {
        Some(first) => first.to_lowercase().chain(reason).collect::<String>(),
        None => String::new(),
    };
    format!("exec {path}: {reason}")
}

impl Backend for Embedded {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn create(&self, id: &str, bundle: &Path, stdio: Stdio) -> Result<i32> {
        let container = self
            .builder(id, stdio)?
            .with_executor(Workload::default())
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(|e| failed("create", &e))?;
        container
            .pid()
            .map(|p| p.as_raw())
            .ok_or_else(|| BackendError::failed("embedded", "create", "no init pid".into()))
    }

    fn start(&self, id: &str) -> Result<()> {
        self.load(id)?.start().map_err(|e| failed("start", &e))
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let signal = Signal::try_from(signal).map_err(|e| failed("kill", &e))?;
        self.load(id)?
            .kill(signal, all)
            .map_err(|e| failed("kill", &e))
    }

    fn pause(&self, id: &str) -> Result<()> {
        self.load(id)?.pause().map_err(|e| failed("pause", &e))
    }

    fn resume(&self, id: &str) -> Result<()> {
        self.load(id)?.resume().map_err(|e| failed("resume", &e))
    }

    fn exec(&self, id: &str, process: &oci_spec::runtime::Process, stdio: Stdio) -> Result<i32> {
        let container = self.load(id)?;
        let config = container.bundle().join("config.json");
        let seccomp = Spec::load(&config)
            .map_err(|e| failed("exec", &e))?
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().clone());
        let scratch = Scratch::new(&self.root)?;
        let process_file = write_process(&scratch, process)?;
        let builder = self.builder(id, stdio)?;
        let pid = builder
            .with_executor(Workload { seccomp })
            .as_tenant()
            .with_process(Some(&process_file))
            .with_detach(true)
            .build()
            .map_err(|e| failed("exec", &e))?;
        Ok(pid.as_raw())
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut container = self.load(id)?;
        let config = container.spec().ok();
        let cgroups_path = config.as_ref().map(|c| c.cgroup_path.display().to_string());
        if let Some(path) = cgroups_path.as_deref() {
            if config.as_ref().is_some_and(no_poststop_hooks) && delete_stopped(&container, path)? {
                return Ok(());
            }
        }
        container.delete(force).map_err(|e| failed("delete", &e))?;
        if let Some(path) = cgroups_path {
            cgroups::remove(&path).map_err(|e| failed("delete", &e))?;
        }
        Ok(())
    }
}

fn no_poststop_hooks(config: &libcontainer::config::YoukiConfig) -> bool {
    config
        .hooks
        .as_ref()
        .and_then(|h| h.poststop().as_ref())
        .is_none_or(|p| p.is_empty())
}

/// Deletes a container that has stopped and left no process in its cgroup the way
/// libcontainer's `delete` would — its cgroup removed, then its state directory — without
/// the cgroup manager that `delete` builds: on a v1 or hybrid host that manager reads the
/// whole `/proc/self/mountinfo` for every controller the host does not mount (four here,
/// a dozen reads in all), and that table grows with every container's mounts. Ours reads
/// the mount table once per process. False (nothing done) when the container still runs,
/// has processes left in its cgroup or has Intel RDT state: libcontainer's delete handles
/// those (it kills what is left).
fn delete_stopped(container: &Container, cgroups_path: &str) -> Result<bool> {
    if container.status() != ContainerStatus::Stopped || container.intel_rdt_dir().is_some() {
        return Ok(false);
    }
    match cgroups::pids(cgroups_path) {
        Ok(pids) if !pids.is_empty() => return Ok(false),
        Ok(_) | Err(cgroups::CgroupError::NotFound(_)) => {}
        Err(e) => return Err(failed("delete", &e)),
    }
    cgroups::remove(cgroups_path).map_err(|e| failed("delete", &e))?;
    match std::fs::remove_dir_all(&container.root) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(super::io("delete", &container.root)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::{exec_failure, in_runc_words, resolve};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_failed_execve_is_one_line_in_runcs_words() {
        assert_eq!(
            exec_failure("/bin/bad.sh", nix::errno::Errno::ENOENT),
            "exec /bin/bad.sh: no such file or directory"
        );
        assert_eq!(
            exec_failure("/x", nix::errno::Errno::ENOEXEC),
            "exec /x: exec format error"
        );
    }

    #[test]
    fn commands_are_resolved_on_path_like_runc() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/nope\n").unwrap();
        let path = std::env::join_paths(["/nonexistent", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(
            resolve("tool", Some(&path)),
            "tool",
            "not executable: left to execve"
        );
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(resolve("tool", Some(&path)), exe.to_str().unwrap());
        assert_eq!(resolve("./tool", Some(&path)), "./tool");
        assert_eq!(resolve("tool", None), "tool");
    }

    #[test]
    fn missing_executable_is_worded_like_runc_so_docker_exits_127() {
        let m =
            "failed to build container: executor validation: executable '/nope' not found in $PATH";
        assert_eq!(
            in_runc_words(m).unwrap(),
            "exec: \"/nope\": stat /nope: no such file or directory"
        );
        let m = "executable 'nope' not found in $PATH";
        assert_eq!(
            in_runc_words(m).unwrap(),
            "exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(in_runc_words("cgroup busy"), None);
    }

    #[test]
    fn a_command_without_exec_permission_is_worded_like_runc_so_docker_exits_126() {
        let m = "executor validation: executable '/etc/passwd' at path '\"/etc/passwd\"' does not have correct permissions";
        assert_eq!(
            in_runc_words(m).unwrap(),
            "exec: \"/etc/passwd\": permission denied"
        );
    }
}
