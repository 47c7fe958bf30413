//! Priming the kernel's cgroup-migration lock ahead of a container's start.

use std::path::{Path, PathBuf};

use super::{controller_dir, hierarchies, read, CgroupError, Result};

/// Moving a process into a cgroup takes the kernel's cgroup-migration lock, whose first
/// writer waits a whole RCU grace period (several ms; the runtime's first `cgroup.procs`
/// write of a container pays it — crun's and runc's alike). The lock stays cheap for about a
/// grace period after each writer, so starting that wait ahead of the runtime, while the
/// container is still being prepared, takes it off the start's path. This does it by
/// "moving" the calling process into the `pids` cgroup it is already in: nothing moves.
/// Blocks for the grace period: run it on a blocking thread. Best effort.
pub fn prime_migration() -> Result<()> {
    MigrationPrimer::new()?.prime()
}

/// [`prime_migration`] with the cgroup file found once, for a caller that primes repeatedly.
pub struct MigrationPrimer {
    procs: PathBuf,
}

impl MigrationPrimer {
    /// Finds the `cgroup.procs` of the calling process's `pids` cgroup.
    pub fn new() -> Result<MigrationPrimer> {
        let own = read(Path::new("/proc/self/cgroup"))?;
        let Some(path) = own.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers.split(',').any(|c| c == "pids").then_some(path)
        }) else {
            return Err(CgroupError::NotFound("pids".into()));
        };
        let hs = hierarchies()?;
        let (dir, _) = controller_dir(&hs, "pids", path)
            .ok_or_else(|| CgroupError::NotFound(format!("pids:{path}")))?;
        Ok(MigrationPrimer {
            procs: dir.join("cgroup.procs"),
        })
    }

    /// "Moves" the calling process into the cgroup it is in (see [`prime_migration`]).
    pub fn prime(&self) -> Result<()> {
        std::fs::write(&self.procs, std::process::id().to_string()).map_err(|source| {
            CgroupError::Io {
                path: self.procs.clone(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prime_migration_leaves_the_process_where_it_is() {
        let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        match prime_migration() {
            Ok(()) => {}
            // A host without a pids controller (or not root): nothing to prime with.
            Err(CgroupError::NotFound(_)) => return,
            Err(CgroupError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                return
            }
            Err(e) => panic!("{e}"),
        }
        assert_eq!(
            std::fs::read_to_string("/proc/self/cgroup").unwrap(),
            before
        );
    }
}
