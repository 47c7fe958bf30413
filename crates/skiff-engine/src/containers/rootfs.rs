//! A container's root filesystem (an overlay of its image's snapshots, its init layer and its
//! own upper dir, mounted while it runs or while `docker cp` needs it) and the `/etc/hostname`,
//! `/etc/hosts` and `/etc/resolv.conf` files generated for it.
//!
//! Like Docker, the generated files live in the container's own directory and are
//! bind-mounted (read-write) over their paths in the container; the init layer holds the empty
//! files they are mounted on, so that the runtime never creates mount points in the upper dir
//! and the files never show in `docker diff` or `docker commit`.

use std::path::{Path, PathBuf};

use bollard_stubs::models::HostConfig;

use super::config::Network;
use super::Container;
use crate::error::{IoContext, Result};
use crate::Engine;

/// Whether something is mounted exactly at `path`: its mount is not its parent's (two
/// `statx` calls; `/proc/self/mountinfo` on kernels without mount ids, before 5.8).
pub(crate) fn is_mounted(path: &Path) -> bool {
    let Some(parent) = path.parent() else {
        return true; // the root
    };
    match (mount_id(path), mount_id(parent)) {
        (Ok(Some(own)), Ok(Some(parents))) => own != parents,
        (Err(_), _) => false,
        _ => listed_in_mountinfo(path),
    }
}

/// The id of the mount `path` (not followed if a symlink) is on; None when the kernel does
/// not report mount ids.
fn mount_id(path: &Path) -> std::io::Result<Option<u64>> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statx is plain data; zeroes are a valid value for every field.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statx buffer we own, for the call's duration.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id))
}

/// Whether `path` is a mount point listed in `/proc/self/mountinfo`.
fn listed_in_mountinfo(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape(mp) == want)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Ok(n) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts the container's rootfs at its bundle's `rootfs` unless it already is.
pub(crate) async fn mount(engine: &Engine, c: &Container) -> Result<PathBuf> {
    let target = c.rootfs();
    if is_mounted(&target) {
        return Ok(target);
    }
    let image_id = c.rec().image_id;
    let images = engine.images.clone();
    let lowers = tokio::task::spawn_blocking(move || images.prepare_rootfs(&image_id))
        .await
        .map_err(std::io::Error::other)
        .ctx(|| "prepare rootfs".into())??;
    let upper = c.upper_dir();
    let work = c.dir.join("fs").join("work");
    for d in [&upper, &work, &target] {
        std::fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
    }
    let init = c.init_layer();
    ensure_init_layer(&init)?;
    let lowers: Vec<PathBuf> = std::iter::once(init).chain(lowers).collect();
    skiff_image::overlay::mount(&lowers, &upper, &work, &target)?;
    tracing::debug!(id = %c.id, target = %target.display(), "rootfs mounted");
    Ok(target)
}

/// Unmounts the rootfs (idempotent).
pub(crate) fn unmount(c: &Container) -> Result<()> {
    let target = c.rootfs();
    if is_mounted(&target) {
        skiff_image::overlay::unmount(&target)?;
    }
    Ok(())
}

/// The files generated for each container, in its directory and at `/etc/<name>` inside.
const ETC_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

/// Host copies of the generated /etc files and where they go in the container.
pub(crate) fn etc_files(dir: &Path) -> Vec<(PathBuf, String)> {
    ETC_FILES
        .iter()
        .map(|f| (dir.join(f), format!("/etc/{f}")))
        .collect()
}

/// Paths in the container of the generated /etc files.
pub(crate) fn etc_paths() -> impl Iterator<Item = String> {
    ETC_FILES.iter().map(|f| format!("/etc/{f}"))
}

/// Creates (if missing) the container's init layer: the lower dir right under its upper dir
/// holding an empty file at each generated /etc file's path, where the runtime bind-mounts
/// the real one (Docker's `-init` layer). Containers created before it existed get it at
/// their next mount.
pub(crate) fn ensure_init_layer(init: &Path) -> Result<()> {
    let etc = init.join("etc");
    std::fs::create_dir_all(&etc).ctx(|| format!("create {}", etc.display()))?;
    for name in ETC_FILES {
        let path = etc.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .ctx(|| format!("create {}", path.display()))?;
    }
    Ok(())
}

/// Writes `hostname`, `hosts` and `resolv.conf` into the container's dir.
pub(crate) fn write_etc_files(
    dir: &Path,
    hostname: &str,
    net: &Network,
    hc: &HostConfig,
) -> Result<()> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).ctx(|| format!("write {}", path.display()))
    };
    write("hostname", format!("{hostname}\n"))?;
    let mut hosts = match net {
        Network::Host => std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
        _ => "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
              ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
            .to_string(),
    };
    for extra in hc.extra_hosts.iter().flatten() {
        if let Some((host, ip)) = extra.split_once(':').or_else(|| extra.split_once('=')) {
            hosts.push_str(&format!("{ip}\t{host}\n"));
        }
    }
    write("hosts", hosts)?;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    write("resolv.conf", resolv_conf(&host_resolv, net, hc))
}

/// Docker's rule: the host's resolv.conf, without loopback name servers for containers not
/// on the host network (falling back to Google's), with `--dns*` overrides.
fn resolv_conf(host: &str, net: &Network, hc: &HostConfig) -> String {
    let mut servers: Vec<String> = Vec::new();
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => search = words.map(str::to_string).collect(),
            Some("options") => options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    if *net != Network::Host {
        servers.retain(|s| !(s.starts_with("127.") || s == "::1"));
        if servers.is_empty() {
            servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
        }
    }
    if let Some(dns) = hc.dns.as_ref().filter(|d| !d.is_empty()) {
        servers = dns.clone();
    }
    if let Some(s) = hc.dns_search.as_ref().filter(|d| !d.is_empty()) {
        search = s.clone();
    }
    if let Some(o) = hc.dns_options.as_ref().filter(|d| !d.is_empty()) {
        options = o.clone();
    }
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_servers() {
        let host = "nameserver 127.0.0.53\nsearch example.com\noptions edns0\n";
        let hc = HostConfig::default();
        let got = resolv_conf(host, &Network::Isolated, &hc);
        assert_eq!(
            got,
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch example.com\noptions edns0\n"
        );
        assert!(resolv_conf(host, &Network::Host, &hc).starts_with("nameserver 127.0.0.53\n"));
        let hc = HostConfig {
            dns: Some(vec!["10.0.0.2".into()]),
            ..Default::default()
        };
        assert!(
            resolv_conf(host, &Network::Isolated, &hc).starts_with("nameserver 10.0.0.2\nsearch")
        );
    }

    #[test]
    fn the_init_layer_holds_empty_mount_points_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("init");
        ensure_init_layer(&init).unwrap();
        std::fs::write(init.join("etc/hosts"), "kept").unwrap();
        ensure_init_layer(&init).unwrap();
        for path in etc_paths() {
            let file = init.join(path.trim_start_matches('/'));
            assert!(file.is_file(), "{}", file.display());
        }
        assert_eq!(
            std::fs::read_to_string(init.join("etc/hosts")).unwrap(),
            "kept"
        );
        assert_eq!(
            std::fs::metadata(init.join("etc/hostname")).unwrap().len(),
            0
        );
    }

    #[test]
    fn mountinfo_unescaping_and_root_is_mounted() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert!(is_mounted(Path::new("/")));
        assert!(listed_in_mountinfo(Path::new("/")));
        assert!(!is_mounted(Path::new("/definitely/not/mounted")));
        assert!(!listed_in_mountinfo(Path::new("/definitely/not/mounted")));
    }

    #[test]
    fn a_mount_point_is_told_from_a_plain_directory() {
        let dir = tempfile::Builder::new()
            .prefix("skiff-is-mounted")
            .tempdir()
            .unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        assert!(!is_mounted(&target));
        nix::mount::mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let mounted = (is_mounted(&target), listed_in_mountinfo(&target));
        nix::mount::umount(&target).unwrap();
        assert_eq!(mounted, (true, true));
        assert!(!is_mounted(&target));
    }
}
