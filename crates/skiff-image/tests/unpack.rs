//! Layer unpacking: hostile layers are refused without writing outside the destination,
//! ordinary entries keep their metadata, whiteouts work under a real overlay mount.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use common::{entries, Layer, MountGuard, Sandbox};
use skiff_core::{ErrorKind, HasKind};
use skiff_image::unpack::unpack_layer;
use tar::EntryType;

fn refused(layer: Vec<u8>, sandbox: &Sandbox) -> String {
    let err = unpack_layer(layer.as_slice(), &sandbox.dest).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(
        sandbox.outside_entries().is_empty(),
        "wrote outside: {:?}",
        sandbox.outside_entries()
    );
    err.to_string()
}

#[test]
fn rejects_layer_dotdot_escape() {
    let sb = Sandbox::new();
    let msg = refused(Layer::new().file("../outside/passwd", "x").build(), &sb);
    assert_eq!(
        msg,
        r#"layer entry "../outside/passwd" escapes the image root"#
    );
    let msg = refused(Layer::new().file("a/../../outside/x", "x").build(), &sb);
    assert!(msg.contains("escapes the image root"), "{msg}");
}

#[test]
fn rejects_layer_absolute_dotdot_escape() {
    let sb = Sandbox::new();
    let msg = refused(Layer::new().file("/../outside/x", "x").build(), &sb);
    assert!(
        msg.contains(r#""/../outside/x" escapes the image root"#),
        "{msg}"
    );
}

#[test]
fn absolute_entry_paths_land_inside_the_root() {
    let sb = Sandbox::new();
    unpack_layer(
        Layer::new().file("/etc/motd", "hello").build().as_slice(),
        &sb.dest,
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(sb.dest.join("etc/motd")).unwrap(),
        "hello"
    );
}

#[test]
fn rejects_layer_symlink_escape() {
    let sb = Sandbox::new();
    let outside = sb.outside.to_str().unwrap();
    let msg = refused(
        Layer::new()
            .symlink("evil", outside)
            .file("evil/pwned", "x")
            .build(),
        &sb,
    );
    assert!(
        msg.contains(r#""evil/pwned" goes through the symlink "evil""#),
        "{msg}"
    );
    // A relative symlink climbing out is just as refused.
    let sb = Sandbox::new();
    refused(
        Layer::new()
            .symlink("up", "../outside")
            .file("up/pwned", "x")
            .build(),
        &sb,
    );
    // Even a symlink into the layer is never followed while extracting.
    let sb = Sandbox::new();
    refused(
        Layer::new()
            .dir("real")
            .symlink("alias", "real")
            .file("alias/f", "x")
            .build(),
        &sb,
    );
}

#[test]
fn rejects_layer_symlink_parent_created_in_same_directory_chain() {
    let sb = Sandbox::new();
    let outside = sb.outside.to_str().unwrap();
    refused(
        Layer::new()
            .dir("a")
            .symlink("a/b", outside)
            .dir("a/b/c")
            .build(),
        &sb,
    );
}

#[test]
fn rejects_layer_hardlink_escape() {
    let sb = Sandbox::new();
    let msg = refused(Layer::new().hardlink("h", "../outside/secret").build(), &sb);
    assert!(msg.contains("escapes the image root"), "{msg}");
    // Through a symlink to a host file: must not link it.
    let sb = Sandbox::new();
    fs::write(sb.outside.join("secret"), "s").unwrap();
    let outside = sb.outside.to_str().unwrap();
    let layer = Layer::new()
        .symlink("s", outside)
        .hardlink("h", "s/secret")
        .build();
    let err = unpack_layer(layer.as_slice(), &sb.dest).unwrap_err();
    assert!(
        err.to_string().contains("goes through the symlink"),
        "{err}"
    );
    assert_eq!(fs::metadata(sb.outside.join("secret")).unwrap().nlink(), 1);
    assert!(!sb.dest.join("h").exists());
}

#[test]
fn rejects_layer_hardlink_to_missing_target() {
    let sb = Sandbox::new();
    let msg = refused(Layer::new().hardlink("h", "nope").build(), &sb);
    assert!(msg.contains("not in the layer"), "{msg}");
}

#[test]
fn rejects_layer_device_nodes() {
    for (kind, major, minor) in [(EntryType::Block, 8, 0), (EntryType::Char, 1, 3)] {
        let sb = Sandbox::new();
        let msg = refused(
            Layer::new().device(kind, "dev/x", major, minor).build(),
            &sb,
        );
        assert!(msg.contains("device node"), "{msg}");
        assert!(!sb.dest.join("dev/x").exists());
    }
}

#[test]
fn rejects_layer_overwriting_through_existing_symlink() {
    // A symlink followed by a file of the same name replaces the symlink; the target
    // outside is left untouched.
    let sb = Sandbox::new();
    let target = sb.outside.join("victim");
    fs::write(&target, "original").unwrap();
    let layer = Layer::new()
        .symlink("x", target.to_str().unwrap())
        .file("x", "overwritten")
        .build();
    unpack_layer(layer.as_slice(), &sb.dest).unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "original");
    assert!(fs::symlink_metadata(sb.dest.join("x")).unwrap().is_file());
    assert_eq!(
        fs::read_to_string(sb.dest.join("x")).unwrap(),
        "overwritten"
    );
}

#[test]
fn drops_overlay_xattrs_from_layers() {
    let sb = Sandbox::new();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([
            ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
            ("SCHILY.xattr.user.k", &b"v"[..]),
        ])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    builder.append_data(&mut h, "d", std::io::empty()).unwrap();
    unpack_layer(builder.into_inner().unwrap().as_slice(), &sb.dest).unwrap();
    assert_eq!(xattr(&sb.dest.join("d"), "trusted.overlay.opaque"), None);
    assert_eq!(
        xattr(&sb.dest.join("d"), "user.k").as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn keeps_modes_owners_times_links_and_fifos() {
    let sb = Sandbox::new();
    let layer = Layer::new()
        .raw(EntryType::Directory, "srv", "", b"", 0o750, 1000, 1001)
        .raw(
            EntryType::Regular,
            "srv/tool",
            "",
            b"#!/bin/sh\n",
            0o4755,
            0,
            0,
        )
        .raw(
            EntryType::Regular,
            "srv/data",
            "",
            b"data",
            0o600,
            1000,
            1001,
        )
        .symlink("srv/link", "data")
        .hardlink("srv/hard", "srv/data")
        .raw(EntryType::Fifo, "srv/pipe", "", b"", 0o644, 0, 0)
        .build();
    let written = unpack_layer(layer.as_slice(), &sb.dest).unwrap();
    // File content and the symlink's target, as `du -b` counts them.
    assert_eq!(written, 14 + "data".len() as u64);
    let srv = fs::metadata(sb.dest.join("srv")).unwrap();
    assert_eq!(
        (srv.mode() & 0o7777, srv.uid(), srv.gid(), srv.mtime()),
        (0o750, 1000, 1001, 1_600_000_000)
    );
    assert_eq!(
        fs::metadata(sb.dest.join("srv/tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    let data = fs::metadata(sb.dest.join("srv/data")).unwrap();
    assert_eq!(
        (data.mode() & 0o7777, data.uid(), data.gid(), data.nlink()),
        (0o600, 1000, 1001, 2)
    );
    assert_eq!(
        fs::read_link(sb.dest.join("srv/link")).unwrap().to_str(),
        Some("data")
    );
    assert_eq!(
        fs::metadata(sb.dest.join("srv/hard")).unwrap().ino(),
        data.ino()
    );
    assert!(fs::metadata(sb.dest.join("srv/pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn fifo_mode_was_cut_by_the_umask() {
    let sb = Sandbox::new();
    let layer = Layer::new()
        .raw(EntryType::Fifo, "pipe", "", b"", 0o666, 1000, 1001)
        .build();
    unpack_layer(layer.as_slice(), &sb.dest).unwrap();
    let meta = fs::symlink_metadata(sb.dest.join("pipe")).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid(), meta.mtime()),
        (0o666, 1000, 1001, 1_600_000_000)
    );
}

#[test]
fn unpacks_gzip_layers() {
    use std::io::Write;
    let sb = Sandbox::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&Layer::new().file("a/b", "zipped").build())
        .unwrap();
    unpack_layer(gz.finish().unwrap().as_slice(), &sb.dest).unwrap();
    assert_eq!(fs::read_to_string(sb.dest.join("a/b")).unwrap(), "zipped");
}

#[test]
fn translates_whiteouts_to_overlay_form() {
    let sb = Sandbox::new();
    let layer = Layer::new()
        .file("a/.wh.gone", "")
        .file("d/.wh..wh..opq", "")
        .build();
    unpack_layer(layer.as_slice(), &sb.dest).unwrap();
    let meta = fs::symlink_metadata(sb.dest.join("a/gone")).unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), 0);
    assert!(!sb.dest.join("a/.wh.gone").exists());
    assert_eq!(
        xattr(&sb.dest.join("d"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(entries(&sb.dest.join("d")).is_empty());
}

#[test]
fn whiteouts_hide_lower_content_under_overlay() {
    let tmp = common::temp_dir();
    let dir = |n: &str| {
        let p = tmp.path().join(n);
        fs::create_dir(&p).unwrap();
        p
    };
    let (lower, upper_layer, upper, work, merged) = (
        dir("l1"),
        dir("l2"),
        dir("upper"),
        dir("work"),
        dir("merged"),
    );
    let base = Layer::new()
        .file("a/deleted", "1")
        .file("a/kept", "2")
        .file("d/old", "3")
        .build();
    let top = Layer::new()
        .file("a/.wh.deleted", "")
        .file("d/.wh..wh..opq", "")
        .file("d/new", "4")
        .build();
    unpack_layer(base.as_slice(), &lower).unwrap();
    unpack_layer(top.as_slice(), &upper_layer).unwrap();
    skiff_image::overlay::mount(
        &[upper_layer.clone(), lower.clone()],
        &upper,
        &work,
        &merged,
    )
    .unwrap();
    let _guard = MountGuard(merged.clone());
    assert_eq!(entries(&merged.join("a")), ["kept"]);
    assert_eq!(entries(&merged.join("d")), ["new"]);
    // Read-only mount of the same snapshots shows the same tree.
    let ro = dir("ro");
    skiff_image::overlay::mount_read_only(&[upper_layer, lower], &ro).unwrap();
    let _ro_guard = MountGuard(ro.clone());
    assert_eq!(entries(&ro.join("a")), ["kept"]);
    assert!(fs::write(ro.join("a/new"), "x").is_err());
}

#[test]
fn mounts_overlay_with_more_layers_than_fit_in_a_page() {
    let tmp = common::temp_dir();
    // Long paths: 150 of them are far beyond the 4096-byte option limit.
    let base = tmp.path().join("x".repeat(60));
    let lowers: Vec<_> = (0..150)
        .map(|i| {
            let d = base.join(format!("{i:03}-{}", "y".repeat(60)));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(format!("f{i}")), i.to_string()).unwrap();
            d
        })
        .collect();
    let (upper, work, merged) = (
        tmp.path().join("u"),
        tmp.path().join("w"),
        tmp.path().join("m"),
    );
    for d in [&upper, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    skiff_image::overlay::mount(&lowers, &upper, &work, &merged).unwrap();
    let _guard = MountGuard(merged.clone());
    assert_eq!(entries(&merged).len(), 150);
    assert_eq!(fs::read_to_string(merged.join("f149")).unwrap(), "149");
}

#[test]
fn unmount_is_idempotent() {
    let tmp = common::temp_dir();
    skiff_image::overlay::unmount(tmp.path()).unwrap();
    skiff_image::overlay::unmount(&tmp.path().join("missing")).unwrap();
}

fn xattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated and `buf` is writable for its length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}
