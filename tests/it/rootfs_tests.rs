//! Root filesystems end to end: layers written by `write_layer`, extracted by `unpack_layer`,
//! changed, snapshotted (`diff_upper` on a real overlay, `diff_trees` without one), written again
//! and applied on top, which must reproduce the changed tree exactly.

// Tests that need root say so on stderr when they skip.
#![allow(clippy::print_stderr)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use gantry::image::MediaTypes;
use gantry::layer::{
    write_layer, EntryKind, EntryMeta, EntrySource, LayerBlob, LayerEntry, LayerOptions,
};
use gantry::rootfs::privileged::{Privileged, Real, Recorder};
use gantry::rootfs::snapshot::{diff_trees, diff_upper, scan, SnapshotMode};
use gantry::rootfs::unpack::{unpack_layer, UnpackError, UnpackOptions, WhiteoutMode};

fn meta(mode: u32) -> EntryMeta {
    EntryMeta {
        mode,
        uid: 0,
        gid: 0,
        mtime: 1_600_000_000,
        xattrs: Vec::new(),
    }
}

fn dir(path: &str) -> LayerEntry {
    LayerEntry {
        path: path.into(),
        kind: EntryKind::Dir,
        meta: meta(0o755),
    }
}

fn file(path: &str, data: &str, mode: u32) -> LayerEntry {
    LayerEntry {
        path: path.into(),
        kind: EntryKind::File {
            source: EntrySource::Bytes(data.as_bytes().to_vec()),
            size: data.len() as u64,
        },
        meta: meta(mode),
    }
}

fn base_entries() -> Vec<LayerEntry> {
    vec![
        dir("/etc"),
        file("/etc/conf", "base", 0o644),
        file("/etc/gone", "gone", 0o644),
        dir("/opt"),
        file("/opt/old", "old", 0o644),
        LayerEntry {
            path: "/bin".into(),
            kind: EntryKind::Symlink("usr/bin".into()),
            meta: meta(0o777),
        },
        dir("/usr"),
        dir("/usr/bin"),
        file("/usr/bin/tool", "#!/bin/sh", 0o755),
    ]
}

fn write(blob_dir: &Path, entries: Vec<LayerEntry>) -> LayerBlob {
    let opts = LayerOptions {
        media_types: MediaTypes::Oci,
        mtime_clamp: None,
    };
    write_layer(blob_dir, entries, &opts).unwrap()
}

fn unpack(blob: &LayerBlob, dest: &Path, mode: WhiteoutMode, ops: &dyn Privileged) {
    let opts = UnpackOptions {
        whiteouts: mode,
        ..Default::default()
    };
    unpack_layer(&blob.path, &blob.media_type, dest, &opts, ops).unwrap();
}

/// The RUN step every test plays: change, delete, replace a directory, add.
fn run_step(root: &Path) {
    fs::write(root.join("etc/conf"), "changed").unwrap();
    fs::remove_file(root.join("etc/gone")).unwrap();
    fs::remove_dir_all(root.join("opt")).unwrap();
    fs::create_dir(root.join("opt")).unwrap();
    fs::write(root.join("opt/new"), "new").unwrap();
    fs::write(root.join("usr/bin/x"), "x").unwrap();
    fs::set_permissions(root.join("usr/bin/x"), fs::Permissions::from_mode(0o4750)).unwrap();
}

/// Sorted `path type mode content-or-target` lines for a tree.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let rel = rel.join(e.file_name());
            let p = root.join(&rel);
            let md = fs::symlink_metadata(&p).unwrap();
            let mode = md.mode() & 0o7777;
            let line = if md.is_dir() {
                stack.push(rel.clone());
                format!("{} d {mode:o}", rel.display())
            } else if md.file_type().is_symlink() {
                format!(
                    "{} l -> {}",
                    rel.display(),
                    fs::read_link(&p).unwrap().display()
                )
            } else {
                let content = fs::read_to_string(&p).unwrap_or_else(|_| "<binary>".into());
                format!("{} f {mode:o} {content}", rel.display())
            };
            out.push(line);
        }
    }
    out.sort();
    out
}

#[test]
fn overlay_upper_dir_becomes_a_layer_that_reproduces_the_run() {
    if !Real.is_privileged() {
        eprintln!("skipped: mounting overlayfs and device whiteouts need root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = |d: &str| tmp.path().join(d);
    for d in ["blobs", "upper", "work", "merged"] {
        fs::create_dir(t(d)).unwrap();
    }
    let base = write(&t("blobs"), base_entries());
    unpack(&base, &t("lower"), WhiteoutMode::Overlay, &Real);
    let data = format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off",
        t("lower").display(),
        t("upper").display(),
        t("work").display()
    );
    Real.mount("overlay", &t("merged"), "overlay", 0, Some(&data))
        .unwrap();
    run_step(&t("merged"));
    let expected = tree(&t("merged"));
    Real.unmount(&t("merged")).unwrap();

    let diff = diff_upper(&t("upper")).unwrap();
    let kinds: Vec<_> = diff
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Whiteout | EntryKind::OpaqueDir))
        .map(|e| format!("{:?} {}", e.kind, e.path))
        .collect();
    assert_eq!(kinds, vec!["Whiteout /etc/gone", "OpaqueDir /opt"]);
    let layer = write(&t("blobs"), diff);

    unpack(&base, &t("applied"), WhiteoutMode::Apply, &Real);
    unpack(&layer, &t("applied"), WhiteoutMode::Apply, &Real);
    assert_eq!(tree(&t("applied")), expected);
    assert!(
        expected.contains(&"opt/new f 644 new".to_string()),
        "{expected:?}"
    );
    assert!(!expected.iter().any(|l| l.starts_with("opt/old")));
}

#[test]
fn tree_diff_becomes_a_layer_that_reproduces_the_run_without_root() {
    let tmp = tempfile::tempdir().unwrap();
    let t = |d: &str| tmp.path().join(d);
    fs::create_dir(t("blobs")).unwrap();
    let mut ops = Recorder::new();
    ops.privileged = false;
    let base = write(&t("blobs"), base_entries());
    unpack(&base, &t("run"), WhiteoutMode::Apply, &ops);
    unpack(&base, &t("applied"), WhiteoutMode::Apply, &ops);
    let before = scan(&t("run"), &[]).unwrap();
    run_step(&t("run"));
    let after = scan(&t("run"), &[]).unwrap();
    let diff = diff_trees(&before, &after, &t("run"), SnapshotMode::Full).unwrap();
    let whiteouts: Vec<_> = diff
        .iter()
        .filter(|e| e.kind == EntryKind::Whiteout)
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(whiteouts, vec!["/etc/gone", "/opt/old"]);
    let layer = write(&t("blobs"), diff);
    unpack(&layer, &t("applied"), WhiteoutMode::Apply, &ops);
    assert_eq!(tree(&t("applied")), tree(&t("run")));
}

#[test]
fn a_crafted_gzip_layer_is_refused_and_writes_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let mut raw = tar::Builder::new(Vec::new());
    for (name, data) in [("ok", "fine"), ("../../escaped", "pwned")] {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        raw.append(&h, data.as_bytes()).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw.into_inner().unwrap()).unwrap();
    let blob = tmp.path().join("evil.tar.gz");
    fs::write(&blob, gz.finish().unwrap()).unwrap();
    let root = tmp.path().join("a/b/root");
    let mut ops = Recorder::new();
    ops.privileged = false;
    let err = unpack_layer(
        &blob,
        gantry::image::OCI_LAYER_GZIP,
        &root,
        &UnpackOptions {
            whiteouts: WhiteoutMode::Apply,
            retries: 3,
            ignore: Vec::new(),
        },
        &ops,
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Refused { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "layer `{}`: entry `/../../escaped` is refused: its path contains a `..` component\n\
             hint: the layer is malformed or crafted to write outside the root filesystem; \
             rebuild it with a standard tool or use another image",
            blob.display()
        )
    );
    assert!(!tmp.path().join("escaped").exists());
    assert!(!tmp.path().join("a/escaped").exists());
    assert_eq!(fs::read_to_string(root.join("ok")).unwrap(), "fine");
}
