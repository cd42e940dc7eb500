//! Peak memory does not grow with image size: a COPY of a 2 GiB file and a RUN that writes
//! 2 GiB, each built and pushed to a real registry, stay under 100 MB of peak RSS. The figure is
//! memory, measured by GNU time around the whole build and push; nothing here is timed.

// The measured figure and the skip reason are printed for the person running the tests.
#![allow(clippy::print_stderr)]

use crate::build_tests::push_busybox;
use crate::harness::registry::TestRegistry;
use crate::harness::*;

/// The limit the issue sets for peak RSS, whatever the image size.
const LIMIT_KIB: u64 = 100 * 1024;
const SIZE: u64 = 2 << 30;

/// Writes `SIZE` incompressible, repeatable bytes (a xorshift stream) to `path`, in 1 MiB writes.
fn write_big_file(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..(SIZE >> 20) {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        f.write_all(&chunk).unwrap();
    }
    f.flush().unwrap();
}

/// Builds `dockerfile` from `ctx` and pushes it under `dest`; returns the peak RSS in KiB.
fn build_and_measure(
    reg: &TestRegistry,
    home: &std::path::Path,
    ctx: &std::path::Path,
    dest: &str,
) -> u64 {
    let mut cmd = gantry(home);
    cmd.arg("build")
        .arg("--context")
        .arg(ctx)
        .args(["--destination", dest])
        .args(["--insecure-registry", &reg.addr]);
    let (status, kib, err) = peak_rss_kib(&mut cmd);
    assert_eq!(status, 0, "build of {dest} failed:\n{err}");
    kib
}

/// The size of the pushed image's largest layer as its manifest records it. The layer of
/// incompressible data is not smaller compressed than the data, so a complete push is at least
/// `SIZE`.
fn largest_layer(image: &str) -> u64 {
    let raw = skopeo_raw(&format!("docker://{image}"), &["--tls-verify=false"]);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers in the manifest of {image}: {manifest}"))
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .max()
        .unwrap()
}

#[test]
fn copying_a_2_gib_file_keeps_peak_memory_under_100_mb() {
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    write_big_file(&ctx.join("big.bin"));
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY big.bin /big.bin\n"),
    )
    .unwrap();
    let dest = format!("{}/memory/copy:1", reg.addr);
    let kib = build_and_measure(&reg, &tmp.path().join("home"), &ctx, &dest);
    eprintln!(
        "peak RSS building and pushing a 2 GiB COPY: {} MB",
        kib / 1024
    );
    assert!(
        largest_layer(&dest) >= SIZE,
        "the 2 GiB layer was not pushed"
    );
    assert!(
        kib < LIMIT_KIB,
        "peak RSS {kib} KiB for a 2 GiB COPY (limit {LIMIT_KIB} KiB)"
    );
}

#[test]
fn a_run_writing_2_gib_keeps_peak_memory_under_100_mb() {
    if !is_root() {
        eprintln!("skipping: RUN needs root here (namespaces and chroot); run the tests as root");
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN head -c {SIZE} /dev/urandom > /big.bin\n"),
    )
    .unwrap();
    let dest = format!("{}/memory/run:1", reg.addr);
    let kib = build_and_measure(&reg, &tmp.path().join("home"), &ctx, &dest);
    eprintln!(
        "peak RSS building and pushing a 2 GiB RUN layer: {} MB",
        kib / 1024
    );
    assert!(
        largest_layer(&dest) >= SIZE,
        "the 2 GiB layer was not pushed"
    );
    assert!(
        kib < LIMIT_KIB,
        "peak RSS {kib} KiB for a 2 GiB RUN (limit {LIMIT_KIB} KiB)"
    );
}
