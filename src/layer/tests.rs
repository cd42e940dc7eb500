use std::io::Read;
use std::path::Path;
use std::process::Command;

use super::*;
use crate::image::{MediaTypes, DOCKER_LAYER_GZIP, OCI_LAYER_GZIP};

fn meta(mode: u32) -> EntryMeta {
    EntryMeta {
        mode,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
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

fn bytes(path: &str, data: &[u8]) -> LayerEntry {
    LayerEntry {
        path: path.into(),
        kind: EntryKind::File {
            source: EntrySource::Bytes(data.to_vec()),
            size: data.len() as u64,
        },
        meta: meta(0o644),
    }
}

fn opts() -> LayerOptions {
    LayerOptions {
        media_types: MediaTypes::Oci,
        mtime_clamp: None,
    }
}

fn sample(long: &str) -> Vec<LayerEntry> {
    let mut with_xattr = bytes("/usr/bin/app", b"#!/bin/sh\necho hi\n");
    with_xattr.meta.mode = 0o4755;
    with_xattr.meta.xattrs = vec![
        ("user.z".into(), b"last".to_vec()),
        ("security.capability".into(), vec![1, 0, 0, 2, 0xff]),
    ];
    vec![
        bytes(long, b"long"),
        dir("/usr/bin"),
        dir("/usr"),
        with_xattr,
        LayerEntry {
            path: "/usr/bin/sh".into(),
            kind: EntryKind::Symlink("app".into()),
            meta: meta(0o777),
        },
        LayerEntry {
            path: "/usr/bin/app2".into(),
            kind: EntryKind::Hardlink("/usr/bin/app".into()),
            meta: meta(0o755),
        },
        LayerEntry {
            path: "/etc/old".into(),
            kind: EntryKind::Whiteout,
            meta: meta(0),
        },
        LayerEntry {
            path: "/var".into(),
            kind: EntryKind::OpaqueDir,
            meta: meta(0),
        },
        dir("/var"),
        dir("/etc"),
    ]
}

fn long_path() -> String {
    format!("/{}/{}", "d".repeat(60), "f".repeat(80))
}

fn read_all(blob: &Path, media_type: &str) -> Vec<(ReadEntry, Vec<u8>)> {
    let mut out = Vec::new();
    for_each_entry::<LayerError, _>(blob, media_type, |e, r| {
        let mut data = Vec::new();
        r.read_to_end(&mut data).unwrap();
        out.push((e.clone(), data));
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn same_entries_give_byte_identical_blobs_in_any_input_order() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = write_layer(dir_a.path(), sample(&long_path()), &opts()).unwrap();
    let mut reversed = sample(&long_path());
    reversed.reverse();
    let b = write_layer(dir_b.path(), reversed, &opts()).unwrap();
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.diff_id, b.diff_id);
    let bytes_a = std::fs::read(&a.path).unwrap();
    assert_eq!(bytes_a, std::fs::read(&b.path).unwrap());
    // The blob is named by its digest, and the digests are what they claim to be.
    assert_eq!(
        a.path,
        dir_a.path().join(a.digest.trim_start_matches("sha256:"))
    );
    assert_eq!(crate::image::sha256_digest(&bytes_a), a.digest);
    assert_eq!(a.size, bytes_a.len() as u64);
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&bytes_a[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(crate::image::sha256_digest(&tar), a.diff_id);
    assert_eq!(a.media_type, OCI_LAYER_GZIP);
    // No temp files left behind.
    let names: Vec<_> = std::fs::read_dir(dir_a.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn an_uncompressed_layer_is_the_tar_the_gzip_one_holds() {
    let dir_gz = tempfile::tempdir().unwrap();
    let dir_tar = tempfile::tempdir().unwrap();
    let gz = write_layer(dir_gz.path(), sample(&long_path()), &opts()).unwrap();
    let mut docker = opts();
    docker.media_types = MediaTypes::Docker;
    let plain = write_layer_as(
        dir_tar.path(),
        sample(&long_path()),
        &docker,
        Compression::None,
    )
    .unwrap();
    let bytes = std::fs::read(&plain.path).unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&std::fs::read(&gz.path).unwrap()[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(bytes, tar);
    assert_eq!(plain.diff_id, gz.diff_id);
    assert_eq!(plain.digest, plain.diff_id);
    assert_eq!(crate::image::sha256_digest(&bytes), plain.digest);
    assert_eq!(plain.size, bytes.len() as u64);
    assert_eq!(plain.media_type, crate::image::DOCKER_LAYER_TAR);
    assert_eq!(
        plain.path,
        dir_tar
            .path()
            .join(plain.digest.trim_start_matches("sha256:"))
    );
    assert_eq!(
        read_all(&plain.path, &plain.media_type).len(),
        read_all(&gz.path, &gz.media_type).len()
    );
    let names: Vec<_> = std::fs::read_dir(dir_tar.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn entries_are_sorted_and_named_as_tar_expects() {
    let dir_a = tempfile::tempdir().unwrap();
    let long = long_path();
    let blob = write_layer(dir_a.path(), sample(&long), &opts()).unwrap();
    let entries = read_all(&blob.path, &blob.media_type);
    let paths: Vec<&str> = entries.iter().map(|(e, _)| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            long.as_str(),
            "/etc",
            "/etc/.wh.old",
            "/usr",
            "/usr/bin",
            "/usr/bin/app",
            "/usr/bin/app2",
            "/usr/bin/sh",
            "/var",
            "/var/.wh..wh..opq",
        ]
    );
    let by_path = |p: &str| entries.iter().find(|(e, _)| e.path == p).unwrap();
    let (app, data) = by_path("/usr/bin/app");
    assert_eq!(app.kind, ReadKind::File);
    assert_eq!(app.mode, 0o4755);
    assert_eq!(data, b"#!/bin/sh\necho hi\n");
    assert_eq!(
        app.xattrs,
        vec![
            ("security.capability".to_string(), vec![1, 0, 0, 2, 0xff]),
            ("user.z".to_string(), b"last".to_vec()),
        ]
    );
    assert_eq!(by_path("/usr/bin/sh").0.link.as_deref(), Some("app"));
    assert_eq!(by_path("/usr/bin/sh").0.kind, ReadKind::Symlink);
    let app2 = &by_path("/usr/bin/app2").0;
    assert_eq!(
        (app2.kind, app2.link.as_deref()),
        (ReadKind::Hardlink, Some("/usr/bin/app"))
    );
    assert_eq!(by_path(&long).1, b"long");
    assert_eq!(by_path("/var/.wh..wh..opq").0.size, 0);

    // The raw names: directories carry a trailing slash, nothing starts with `/`.
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&blob.path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    let mut archive = tar::Archive::new(&raw[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    assert_eq!(names[1], "etc/");
    assert_eq!(names[2], "etc/.wh.old");
    assert_eq!(names[4], "usr/bin/");
    // The long name went into a PAX header: its ustar name field is truncated, the `x` block
    // precedes it.
    assert_eq!(raw[156], b'x');
    assert!(String::from_utf8_lossy(&raw[..100]).starts_with("PaxHeaders.0/ffff"));
    // The archive ends with two zero blocks and nothing else.
    assert_eq!(raw.len() % 512, 0);
    assert!(raw[raw.len() - 1024..].iter().all(|&b| b == 0));
}

#[test]
fn gnu_tar_lists_the_layer() {
    let dir_a = tempfile::tempdir().unwrap();
    let long = long_path();
    let blob = write_layer(dir_a.path(), sample(&long), &opts()).unwrap();
    let out = Command::new("tar")
        .arg("-tvzf")
        .arg(&blob.path)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 10, "{listing}");
    assert!(lines[0].ends_with(&long[1..]), "{}", lines[0]);
    assert!(lines[0].starts_with("-rw-r--r-- 0/0"), "{}", lines[0]);
    assert!(lines[4].starts_with("drwxr-xr-x 0/0"), "{}", lines[4]);
    assert!(lines[4].ends_with(" usr/bin/"), "{}", lines[4]);
    assert!(lines[5].starts_with("-rwsr-xr-x 0/0"), "{}", lines[5]);
    assert!(
        lines[6].ends_with("usr/bin/app2 link to usr/bin/app"),
        "{}",
        lines[6]
    );
    assert!(lines[7].ends_with("usr/bin/sh -> app"), "{}", lines[7]);
    assert!(lines[1].contains("2023-11-14 22:13"), "{}", lines[1]);
}

#[test]
fn files_are_streamed_from_disk_and_clamped_times_apply() {
    let src = tempfile::tempdir().unwrap();
    let blobs = tempfile::tempdir().unwrap();
    // Bigger than one pipeline chunk, not a multiple of 512.
    let data: Vec<u8> = (0..3_000_001u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(src.path().join("big"), &data).unwrap();
    let entry = LayerEntry {
        path: "/big".into(),
        kind: EntryKind::File {
            source: EntrySource::Path(src.path().join("big")),
            size: data.len() as u64,
        },
        meta: EntryMeta {
            uid: 5_000_000,
            gid: 70_000,
            ..meta(0o600)
        },
    };
    let opts = LayerOptions {
        media_types: MediaTypes::Docker,
        mtime_clamp: Some(0),
    };
    let blob = write_layer(blobs.path(), vec![entry], &opts).unwrap();
    assert_eq!(blob.media_type, DOCKER_LAYER_GZIP);
    let entries = read_all(&blob.path, &blob.media_type);
    assert_eq!(entries.len(), 1);
    let (e, read) = &entries[0];
    assert_eq!(read.len(), data.len());
    assert!(read == &data);
    assert_eq!(
        (e.uid, e.gid, e.mtime, e.mode),
        (5_000_000, 70_000, 0, 0o600)
    );
}

#[test]
fn a_file_that_changed_size_is_an_error_naming_it() {
    let src = tempfile::tempdir().unwrap();
    let blobs = tempfile::tempdir().unwrap();
    let path = src.path().join("grew");
    std::fs::write(&path, b"0123456789").unwrap();
    for (declared, found) in [(4u64, "more"), (20, "10")] {
        let entry = LayerEntry {
            path: "/grew".into(),
            kind: EntryKind::File {
                source: EntrySource::Path(path.clone()),
                size: declared,
            },
            meta: meta(0o644),
        };
        let err = write_layer(blobs.path(), vec![entry], &opts()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, LayerError::SizeChanged { found: f, expected, .. } if f == found && *expected == declared),
            "{msg}"
        );
        assert!(msg.contains(&format!("`{}`", path.display())), "{msg}");
        assert!(msg.contains("hint:"), "{msg}");
    }
    // Nothing but (already removed) temp files: the blob dir is empty.
    assert_eq!(std::fs::read_dir(blobs.path()).unwrap().count(), 0);
}

#[test]
fn invalid_and_duplicate_paths_are_refused() {
    let blobs = tempfile::tempdir().unwrap();
    let err = write_layer(blobs.path(), vec![dir("/a"), bytes("/a", b"")], &opts()).unwrap_err();
    assert!(
        matches!(err, LayerError::DuplicatePath { ref path } if path == "/a"),
        "{err}"
    );
    let err = write_layer(blobs.path(), vec![dir("/a/../b")], &opts()).unwrap_err();
    assert!(matches!(err, LayerError::InvalidPath { .. }), "{err}");
    let err = write_layer(blobs.path(), vec![dir("/")], &opts()).unwrap_err();
    assert!(err.to_string().contains("root directory"), "{err}");
    let mut wrong = bytes("/x", b"abc");
    wrong.kind = EntryKind::File {
        source: EntrySource::Bytes(b"abc".to_vec()),
        size: 4,
    };
    let err = write_layer(blobs.path(), vec![wrong], &opts()).unwrap_err();
    assert!(
        matches!(
            err,
            LayerError::BytesSizeMismatch {
                declared: 4,
                actual: 3,
                ..
            }
        ),
        "{err}"
    );
    let err = for_each_entry::<LayerError, _>(blobs.path(), "application/zip", |_, _| Ok(()))
        .unwrap_err();
    assert!(
        matches!(err, LayerError::UnsupportedMediaType { .. }),
        "{err}"
    );
}

#[test]
fn an_empty_layer_is_two_zero_blocks() {
    let blobs = tempfile::tempdir().unwrap();
    let blob = write_layer(blobs.path(), Vec::new(), &opts()).unwrap();
    // sha256 of 1024 zero bytes: the well-known diff_id of an empty layer.
    assert_eq!(
        blob.diff_id,
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    );
    assert!(read_all(&blob.path, &blob.media_type).is_empty());
}

#[test]
fn progress_reports_every_uncompressed_byte_of_the_tar() {
    let dir_ = tempfile::tempdir().unwrap();
    let big = vec![b'x'; 3 * 1024 * 1024 + 17];
    let entries = vec![
        dir("/srv"),
        bytes("/srv/big", &big),
        bytes("/srv/small", b"hi"),
    ];
    let estimate = estimated_tar_size(&entries);
    let seen = std::sync::atomic::AtomicU64::new(0);
    let calls = std::sync::atomic::AtomicU64::new(0);
    let blob = write_layer_with_progress(dir_.path(), entries, &opts(), Compression::Gzip, &|n| {
        seen.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    })
    .unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&blob.path).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    let seen = seen.into_inner();
    assert_eq!(seen, tar.len() as u64, "progress must add up to the tar");
    assert_eq!(
        estimate, seen,
        "no PAX records here, so the estimate is exact"
    );
    assert!(
        calls.into_inner() >= 4,
        "a 3 MiB file is reported in 1 MiB units"
    );
}
