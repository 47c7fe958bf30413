//! Test images built from the host's statically linked `/bin/busybox` (Debian's
//! `busybox-static`), for this and other crates' tests. Deterministic: the same bytes,
//! hence the same image id, on every call. Panics when `/bin/busybox` is missing.

use serde_json::json;

/// Applets linked to `/bin/busybox` in the test rootfs.
const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "sleep", "id", "hostname", "ps", "top", "mount", "wget", "nslookup",
    "env", "true", "false", "grep", "head", "timeout", "touch", "rm", "mkdir", "kill", "nc", "ip",
    "httpd", "tar", "tty",
];
const MTIME: u64 = 1_700_000_000;

/// A tar of a minimal rootfs: `bin/busybox`, applet symlinks, `etc/passwd` and
/// `etc/group` with root and nobody, and empty `tmp`, `proc`, `sys`, `dev`, `root`.
pub fn busybox_rootfs_tar() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (install busybox-static)");
    let mut tar = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: usize| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size as u64);
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    for (dir, mode) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("tmp", 0o1777),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("root", 0o700),
    ] {
        tar.append_data(
            &mut header(tar::EntryType::Directory, mode, 0),
            dir,
            std::io::empty(),
        )
        .expect("tar dir");
    }
    tar.append_data(
        &mut header(tar::EntryType::Regular, 0o755, busybox.len()),
        "bin/busybox",
        busybox.as_slice(),
    )
    .expect("tar busybox");
    for applet in APPLETS {
        tar.append_link(
            &mut header(tar::EntryType::Symlink, 0o777, 0),
            format!("bin/{applet}"),
            "busybox",
        )
        .expect("tar symlink");
    }
    let passwd =
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    let group = b"root:x:0:\nnobody:x:65534:\n";
    for (name, content) in [("etc/passwd", &passwd[..]), ("etc/group", &group[..])] {
        tar.append_data(
            &mut header(tar::EntryType::Regular, 0o644, content.len()),
            name,
            content,
        )
        .expect("tar file");
    }
    tar.into_inner().expect("finish tar")
}

/// A classic docker-archive (`manifest.json`, `<id>.json`, `<layer>/layer.tar`,
/// `repositories`) of the busybox rootfs, tagged `name`, with `Cmd ["sh"]` and a `PATH`.
pub fn busybox_docker_archive(name: &str) -> Vec<u8> {
    let layer = busybox_rootfs_tar();
    let diff_id = skiff_core::ids::sha256_digest(&layer);
    let config = json!({
        "architecture": oci_spec::image::Arch::default().to_string(),
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": "2024-01-01T00:00:00Z", "created_by": "skiff testutil" }],
    });
    let config = serde_json::to_vec(&config).expect("config json");
    let config_name = format!(
        "{}.json",
        &skiff_core::ids::sha256_digest(&config)["sha256:".len()..]
    );
    let layer_dir = &diff_id["sha256:".len()..];
    let layer_name = format!("{layer_dir}/layer.tar");
    let manifest = json!([{ "Config": config_name, "RepoTags": [name], "Layers": [layer_name] }]);
    let (repo, tag) = name
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .unwrap_or((name, "latest"));
    let repositories = json!({ repo: { tag: layer_dir } });

    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(MTIME);
    tar.append_data(&mut dir, layer_dir, std::io::empty())
        .expect("tar dir");
    let files: [(&str, Vec<u8>); 4] = [
        (&layer_name, layer),
        (&config_name, config),
        ("manifest.json", manifest.to_string().into_bytes()),
        ("repositories", repositories.to_string().into_bytes()),
    ];
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        h.set_mtime(MTIME);
        tar.append_data(&mut h, path, bytes.as_slice())
            .expect("tar file");
    }
    tar.into_inner().expect("finish tar")
}
