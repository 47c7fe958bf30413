//! Resolving `--user` (`name`, `uid`, `name:group`, `uid:gid`) against the container's own
//! `/etc/passwd` and `/etc/group`, the way Docker and runc do.
//!
//! Reads only those two files of the rootfs, resolving every path inside it: a symlink in
//! the image must never make the engine read a host file.

use std::path::Path;

use super::SpecError;

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: those of `/etc/group` that list the user as a member (only when no
    /// group was given explicitly).
    pub additional_gids: Vec<u32>,
    /// Home directory from `/etc/passwd`, `/` when unknown.
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Reads `rel` (e.g. `etc/passwd`) inside `rootfs`; a missing file or a symlink reads as empty.
/// `rootfs/rel` as text, or "" when it is missing or not a regular file. Parent symlinks are
/// resolved inside `rootfs` (`RESOLVE_IN_ROOT`), never against the host's root; the file itself
/// may not be a symlink, and the check and the read use one descriptor, so a running
/// container cannot swap the file between them.
fn read_rootfs_file(rootfs: &Path, rel: &str) -> Result<String, SpecError> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::io::Read;

    let path = rootfs.join(rel);
    let io = |source: std::io::Error| SpecError::Io {
        path: path.clone(),
        source,
    };
    let root = match std::fs::File::open(rootfs) {
        Ok(root) => root,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(source) => {
            return Err(SpecError::Io {
                path: rootfs.to_path_buf(),
                source,
            })
        }
    };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(&root, rel, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(String::new()),
        Err(nix::errno::Errno::ELOOP) => {
            tracing::warn!(path = %path.display(), "a symlink, ignored for user lookup");
            return Ok(String::new());
        }
        Err(e) => return Err(io(e.into())),
    };
    let mut file = std::fs::File::from(fd);
    if !file.metadata().map_err(io)?.file_type().is_file() {
        tracing::warn!(path = %path.display(), "not a regular file, ignored for user lookup");
        return Ok(String::new());
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io)?;
    Ok(text)
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).map(|h| h.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `spec` (empty = root) against the rootfs's user database; `group_add`
/// (`--group-add`: group names from the rootfs's `/etc/group`, or numeric ids) are added to the
/// supplementary groups, in order, without duplicates.
pub fn resolve(rootfs: &Path, spec: &str, group_add: &[String]) -> Result<ExecUser, SpecError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let passwd = parse_passwd(&read_rootfs_file(rootfs, "etc/passwd")?);

    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|e| e.uid == uid),
        Err(_) => Some(passwd.iter().find(|e| e.name == user_part).ok_or_else(|| {
            SpecError::Invalid(format!(
                "unable to find user {user_part}: no matching entries in passwd file"
            ))
        })?),
    };
    let uid = match entry {
        Some(e) => e.uid,
        None => user_part
            .parse::<u32>()
            .map_err(|_| SpecError::Invalid(format!("invalid user: {user_part:?}")))?,
    };
    let home = entry
        .map(|e| e.home.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into());

    let groups_text = read_rootfs_file(rootfs, "etc/group")?;
    let groups = parse_group(&groups_text);
    let (gid, additional_gids) = match group_part.filter(|g| !g.is_empty()) {
        Some(g) => {
            let gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| {
                        SpecError::Invalid(format!(
                            "unable to find group {g}: no matching entries in group file"
                        ))
                    })?,
            };
            (gid, Vec::new())
        }
        None => {
            let gid = entry.map(|e| e.gid).unwrap_or(0);
            let extra = match entry {
                Some(e) => groups
                    .iter()
                    .filter(|g| g.members.contains(&e.name) && g.gid != gid)
                    .map(|g| g.gid)
                    .collect(),
                None => Vec::new(),
            };
            (gid, extra)
        }
    };
    let mut additional_gids = additional_gids;
    for gid in added_groups(&groups, group_add)? {
        if !additional_gids.contains(&gid) {
            additional_gids.push(gid);
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// The gids of `--group-add` entries, the way Docker (moby/sys/user) resolves them: a group
/// of that name or number in `/etc/group`, else a number in the gid range.
fn added_groups(groups: &[GroupEntry], wanted: &[String]) -> Result<Vec<u32>, SpecError> {
    wanted
        .iter()
        .map(|want| {
            if let Some(g) = groups
                .iter()
                .find(|g| g.name == *want || g.gid.to_string() == *want)
            {
                return Ok(g.gid);
            }
            match want.parse::<i64>() {
                Ok(gid) => u32::try_from(gid)
                    .ok()
                    .filter(|gid| *gid <= i32::MAX as u32)
                    .ok_or_else(|| {
                        SpecError::Invalid("uids and gids must be in range 0-2147483647".into())
                    }),
                Err(_) => Err(SpecError::Invalid(format!(
                    "Unable to find group {want}: no matching entries in group file"
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1001:App:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\napp:x:1001:\nwheel:x:10:root,app\naudio:x:29:app\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn empty_is_root_with_its_groups() {
        let r = rootfs();
        let u = resolve(r.path(), "", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert_eq!(u.additional_gids, vec![10]);
    }

    #[test]
    fn name_gives_uid_gid_home_and_supplementary_groups() {
        let r = rootfs();
        let u = resolve(r.path(), "app", &[]).unwrap();
        assert_eq!(
            u,
            ExecUser {
                uid: 1000,
                gid: 1001,
                additional_gids: vec![10, 29],
                home: "/home/app".into()
            }
        );
    }

    #[test]
    fn explicit_group_by_name_or_number() {
        let r = rootfs();
        let u = resolve(r.path(), "app:wheel", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        assert!(u.additional_gids.is_empty());
        let u = resolve(r.path(), "4242:4343", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 4343, "/"));
    }

    #[test]
    fn group_add_takes_names_and_numbers_once() {
        let r = rootfs();
        let add = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let u = resolve(
            r.path(),
            "app",
            &add(&["audio", "4242", "wheel", "1001", "29"]),
        )
        .unwrap();
        assert_eq!(u.additional_gids, vec![10, 29, 4242, 1001]);
        let u = resolve(r.path(), "", &add(&["app"])).unwrap();
        assert_eq!(u.additional_gids, vec![10, 1001]);
        let err = resolve(r.path(), "", &add(&["nosuch"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Unable to find group nosuch: no matching entries in group file"
        );
        assert!(resolve(r.path(), "", &add(&["-1"])).is_err());
        assert!(resolve(r.path(), "", &add(&["99999999999"])).is_err());
    }

    #[test]
    fn unknown_numeric_uid_gets_gid_zero() {
        let r = rootfs();
        let u = resolve(r.path(), "5000", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (5000, 0));
    }

    #[test]
    fn unknown_names_are_clear_errors() {
        let r = rootfs();
        let err = resolve(r.path(), "nobody", &[]).unwrap_err().to_string();
        assert!(err.contains("unable to find user nobody"), "{err}");
        let err = resolve(r.path(), "app:nogroup", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unable to find group nogroup"), "{err}");
    }

    #[test]
    fn passwd_symlink_is_not_followed_to_the_host() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("etc/passwd")).unwrap();
        assert!(resolve(dir.path(), "root", &[]).is_err());
    }

    #[test]
    fn etc_symlink_read_the_hosts_passwd() {
        let host = tempfile::tempdir().unwrap();
        std::fs::write(
            host.path().join("passwd"),
            "hostonly:x:4242:4242::/host/home:/bin/sh\n",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(host.path(), dir.path().join("etc")).unwrap();
        let err = resolve(dir.path(), "hostonly", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unable to find user hostonly"), "{err}");
    }

    #[test]
    fn etc_symlink_inside_the_rootfs_is_followed_there() {
        let dir = rootfs();
        std::fs::rename(dir.path().join("etc"), dir.path().join("real-etc")).unwrap();
        std::os::unix::fs::symlink("/real-etc", dir.path().join("etc")).unwrap();
        assert_eq!(resolve(dir.path(), "app", &[]).unwrap().home, "/home/app");
    }
}
