//! Mounting a filesystem from an fstab-style option string (`o=` of a local volume), the way
//! moby's `mount.Mount` does: libcontainer's table of option names splits the flags from the
//! data, the propagation type is set by a second call, and a read-only bind is made read-only by a
//! remount (a bind ignores `MS_RDONLY` on its first call).

use std::path::Path;

use nix::mount::MsFlags;

/// Mount flags and the data string of `options` (comma-separated, as `mount -o` takes them),
/// named as libcontainer's option table names them. Propagation options (`rshared`, …) are
/// flags to set here; libcontainer's own parser clears them, as its rootfs code applies
/// propagation on its own.
pub fn parse_options(options: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match flag_of(o) {
            Some(Flag {
                clear: true, flag, ..
            }) => flags -= flag,
            Some(Flag { flag, .. }) => flags |= flag,
            None => data.push(o),
        }
    }
    (flags, data.join(","))
}

/// What a mount option that is a flag does.
pub(crate) struct Flag {
    /// The option turns the flag off (`rw`, `exec`, …).
    pub clear: bool,
    pub flag: MsFlags,
    /// A propagation type (`rshared`, `private`, …): one per mount.
    pub propagation: bool,
}

/// The flag an option names, from libcontainer's table; None for data (`size=1m`).
pub(crate) fn flag_of(option: &str) -> Option<Flag> {
    use libcontainer::syscall::linux::MountOption as O;
    use std::str::FromStr;
    let (clear, flag, propagation) = match O::from_str(option).ok()? {
        O::Private(_, f)
        | O::Rprivate(_, f)
        | O::Shared(_, f)
        | O::Rshared(_, f)
        | O::Slave(_, f)
        | O::Rslave(_, f)
        | O::Unbindable(_, f)
        | O::Runbindable(_, f) => (false, f, true),
        O::Defaults(c, f)
        | O::Ro(c, f)
        | O::Rw(c, f)
        | O::Suid(c, f)
        | O::Nosuid(c, f)
        | O::Dev(c, f)
        | O::Nodev(c, f)
        | O::Exec(c, f)
        | O::Noexec(c, f)
        | O::Sync(c, f)
        | O::Async(c, f)
        | O::Dirsync(c, f)
        | O::Remount(c, f)
        | O::Mand(c, f)
        | O::Nomand(c, f)
        | O::Atime(c, f)
        | O::Noatime(c, f)
        | O::Diratime(c, f)
        | O::Nodiratime(c, f)
        | O::Bind(c, f)
        | O::Rbind(c, f)
        | O::Relatime(c, f)
        | O::Norelatime(c, f)
        | O::Strictatime(c, f)
        | O::Nostrictatime(c, f) => (c, f, false),
    };
    Some(Flag {
        clear,
        // libcontainer builds on another nix: the same bits.
        flag: MsFlags::from_bits_truncate(flag.bits()),
        propagation,
    })
}

/// The options of a `--tmpfs` mount over Docker's defaults (`noexec,nosuid,nodev`), merged
/// as moby's `MergeTmpfsOptions` merges them: the last of each flag (one propagation type)
/// and of each `key=` wins, in the order given; an option tmpfs does not take is refused with
/// dockerd's words, at the container's start as there.
pub fn tmpfs_options(user: &[String]) -> Result<Vec<String>, String> {
    const DATA: &[&str] = &[
        "",
        "size",
        "mode",
        "uid",
        "gid",
        "nr_inodes",
        "nr_blocks",
        "mpol",
    ];
    let all = ["noexec", "nosuid", "nodev"]
        .into_iter()
        .chain(user.iter().map(String::as_str));
    let all: Vec<&str> = all.collect();
    let mut flags = std::collections::HashSet::new();
    let mut data = std::collections::HashSet::new();
    let mut out = std::collections::VecDeque::new();
    for o in all.into_iter().rev() {
        if let Some(f) = flag_of(o) {
            if f.flag.is_empty() {
                continue; // `defaults`
            }
            let key = if f.propagation { None } else { Some(f.flag) };
            if flags.insert(key) {
                out.push_front(o.to_string());
            }
            continue;
        }
        let key = match o.split_once('=') {
            Some((key, _)) if DATA.contains(&key) => key,
            Some((key, _)) => return Err(format!("invalid tmpfs option {key:?}")),
            None => return Err(format!("invalid tmpfs option {o:?}")),
        };
        if data.insert(key) {
            out.push_front(o.to_string());
        }
    }
    Ok(out.into())
}

/// A data string with a `password=` value hidden, as moby shows a failed CIFS mount.
fn masked(data: &str) -> String {
    data.split(',')
        .map(|o| match o.split_once('=') {
            Some(("password", _)) => "password=********".to_string(),
            _ => o.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

const PROPAGATION: MsFlags = MsFlags::MS_SHARED
    .union(MsFlags::MS_PRIVATE)
    .union(MsFlags::MS_SLAVE)
    .union(MsFlags::MS_UNBINDABLE);

/// Mounts `device` (of filesystem type `fstype`) on `target` with `options`. The error
/// reads as moby's: `mount DEVICE:TARGET, flags: 0x…, data: …: CAUSE`.
pub fn mount(device: &str, target: &Path, fstype: &str, options: &str) -> Result<(), String> {
    let (flags, data) = parse_options(options);
    let describe = |flags: MsFlags, e: nix::Error| {
        let mut s = format!("mount {device}:{}", target.display());
        if !flags.is_empty() {
            s.push_str(&format!(", flags: {:#x}", flags.bits()));
        }
        if !data.is_empty() {
            s.push_str(&format!(", data: {}", masked(&data)));
        }
        format!("{s}: {}", e.desc().to_lowercase())
    };
    let own = flags - PROPAGATION;
    nix::mount::mount(
        Some(device),
        target,
        Some(fstype),
        own,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| describe(own, e))?;
    let undo = |msg: String| {
        let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
        msg
    };
    let propagation = flags & (PROPAGATION | MsFlags::MS_REC);
    if flags.intersects(PROPAGATION) {
        nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            propagation,
            None::<&str>,
        )
        .map_err(|e| undo(describe(propagation, e)))?;
    }
    if own.contains(MsFlags::MS_BIND | MsFlags::MS_RDONLY) {
        let remount = own | MsFlags::MS_REMOUNT;
        nix::mount::mount(None::<&str>, target, None::<&str>, remount, None::<&str>)
            .map_err(|e| undo(describe(remount, e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_split_from_data() {
        let (flags, data) = parse_options("bind,ro");
        assert_eq!(flags, MsFlags::MS_BIND | MsFlags::MS_RDONLY);
        assert_eq!(data, "");
        let (flags, data) = parse_options("size=1m,uid=1000,noexec");
        assert_eq!(flags, MsFlags::MS_NOEXEC);
        assert_eq!(data, "size=1m,uid=1000");
        let (flags, _) = parse_options("rbind,rshared");
        assert_eq!(
            flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_SHARED
        );
        let (flags, _) = parse_options("ro,rw,noatime");
        assert_eq!(flags, MsFlags::MS_NOATIME);
    }

    #[test]
    fn tmpfs_options_merge_like_moby_and_refuse_unknown_data() {
        let opts = |o: &[&str]| tmpfs_options(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(opts(&[]).unwrap(), ["noexec", "nosuid", "nodev"]);
        assert_eq!(
            opts(&["exec", "size=1m", "mode=1777", "size=2m"]).unwrap(),
            ["nosuid", "nodev", "exec", "mode=1777", "size=2m"]
        );
        assert_eq!(
            opts(&["rshared", "private", "defaults"]).unwrap(),
            ["noexec", "nosuid", "nodev", "private"]
        );
        assert_eq!(
            opts(&["badopt"]).unwrap_err(),
            r#"invalid tmpfs option "badopt""#
        );
        assert_eq!(
            opts(&["foo=1"]).unwrap_err(),
            r#"invalid tmpfs option "foo""#
        );
        assert_eq!(parse_options(""), (MsFlags::empty(), String::new()));
    }
}
