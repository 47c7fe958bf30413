//! Network namespaces: created without a process (bind-mounted nsfs files), entered by short
//! dedicated threads. A thread that `setns()`es never returns to a pool: it ends with its job.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Context, NetError, Result};

/// A network namespace: `None` is the calling process's own (for a daemon, its host namespace);
/// `Some(path)` a bind-mounted namespace file such as `/run/netns/NAME` or a sandbox's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetnsRef(pub Option<PathBuf>);

impl NetnsRef {
    pub fn current() -> NetnsRef {
        NetnsRef(None)
    }

    pub fn path(path: impl Into<PathBuf>) -> NetnsRef {
        NetnsRef(Some(path.into()))
    }

    fn open(&self) -> Result<Option<OwnedFd>> {
        match &self.0 {
            None => Ok(None),
            Some(p) => std::fs::File::open(p)
                .map(|f| Some(OwnedFd::from(f)))
                .ctx(|| format!("open network namespace {}", p.display())),
        }
    }

    /// Runs `f` on a fresh thread inside this namespace (on the caller's thread when it is the
    /// current one). Sockets `f` creates stay in the namespace for their whole life.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let Some(fd) = self.open()? else {
            return f();
        };
        std::thread::scope(|s| {
            s.spawn(move || {
                setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).ctx(|| "setns".into())?;
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

/// Creates a new network namespace bind-mounted at `path` (which must not exist yet), and runs
/// `f` inside it before returning.
pub fn create<T: Send>(path: &Path, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                NetError::conflict(format!("sandbox {} already exists", path.display()))
            }
            _ => NetError::Io {
                context: format!("create {}", path.display()),
                source: e,
            },
        })?;
    let made = std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).ctx(|| "unshare network namespace".into())?;
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .ctx(|| format!("bind-mount network namespace on {}", path.display()))?;
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    if made.is_err() {
        let _ = remove(path);
    }
    made
}

/// Unmounts and removes a namespace file; the namespace dies with its last user. Missing is fine.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(e).ctx(|| format!("unmount {}", path.display())),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx(|| format!("remove {}", path.display())),
    }
}

/// Writes a sysctl under `/proc/sys` of the calling thread's network namespace, given as path
/// segments (`["net", "ipv4", "ip_forward"]`: interface names may hold dots).
pub(crate) fn sysctl(key: &[&str], value: &str) -> Result<()> {
    let path: PathBuf = std::iter::once("/proc/sys")
        .chain(key.iter().copied())
        .collect();
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).ctx(|| format!("set {}={value}", key.join(".")))
}
