//! Extraction tests: crafted tars built here, extracted into `<tmp>/root`, with `<tmp>/sentinel`
//! outside the root checked to stay untouched.

// Tests that need root say so on stderr when they skip.
#![allow(clippy::print_stderr)]

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;
use crate::image::OCI_LAYER_TAR;
use crate::rootfs::privileged::{Call, Real, Recorder};

/// One crafted tar entry. Names and link targets are written raw, unchecked.
struct E {
    name: String,
    kind: tar::EntryType,
    mode: u32,
    data: Vec<u8>,
    link: Option<String>,
    pax: Vec<(String, Vec<u8>)>,
    dev: (u32, u32),
    mtime: u64,
}

fn e(name: &str, kind: tar::EntryType) -> E {
    E {
        name: name.into(),
        kind,
        mode: if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        },
        data: Vec::new(),
        link: None,
        pax: Vec::new(),
        dev: (0, 0),
        mtime: 1_600_000_000,
    }
}
fn dir(name: &str) -> E {
    e(name, tar::EntryType::Directory)
}
fn file(name: &str, data: &str) -> E {
    E {
        data: data.as_bytes().to_vec(),
        ..e(name, tar::EntryType::Regular)
    }
}
fn symlink(name: &str, target: &str) -> E {
    E {
        link: Some(target.into()),
        ..e(name, tar::EntryType::Symlink)
    }
}
fn hardlink(name: &str, target: &str) -> E {
    E {
        link: Some(target.into()),
        ..e(name, tar::EntryType::Link)
    }
}

/// Writes the entries as an uncompressed tar in `dir` and returns its path.
fn layer(dir: &Path, file_name: &str, entries: Vec<E>) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    for x in entries {
        if !x.pax.is_empty() {
            b.append_pax_extensions(x.pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap();
        }
        let mut h = tar::Header::new_ustar();
        let name = x.name.as_bytes();
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        h.set_entry_type(x.kind);
        h.set_mode(x.mode);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_mtime(x.mtime);
        h.set_size(x.data.len() as u64);
        if let Some(l) = &x.link {
            h.set_link_name_literal(l).unwrap();
        }
        if x.dev != (0, 0) {
            h.set_device_major(x.dev.0).unwrap();
            h.set_device_minor(x.dev.1).unwrap();
        }
        h.set_cksum();
        b.append(&h, x.data.as_slice()).unwrap();
    }
    let path = dir.join(file_name);
    fs::write(&path, b.into_inner().unwrap()).unwrap();
    path
}

struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("sentinel")).unwrap();
        fs::write(tmp.path().join("sentinel/secret"), "host secret").unwrap();
        fs::create_dir(tmp.path().join("blobs")).unwrap();
        Fixture { tmp }
    }
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    fn sentinel(&self) -> PathBuf {
        self.tmp.path().join("sentinel")
    }
    fn layer(&self, name: &str, entries: Vec<E>) -> PathBuf {
        layer(&self.tmp.path().join("blobs"), name, entries)
    }
    fn unpack(
        &self,
        blob: &Path,
        mode: WhiteoutMode,
        ops: &dyn Privileged,
    ) -> Result<UnpackStats, UnpackError> {
        let opts = UnpackOptions {
            whiteouts: mode,
            ..Default::default()
        };
        unpack_layer(blob, OCI_LAYER_TAR, &self.root(), &opts, ops)
    }
    /// Nothing outside the root changed: the sentinel holds exactly its one file, and the temp
    /// dir holds only root, sentinel and blobs.
    fn assert_sentinel_untouched(&self) {
        assert_eq!(listing(&self.sentinel()), vec!["secret"]);
        assert_eq!(
            fs::read_to_string(self.sentinel().join("secret")).unwrap(),
            "host secret"
        );
        let mut top: Vec<String> = fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "root")
            .collect();
        top.sort();
        assert_eq!(top, vec!["blobs", "sentinel"]);
    }
}

/// Sorted relative paths of everything below `dir`.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            out.push(
                path.strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if entry.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn unprivileged() -> Recorder {
    let mut r = Recorder::new();
    r.privileged = false;
    r
}

#[test]
fn extracts_files_dirs_links_modes_and_mtimes() {
    let f = Fixture::new();
    let long = format!("deep/{}/file", "d".repeat(120));
    let blob = f.layer(
        "l1.tar",
        vec![
            dir("./"),
            dir("bin/"),
            E {
                mode: 0o4755,
                ..file("bin/su", "#!setuid")
            },
            symlink("bin/sh", "busybox"),
            file("bin/busybox", "bb"),
            hardlink("bin/ls", "bin/busybox"),
            E {
                mode: 0o555,
                ..dir("ro/")
            },
            file("ro/inside", "written after the dir"),
            E {
                pax: vec![("path".into(), long.clone().into_bytes())],
                ..file("ignored-short-name", "pax long name")
            },
        ],
    );
    let stats = f
        .unpack(&blob, WhiteoutMode::Apply, &unprivileged())
        .unwrap();
    let root = f.root();
    assert_eq!(stats.entries, 9);
    assert_eq!(stats.bytes, (8 + 2 + 21 + 13) as u64);
    let su = fs::metadata(root.join("bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755);
    assert_eq!(su.mtime(), 1_600_000_000);
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let bb = fs::metadata(root.join("bin/busybox")).unwrap();
    assert_eq!(fs::metadata(root.join("bin/ls")).unwrap().ino(), bb.ino());
    assert_eq!(bb.nlink(), 2);
    let ro = fs::metadata(root.join("ro")).unwrap();
    assert_eq!(ro.permissions().mode() & 0o7777, 0o555);
    assert_eq!(ro.mtime(), 1_600_000_000);
    assert_eq!(
        fs::read_to_string(root.join("ro/inside")).unwrap(),
        "written after the dir"
    );
    assert_eq!(
        fs::read_to_string(root.join(&long)).unwrap(),
        "pax long name"
    );
    assert!(!root.join("ignored-short-name").exists());
    f.assert_sentinel_untouched();
}

#[test]
fn owners_and_xattrs_go_through_the_seam_with_in_root_paths() {
    let f = Fixture::new();
    let blob = f.layer(
        "l1.tar",
        vec![
            dir("usr/"),
            E {
                pax: vec![(
                    "SCHILY.xattr.security.capability".into(),
                    vec![1, 0, 0, 2, 0, 4, 0, 0],
                )],
                ..file("usr/ping", "ping")
            },
        ],
    );
    let ops = Recorder::new();
    f.unpack(&blob, WhiteoutMode::Apply, &ops).unwrap();
    let real = fs::canonicalize(f.root()).unwrap();
    assert_eq!(
        ops.calls(),
        vec![
            Call::Lchown {
                path: real.join("usr"),
                uid: 1000,
                gid: 1001
            },
            Call::Lchown {
                path: real.join("usr/ping"),
                uid: 1000,
                gid: 1001
            },
            Call::SetXattr {
                path: real.join("usr/ping"),
                name: "security.capability".into(),
                value: vec![1, 0, 0, 2, 0, 4, 0, 0]
            },
        ]
    );
}

#[test]
fn dotdot_entry_is_refused_and_nothing_is_written_outside() {
    let f = Fixture::new();
    for (i, name) in ["../sentinel/evil", "a/../../sentinel/evil", "./.."]
        .iter()
        .enumerate()
    {
        let blob = f.layer(&format!("bad{i}.tar"), vec![file(name, "pwned")]);
        let err = f
            .unpack(&blob, WhiteoutMode::Apply, &unprivileged())
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, UnpackError::Refused { .. }), "{name}: {msg}");
        assert!(msg.contains(&format!("bad{i}.tar")), "{msg}");
        assert!(msg.contains("`..`"), "{msg}");
        assert!(msg.contains("hint:"), "{msg}");
    }
    f.assert_sentinel_untouched();
}

#[test]
fn absolute_names_land_inside_the_root() {
    let f = Fixture::new();
    let sentinel = f.sentinel();
    let abs = format!("{}/evil", sentinel.display());
    let blob = f.layer("abs.tar", vec![file(&abs, "inside"), file("/etc/x", "x")]);
    f.unpack(&blob, WhiteoutMode::Apply, &unprivileged())
        .unwrap();
    let inside = f.root().join(abs.trim_start_matches('/'));
    assert_eq!(fs::read_to_string(inside).unwrap(), "inside");
    assert_eq!(fs::read_to_string(f.root().join("etc/x")).unwrap(), "x");
    f.assert_sentinel_untouched();
}

#[test]
fn writing_through_symlinks_that_point_out_stays_inside() {
    let f = Fixture::new();
    let sentinel = f.sentinel().display().to_string();
    let in_root_rel = sentinel.trim_start_matches('/').to_string();
    // Up-level count deeper than the temp dir's depth, so a host-side resolution would escape.
    let rel_target = format!("{}{in_root_rel}", "../".repeat(20));
    let blob = f.layer(
        "links.tar",
        vec![
            // The same path exists inside the root, so the links resolve to it.
            dir(&format!("{in_root_rel}/")),
            symlink("abs", &sentinel),
            file("abs/passwd", "via absolute link"),
            symlink("deep/rel", &rel_target),
            file("deep/rel/shadow", "via relative link"),
            dir("etc/"),
            symlink("a", "/etc"),
            file("a/passwd", "root:x:0:0"),
            // A symlink as the final component is replaced, never written through.
            symlink("victim", &format!("{sentinel}/secret")),
            file("victim", "replaced the link"),
        ],
    );
    f.unpack(&blob, WhiteoutMode::Apply, &unprivileged())
        .unwrap();
    let root = f.root();
    let in_root = root.join(&in_root_rel);
    assert_eq!(
        fs::read_to_string(in_root.join("passwd")).unwrap(),
        "via absolute link"
    );
    assert_eq!(
        fs::read_to_string(in_root.join("shadow")).unwrap(),
        "via relative link"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/passwd")).unwrap(),
        "root:x:0:0"
    );
    assert!(fs::symlink_metadata(root.join("victim")).unwrap().is_file());
    assert_eq!(
        fs::read_to_string(root.join("victim")).unwrap(),
        "replaced the link"
    );
    f.assert_sentinel_untouched();
}

#[test]
fn writing_through_a_dangling_symlink_that_points_out_fails_inside() {
    let f = Fixture::new();
    let sentinel = f.sentinel().display().to_string();
    let blob = f.layer(
        "dangling.tar",
        vec![symlink("a", &sentinel), file("a/passwd", "pwned")],
    );
    let err = f
        .unpack(&blob, WhiteoutMode::Apply, &unprivileged())
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, UnpackError::Entry { .. }), "{msg}");
    assert!(
        msg.contains("dangling.tar") && msg.contains("`/a/passwd`"),
        "{msg}"
    );
    assert_eq!(listing(&f.root()), vec!["a"]);
    f.assert_sentinel_untouched();
}

#[test]
fn hard_links_to_outside_are_refused() {
    let f = Fixture::new();
    let sentinel = f.sentinel().display().to_string();
    let cases = [
        (
            "dotdot.tar",
            vec![hardlink("h", "../../sentinel/secret")],
            "`..`",
        ),
        (
            "abs.tar",
            vec![hardlink("h", &format!("{sentinel}/secret"))],
            "does not exist",
        ),
        (
            "via-link.tar",
            vec![symlink("s", &sentinel), hardlink("h", "s/secret")],
            "does not exist",
        ),
    ];
    for (name, entries, reason) in cases {
        let blob = f.layer(name, entries);
        let err = f
            .unpack(&blob, WhiteoutMode::Apply, &unprivileged())
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, UnpackError::BadLink { .. }), "{msg}");
        assert!(msg.contains(name) && msg.contains("`/h`"), "{msg}");
        assert!(msg.contains(reason), "{name}: {msg}");
        assert!(!f.root().join("h").exists());
    }
    // The host file keeps its single link.
    assert_eq!(
        fs::metadata(f.sentinel().join("secret")).unwrap().nlink(),
        1
    );
    f.assert_sentinel_untouched();
}

#[test]
fn hard_link_through_an_in_root_symlink_links_the_in_root_file() {
    let f = Fixture::new();
    let blob = f.layer(
        "l.tar",
        vec![
            file("data/real", "content"),
            symlink("alias", "/data"),
            hardlink("h", "alias/real"),
        ],
    );
    f.unpack(&blob, WhiteoutMode::Apply, &unprivileged())
        .unwrap();
    let root = f.root();
    assert_eq!(
        fs::metadata(root.join("h")).unwrap().ino(),
        fs::metadata(root.join("data/real")).unwrap().ino()
    );
}

#[test]
fn overlay_mode_turns_whiteouts_into_overlay_ones() {
    let f = Fixture::new();
    let blob = f.layer(
        "wh.tar",
        vec![
            dir("etc/"),
            file("etc/.wh.gone", ""),
            dir("opt/app/"),
            file("opt/app/.wh..wh..opq", ""),
            file("opt/app/new", "new"),
        ],
    );
    let ops = unprivileged();
    let stats = f.unpack(&blob, WhiteoutMode::Overlay, &ops).unwrap();
    assert_eq!(stats.whiteouts, 2);
    let real = fs::canonicalize(f.root()).unwrap();
    assert_eq!(
        ops.calls(),
        vec![
            Call::Mknod {
                path: real.join("etc/gone"),
                kind: DeviceKind::Char,
                mode: 0,
                major: 0,
                minor: 0
            },
            Call::SetXattr {
                path: real.join("opt/app"),
                name: "trusted.overlay.opaque".into(),
                value: b"y".to_vec()
            },
        ]
    );
    assert_eq!(
        listing(&f.root()),
        vec!["etc", "opt", "opt/app", "opt/app/new"]
    );
}

#[test]
fn overlay_whiteouts_are_real_char_devices_as_root() {
    if !Real.is_privileged() {
        eprintln!("skipped: creating overlay whiteouts needs root");
        return;
    }
    let f = Fixture::new();
    let blob = f.layer(
        "wh.tar",
        vec![file(".wh.gone", ""), dir("d/"), file("d/.wh..wh..opq", "")],
    );
    f.unpack(&blob, WhiteoutMode::Overlay, &Real).unwrap();
    let md = fs::symlink_metadata(f.root().join("gone")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), 0);
    let mut buf = vec![0u8; 8];
    let n = rustix::fs::lgetxattr(f.root().join("d"), "trusted.overlay.opaque", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
}

#[test]
fn apply_mode_deletes_whiteouts_and_keeps_same_layer_entries_of_opaque_dirs() {
    let f = Fixture::new();
    let ops = unprivileged();
    let l1 = f.layer(
        "l1.tar",
        vec![
            file("x", "x"),
            file("d/old", "old"),
            file("d/sub/old", "old"),
            file("d/sub2/old", "old"),
            file("keep/k", "k"),
        ],
    );
    let l2 = f.layer(
        "l2.tar",
        vec![
            dir("d/"),
            file("d/new", "created before the marker"),
            dir("d/sub/"),
            file("d/sub/fresh", "fresh"),
            file("d/.wh..wh..opq", ""),
            file("d/after", "after the marker"),
            file(".wh.x", ""),
            file(".wh.missing", ""),
            file("nodir/.wh.y", ""),
        ],
    );
    f.unpack(&l1, WhiteoutMode::Apply, &ops).unwrap();
    let stats = f.unpack(&l2, WhiteoutMode::Apply, &ops).unwrap();
    assert_eq!(stats.whiteouts, 4);
    assert_eq!(
        listing(&f.root()),
        vec![
            "d",
            "d/after",
            "d/new",
            "d/sub",
            "d/sub/fresh",
            "keep",
            "keep/k"
        ]
    );
    assert!(ops.calls().is_empty());
}

#[test]
fn a_file_replaced_by_a_dir_and_back_across_layers() {
    let f = Fixture::new();
    let ops = unprivileged();
    let l1 = f.layer(
        "l1.tar",
        vec![file("p", "file"), dir("q/"), file("q/c", "c")],
    );
    let l2 = f.layer(
        "l2.tar",
        vec![dir("p/"), file("p/child", "child"), file("q", "now a file")],
    );
    let l3 = f.layer("l3.tar", vec![file("p", "file again"), dir("q/")]);
    f.unpack(&l1, WhiteoutMode::Apply, &ops).unwrap();
    f.unpack(&l2, WhiteoutMode::Apply, &ops).unwrap();
    assert_eq!(listing(&f.root()), vec!["p", "p/child", "q"]);
    assert_eq!(
        fs::read_to_string(f.root().join("q")).unwrap(),
        "now a file"
    );
    f.unpack(&l3, WhiteoutMode::Apply, &ops).unwrap();
    assert_eq!(listing(&f.root()), vec!["p", "q"]);
    assert_eq!(
        fs::read_to_string(f.root().join("p")).unwrap(),
        "file again"
    );
    assert!(f.root().join("q").is_dir());
}

#[test]
fn writing_over_a_hard_link_does_not_change_the_other_name() {
    let f = Fixture::new();
    let ops = unprivileged();
    let l1 = f.layer("l1.tar", vec![file("a", "shared"), hardlink("b", "a")]);
    let l2 = f.layer("l2.tar", vec![file("b", "new b")]);
    f.unpack(&l1, WhiteoutMode::Apply, &ops).unwrap();
    f.unpack(&l2, WhiteoutMode::Apply, &ops).unwrap();
    assert_eq!(fs::read_to_string(f.root().join("a")).unwrap(), "shared");
    assert_eq!(fs::read_to_string(f.root().join("b")).unwrap(), "new b");
}

fn device_layer(f: &Fixture) -> PathBuf {
    f.layer(
        "dev.tar",
        vec![
            dir("dev/"),
            E {
                dev: (1, 3),
                mode: 0o666,
                ..e("dev/null", tar::EntryType::Char)
            },
            E {
                dev: (8, 0),
                mode: 0o660,
                ..e("dev/sda", tar::EntryType::Block)
            },
            E {
                mode: 0o600,
                ..e("dev/fifo", tar::EntryType::Fifo)
            },
        ],
    )
}

#[test]
fn devices_are_skipped_unprivileged_and_fifos_made() {
    let f = Fixture::new();
    let ops = unprivileged();
    let stats = f
        .unpack(&device_layer(&f), WhiteoutMode::Apply, &ops)
        .unwrap();
    assert_eq!(stats.skipped, 2);
    assert!(ops.calls().is_empty());
    assert_eq!(listing(&f.root()), vec!["dev", "dev/fifo"]);
    let md = fs::symlink_metadata(f.root().join("dev/fifo")).unwrap();
    assert!(md.file_type().is_fifo());
    assert_eq!(md.mode() & 0o7777, 0o600);
}

#[test]
fn devices_go_through_the_seam_when_privileged() {
    let f = Fixture::new();
    let ops = Recorder::new();
    f.unpack(&device_layer(&f), WhiteoutMode::Apply, &ops)
        .unwrap();
    let real = fs::canonicalize(f.root()).unwrap();
    let mknods: Vec<_> = ops
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Mknod { .. }))
        .collect();
    assert_eq!(
        mknods,
        vec![
            Call::Mknod {
                path: real.join("dev/null"),
                kind: DeviceKind::Char,
                mode: 0o666,
                major: 1,
                minor: 3
            },
            Call::Mknod {
                path: real.join("dev/sda"),
                kind: DeviceKind::Block,
                mode: 0o660,
                major: 8,
                minor: 0
            },
            Call::Mknod {
                path: real.join("dev/fifo"),
                kind: DeviceKind::Fifo,
                mode: 0o600,
                major: 0,
                minor: 0
            },
        ]
    );
}

#[test]
fn devices_owners_and_capabilities_for_real_as_root() {
    if !Real.is_privileged() {
        eprintln!("skipped: device nodes, chown and security.capability need root");
        return;
    }
    let f = Fixture::new();
    f.unpack(&device_layer(&f), WhiteoutMode::Apply, &Real)
        .unwrap();
    let null = fs::symlink_metadata(f.root().join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    assert_eq!((null.uid(), null.gid()), (1000, 1001));
    assert!(fs::symlink_metadata(f.root().join("dev/sda"))
        .unwrap()
        .file_type()
        .is_block_device());

    // VFS_CAP_REVISION_2, cap_net_bind_service permitted + effective.
    let cap: Vec<u8> = vec![
        0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let blob = f.layer(
        "cap.tar",
        vec![E {
            mode: 0o4755,
            pax: vec![
                ("SCHILY.xattr.security.capability".into(), cap.clone()),
                ("SCHILY.xattr.user.note".into(), b"kept".to_vec()),
            ],
            ..file("bin/ping", "ping")
        }],
    );
    f.unpack(&blob, WhiteoutMode::Apply, &Real).unwrap();
    let ping = f.root().join("bin/ping");
    let md = fs::metadata(&ping).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o4755, "setuid survives the chown");
    assert_eq!((md.uid(), md.gid()), (1000, 1001));
    let mut buf = vec![0u8; 64];
    let n = rustix::fs::lgetxattr(&ping, "security.capability", &mut buf).unwrap();
    assert_eq!(&buf[..n], cap.as_slice());
    let n = rustix::fs::lgetxattr(&ping, "user.note", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"kept");
}

#[test]
fn ignored_paths_are_neither_written_nor_deleted() {
    let f = Fixture::new();
    let ops = unprivileged();
    fs::create_dir_all(f.root().join("workspace")).unwrap();
    fs::write(f.root().join("workspace/src"), "mine").unwrap();
    let blob = f.layer(
        "l.tar",
        vec![
            file("workspace/evil", "x"),
            file(".wh.workspace", ""),
            file("proc/x", "x"),
            file("ok", "ok"),
        ],
    );
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Apply,
        retries: 0,
        ignore: vec!["/workspace".into(), "/proc/".into()],
    };
    let stats = unpack_layer(&blob, OCI_LAYER_TAR, &f.root(), &opts, &ops).unwrap();
    assert_eq!(stats.skipped, 2);
    assert_eq!(listing(&f.root()), vec!["ok", "workspace", "workspace/src"]);
}

#[test]
fn layers_extract_in_parallel_each_into_its_own_dir() {
    let f = Fixture::new();
    let jobs: Vec<_> = (0..5)
        .map(|i| {
            let blob = f.layer(
                &format!("l{i}.tar"),
                vec![file(&format!("f{i}"), &i.to_string())],
            );
            (
                blob,
                OCI_LAYER_TAR.to_string(),
                f.root().join(format!("layer{i}")),
            )
        })
        .collect();
    let opts = UnpackOptions::default();
    let stats = unpack_layers_parallel(jobs, &opts, &unprivileged()).unwrap();
    assert_eq!(stats.len(), 5);
    for (i, s) in stats.iter().enumerate() {
        assert_eq!(s.bytes, 1);
        assert_eq!(
            fs::read_to_string(f.root().join(format!("layer{i}/f{i}"))).unwrap(),
            i.to_string()
        );
    }
}

#[test]
fn parallel_extraction_reports_the_first_failing_job() {
    let f = Fixture::new();
    let good = f.layer("good.tar", vec![file("a", "a")]);
    let bad = f.layer("bad.tar", vec![file("../a", "a")]);
    let jobs = vec![
        (good, OCI_LAYER_TAR.to_string(), f.root().join("0")),
        (bad, OCI_LAYER_TAR.to_string(), f.root().join("1")),
    ];
    let err = unpack_layers_parallel(jobs, &UnpackOptions::default(), &unprivileged()).unwrap_err();
    assert!(err.to_string().contains("bad.tar"), "{err}");
}

#[test]
fn a_corrupt_blob_is_retried_then_reported() {
    let f = Fixture::new();
    let blob = f.tmp.path().join("blobs/corrupt.tar.gz");
    fs::write(&blob, b"\x1f\x8bnot really gzip").unwrap();
    let opts = UnpackOptions {
        retries: 1,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let err = unpack_layer(
        &blob,
        crate::image::OCI_LAYER_GZIP,
        &f.root(),
        &opts,
        &unprivileged(),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Layer(_)), "{err}");
    assert!(err.to_string().contains("corrupt.tar.gz"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(400));
}
