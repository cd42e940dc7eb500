//! Layer blobs (tar, or gzip when the bytes start with its magic): reading them into a filesystem
//! index and extracting them (with the recording fake for privileged calls) either works or
//! fails with an error, and extraction never creates anything outside its destination (see
//! `common/outside.rs`).
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

use gantry::rootfs::privileged::Recorder;
use gantry::rootfs::unpack::{unpack_layer, UnpackOptions, WhiteoutMode};

#[path = "common/outside.rs"]
mod outside;

fuzz_target!(|data: &[u8]| {
    let media_type = if data.starts_with(&[0x1f, 0x8b]) {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    };
    let mut blob = tempfile::NamedTempFile::new().unwrap();
    blob.write_all(data).unwrap();
    blob.flush().unwrap();
    let _ = gantry::rootfs::index::read_layer_changes(blob.path(), media_type);
    let _ = gantry::rootfs::FsIndex::from_layers(&[(blob.path().to_path_buf(), media_type.into())]);

    let sandbox = outside::Sandbox::new();
    let opts = UnpackOptions {
        whiteouts: if data.len() % 2 == 0 {
            WhiteoutMode::Apply
        } else {
            WhiteoutMode::Overlay
        },
        ..Default::default()
    };
    let _ = unpack_layer(
        blob.path(),
        media_type,
        &sandbox.target,
        &opts,
        &Recorder::new(),
    );
    sandbox.check();
});
