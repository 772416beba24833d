//! Normal OCI layer semantics: files, modes, mtimes, links, whiteouts, opaque directories,
//! replacements, compression, diff_ids and ownership. Every test also checks that nothing
//! outside the rootfs changed.

mod unpack_support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ags_oci::unpack::{UnpackError, UnpackOptions, unpack_layer};
use unpack_support::*;

/// A realistic layer written by the tar crate's Builder (GNU long names and links).
fn builder_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_500_000_000);
        h.set_size(data.len() as u64);
        match link {
            Some(target) => b.append_link(&mut h, path, target).unwrap(),
            None => b.append_data(&mut h, path, data).unwrap(),
        }
    };
    let long_dir = format!("usr/share/{}", "long-directory-name/".repeat(8));
    add("etc/", tar::EntryType::Directory, 0o755, b"", None);
    add(
        "etc/hostname",
        tar::EntryType::Regular,
        0o644,
        b"box\n",
        None,
    );
    add(
        "usr/bin/tool",
        tar::EntryType::Regular,
        0o755,
        b"#!/bin/sh\n",
        None,
    );
    add(
        &format!("{long_dir}file"),
        tar::EntryType::Regular,
        0o600,
        b"long",
        None,
    );
    add(
        "usr/bin/alias",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("tool"),
    );
    add(
        "usr/bin/far",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some(&format!("/{long_dir}file")),
    );
    add(
        "usr/bin/hard",
        tar::EntryType::Link,
        0o755,
        b"",
        Some("usr/bin/tool"),
    );
    add("var/empty/", tar::EntryType::Directory, 0o711, b"", None);
    b.into_inner().unwrap()
}

fn relative_snapshot(root: &Path) -> Vec<(String, Node)> {
    snapshot(root, None)
        .into_iter()
        .map(|(p, mut n)| {
            // Link counts and owners are compared separately; inode numbers are not kept.
            n.nlink = 0;
            // Directories the layer does not list get the time they were created.
            if n.kind == "dir" {
                n.mtime = (0, 0);
            }
            (p.strip_prefix(root).unwrap().display().to_string(), n)
        })
        .collect()
}

#[test]
fn plain_gzip_and_zstd_layers_unpack_identically() {
    let tar = builder_layer();
    let mut trees = Vec::new();
    for (blob, media) in [(tar.clone(), PLAIN), (gzip(&tar), GZIP), (zstd(&tar), ZSTD)] {
        let env = Env::new();
        let stats = env
            .apply_with(
                &blob,
                media,
                Some(&diff_id(&tar)),
                &UnpackOptions::default(),
            )
            .unwrap();
        env.assert_outside_unchanged();
        assert_eq!(stats.diff_id, diff_id(&tar));
        assert_eq!(stats.uncompressed_bytes, tar.len() as u64);
        assert_eq!(
            (stats.files, stats.dirs, stats.symlinks, stats.hardlinks),
            (3, 2, 2, 1)
        );

        assert_eq!(fs::read(env.path("etc/hostname")).unwrap(), b"box\n");
        let tool = fs::metadata(env.path("usr/bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o755);
        assert_eq!(tool.mtime(), 1_500_000_000);
        assert_eq!(tool.nlink(), 2);
        assert_eq!(
            tool.ino(),
            fs::metadata(env.path("usr/bin/hard")).unwrap().ino()
        );
        assert_eq!(
            fs::read_link(env.path("usr/bin/alias")).unwrap().to_str(),
            Some("tool")
        );
        let far = fs::read_link(env.path("usr/bin/far")).unwrap();
        assert!(far.to_str().unwrap().len() > 100);
        let long = env
            .rootfs
            .join(far.to_str().unwrap().trim_start_matches('/'));
        assert_eq!(fs::read(&long).unwrap(), b"long");
        assert_eq!(mode_of(&long), 0o600);
        assert_eq!(mode_of(&env.path("var/empty")), 0o711);
        assert_eq!(
            fs::metadata(env.path("var/empty")).unwrap().mtime(),
            1_500_000_000
        );
        trees.push(relative_snapshot(&env.rootfs));
    }
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
}

#[test]
fn multi_member_gzip_and_empty_layers() {
    let a = Layer::new().file("a", b"a").unterminated();
    let b = Layer::new().file("b", b"b").tar();
    let tar = [a.clone(), b.clone()].concat();
    let blob = [gzip(&a), gzip(&b)].concat();
    let env = Env::new();
    env.apply_with(&blob, GZIP, Some(&diff_id(&tar)), &UnpackOptions::default())
        .unwrap();
    assert_eq!(fs::read(env.path("b")).unwrap(), b"b");

    for empty in [Vec::new(), vec![0u8; 1024]] {
        let env = Env::new();
        let stats = env
            .apply_with(
                &empty,
                PLAIN,
                Some(&diff_id(&empty)),
                &UnpackOptions::default(),
            )
            .unwrap();
        assert_eq!(stats.entries, 0);
        assert_eq!(fs::read_dir(&env.rootfs).unwrap().count(), 0);
    }
}

#[test]
fn special_mode_bits_are_kept() {
    let env = Env::new();
    let layer = Layer::new()
        .file_mode("bin/su", b"su", 0o4755)
        .file_mode("bin/wall", b"wall", 0o2711)
        .file_mode("bin/both", b"b", 0o6755)
        .dir_mode("tmp", 0o1777)
        .dir_mode("srv/shared", 0o2775)
        .file_mode("srv/shared/secret", b"s", 0o400)
        .tar();
    env.apply(&layer).unwrap();
    env.assert_outside_unchanged();
    for (path, mode) in [
        ("bin/su", 0o4755),
        ("bin/wall", 0o2711),
        ("bin/both", 0o6755),
        ("tmp", 0o1777),
        ("srv/shared", 0o2775),
        ("srv/shared/secret", 0o400),
    ] {
        assert_eq!(mode_of(&env.path(path)), mode, "{path}");
    }
}

#[test]
fn whiteouts_remove_lower_files_and_trees() {
    let env = Env::new();
    let lower = Layer::new()
        .file("a", b"a")
        .dir("d")
        .file("d/x", b"x")
        .dir_mode("d/y", 0o500)
        .file("d/y/z", b"z")
        .file("keep/k", b"k")
        .tar();
    let upper = Layer::new()
        .entry(".wh.a", REG)
        .entry(".wh.d", REG)
        .entry(".wh.missing", REG)
        .entry("nodir/.wh.x", REG)
        .entry("keep/.wh.nothing", REG)
        .tar();
    env.apply(&lower).unwrap();
    let stats = env.apply(&upper).unwrap();
    env.assert_outside_unchanged();
    assert_eq!(stats.whiteouts, 2);
    assert!(!exists_nofollow(&env.path("a")));
    assert!(!exists_nofollow(&env.path("d")));
    assert!(!exists_nofollow(&env.path("nodir")));
    assert_eq!(fs::read(env.path("keep/k")).unwrap(), b"k");
    assert!(!exists_nofollow(&env.path("keep/.wh.nothing")));
}

#[test]
fn opaque_directory_is_created_when_missing() {
    let env = Env::new();
    let layer = Layer::new().entry("new/dir/.wh..wh..opq", REG).tar();
    let stats = env.apply(&layer).unwrap();
    assert_eq!(stats.opaque_dirs, 1);
    assert!(env.path("new/dir").is_dir());
    assert_eq!(fs::read_dir(env.path("new/dir")).unwrap().count(), 0);
}

#[test]
fn rewriting_a_hardlinked_name_does_not_touch_the_other_name() {
    let env = Env::new();
    let lower = Layer::new()
        .file("etc/passwd", b"root:x:0:0")
        .hardlink("etc/passwd-", "etc/passwd")
        .tar();
    let upper = Layer::new().file("etc/passwd-", b"changed").tar();
    env.apply(&lower).unwrap();
    env.apply(&upper).unwrap();
    assert_eq!(fs::read(env.path("etc/passwd")).unwrap(), b"root:x:0:0");
    assert_eq!(fs::read(env.path("etc/passwd-")).unwrap(), b"changed");
    assert_eq!(fs::metadata(env.path("etc/passwd")).unwrap().nlink(), 1);
}

#[test]
fn existing_directory_is_kept_and_its_metadata_updated() {
    let env = Env::new();
    let lower = Layer::new().dir_mode("d", 0o755).file("d/x", b"x").tar();
    let upper = Layer::new()
        .raw(Raw {
            mode: 0o700,
            mtime: 1_234_567_890,
            ..Raw::new(b"d/", DIR)
        })
        .file("d/y", b"y")
        .tar();
    env.apply(&lower).unwrap();
    env.apply(&upper).unwrap();
    assert_eq!(fs::read(env.path("d/x")).unwrap(), b"x");
    assert_eq!(fs::read(env.path("d/y")).unwrap(), b"y");
    assert_eq!(mode_of(&env.path("d")), 0o700);
    // Applied after d/y was created, so the child did not bump it.
    assert_eq!(fs::metadata(env.path("d")).unwrap().mtime(), 1_234_567_890);
}

#[test]
fn entries_replace_whatever_is_in_the_way() {
    let env = Env::new();
    let lower = Layer::new()
        .dir("file_over_dir")
        .file("file_over_dir/x", b"x")
        .file("dir_over_file", b"f")
        .dir("symlink_over_dir")
        .file("symlink_over_dir/x", b"x")
        .symlink("dir_over_symlink", "elsewhere")
        .dir("elsewhere")
        .file("hardlink_over_file", b"old")
        .file("target", b"target")
        .tar();
    let upper = Layer::new()
        .file("file_over_dir", b"file")
        .dir("dir_over_file")
        .symlink("symlink_over_dir", "elsewhere")
        .dir_mode("dir_over_symlink", 0o700)
        .hardlink("hardlink_over_file", "target")
        .tar();
    env.apply(&lower).unwrap();
    env.apply(&upper).unwrap();
    env.assert_outside_unchanged();
    assert_eq!(fs::read(env.path("file_over_dir")).unwrap(), b"file");
    assert!(
        fs::symlink_metadata(env.path("dir_over_file"))
            .unwrap()
            .is_dir()
    );
    assert!(is_symlink(&env.path("symlink_over_dir")));
    assert!(
        fs::symlink_metadata(env.path("dir_over_symlink"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(mode_of(&env.path("dir_over_symlink")), 0o700);
    assert_eq!(mode_of(&env.path("elsewhere")), 0o755);
    assert_eq!(fs::read(env.path("hardlink_over_file")).unwrap(), b"target");
}

#[test]
fn read_only_lower_directories_accept_children_and_keep_their_mode() {
    let env = Env::new();
    let lower = Layer::new()
        .dir_mode("ro", 0o555)
        .file("ro/old", b"old")
        .dir_mode("locked", 0o000)
        .tar();
    let upper = Layer::new()
        .file("ro/new", b"new")
        .file("locked/inside/deep", b"deep")
        .entry("ro/.wh.old", REG)
        .tar();
    env.apply(&lower).unwrap();
    assert_eq!(mode_of(&env.path("ro")), 0o555);
    env.apply(&upper).unwrap();
    env.assert_outside_unchanged();
    assert_eq!(mode_of(&env.path("ro")), 0o555);
    assert_eq!(mode_of(&env.path("locked")), 0o000);
    assert_eq!(fs::read(env.path("ro/new")).unwrap(), b"new");
    assert!(!exists_nofollow(&env.path("ro/old")));
    fs::set_permissions(
        env.path("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    assert_eq!(fs::read(env.path("locked/inside/deep")).unwrap(), b"deep");
}

#[test]
fn mtimes_of_files_symlinks_and_pax_fractions() {
    let env = Env::new();
    let layer = Layer::new()
        .raw(Raw {
            mtime: 1_000_000_000,
            data: b"f",
            ..Raw::new(b"f", REG)
        })
        .raw(Raw {
            mtime: 1_100_000_000,
            link: b"f",
            ..Raw::new(b"l", SYM)
        })
        .pax(&[("mtime", b"1200000000.25")])
        .file("p", b"p")
        .tar();
    env.apply(&layer).unwrap();
    assert_eq!(fs::metadata(env.path("f")).unwrap().mtime(), 1_000_000_000);
    assert_eq!(
        fs::symlink_metadata(env.path("l")).unwrap().mtime(),
        1_100_000_000
    );
    let p = fs::metadata(env.path("p")).unwrap();
    assert_eq!((p.mtime(), p.mtime_nsec()), (1_200_000_000, 250_000_000));
}

#[test]
fn ownership_is_preserved_only_when_asked_and_permitted() {
    let layer = Layer::new()
        .raw(Raw {
            uid: 1234,
            gid: 5678,
            mode: 0o4755,
            data: b"x",
            ..Raw::new(b"f", REG)
        })
        .raw(Raw {
            uid: 1234,
            gid: 5678,
            ..Raw::new(b"d", DIR)
        })
        .raw(Raw {
            uid: 1234,
            gid: 5678,
            link: b"f",
            ..Raw::new(b"l", SYM)
        })
        .tar();
    let opts = UnpackOptions {
        preserve_ownership: true,
        ..UnpackOptions::default()
    };
    let env = Env::new();
    let result = env.apply_with(&layer, PLAIN, None, &opts);
    env.assert_outside_unchanged();
    if euid() == 0 {
        let stats = result.unwrap();
        if stats.unmapped_owners == 0 {
            for path in ["f", "d", "l"] {
                let meta = fs::symlink_metadata(env.path(path)).unwrap();
                assert_eq!((meta.uid(), meta.gid()), (1234, 5678), "{path}");
            }
            // chown before chmod: the setuid bit survives.
            assert_eq!(mode_of(&env.path("f")), 0o4755);
        }
    } else {
        assert!(
            matches!(
                result,
                Err(UnpackError::Fs {
                    op: "change owner of",
                    ..
                })
            ),
            "{result:?}"
        );
    }

    // Without the option, everything belongs to the caller.
    let env = Env::new();
    env.apply(&layer).unwrap();
    for path in ["f", "d", "l"] {
        assert_eq!(fs::symlink_metadata(env.path(path)).unwrap().uid(), euid());
    }

    // Ids that cannot be chown'ed to are refused rather than wrapped.
    let bad = Layer::new()
        .raw(Raw {
            uid: u64::from(u32::MAX),
            ..Raw::new(b"f", REG)
        })
        .tar();
    let env = Env::new();
    assert!(matches!(
        env.apply_with(&bad, PLAIN, None, &opts),
        Err(UnpackError::InvalidEntry { .. })
    ));
}

#[test]
fn fifos_and_devices_are_created_when_not_rootless() {
    let opts = UnpackOptions {
        rootless: false,
        ..UnpackOptions::default()
    };
    let env = Env::new();
    let layer = Layer::new()
        .raw(Raw {
            mode: 0o620,
            ..Raw::new(b"run/fifo", FIFO)
        })
        .tar();
    env.apply_with(&layer, PLAIN, None, &opts).unwrap();
    let meta = fs::symlink_metadata(env.path("run/fifo")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
    assert_eq!(meta.mode() & 0o7777, 0o620);

    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Char);
    header.set_device_major(1).unwrap();
    header.set_device_minor(3).unwrap();
    header.set_mode(0o666);
    header.set_size(0);
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header, "dev/null", &b""[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let env = Env::new();
    match env.apply_with(&layer, PLAIN, None, &opts) {
        Ok(_) => {
            let meta = fs::symlink_metadata(env.path("dev/null")).unwrap();
            assert!(std::os::unix::fs::FileTypeExt::is_char_device(
                &meta.file_type()
            ));
            assert_eq!(meta.rdev(), rustix::fs::makedev(1, 3));
        }
        // Unprivileged, or a device cgroup that forbids mknod: a clear error.
        Err(UnpackError::Fs { op, source, .. }) => {
            assert_eq!(op, "create device node");
            assert_eq!(source.raw_os_error(), Some(libc::EPERM));
        }
        Err(other) => panic!("{other:?}"),
    }
    env.assert_outside_unchanged();
}

#[test]
fn unpacking_stacked_layers_then_removing_the_rootfs() {
    let env = Env::new();
    let base = builder_layer();
    let upper = Layer::new()
        .entry("etc/.wh.hostname", REG)
        .entry("usr/.wh..wh..opq", REG)
        .file("usr/bin/new", b"new")
        .dir_mode("var", 0o500)
        .tar();
    env.apply(&base).unwrap();
    env.apply(&upper).unwrap();
    assert!(!exists_nofollow(&env.path("etc/hostname")));
    assert!(!exists_nofollow(&env.path("usr/bin/tool")));
    assert!(!exists_nofollow(&env.path("usr/share")));
    assert_eq!(fs::read(env.path("usr/bin/new")).unwrap(), b"new");
    assert!(env.path("var/empty").is_dir());
    ags_oci::unpack::remove_tree(&env.rootfs).unwrap();
    env.assert_outside_unchanged_after_removal();
}

#[test]
fn error_messages_name_the_entry_and_the_path() {
    let env = Env::new();
    let layer = Layer::new().file("f", b"f").file("f/x\x1b[31m", b"x").tar();
    let err = env.apply(&layer).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/f") && msg.contains(&env.rootfs.display().to_string()),
        "{msg}"
    );
    let layer = Layer::new().file("../x\x1b[2J", b"x").tar();
    let msg = env.apply(&layer).unwrap_err().to_string();
    assert!(
        msg.contains("../x\\u{1b}[2J") && !msg.contains('\x1b'),
        "{msg}"
    );
    // The caller-facing function signature works with any reader.
    let tar = Layer::new().file("r", b"r").tar();
    unpack_layer(
        &env.rootfs,
        std::io::Cursor::new(tar),
        PLAIN,
        None,
        &UnpackOptions::default(),
    )
    .unwrap();
}
