//! Hostile layers, one test per threat class of /work/shared/notes/threats.md ("Unpacking
//! image layers"). Every test puts a canary tree next to the rootfs (and points absolute and
//! relative symlinks at it) and asserts that the whole temp dir outside the rootfs — file
//! contents, modes, owners, link counts, mtimes — is exactly what it was. The expected
//! outcome is always "error, or a write contained in the rootfs".
//!
//! The tests pass as root and as an unprivileged user: ownership is not preserved and
//! device nodes are skipped (the defaults).

mod unpack_support;

use std::fs;

use ags_oci::unpack::{Budgets, UnpackError, UnpackOptions, remove_tree, unpack_layer};
use unpack_support::*;

fn expect_invalid(result: Result<(), UnpackError>, what: &str) {
    match result {
        Err(UnpackError::InvalidEntry { .. }) => {}
        other => panic!("{what}: expected an invalid-entry error, got {other:?}"),
    }
}

// --- `../` and absolute names -----------------------------------------------------------

#[test]
fn dotdot_names_are_rejected() {
    let env0 = Env::new();
    let names = [
        "../canary/file".to_owned(),
        "../canary/pwned".to_owned(),
        "../../../../../../../../pwned".to_owned(),
        "a/../../canary/pwned".to_owned(),
        "./../pwned".to_owned(),
        "/../pwned".to_owned(),
        "a/b/../../../pwned".to_owned(),
        "a/..".to_owned(),
        format!("{}/../file", env0.canary_abs()),
    ];
    for name in &names {
        for kind in [REG, DIR, SYM, LNK, FIFO] {
            let env = Env::new();
            let layer = Layer::new()
                .file("etc/ok", b"ok")
                .raw(Raw {
                    data: if kind == REG { b"pwned" } else { b"" },
                    link: if kind == LNK { b"etc/ok" } else { b"/" },
                    ..Raw::new(name.as_bytes(), kind)
                })
                .tar();
            expect_invalid(env.hostile(&[layer]), name);
        }
    }
}

#[test]
fn absolute_names_are_taken_relative_to_the_rootfs() {
    let env = Env::new();
    let canary_file = format!("{}/file", env.canary_abs());
    let canary_new = format!("{}/sub/pwned", env.canary_abs());
    let layer = Layer::new()
        .file("/abs", b"1")
        .file("////double/slash", b"2")
        .file("./dot/slash", b"3")
        .file(&canary_file, b"pwned")
        .file(&canary_new, b"pwned")
        .dir_mode(&env.canary_abs(), 0o777)
        .tar();
    env.hostile(&[layer]).unwrap();
    assert_eq!(fs::read(env.path("abs")).unwrap(), b"1");
    assert_eq!(fs::read(env.path("double/slash")).unwrap(), b"2");
    assert_eq!(fs::read(env.path("dot/slash")).unwrap(), b"3");
    assert_eq!(
        fs::read(env.contained_canary().join("file")).unwrap(),
        b"pwned"
    );
    assert_eq!(
        fs::read(env.contained_canary().join("sub/pwned")).unwrap(),
        b"pwned"
    );
}

#[test]
fn nul_bytes_and_overlong_names_are_rejected() {
    let env = Env::new();
    let long = "a/".repeat(3000);
    let component = "c".repeat(300);
    let cases: Vec<Vec<u8>> = vec![
        b"etc/pass\0wd".to_vec(),
        long.into_bytes(),
        component.into_bytes(),
    ];
    for name in cases {
        // PAX path records can carry bytes a ustar name field cannot.
        let layer = Layer::new()
            .pax(&[("path", &name)])
            .entry("placeholder", REG)
            .tar();
        let r = env.hostile(&[layer]);
        assert!(
            matches!(r, Err(UnpackError::InvalidEntry { .. })),
            "{}: {r:?}",
            String::from_utf8_lossy(&name)
        );
    }
    assert!(!exists_nofollow(&env.path("etc")));
}

#[test]
fn pax_and_gnu_name_overrides_are_confined_too() {
    let env0 = Env::new();
    let abs_file = format!("{}/file", env0.canary_abs());
    let long_dotdot = format!("{}/../../canary/pwned", "x".repeat(120));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "pax path",
            Layer::new()
                .pax(&[("path", b"../canary/pwned")])
                .file("benign", b"x")
                .tar(),
        ),
        ("gnu long name", Layer::new().file(&long_dotdot, b"x").tar()),
        (
            "pax linkpath",
            Layer::new()
                .file("t", b"t")
                .pax(&[("linkpath", b"../canary/file")])
                .hardlink("benign", "t")
                .tar(),
        ),
        (
            "gnu long link",
            Layer::new()
                .file("t", b"t")
                .hardlink(
                    "benign",
                    &format!("{}/../../../canary/file", "y".repeat(120)),
                )
                .tar(),
        ),
        (
            "pax path absolute",
            Layer::new()
                .pax(&[("path", abs_file.as_bytes())])
                .file("benign", b"x")
                .tar(),
        ),
    ];
    for (what, layer) in cases {
        let env = Env::new();
        let r = env.hostile(&[layer]);
        if what == "pax path absolute" {
            r.unwrap();
            let landed = env.rootfs.join(abs_file.trim_start_matches('/'));
            assert_eq!(fs::read(landed).unwrap(), b"x");
            assert!(!exists_nofollow(&env.path("benign")));
        } else {
            expect_invalid(r, what);
        }
    }
}

#[test]
fn legacy_directory_entries_are_directories() {
    let env = Env::new();
    let layer = Layer::new()
        .raw(Raw {
            mode: 0o755,
            ..Raw::new(b"olddir/", 0)
        })
        .raw(Raw {
            data: b"f",
            ..Raw::new(b"olddir/f", 0)
        })
        .tar();
    env.hostile(&[layer]).unwrap();
    assert!(fs::symlink_metadata(env.path("olddir")).unwrap().is_dir());
    assert_eq!(fs::read(env.path("olddir/f")).unwrap(), b"f");
}

// --- writing through a symlink planted earlier (CVE-2014-6407 / CVE-2014-9356) ----------

/// Symlinks an attacker plants to reach the canary, with the in-rootfs directory a
/// contained resolution ends up in.
fn planted_symlinks(env: &Env) -> Vec<(String, String)> {
    vec![
        (env.canary_abs(), env.canary_rel()),
        ("../canary".into(), "canary".into()),
        ("../../../../../../../../canary".into(), "canary".into()),
        ("/../../canary".into(), "canary".into()),
        ("..".into(), String::new()),
        ("/".into(), String::new()),
        (
            format!("/proc/self/root{}", env.canary_abs()),
            format!("proc/self/root/{}", env.canary_rel()),
        ),
        (
            format!("/proc/self/cwd/../{}", env.canary_rel()),
            String::new(),
        ),
    ]
}

#[test]
fn writes_through_symlinks_planted_in_the_same_layer_stay_inside() {
    for decoy in [false, true] {
        let env0 = Env::new();
        for (target, _) in planted_symlinks(&env0) {
            for (victim, kind) in [
                ("pwned", REG),
                ("file", REG),
                ("sub", DIR),
                ("sub/secret", REG),
                ("newdir", DIR),
                ("link", SYM),
            ] {
                let env = Env::new();
                let mut layer = Layer::new();
                if decoy {
                    // In-rootfs copies of the paths a contained resolution lands on.
                    layer = layer
                        .dir(&format!("{}/sub", env.canary_rel()))
                        .dir("canary/sub");
                }
                let layer = layer
                    .symlink("evil", &target)
                    .raw(Raw {
                        data: if kind == REG { b"pwned" } else { b"" },
                        link: b"/",
                        mode: 0o777,
                        ..Raw::new(format!("evil/{victim}").as_bytes(), kind)
                    })
                    .tar();
                // Either outcome is fine; the canary is checked inside hostile().
                let _ = env.hostile(&[layer]);
            }
        }
    }
}

#[test]
fn writes_through_symlinks_planted_in_a_lower_layer_stay_inside() {
    let env0 = Env::new();
    for (target, landing) in planted_symlinks(&env0) {
        let env = Env::new();
        let lower = Layer::new()
            .dir(&format!("{}/sub", env.canary_rel()))
            .dir("canary/sub")
            .symlink("evil", &target)
            .symlink("usr/lib", &target)
            .tar();
        let upper = Layer::new()
            .file("evil/pwned", b"pwned")
            .file("evil/file", b"pwned")
            .dir_mode("evil/sub", 0o777)
            .file_mode("usr/lib/pwned.so", b"pwned", 0o4777)
            .tar();
        let r = env.hostile(&[lower, upper]);
        if r.is_ok() && !landing.starts_with("proc") && !target.starts_with("/proc") {
            let landed = env.rootfs.join(&landing);
            assert_eq!(
                fs::read(landed.join("pwned")).unwrap(),
                b"pwned",
                "{target}"
            );
            assert_eq!(mode_of(&landed.join("sub")), 0o777, "{target}");
        }
    }
}

#[test]
fn final_symlink_is_replaced_never_followed() {
    let env = Env::new();
    let canary_file = format!("{}/file", env.canary_abs());
    let lower = Layer::new()
        .symlink("f", &canary_file)
        .symlink("d", &env.canary_abs())
        .symlink("h", &canary_file)
        .symlink("rel", "../canary/file")
        .tar();
    // tar-rs CVE-2026-33056: a directory entry over a symlink chmod'ed the target.
    let upper = Layer::new()
        .file_mode("f", b"replaced", 0o777)
        .dir_mode("d", 0o777)
        .file("etc/x", b"x")
        .hardlink("h", "etc/x")
        .file_mode("rel", b"replaced", 0o4777)
        .tar();
    env.hostile(&[lower, upper]).unwrap();
    assert_eq!(fs::read(env.path("f")).unwrap(), b"replaced");
    assert!(!is_symlink(&env.path("f")) && !is_symlink(&env.path("d")));
    assert_eq!(mode_of(&env.path("d")), 0o777);
    assert_eq!(fs::read(env.path("h")).unwrap(), b"x");
    assert_eq!(mode_of(&env.path("rel")), 0o4777);
}

#[test]
fn symlink_loops_are_an_error() {
    let env = Env::new();
    let layer = Layer::new()
        .symlink("a", "b")
        .symlink("b", "/a")
        .file("a/x", b"x")
        .tar();
    assert!(env.hostile(&[layer]).is_err());
}

// --- the root itself replaced (umoci CVE-2021-29136) ------------------------------------

#[test]
fn the_root_cannot_be_replaced_or_removed() {
    let env0 = Env::new();
    let canary_abs = env0.canary_abs();
    for name in [&b"."[..], b"/", b"./", b"", b"//", b"/./."] {
        for kind in [SYM, REG, LNK, FIFO, CHR] {
            let env = Env::new();
            let layer = Layer::new()
                .file("etc/ok", b"ok")
                .raw(Raw {
                    link: if kind == LNK {
                        b"etc/ok"
                    } else {
                        canary_abs.as_bytes()
                    },
                    ..Raw::new(name, kind)
                })
                .file("pwned", b"pwned")
                .tar();
            expect_invalid(env.hostile(&[layer]), &String::from_utf8_lossy(name));
            assert!(fs::symlink_metadata(&env.rootfs).unwrap().is_dir());
        }
    }
    // A directory entry for the root only updates its metadata.
    let env = Env::new();
    let layer = Layer::new().dir_mode("./", 0o750).file("x", b"x").tar();
    env.hostile(&[layer]).unwrap();
    assert_eq!(mode_of(&env.rootfs), 0o750);
    assert_eq!(fs::read(env.path("x")).unwrap(), b"x");
}

// --- hardlinks to outside, and to a symlink followed by chmod (CVE-2021-32760) -----------

#[test]
fn hardlinks_cannot_reach_outside() {
    let env0 = Env::new();
    let targets = vec![
        "../canary/file".to_owned(),
        "../../../../../canary/file".to_owned(),
        format!("{}/file", env0.canary_abs()),
        format!("/proc/self/root{}/file", env0.canary_abs()),
        "evil/file".to_owned(),
        "evilrel/file".to_owned(),
        "/".to_owned(),
        ".".to_owned(),
        "etc".to_owned(),
        "missing".to_owned(),
    ];
    for target in targets {
        let env = Env::new();
        let layer = Layer::new()
            .dir("etc")
            .symlink("evil", &env.canary_abs())
            .symlink("evilrel", "../canary")
            .hardlink("h", &target)
            .tar();
        expect_invalid(env.hostile(&[layer]), &target);
        assert!(!exists_nofollow(&env.path("h")));
    }
}

#[test]
fn hardlink_to_a_symlink_links_the_symlink_and_chmods_nothing() {
    let env = Env::new();
    let canary_file = format!("{}/file", env.canary_abs());
    let lower = Layer::new()
        .symlink("s", &canary_file)
        .file("etc/passwd", b"root")
        .tar();
    let upper = Layer::new()
        .hardlink_mode("h", "s", 0o777)
        .hardlink_mode("p", "etc/passwd", 0o4777)
        // Then rewrite the links' names: replaced, never written through.
        .file_mode("h2", b"x", 0o777)
        .hardlink("h2", "s")
        .tar();
    env.hostile(&[lower, upper]).unwrap();
    assert!(is_symlink(&env.path("h")));
    assert_eq!(
        fs::read_link(env.path("h")).unwrap().to_str().unwrap(),
        canary_file
    );
    assert!(is_symlink(&env.path("h2")));
    // No metadata from a hardlink header is applied to the target.
    assert_eq!(mode_of(&env.path("etc/passwd")), 0o644);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(env.path("p")).unwrap().ino(),
        fs::metadata(env.path("etc/passwd")).unwrap().ino()
    );
}

#[test]
fn hardlink_through_a_symlinked_parent_resolves_in_root() {
    let env = Env::new();
    let layer = Layer::new()
        .file(&format!("{}/file", env.canary_rel()), b"decoy")
        .symlink("evil", &env.canary_abs())
        .hardlink("h", "evil/file")
        .tar();
    env.hostile(&[layer]).unwrap();
    assert_eq!(fs::read(env.path("h")).unwrap(), b"decoy");
}

// --- symlink/dir collisions -------------------------------------------------------------

#[test]
fn symlink_and_directory_collisions() {
    let env = Env::new();
    let lower = Layer::new()
        .dir("a")
        .file("a/x", b"lower")
        .symlink("b", &env.canary_abs())
        .dir("c")
        .symlink("c/inner", &env.canary_abs())
        .tar();
    let upper = Layer::new()
        // Directory replaced by a symlink to the canary, then written "through".
        .symlink("a", &env.canary_abs())
        .file("a/y", b"y")
        // Symlink replaced by a directory with a hostile mode.
        .dir_mode("b", 0o777)
        .file("b/z", b"z")
        // Directory with a symlink inside replaced by a file.
        .file("c", b"c")
        .tar();
    let r = env.hostile(&[lower, upper]);
    // `a/y` resolves in-root to a missing directory: an error, contained either way.
    assert!(r.is_err());

    let env = Env::new();
    let lower = Layer::new()
        .dir("a")
        .file("a/x", b"lower")
        .symlink("b", &env.canary_abs())
        .tar();
    let upper = Layer::new()
        .symlink("a", "/elsewhere")
        .dir("elsewhere")
        .file("a/y", b"y")
        .dir_mode("b", 0o777)
        .file("b/z", b"z")
        .symlink("b/", "../canary")
        .dir("b")
        .tar();
    env.hostile(&[lower, upper]).unwrap();
    assert!(is_symlink(&env.path("a")));
    assert!(!exists_nofollow(&env.path("a/x")));
    assert_eq!(fs::read(env.path("elsewhere/y")).unwrap(), b"y");
    assert!(fs::symlink_metadata(env.path("b")).unwrap().is_dir());
}

#[test]
fn a_file_as_parent_is_an_error() {
    let env = Env::new();
    let layer = Layer::new().file("f", b"f").file("f/x", b"x").tar();
    assert!(env.hostile(&[layer]).is_err());
}

// --- duplicate entries ------------------------------------------------------------------

#[test]
fn duplicate_entries_last_one_wins() {
    let env = Env::new();
    let canary_file = format!("{}/file", env.canary_abs());
    let layer = Layer::new()
        .file("x", b"first")
        .file("x", b"second")
        .dir_mode("d", 0o700)
        .file("d/inner", b"i")
        .dir_mode("d", 0o751)
        .file("t", b"file")
        .dir("t")
        .file("t", b"file again")
        .symlink("s", &canary_file)
        .file_mode("s", b"not through", 0o600)
        .symlink("s2", &canary_file)
        .symlink("s2", "../canary")
        .tar();
    env.hostile(&[layer]).unwrap();
    assert_eq!(fs::read(env.path("x")).unwrap(), b"second");
    assert_eq!(mode_of(&env.path("d")), 0o751);
    assert_eq!(fs::read(env.path("d/inner")).unwrap(), b"i");
    assert_eq!(fs::read(env.path("t")).unwrap(), b"file again");
    assert_eq!(fs::read(env.path("s")).unwrap(), b"not through");
    assert_eq!(
        fs::read_link(env.path("s2")).unwrap().to_str(),
        Some("../canary")
    );
}

// --- malicious whiteouts ----------------------------------------------------------------

#[test]
fn malformed_whiteouts_are_rejected() {
    for name in [
        ".wh.",
        ".wh..",
        ".wh...",
        "a/.wh.",
        "a/.wh..",
        "a/.wh...",
        ".wh.a/b",
        ".wh.x/.wh..wh..opq",
    ] {
        let env = Env::new();
        let lower = Layer::new()
            .dir("a")
            .file("a/keep", b"k")
            .file("keep", b"k")
            .tar();
        let upper = Layer::new().entry(name, REG).tar();
        expect_invalid(env.hostile(&[lower, upper]), name);
        assert_eq!(fs::read(env.path("keep")).unwrap(), b"k");
        assert_eq!(fs::read(env.path("a/keep")).unwrap(), b"k");
    }
}

#[test]
fn whiteouts_through_symlinked_parents_stay_inside() {
    let env = Env::new();
    let lower = Layer::new()
        .symlink("p", &env.canary_abs())
        .symlink("q", "../canary")
        .symlink("r", "/")
        .symlink("s", "..")
        .tar();
    let upper = Layer::new()
        .entry("p/.wh.file", REG)
        .entry("p/.wh.sub", REG)
        .entry("q/.wh.file", REG)
        .entry(&format!("r/{}/.wh.file", env.canary_rel()), REG)
        .entry("s/canary/.wh.sub", REG)
        .entry(&format!("{}/.wh.sub", env.canary_abs()), REG)
        .entry("../canary/.wh.file", REG)
        .tar();
    // The last entry has a `..` and is rejected after the others were applied.
    expect_invalid(env.hostile(&[lower, upper]), "whiteouts");
    assert!(is_symlink(&env.path("p")) && is_symlink(&env.path("q")));
}

#[test]
fn whiteout_of_a_symlink_removes_the_symlink_only() {
    let env = Env::new();
    let lower = Layer::new()
        .symlink("p", &env.canary_abs())
        .dir("d")
        .symlink("d/l", &env.canary_abs())
        .symlink("d/m", "../../canary/file")
        .dir_mode("ro", 0o555)
        .symlink("ro/l", &env.canary_abs())
        .tar();
    let upper = Layer::new()
        .entry(".wh.p", REG)
        .entry(".wh.d", REG)
        .entry(".wh.ro", REG)
        .tar();
    env.hostile(&[lower, upper]).unwrap();
    for gone in ["p", "d", "ro"] {
        assert!(!exists_nofollow(&env.path(gone)), "{gone}");
    }
}

#[test]
fn opaque_whiteouts_stay_inside() {
    let env = Env::new();
    let lower = Layer::new()
        .symlink("o", &env.canary_abs())
        .symlink("rel", "../canary")
        .dir("d")
        .symlink("d/out", &env.canary_abs())
        .file("keep", b"k")
        .tar();
    // Opaque at the root with symlinks to the canary in it, and through symlinks.
    let upper = Layer::new()
        .entry("./.wh..wh..opq", REG)
        .file("new", b"n")
        .tar();
    env.hostile(&[lower.clone(), upper]).unwrap();
    assert!(!exists_nofollow(&env.path("keep")) && !exists_nofollow(&env.path("o")));
    assert_eq!(fs::read(env.path("new")).unwrap(), b"n");

    for name in ["o/.wh..wh..opq", "rel/.wh..wh..opq", "o/sub/.wh..wh..opq"] {
        let env = Env::new();
        let upper = Layer::new().entry(name, REG).tar();
        let _ = env.hostile(&[lower.clone(), upper]);
    }
}

// --- opaque whiteouts before siblings of the same layer ---------------------------------

#[test]
fn opaque_whiteout_keeps_same_layer_siblings_in_any_order() {
    for opaque_first in [true, false] {
        let env = Env::new();
        let lower = Layer::new()
            .dir("d")
            .file("d/old", b"old")
            .dir("d/sub")
            .file("d/sub/old", b"old")
            .file("d/replaced", b"old")
            .tar();
        let mut upper = Layer::new();
        if opaque_first {
            upper = upper.dir("d").entry("d/.wh..wh..opq", REG);
        }
        upper = upper
            .file("d/new", b"new")
            .file("d/sub/new", b"new")
            .file("d/replaced", b"new");
        if !opaque_first {
            upper = upper.entry("d/.wh..wh..opq", REG).dir("d");
        }
        env.hostile(&[lower, upper.tar()]).unwrap();
        assert!(
            !exists_nofollow(&env.path("d/old")),
            "opaque_first={opaque_first}"
        );
        assert!(
            !exists_nofollow(&env.path("d/sub/old")),
            "opaque_first={opaque_first}"
        );
        assert_eq!(fs::read(env.path("d/new")).unwrap(), b"new");
        assert_eq!(fs::read(env.path("d/sub/new")).unwrap(), b"new");
        assert_eq!(fs::read(env.path("d/replaced")).unwrap(), b"new");
    }
}

#[test]
fn whiteouts_do_not_remove_same_layer_entries() {
    let env = Env::new();
    let lower = Layer::new().file("a", b"lower").file("b", b"lower").tar();
    let upper = Layer::new()
        .file("a", b"upper")
        .entry(".wh.a", REG)
        .entry(".wh.b", REG)
        .file("b", b"upper")
        .tar();
    env.apply(&lower).unwrap();
    let stats = env.apply(&upper).unwrap();
    env.assert_outside_unchanged();
    assert_eq!(fs::read(env.path("a")).unwrap(), b"upper");
    assert_eq!(fs::read(env.path("b")).unwrap(), b"upper");
    assert_eq!(stats.same_layer_whiteouts, 1);
    assert_eq!(stats.whiteouts, 1);
}

// --- device nodes, fifos, setuid bits when rootless -------------------------------------

#[test]
fn devices_and_fifos_are_skipped_when_rootless() {
    let env = Env::new();
    let lower = Layer::new().file("dev/console", b"lower file").tar();
    let upper = Layer::new()
        .raw(Raw {
            mode: 0o666,
            ..Raw::new(b"dev/null", CHR)
        })
        .raw(Raw {
            mode: 0o660,
            ..Raw::new(b"dev/sda", BLK)
        })
        .raw(Raw::new(b"dev/console", CHR))
        .raw(Raw::new(b"run/fifo", FIFO))
        .raw(Raw::new(
            format!("{}/fifo", env.canary_abs()).as_bytes(),
            FIFO,
        ))
        .tar();
    env.apply(&lower).unwrap();
    let stats = env.apply(&upper).unwrap();
    env.assert_outside_unchanged();
    assert_eq!(stats.skipped_devices, 3);
    assert_eq!(stats.skipped_fifos, 2);
    assert!(
        stats.notes.iter().any(|n| n.contains("/dev/null")),
        "{:?}",
        stats.notes
    );
    for gone in ["dev/null", "dev/sda", "dev/console", "run/fifo"] {
        assert!(!exists_nofollow(&env.path(gone)), "{gone}");
    }
}

#[test]
fn setuid_bits_are_kept_on_caller_owned_files() {
    let env = Env::new();
    let layer = Layer::new()
        .raw(Raw {
            mode: 0o4755,
            uid: 0,
            gid: 0,
            data: b"su",
            ..Raw::new(b"bin/su", REG)
        })
        .raw(Raw {
            mode: 0o2755,
            uid: 0,
            gid: 42,
            data: b"sg",
            ..Raw::new(b"bin/sg", REG)
        })
        .tar();
    env.hostile(&[layer]).unwrap();
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(env.path("bin/su")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o4755);
    // Without preserve_ownership the setuid file belongs to the caller, not to root.
    assert_eq!(meta.uid(), euid());
    assert_eq!(mode_of(&env.path("bin/sg")), 0o2755);
}

// --- xattrs -----------------------------------------------------------------------------

#[test]
fn only_user_xattrs_are_applied() {
    let env = Env::new();
    let hostile: &[(&str, &[u8])] = &[
        (
            "SCHILY.xattr.security.capability",
            b"\x01\x00\x00\x02\xff\xff\xff\xff\0\0\0\0\0\0\0\0\0\0\0\0",
        ),
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        (
            "SCHILY.xattr.security.selinux",
            b"system_u:object_r:shadow_t:s0",
        ),
        ("SCHILY.xattr.system.posix_acl_access", b"\x02\0\0\0"),
        ("SCHILY.xattr.user.ok", b"fine"),
        ("LIBARCHIVE.xattr.security.capability", b"AQAAAg=="),
    ];
    let layer = Layer::new()
        .pax(hostile)
        .file("f", b"f")
        .pax(hostile)
        .dir("d")
        .tar();
    let stats = env.apply(&layer).unwrap();
    env.assert_outside_unchanged();
    assert!(stats.xattrs_dropped >= 12, "{stats:?}");
    for path in ["f", "d"] {
        let p = env.path(path);
        for (key, value) in &hostile[..5] {
            let name = key.trim_start_matches("SCHILY.xattr.");
            let mut buf = [0u8; 256];
            // A host may label files itself (SELinux), so compare with the hostile value.
            if let Ok(n) = rustix::fs::lgetxattr(&p, name, &mut buf[..]) {
                assert_ne!(&buf[..n], *value, "{path}: {name} was applied");
            }
        }
        let mut buf = [0u8; 16];
        let n = rustix::fs::lgetxattr(&p, "user.ok", &mut buf[..]).expect("user.ok");
        assert_eq!(&buf[..n], b"fine");
    }
}

// --- decompression bombs and huge headers -----------------------------------------------

fn small_budget() -> UnpackOptions {
    UnpackOptions {
        budgets: Budgets {
            max_total_bytes: 4 << 20,
            max_header_bytes: 64 << 10,
            max_entries: 100,
            ..Budgets::default()
        },
        ..UnpackOptions::default()
    }
}

fn expect_budget(r: Result<impl std::fmt::Debug, UnpackError>, what: &str) {
    match r {
        Err(UnpackError::Budget { .. }) => {}
        other => panic!("{what}: expected a budget error, got {other:?}"),
    }
}

#[test]
fn decompression_bombs_are_capped() {
    let zeros = vec![0u8; 32 << 20];
    let tar = Layer::new().file("zeros", &zeros).tar();
    for (blob, media) in [(zstd(&tar), ZSTD), (tar.clone(), PLAIN)] {
        let env = Env::new();
        expect_budget(env.apply_with(&blob, media, None, &small_budget()), media);
        env.assert_outside_unchanged();
    }
    let small = Layer::new().file("zeros", &zeros[..6 << 20]).tar();
    let env = Env::new();
    expect_budget(
        env.apply_with(&gzip(&small), GZIP, None, &small_budget()),
        "gzip",
    );

    // Zeros after the end-of-archive marker are hashed, so they are budgeted too.
    let mut trailing = Layer::new().file("x", b"x").tar();
    trailing.extend_from_slice(&zeros);
    let env = Env::new();
    expect_budget(
        env.apply_with(&zstd(&trailing), ZSTD, None, &small_budget()),
        "trailing",
    );
    env.assert_outside_unchanged();
}

#[test]
fn sparse_file_bombs_are_capped() {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..6].copy_from_slice(b"sparse");
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_size(512);
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset((1u64 << 40) - 512);
        gnu.sparse[0].set_length(512);
        gnu.set_real_size(1u64 << 40);
    }
    h.set_cksum();
    let layer = Layer::new()
        .bytes_raw(h.as_bytes())
        .bytes_raw(&[b'x'; 512])
        .tar();
    let env = Env::new();
    expect_budget(
        env.apply_with(&layer, PLAIN, None, &small_budget()),
        "sparse",
    );
    env.assert_outside_unchanged();
}

#[test]
fn entry_count_is_capped() {
    let mut layer = Layer::new();
    for i in 0..150 {
        layer = layer.file(&format!("f{i}"), b"");
    }
    let env = Env::new();
    expect_budget(
        env.apply_with(&layer.tar(), PLAIN, None, &small_budget()),
        "entries",
    );
}

#[test]
fn huge_pax_and_gnu_long_name_headers_are_capped() {
    let huge = "a/".repeat(2 << 20);
    let huge_value = vec![b'v'; 4 << 20];
    let opts = UnpackOptions {
        budgets: Budgets {
            max_header_bytes: 64 << 10,
            ..Budgets::default()
        },
        ..UnpackOptions::default()
    };
    let layers = [
        ("gnu long name", Layer::new().file(&huge, b"x").tar()),
        ("gnu long link", Layer::new().symlink("l", &huge).tar()),
        (
            "pax path",
            Layer::new()
                .pax(&[("path", huge.as_bytes())])
                .file("x", b"x")
                .tar(),
        ),
        (
            "pax xattr",
            Layer::new()
                .pax(&[("SCHILY.xattr.user.big", &huge_value)])
                .file("x", b"x")
                .tar(),
        ),
    ];
    for (what, layer) in layers {
        let env = Env::new();
        expect_budget(env.apply_with(&layer, PLAIN, None, &opts), what);
        env.assert_outside_unchanged();
    }
    // Within the header budget but longer than the path budget.
    let long = "b/".repeat(3000);
    for layer in [
        Layer::new().file(&long, b"x").tar(),
        Layer::new().symlink("l", &long).tar(),
        Layer::new().file("t", b"t").hardlink("h", &long).tar(),
    ] {
        let env = Env::new();
        expect_invalid(env.hostile(&[layer]), "long path");
    }
}

#[test]
fn pax_size_desync_is_contained() {
    // CVE-2025-62518 (tokio-tar "TARmageddon"): a PAX size that disagrees with the ustar
    // size makes parsers disagree about where the next header is. Whatever the tar crate
    // decides, the hidden entry goes through the same confinement.
    let env = Env::new();
    let hidden_abs = Layer::new()
        .file(&format!("{}/pwned", env.canary_abs()), b"pwned")
        .unterminated();
    let hidden_rel = Layer::new()
        .file("../canary/pwned", b"pwned")
        .unterminated();
    for hidden in [hidden_abs, hidden_rel] {
        for pax_size in ["0", "1", "512"] {
            let env = Env::new();
            let layer = Layer::new()
                .pax(&[("size", pax_size.as_bytes())])
                .header_with_size(b"outer", REG, hidden.len() as u64, &hidden)
                .file("after", b"after")
                .tar();
            let _ = env.hostile(&[layer]);
        }
    }
}

// --- digest, size, media type -----------------------------------------------------------

#[test]
fn diff_id_and_size_mismatches_fail() {
    let tar = Layer::new().file("a", b"hello").file("b", b"world").tar();
    let env = Env::new();
    let wrong = diff_id(b"something else");
    match env.apply_with(&tar, PLAIN, Some(&wrong), &UnpackOptions::default()) {
        Err(UnpackError::DiffIdMismatch { expected, actual }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, diff_id(&tar));
        }
        other => panic!("{other:?}"),
    }
    // Same stream, compressed: the diff_id is over the uncompressed bytes.
    env.apply_with(
        &gzip(&tar),
        GZIP,
        Some(&diff_id(&tar)),
        &UnpackOptions::default(),
    )
    .unwrap();

    // Truncated inside an entry's data: an error even without an expected diff_id.
    let env = Env::new();
    let cut = &tar[..512 + 3];
    assert!(matches!(
        env.apply_with(cut, PLAIN, None, &UnpackOptions::default()),
        Err(UnpackError::Read { .. })
    ));
    // Truncated at an entry boundary: only the diff_id can tell.
    let cut = &tar[..1024];
    assert!(matches!(
        env.apply_with(cut, PLAIN, Some(&diff_id(&tar)), &UnpackOptions::default()),
        Err(UnpackError::DiffIdMismatch { .. })
    ));
    // Garbage after a valid gzip member.
    let mut gz = gzip(&tar);
    gz.extend_from_slice(b"trailing garbage");
    assert!(
        env.apply_with(&gz, GZIP, Some(&diff_id(&tar)), &UnpackOptions::default())
            .is_err()
    );
    // Malformed expected digests are refused before anything is written.
    let env = Env::new();
    for bad in ["sha256:abc", "md5:00", "sha512:00"] {
        assert!(matches!(
            env.apply_with(&tar, PLAIN, Some(bad), &UnpackOptions::default()),
            Err(UnpackError::InvalidDigest { .. })
        ));
    }
    assert_eq!(fs::read_dir(&env.rootfs).unwrap().count(), 0);
}

#[test]
fn media_type_and_magic_bytes_must_agree() {
    let tar = Layer::new().file("a", b"a").tar();
    let manifest =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (tar.clone(), GZIP),
        (tar.clone(), ZSTD),
        (gzip(&tar), PLAIN),
        (gzip(&tar), ZSTD),
        (zstd(&tar), PLAIN),
        (zstd(&tar), GZIP),
        ([&b"\xfd7zXZ\0"[..], &tar].concat(), PLAIN),
        (b"BZh91AY&SY".to_vec(), PLAIN),
        (Vec::new(), GZIP),
    ];
    for (blob, media) in cases {
        let env = Env::new();
        let r = env.apply_with(&blob, media, None, &UnpackOptions::default());
        assert!(
            matches!(r, Err(UnpackError::CompressionMismatch { .. })),
            "{media}: {r:?}"
        );
        assert_eq!(fs::read_dir(&env.rootfs).unwrap().count(), 0);
    }
    // Manifest/index confusion (CVE-2021-41190): only layer media types are unpacked.
    for media in [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.config.v1+json",
        "application/octet-stream",
        "",
    ] {
        let env = Env::new();
        let r = env.apply_with(manifest, media, None, &UnpackOptions::default());
        assert!(
            matches!(r, Err(UnpackError::UnsupportedMediaType { .. })),
            "{media}: {r:?}"
        );
    }
}

#[test]
fn unsupported_entry_types_are_rejected() {
    for kind in [b'V', b'M', b'D', b'N', b'Z'] {
        let env = Env::new();
        let layer = Layer::new().entry("weird", kind).tar();
        expect_invalid(env.hostile(&[layer]), &(kind as char).to_string());
    }
}

// --- cleaning up a hostile rootfs -------------------------------------------------------

#[test]
fn remove_tree_never_follows_symlinks_and_handles_read_only_dirs() {
    let env = Env::new();
    let canary_file = format!("{}/file", env.canary_abs());
    let layer = Layer::new()
        .symlink("abs", &env.canary_abs())
        .symlink("rel", "../canary")
        .symlink("file", &canary_file)
        .dir("ro/inner")
        .symlink("ro/inner/out", &env.canary_abs())
        .file("ro/inner/f", b"f")
        .dir_mode("ro/inner", 0o555)
        .dir_mode("ro", 0o500)
        .dir_mode("none", 0o000)
        .file_mode("nomode", b"x", 0o000)
        .tar();
    env.hostile(&[layer]).unwrap();
    let rootfs_fd_path = env.rootfs.clone();
    remove_tree(&rootfs_fd_path).unwrap();
    env.assert_outside_unchanged_after_removal();
    // Removing again is fine; removing a symlink removes the link, not its target.
    remove_tree(&env.rootfs).unwrap();
    let link = env.tmp.path().join("link-to-canary");
    std::os::unix::fs::symlink(&env.canary, &link).unwrap();
    remove_tree(&link).unwrap();
    assert!(env.canary.join("file").exists());
}

#[test]
fn unpack_into_a_symlinked_rootfs_is_refused() {
    let env = Env::new();
    let link = env.tmp.path().join("rootfs-link");
    std::os::unix::fs::symlink(&env.canary, &link).unwrap();
    let tar = Layer::new().file("pwned", b"x").tar();
    let r = unpack_layer(&link, &tar[..], PLAIN, None, &UnpackOptions::default());
    assert!(matches!(r, Err(UnpackError::OpenRoot { .. })), "{r:?}");
    assert!(!env.canary.join("pwned").exists());
}
