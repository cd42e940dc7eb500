//! Hostile input end to end: base images whose top layer is crafted (`..` names, absolute names,
//! symlink and hard-link escapes, a file replaced by a directory, enormous headers, a gzip bomb)
//! and contexts holding device nodes. Each is refused with one clear message or contained, never
//! a panic, a hang, or a file written outside gantry's work directory.
//!
//! The crafted image is busybox with one extra layer, written as an OCI layout here and pushed
//! with skopeo (which does not look inside layers), then built `FROM` with gantry. Extraction
//! happens for RUN, which needs root (overlayfs, namespaces); those tests say so when they skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use sha2::Digest;

use crate::build_tests::build_in;
use crate::harness::fixtures;
use crate::harness::registry::TestRegistry;
use crate::harness::*;

#[allow(clippy::print_stderr)] // the skip message is for the person running the tests
fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("skipping {test}: extracting layers for RUN needs root");
    false
}

/// One raw tar entry; names and link targets are written unchecked.
struct Entry {
    name: String,
    kind: tar::EntryType,
    data: Vec<u8>,
    link: Option<String>,
    /// Size to claim in the header when it differs from `data` (a lying header).
    claimed_size: Option<u64>,
}

fn entry(name: &str, kind: tar::EntryType) -> Entry {
    Entry {
        name: name.into(),
        kind,
        data: Vec::new(),
        link: None,
        claimed_size: None,
    }
}

fn file(name: &str, data: &str) -> Entry {
    Entry {
        data: data.as_bytes().to_vec(),
        ..entry(name, tar::EntryType::Regular)
    }
}

fn dir(name: &str) -> Entry {
    entry(name, tar::EntryType::Directory)
}

fn link(name: &str, kind: tar::EntryType, target: &str) -> Entry {
    Entry {
        link: Some(target.into()),
        ..entry(name, kind)
    }
}

/// An uncompressed tar of the entries, headers written raw (ustar, name up to 100 bytes).
fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for x in entries {
        let mut h = tar::Header::new_ustar();
        let name = x.name.as_bytes();
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        h.set_entry_type(x.kind);
        h.set_mode(if x.kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(x.claimed_size.unwrap_or(x.data.len() as u64));
        if let Some(l) = &x.link {
            h.set_link_name_literal(l).unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&x.data);
        let pad = (512 - x.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let digest = sha(bytes);
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
        bytes,
    )
    .unwrap();
    digest
}

/// Pushes busybox plus one more layer (`gz`: its gzip bytes, `diff_id`: the digest of its tar) as
/// `<reg>/hostile/<name>:latest`; returns that reference.
fn push_with_layer(reg: &TestRegistry, tmp: &Path, name: &str, gz: &[u8], diff_id: &str) -> String {
    let base = fixtures::busybox();
    let layout = tmp.join(format!("layout-{name}"));
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&fixtures::blob(
        &base,
        &fixtures::manifest_digest(&base, fixtures::BUSYBOX_TAG),
    ))
    .unwrap();
    let base_layer = manifest["layers"][0].clone();
    let base_layer_digest = base_layer["digest"].as_str().unwrap();
    put_blob(&layout, &fixtures::blob(&base, base_layer_digest));
    let mut config: serde_json::Value = serde_json::from_slice(&fixtures::blob(
        &base,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(diff_id.into());
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = put_blob(&layout, &config_bytes);
    let layer_digest = put_blob(&layout, gz);
    let new_manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_bytes.len()},
        "layers": [base_layer, {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                "digest": layer_digest, "size": gz.len()}],
    });
    let manifest_bytes = serde_json::to_vec(&new_manifest).unwrap();
    let manifest_digest = put_blob(&layout, &manifest_bytes);
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]})
        .to_string(),
    )
    .unwrap();
    let image = format!("{}/hostile/{name}:latest", reg.addr);
    fixtures::push(&layout, "latest", &image, None, None);
    image
}

fn push_crafted(reg: &TestRegistry, tmp: &Path, name: &str, entries: &[Entry]) -> String {
    let tar = tar_bytes(entries);
    push_with_layer(reg, tmp, name, &gzip(&tar), &sha(&tar))
}

/// Builds `FROM image` + `body` in a fresh context, pushing to `<reg>/out/<name>:1`.
fn build_from(reg: &TestRegistry, tmp: &Path, image: &str, body: &str, name: &str) -> Output {
    build_in(
        &tmp.join(format!("ctx-{name}")),
        &format!("FROM {image}\n{body}"),
        &[],
        &[
            "--destination",
            &format!("{}/out/{name}:1", reg.addr),
            "--insecure-registry",
            &reg.addr,
        ],
    )
}

/// A directory outside every work directory that a crafted layer aims at; it must stay empty.
struct Target(tempfile::TempDir);

impl Target {
    fn new() -> Target {
        Target(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn assert_empty(&self) {
        let left: Vec<PathBuf> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(
            left.is_empty(),
            "a crafted layer wrote on the host: {left:?}"
        );
    }
}

fn no_panic(err: &str) {
    assert!(!err.contains("panicked"), "gantry panicked:\n{err}");
}

#[test]
fn dotdot_entry_is_refused_naming_it() {
    if !need_root("dotdot_entry_is_refused_naming_it") {
        return;
    }
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let target = Target::new();
    let depth = "../".repeat(12);
    let name = format!("{depth}{}/pwned", target.path().display());
    let image = push_crafted(&reg, tmp.path(), "dotdot", &[file(&name, "owned")]);
    let err = fails(build_from(&reg, tmp.path(), &image, "RUN true\n", "dotdot"));
    no_panic(&err);
    assert!(err.contains("is refused"), "{err}");
    assert!(
        err.contains("pwned"),
        "the message does not name the entry:\n{err}"
    );
    target.assert_empty();
}

#[test]
fn absolute_names_land_inside_the_image() {
    if !need_root("absolute_names_land_inside_the_image") {
        return;
    }
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let target = Target::new();
    let abs = format!("{}/abs.txt", target.path().display());
    let image = push_crafted(&reg, tmp.path(), "absolute", &[file(&abs, "inside")]);
    let out = build_from(
        &reg,
        tmp.path(),
        &image,
        &format!("RUN cat {abs} > /seen.txt\n"),
        "absolute",
    );
    ok(out);
    target.assert_empty();
    let layout = tmp.path().join("pulled");
    skopeo_to_layout(
        &format!("docker://{}/out/absolute:1", reg.addr),
        &layout,
        "1",
        &["--src-tls-verify=false"],
    );
    let rootfs = umoci_unpack(&layout, "1", &tmp.path().join("bundle"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("seen.txt")).unwrap(),
        "inside"
    );
}

#[test]
fn writing_through_a_symlink_that_points_out_stays_inside() {
    if !need_root("writing_through_a_symlink_that_points_out_stays_inside") {
        return;
    }
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let target = Target::new();
    let t = target.path().display().to_string();
    let image = push_crafted(
        &reg,
        tmp.path(),
        "symlink",
        &[
            link("escape", tar::EntryType::Symlink, &t),
            link(
                "rel",
                tar::EntryType::Symlink,
                &format!("../../../../../../..{t}"),
            ),
            file("escape/pwned", "owned"),
            file("rel/pwned2", "owned"),
        ],
    );
    let out = build_from(&reg, tmp.path(), &image, "RUN true\n", "symlink");
    no_panic(&stderr(&out));
    target.assert_empty();
}

#[test]
fn hard_link_to_a_host_file_is_refused() {
    if !need_root("hard_link_to_a_host_file_is_refused") {
        return;
    }
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let target = Target::new();
    let secret = target.path().join("secret");
    std::fs::write(&secret, "host secret").unwrap();
    let image = push_crafted(
        &reg,
        tmp.path(),
        "hardlink",
        &[link(
            "leak",
            tar::EntryType::Link,
            &secret.display().to_string(),
        )],
    );
    let err = fails(build_from(
        &reg,
        tmp.path(),
        &image,
        "RUN cat /leak\n",
        "hardlink",
    ));
    no_panic(&err);
    assert!(err.contains("hard link `"), "{err}");
    assert!(err.contains("leak"), "{err}");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
    // And with `..`: refused outright.
    let image = push_crafted(
        &reg,
        tmp.path(),
        "hardlink-dotdot",
        &[link(
            "leak",
            tar::EntryType::Link,
            &format!("../../../../../../..{}", secret.display()),
        )],
    );
    let err = fails(build_from(
        &reg,
        tmp.path(),
        &image,
        "RUN cat /leak\n",
        "hardlink-dotdot",
    ));
    no_panic(&err);
    assert!(err.contains("leak"), "{err}");
}

#[test]
fn file_replaced_by_a_directory_across_layers() {
    if !need_root("file_replaced_by_a_directory_across_layers") {
        return;
    }
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    // busybox has /etc/passwd as a file; the crafted layer makes it a directory.
    let image = push_crafted(
        &reg,
        tmp.path(),
        "replace",
        &[dir("etc/passwd"), file("etc/passwd/inner", "now a dir")],
    );
    let out = build_from(
        &reg,
        tmp.path(),
        &image,
        "RUN test -d /etc/passwd && cat /etc/passwd/inner > /seen.txt\n",
        "replace",
    );
    ok(out);
    let layout = tmp.path().join("pulled");
    skopeo_to_layout(
        &format!("docker://{}/out/replace:1", reg.addr),
        &layout,
        "1",
        &["--src-tls-verify=false"],
    );
    // umoci cannot unpack an image whose /etc/passwd is a directory, so read the RUN's layer.
    assert_eq!(
        top_layer_file(&layout, "1", "seen.txt").as_deref(),
        Some(&b"now a dir"[..])
    );
}

#[test]
fn enormous_header_sizes_are_refused_without_a_hang() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    // A PAX extension header and a file that claim terabytes but carry a few bytes.
    let mut pax = entry("././@PaxHeader", tar::EntryType::XHeader);
    pax.data = b"20 path=aaaaaaaaaa\n".to_vec();
    pax.claimed_size = Some(1 << 40);
    let mut big = file("big", "tiny");
    big.claimed_size = Some(1 << 40);
    for (name, entries) in [("pax", vec![pax]), ("size", vec![big])] {
        let image = push_crafted(&reg, tmp.path(), name, &entries);
        let start = std::time::Instant::now();
        let out = build_from(&reg, tmp.path(), &image, "COPY Dockerfile /copied\n", name);
        let err = fails(out);
        no_panic(&err);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "an enormous header took {:?}",
            start.elapsed()
        );
        assert!(err.contains("layer") || err.contains("blob"), "{err}");
    }
}

/// The content of `name` in the top layer of `layout:tag`.
fn top_layer_file(layout: &Path, tag: &str, name: &str) -> Option<Vec<u8>> {
    let manifest: serde_json::Value = serde_json::from_slice(&fixtures::blob(
        layout,
        &fixtures::manifest_digest(layout, tag),
    ))
    .unwrap();
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let gz = fixtures::blob(layout, &top);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy().trim_start_matches("./") == name {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut out).unwrap();
            return Some(out);
        }
    }
    None
}

#[test]
fn gzip_bomb_layer_is_streamed_in_bounded_memory() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    // 512 MiB of zeros in one file: about half a megabyte of gzip.
    const SIZE: usize = 512 << 20;
    let mut header = tar::Header::new_ustar();
    header.set_path("bomb").unwrap();
    header.set_size(SIZE as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut hasher = sha2::Sha256::new();
    let mut feed = |b: &[u8]| {
        hasher.update(b);
        gz.write_all(b).unwrap();
    };
    feed(header.as_bytes());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(SIZE >> 20) {
        feed(&zeros);
    }
    feed(&[0u8; 1024]);
    let gz_bytes = gz.finish().unwrap();
    let diff_id = format!("sha256:{}", hex::encode(hasher.finalize()));
    assert!(gz_bytes.len() < 2 << 20, "{}", gz_bytes.len());
    let image = push_with_layer(&reg, tmp.path(), "bomb", &gz_bytes, &diff_id);
    let ctx = tmp.path().join("ctx-bomb");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {image}\nCOPY Dockerfile /Dockerfile.copy\n"),
    )
    .unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = gantry(&home);
    cmd.arg("build")
        .arg("--context")
        .arg(&ctx)
        .args(["--destination", &format!("{}/out/bomb:1", reg.addr)])
        .args(["--insecure-registry", &reg.addr]);
    let (status, rss_kib, err) = peak_rss_kib(&mut cmd);
    assert_eq!(status, 0, "build failed:\n{err}");
    assert!(
        rss_kib < 200 * 1024,
        "peak RSS {rss_kib} KiB reading a 512 MiB gzip bomb"
    );
}

#[test]
fn device_nodes_and_fifos_in_the_context_are_not_copied_as_devices() {
    let reg = TestRegistry::plain();
    let base = crate::build_tests::push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("plain.txt"), "plain").unwrap();
    let fifo = std::ffi::CString::new(ctx.join("pipe").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    if is_root() {
        let dev = std::ffi::CString::new(ctx.join("null").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; /dev/null's numbers.
        let made = unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
        assert_eq!(made, 0);
    }
    let dest = format!("{}/out/devices:1", reg.addr);
    let out = build_in(
        &ctx,
        &format!("FROM {base}\nCOPY . /ctx/\n"),
        &[],
        &["--destination", &dest, "--insecure-registry", &reg.addr],
    );
    let err = stderr(&out);
    no_panic(&err);
    if !out.status.success() {
        // Refused: the message names the special file.
        assert!(err.contains("pipe") || err.contains("null"), "{err}");
        return;
    }
    // Copied: the image holds no device node and no FIFO from the context.
    let layout = tmp.path().join("pulled");
    skopeo_to_layout(
        &format!("docker://{dest}"),
        &layout,
        "1",
        &["--src-tls-verify=false"],
    );
    let manifest: serde_json::Value = serde_json::from_slice(&fixtures::blob(
        &layout,
        &fixtures::manifest_digest(&layout, "1"),
    ))
    .unwrap();
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let gz = fixtures::blob(&layout, &top);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
    let mut names = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let kind = e.header().entry_type();
        let name = e.path().unwrap().display().to_string();
        assert!(
            !matches!(
                kind,
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
            ),
            "`{name}` from the context was copied as a {kind:?}"
        );
        names.push(name);
    }
    assert!(names.iter().any(|n| n.ends_with("plain.txt")), "{names:?}");
}
